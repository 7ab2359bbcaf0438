//! How a session ends: the will published, held for its delay, or dropped; the link to the
//! router closed; a shared subscription's unacknowledged messages handed to the group; and the
//! session saved and kept for its client, or ended.

use super::{saved, Outgoing, Session};
use crate::front_door::connect::end_link;
use crate::ingest::Intake;
use crate::metrics::Dropped;
use crate::store::SessionChange;
use std::sync::atomic::Ordering::Relaxed;

/// How a session ended.
pub(super) enum End {
    /// The client sent DISCONNECT; an MQTT 5 client may still want its will published.
    Disconnected { with_will: bool },
    /// The connection broke, timed out or broke the protocol.
    Lost(String),
    /// The router ended the link: another connection took over the client id.
    TakenOver,
    /// edgemq is shutting down and every acknowledgement has been sent.
    Shutdown,
}

impl Session {
    /// Publishes the will when the client left without asking not to, and ends the link.
    pub(super) async fn finish(mut self, end: End) {
        let will = self.wants_will(&end);
        if will {
            self.check_will();
        }
        self.publish_will(will, &end).await;
        if !matches!(end, End::TakenOver) {
            end_link(&mut self.client.link_tx).await;
        }
        if !matches!(end, End::Shutdown) {
            // The group's messages this client did not acknowledge go to its other members.
            self.outgoing.release_shared();
            self.hand_over_shared();
        }
        self.leave(matches!(end, End::Shutdown)).await;
    }

    /// Whether the way it ended sends the will.
    fn wants_will(&self, end: &End) -> bool {
        let id = &self.client.client_id;
        match end {
            End::Disconnected { with_will } => *with_will,
            End::Lost(why) => {
                tracing::debug!("client {id}: connection lost: {why}");
                true
            }
            End::TakenOver => {
                tracing::debug!("client {id}: taken over by a new connection");
                true
            }
            End::Shutdown => false,
        }
    }

    /// The will, published now, held for its delay, or counted as not sent at shutdown.
    async fn publish_will(&mut self, will: bool, end: &End) {
        let metrics = self.shared.metrics.clone();
        let id = self.client.client_id.clone();
        match (will, self.client.will.take()) {
            (true, Some(will)) if will.delay.is_some() && !self.client.clean => {
                // Held until its delay passes or the session ends, whichever is first.
                let delay = will.delay.unwrap_or_default();
                let wait = self.client.expiry.map_or(delay, |e| e.min(delay));
                let incoming = self.incoming(&will.publish, &will.properties, will.qos, 0, None);
                let intake = self.shared.intake.clone();
                let delayed = &self.shared.delayed_wills;
                delayed.hold(id, incoming, wait, intake, metrics);
            }
            (true, Some(will)) => {
                let now = crate::clock::now_ms();
                let incoming = self.incoming(&will.publish, &will.properties, will.qos, now, None);
                metrics.received.fetch_add(1, Relaxed);
                // Ingest stores it and hands its copy to the router, as for any publish.
                if let Err(e) = self.hand_to_ingest(incoming).await {
                    metrics.dropped(Dropped::WillNotPublished);
                    tracing::error!("client {id}: last will not stored: {e}");
                }
            }
            (false, Some(_)) if matches!(end, End::Shutdown) => {
                metrics.dropped(Dropped::WillAtShutdown)
            }
            _ => {}
        }
    }

    /// A persistent session is saved and kept for its client; a clean one ends.
    async fn leave(mut self, shutdown: bool) {
        let left = (!self.client.clean).then(|| self.view(Some(crate::clock::now_ms())));
        let keep = (!self.client.clean)
            .then(|| std::mem::replace(&mut self.outgoing, Outgoing::new(1, 0)));
        let (id, expiry) = (&self.client.client_id, self.client.expiry);
        let change = match &keep {
            Some(state) => SessionChange::Save(saved(id, state, expiry, true)),
            None => SessionChange::End(id.to_string()),
        };
        if !shutdown || keep.is_some() {
            let _ = self.shared.intake.send_async(Intake::Session(change)).await;
        }
        self.shared.sessions.left(id, self.connection, left);
        self.shared.parked.park(id, self.connection, keep, expiry);
        self.shared.metrics.connected_clients.fetch_sub(1, Relaxed);
    }
}
