//! MQTT 5 wills with a Will Delay Interval: held until the delay passes or the session ends,
//! whichever comes first [MQTT-3.1.3-9], and not published at all when the client comes back
//! to its session in time. A new connection with Clean Start ends the old session, so its will
//! goes out then.

use crate::ingest::{Incoming, Intake};
use crate::metrics::{Dropped, Metrics};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// What a returning client does to a will that waits.
enum Return {
    /// It resumed the session: the will is not published.
    Resumed,
    /// It started a new session, which ends the old one: the will goes out now.
    NewSession,
}

/// Wills that wait, by client id.
#[derive(Default)]
pub struct Delayed {
    waiting: Mutex<HashMap<Arc<str>, oneshot::Sender<Return>>>,
}

impl Delayed {
    /// Holds `will` of `client_id` for `wait` (the lesser of its delay and what is left of its
    /// session), then hands it to ingest unless its client came back to the session.
    pub fn hold(
        self: &Arc<Self>,
        client_id: Arc<str>,
        mut will: Incoming,
        wait: Duration,
        intake: flume::Sender<Intake>,
        metrics: Arc<Metrics>,
    ) {
        let (tx, rx) = oneshot::channel();
        let replaced = self.lock().insert(client_id.clone(), tx);
        // A will still waiting from an earlier connection of the client is its session's end.
        if let Some(earlier) = replaced {
            let _ = earlier.send(Return::NewSession);
        }
        let delayed = self.clone();
        tokio::spawn(async move {
            let publish = match tokio::time::timeout(wait, rx).await {
                Ok(Ok(Return::Resumed)) => false,
                Ok(Ok(Return::NewSession)) => true,
                // The delay passed (or the registry was dropped).
                Ok(Err(_)) | Err(_) => {
                    delayed.lock().remove(&client_id);
                    true
                }
            };
            if !publish {
                return tracing::debug!("client {client_id}: back in time, its will is dropped");
            }
            will.received_at = crate::clock::now_ms();
            metrics
                .received
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if intake.send_async(Intake::Message(will)).await.is_err() {
                metrics.dropped(Dropped::WillNotPublished);
            }
        });
    }

    /// A connection of `client_id` came: a waiting will is dropped when it `resumed` its
    /// session, and published at once otherwise.
    pub fn client_returned(&self, client_id: &str, resumed: bool) {
        if let Some(waiting) = self.lock().remove(client_id) {
            let _ = waiting.send(match resumed {
                true => Return::Resumed,
                false => Return::NewSession,
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, oneshot::Sender<Return>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}
