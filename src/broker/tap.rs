//! The store tap: a local link subscribed to `#` that hands every publish to ingest. Its loop
//! only receives, hands over and answers `Unschedule` (a link that ignores it stalls after 200
//! messages). It also counts what the router skipped: every forward carries its offset in the
//! filter's log, so a gap between consecutive offsets is exactly the number of messages lost.

use super::outbox::{Internal, Outbox};
use crate::ingest::{Incoming, Intake};
use crate::metrics::Metrics;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::Notification;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

pub struct Tap {
    pub rx: LinkRx,
    /// Kept so the router keeps the link; the tap never publishes.
    pub _tx: LinkTx,
    pub outbox: Arc<Outbox>,
    pub intake: flume::Sender<Intake>,
    pub metrics: Arc<Metrics>,
}

impl Tap {
    /// Runs until the router drops the link or ingest goes away.
    pub fn run(mut self) {
        // The `#` log is created by our subscription, before any client connects: offset 0.
        let mut expected_offset = 0u64;
        loop {
            let notification = match self.rx.recv() {
                Ok(Some(n)) => n,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!("store tap: the broker closed the link: {e}");
                    return;
                }
            };
            let forward = match notification {
                Notification::Forward(forward) => forward,
                Notification::Unschedule => {
                    if self.rx.ready().is_err() {
                        return;
                    }
                    continue;
                }
                Notification::Disconnect(..) => {
                    tracing::error!("store tap: the broker disconnected the link");
                    return;
                }
                _ => continue,
            };
            if let Some((_, offset)) = forward.cursor {
                if offset > expected_offset {
                    let lost = offset - expected_offset;
                    self.metrics.skipped.fetch_add(lost, Relaxed);
                    self.metrics.skip_events.fetch_add(1, Relaxed);
                    tracing::warn!(
                        "store tap fell behind the broker: {lost} messages skipped \
                         (raise [router] max_segment_size or max_segment_count)"
                    );
                }
                expected_offset = offset + 1;
            }
            let publish = forward.publish;
            let item = match self.outbox.take(&publish.topic, &publish.payload) {
                Some(Internal::Publication) => {
                    self.metrics.internal_seen.fetch_add(1, Relaxed);
                    continue;
                }
                Some(Internal::Barrier(done)) => Intake::Barrier(done),
                None => {
                    let received_at = chrono::Utc::now().timestamp_millis();
                    self.metrics.received.fetch_add(1, Relaxed);
                    self.metrics
                        .last_message_ms
                        .store(received_at as u64, Relaxed);
                    Intake::Message(Incoming {
                        topic: publish.topic,
                        payload: publish.payload,
                        received_at,
                        properties: forward.properties.map(Box::new),
                    })
                }
            };
            if self.intake.send(item).is_err() {
                return;
            }
            self.metrics
                .queue_depth
                .store(self.intake.len() as u64, Relaxed);
        }
    }
}
