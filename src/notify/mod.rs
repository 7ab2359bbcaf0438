//! What leaves the process after ingest has decided: alerts published over MQTT on
//! `edgemq/alerts/<device_id>/<type>`, and live events for the dashboard. Ingest hands it a
//! `Notice` per batch over a bounded channel and never waits for it; a notice that finds the
//! channel full, or an alert the router refuses, is counted with its reason.

mod live;

pub use live::LiveEvent;

use crate::broker::Outbox;
use crate::metrics::{Dropped, Metrics};
use crate::store::{Alert, AlertChange, Record};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Notices that may wait for the notifier; past that they are dropped and counted.
const NOTICES_QUEUED: usize = 1024;

/// What one ingest batch has to tell.
#[derive(Debug, Default)]
pub struct Notice {
    pub alerts: Vec<AlertChange>,
    /// Devices that went online (`true`) or offline.
    pub presence: Vec<(String, bool)>,
    /// Each device's latest message in the batch; filled only while a live view listens.
    pub latest: Vec<Record>,
}

impl Notice {
    fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.presence.is_empty() && self.latest.is_empty()
    }
}

/// Ingest's end of the notifier.
#[derive(Clone)]
pub struct Notices {
    tx: flume::Sender<Notice>,
    live: broadcast::Sender<LiveEvent>,
    metrics: Arc<Metrics>,
}

impl Notices {
    /// Whether a live view listens now (so building `Notice::latest` is worth it).
    pub fn listening(&self) -> bool {
        self.live.receiver_count() > 0
    }

    /// Hands a notice over without waiting.
    pub fn send(&self, notice: Notice) {
        if notice.is_empty() {
            return;
        }
        if self.tx.try_send(notice).is_err() {
            self.metrics.dropped(Dropped::NoticeQueueFull);
        }
    }
}

/// Starts the notifier thread; it ends when every `Notices` is gone.
pub fn spawn(
    outbox: Arc<Outbox>,
    live: broadcast::Sender<LiveEvent>,
    metrics: Arc<Metrics>,
) -> std::io::Result<Notices> {
    let (tx, rx) = flume::bounded(NOTICES_QUEUED);
    let notices = Notices {
        tx,
        live: live.clone(),
        metrics: metrics.clone(),
    };
    let notifier = Notifier {
        outbox,
        live,
        metrics,
    };
    std::thread::Builder::new()
        .name("notify".into())
        .spawn(move || {
            for notice in rx.iter() {
                notifier.tell(notice);
            }
        })?;
    Ok(notices)
}

struct Notifier {
    outbox: Arc<Outbox>,
    live: broadcast::Sender<LiveEvent>,
    metrics: Arc<Metrics>,
}

impl Notifier {
    fn tell(&self, notice: Notice) {
        for change in &notice.alerts {
            self.publish_alert(change);
        }
        if self.live.receiver_count() == 0 {
            return;
        }
        for record in notice.latest {
            let _ = self.live.send(LiveEvent::message(record));
        }
        for (device_id, online) in notice.presence {
            let _ = self.live.send(LiveEvent::Device { device_id, online });
        }
        for change in notice.alerts {
            let (alert, state) = match change {
                AlertChange::Raised(a) => (a, "raised"),
                AlertChange::Cleared(a) => (a, "cleared"),
            };
            let _ = self.live.send(LiveEvent::Alert { alert, state });
        }
    }

    /// Alerts go out with `state` raised or cleared; one raised and cleared within a batch (an
    /// ONLINE event) goes out as both.
    fn publish_alert(&self, change: &AlertChange) {
        match change {
            AlertChange::Raised(alert) => {
                self.publish_alert_state(alert, "raised");
                if alert.cleared_at.is_some() {
                    self.publish_alert_state(alert, "cleared");
                }
            }
            AlertChange::Cleared(alert) => self.publish_alert_state(alert, "cleared"),
        }
    }

    fn publish_alert_state(&self, alert: &Alert, state: &str) {
        let mut body = serde_json::to_value(alert).unwrap_or_default();
        body["state"] = state.into();
        let topic = format!(
            "edgemq/alerts/{}/{}",
            topic_level(&alert.device_id),
            topic_level(&alert.alert_type)
        );
        if !crate::topic::valid_name(topic.as_bytes()) {
            self.metrics.dropped(Dropped::AlertNotPublished);
            return tracing::warn!("alert {} not published: its topic is too long", alert.id);
        }
        if let Err(e) = self.outbox.publish(&topic, body.to_string()) {
            self.metrics.dropped(Dropped::AlertNotPublished);
            tracing::error!("alert {} not published: {e}", alert.id);
        }
    }
}

/// A name made safe as one topic level: no wildcards, no separators.
fn topic_level(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if matches!(c, '+' | '#' | '/' | '\0') {
                '_'
            } else {
                c
            }
        })
        .collect();
    if safe.is_empty() {
        "_".into()
    } else {
        safe
    }
}
