//! Live events for the dashboard after ingest has decided: messages, presence and alerts.
//! (Alerts reach MQTT subscribers as messages of the log: see `ingest::alerts`.) Ingest hands
//! it a `Notice` per batch over a bounded channel and never waits for it; a notice that finds
//! the channel full is counted with its reason.

mod live;

pub use live::LiveEvent;

use crate::metrics::{Dropped, Metrics};
use crate::store::{AlertChange, Record};
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
    live: broadcast::Sender<LiveEvent>,
    metrics: Arc<Metrics>,
) -> std::io::Result<Notices> {
    let (tx, rx) = flume::bounded(NOTICES_QUEUED);
    let notices = Notices {
        tx,
        live: live.clone(),
        metrics: metrics.clone(),
    };
    let notifier = Notifier { live };
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
    live: broadcast::Sender<LiveEvent>,
}

impl Notifier {
    fn tell(&self, notice: Notice) {
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
}
