//! The session's side of delivery: moving what the client gets into the socket's buffer
//! within its window, taking the router's copies, reading pages of the log for a session that
//! fell behind, and saving a persistent session's progress.

use super::outgoing::{Accepted, Outgoing, Sending};
use super::{codec, Session, QUEUED_MAX};
use crate::broker::names;
use crate::ingest::Intake;
use crate::metrics::Dropped;
use crate::query::log::{self, Logged};
use crate::query::{Db, QueryError};
use crate::store::{SavedSession, SessionChange};
use bytes::BytesMut;
use rumqttd::protocol::{Filter, Packet, QoS, RetainForwardRule, Subscribe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// Deliveries are moved into `out` while it holds less than this.
const OUT_HIGH_WATER: usize = 64 * 1024;

/// A page of the log being read, and the id it reads through.
pub(super) type PageRead = std::pin::Pin<
    Box<dyn std::future::Future<Output = (Result<Vec<Logged>, QueryError>, i64)> + Send>,
>;

/// Reads the log's `(after, through]` off the runtime; a failure is retried after a pause.
pub(super) fn read_page(db: Arc<Db>, after: i64, through: i64) -> PageRead {
    Box::pin(async move {
        let rows = db.run(move |conn| log::between(conn, after, through)).await;
        if rows.is_err() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        (rows, through)
    })
}

/// How often a persistent session's progress through the log is saved (when it moved).
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// A persistent session as the store keeps it; `left`: its client has gone (it expires
/// `expiry` from now; None: never).
pub(super) fn saved(
    client_id: &str,
    state: &Outgoing,
    expiry: Option<Duration>,
    left: bool,
) -> SavedSession {
    let expires_at = expiry
        .filter(|_| left)
        .map(|e| crate::clock::later(crate::clock::now_ms(), e));
    SavedSession {
        client_id: client_id.to_string(),
        subscriptions: state.subscriptions(),
        acked_through: state.acked_through(),
        sent_through: state.sent_through(),
        expires_at,
        expiry_interval: expiry.map(|e| e.as_secs()),
    }
}

impl Session {
    /// Saves the persistent session's filters and how far its client acknowledged the log,
    /// when `always` or that moved since the last save.
    pub(super) async fn checkpoint(&mut self, always: bool) {
        let at = (self.outgoing.acked_through(), self.outgoing.sent_through());
        if !always && self.saved_at == Some(at) {
            return;
        }
        self.saved_at = Some(at);
        let (id, expiry) = (&self.client.client_id, self.client.expiry);
        let change = SessionChange::Save(saved(id, &self.outgoing, expiry, false));
        let _ = self.shared.intake.send_async(Intake::Session(change)).await;
    }

    /// Gives the router the filters of a session restored from the store (at QoS 0; packet id
    /// 0 marks a SUBSCRIBE whose SUBACK is not the client's).
    pub(super) async fn resubscribe_router(&mut self) {
        let filters: Vec<Filter> = self
            .outgoing
            .subscriptions()
            .into_iter()
            .map(|(path, ..)| Filter {
                path: names::filter_to_router(&path).into_owned(),
                qos: QoS::AtMostOnce,
                nolocal: false,
                preserve_retain: false,
                retain_forward_rule: RetainForwardRule::Never,
            })
            .collect();
        self.outgoing.router_subscribed = true;
        if !filters.is_empty() {
            let subscribe = Packet::Subscribe(Subscribe { pkid: 0, filters }, None);
            let _ = self.send_to_router(vec![subscribe]).await;
        }
    }

    /// Moves deliveries into `out` as far as the in-flight window and the writer allow.
    pub(super) fn pump(&mut self) {
        while self.out.len() < OUT_HIGH_WATER {
            let Some(send) = self.outgoing.next_to_send() else {
                return;
            };
            self.send(send);
        }
    }

    pub(super) fn send(&mut self, send: Sending) {
        let (delivery, pkid, dup) = match send {
            Sending::Other(packet) => return self.write(packet),
            Sending::Publish(delivery, pkid, dup) => (delivery, pkid, dup),
        };
        let mut delivery = delivery;
        if !self.may_receive(&delivery.publish.topic) {
            if pkid != 0 {
                self.outgoing.completed(pkid);
            }
            return;
        }
        if let Some(at) = delivery.expires_at {
            let left = at - crate::clock::now_ms();
            // Once sent, a message goes again (DUP) even when it has expired since.
            if left <= 0 && !dup {
                let why = "its message expiry interval ran out".to_string();
                return self.skipped(Dropped::Expired, pkid, why);
            }
            if let (true, Some(p)) = (left > 0, delivery.properties.as_mut()) {
                // [MQTT-3.3.2-6] What is left of it, in whole seconds (rounded up).
                p.message_expiry_interval =
                    Some(u32::try_from((left + 999) / 1000).unwrap_or(u32::MAX));
            }
        }
        let packet = Packet::Publish(delivery.publish, delivery.properties);
        let max = self.client.max_packet_size.unwrap_or(usize::MAX);
        if delivery.qos == QoS::AtMostOnce {
            let before = self.out.len();
            self.write(packet);
            let size = self.out.len() - before;
            if size > max {
                self.out.truncate(before);
                self.shared.metrics.packets_sent.fetch_sub(1, Relaxed);
                return self.skipped(Dropped::PacketTooLarge, 0, too_large(size));
            }
            self.shared.metrics.sent.fetch_add(1, Relaxed);
            return;
        }
        // rumqttd's `Publish` keeps QoS and packet id private: write it at QoS 0, then add them.
        let mut frame = BytesMut::new();
        match self.client.version.write(packet, &mut frame) {
            Ok(_) => {
                let frame = codec::with_packet_id(&frame, delivery.qos, pkid, dup);
                if frame.len() > max {
                    return self.skipped(Dropped::PacketTooLarge, pkid, too_large(frame.len()));
                }
                self.shared.metrics.sent.fetch_add(1, Relaxed);
                self.shared.metrics.packets_sent.fetch_add(1, Relaxed);
                self.out.extend_from_slice(&frame);
            }
            Err(e) => {
                self.count_drop(Dropped::EncodeFailed);
                tracing::warn!(
                    "client {}: cannot encode a packet: {e}",
                    self.client.client_id
                );
            }
        }
    }

    /// A delivery not sent to this client (past its Maximum Packet Size [MQTT-3.1.2-25], or
    /// expired [MQTT-3.3.2-5]): counted, logged at most once a second, its packet id freed.
    fn skipped(&mut self, why: Dropped, pkid: u16, detail: String) {
        if pkid != 0 {
            self.outgoing.completed(pkid);
        }
        self.count_drop(why);
        if self.slow_warnings.allow().0 {
            tracing::info!(
                "client {}: a message was not sent: {detail} \
                 (edgemq_dropped_total{{reason=\"{}\"}})",
                self.client.client_id,
                why.reason()
            );
        }
    }

    /// A copy the router forwarded, for the client's queue.
    pub(super) fn take(&mut self, forward: rumqttd::Forward) {
        let skips = self.outgoing.router_skips;
        let accepted = self.outgoing.accept(forward);
        if self.outgoing.router_skips > skips {
            self.shared.metrics.router_skips.fetch_add(1, Relaxed);
            if self.slow_warnings.allow().0 {
                tracing::warn!(
                    "client {id}: the router skipped copies for it (its log budget, [router] \
                     max_segment_size * max_segment_count, ran out); reading them from the store",
                    id = self.client.client_id
                );
            }
        }
        match accepted {
            Accepted::Dropped => {
                self.count_drop(Dropped::SessionQueueFull);
                if self.slow_warnings.allow().0 {
                    tracing::warn!(
                        "client {id}: {QUEUED_MAX} messages wait for it; RPC replies and $SYS \
                         updates are not delivered to it meanwhile \
                         (edgemq_dropped_total{{reason=\"session_queue_full\"}})",
                        id = self.client.client_id
                    );
                }
            }
            Accepted::OverLimit => {
                self.count_drop(Dropped::QueueLimit);
                if self.slow_warnings.allow().0 {
                    tracing::warn!(
                        "client {id}: max_queued_messages or max_queued_bytes reached; messages \
                         are not delivered to it meanwhile \
                         (edgemq_dropped_total{{reason=\"queue_limit\"}})",
                        id = self.client.client_id
                    );
                }
            }
            Accepted::HandedOver => self.hand_over_shared(),
            _ => {}
        }
    }

    /// Deliveries of shared subscriptions go to other members of their groups; those with no
    /// member to go to are counted.
    pub(super) fn hand_over_shared(&mut self) {
        let handovers = self.outgoing.handovers();
        if handovers.is_empty() {
            return;
        }
        let id = self.client.client_id.clone();
        let unplaced = self.shared.sessions.hand_over(&id, handovers);
        for _ in 0..unplaced {
            self.count_drop(Dropped::NoGroupMember);
        }
        if unplaced > 0 && self.slow_warnings.allow().0 {
            tracing::warn!(
                "client {id}: {unplaced} messages of its shared subscriptions had no other                  member of their group to go to (edgemq_dropped_total{{reason=\"no_group_member\"}})"
            );
        }
    }

    /// A message not delivered to this client: counted in the totals and in its session's.
    pub(super) fn count_drop(&mut self, why: Dropped) {
        self.shared.metrics.dropped(why);
        *self.outgoing.drops.entry(why.reason()).or_default() += 1;
    }
}

fn too_large(size: usize) -> String {
    format!("its {size} bytes are past the client's Maximum Packet Size")
}
