//! What live views (the dashboard) hear from ingest as it happens.

/// What a live view (the dashboard) hears as it happens.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum LiveEvent {
    /// A device's latest message in a batch, with its numeric fields.
    Message {
        device_id: String,
        topic: String,
        kind: Option<&'static str>,
        received_at: String,
        values: serde_json::Map<String, serde_json::Value>,
    },
    /// An alert raised or cleared.
    Alert {
        #[serde(flatten)]
        alert: crate::store::Alert,
        state: &'static str,
    },
    /// A device went online or offline.
    Device { device_id: String, online: bool },
}

impl LiveEvent {
    /// The server-sent event name.
    pub fn name(&self) -> &'static str {
        match self {
            LiveEvent::Message { .. } => "message",
            LiveEvent::Alert { .. } => "alert",
            LiveEvent::Device { .. } => "device",
        }
    }
}
