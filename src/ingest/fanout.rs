//! Numbering and fan-out: every message received gets the next id of the log (shared by
//! `messages` and `dead_letters`), and its copy goes to the router in that order, stamped with
//! the id and the QoS it was published with, so each router filter's log is in id order.
//! Topics starting with `$` are stored, not routed (as Mosquitto does). A retained publish also
//! sets the topic's retained message.

use super::Incoming;
use crate::broker::retained::{Kept, Retained};
use crate::broker::stamp::{publisher_key, stamp, Stamp};
use crate::broker::Outbox;
use crate::metrics::{Dropped, Metrics};
use rumqttd::protocol::{Publish, PublishProperties};
use std::sync::Arc;

pub struct Fanout {
    router: Arc<Outbox>,
    retained: Arc<Retained>,
    next_id: i64,
    /// Copies numbered since the last hand-over, in id order.
    copies: Vec<(Publish, PublishProperties)>,
}

impl Fanout {
    /// Numbers from `next_id` (the store's: past everything kept).
    pub fn new(router: Arc<Outbox>, retained: Arc<Retained>, next_id: i64) -> Fanout {
        Fanout {
            router,
            retained,
            next_id,
            copies: Vec::new(),
        }
    }

    /// The message's id; its copy waits for the next hand-over.
    pub fn number(&mut self, incoming: &Incoming) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        if !incoming.topic.starts_with(b"$") {
            let (qos, retain) = incoming
                .publisher
                .as_ref()
                .map_or((0, false), |p| (p.qos, p.retain));
            // What the router would refuse the whole link for never reaches it.
            let properties = incoming.properties.as_deref().cloned().map(|mut p| {
                p.subscription_identifiers.clear();
                p.topic_alias = None;
                p
            });
            if retain {
                let topic = String::from_utf8_lossy(&incoming.topic);
                let payload = incoming.payload.clone();
                let properties = properties.clone();
                self.retained.set(
                    &topic,
                    Kept {
                        payload,
                        qos,
                        properties,
                        at: incoming.received_at,
                    },
                );
            }
            // Live copies are not retained ([MQTT-3.3.1-9]); sessions send retained messages
            // to new subscriptions from `retained`.
            let copy = Publish::new(incoming.topic.clone(), incoming.payload.clone(), false);
            let publisher = incoming.publisher.as_ref();
            let stamped = stamp(
                properties,
                Stamp {
                    id,
                    qos,
                    received_at: incoming.received_at,
                    retain,
                    publisher: publisher.map_or(0, |p| publisher_key(&p.client_id)),
                },
            );
            self.copies.push((copy, stamped));
        }
        id
    }

    /// Hands every copy numbered so far to the router, in order, with one wake-up.
    pub fn hand_over(&mut self, metrics: &Metrics) {
        if self.copies.is_empty() {
            return;
        }
        let copies = std::mem::take(&mut self.copies);
        let n = copies.len();
        let result = self.router.send_all(copies);
        self.router.routed_through(self.next_id - 1);
        if let Err(e) = result {
            for _ in 0..n {
                metrics.dropped(Dropped::NotRouted);
            }
            tracing::error!("{n} messages were stored but not delivered live: {e}");
        }
    }
}
