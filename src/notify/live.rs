//! What live views (the dashboard) hear as it happens.

use crate::store::Record;

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

impl LiveEvent {
    /// A device's message, with the numeric fields of its JSON object.
    pub fn message(record: Record) -> LiveEvent {
        let values = match serde_json::from_slice(&record.payload) {
            Ok(serde_json::Value::Object(fields)) => {
                fields.into_iter().filter(|(_, v)| v.is_number()).collect()
            }
            _ => serde_json::Map::new(),
        };
        LiveEvent::Message {
            device_id: record.device_id.unwrap_or_default(),
            received_at: crate::clock::iso_ms(record.received_at),
            topic: record.topic,
            kind: record.kind,
            values,
        }
    }
}
