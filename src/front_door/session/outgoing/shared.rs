//! Shared subscriptions (`$share/{group}/{filter}`): the router gives each of a group's
//! messages to one member, so only that member has it. The store is never read for a shared
//! subscription (it would give the member the whole group's messages); instead a copy the
//! member has no room for, and whatever it has not had acknowledged when its client leaves,
//! goes to another member of the group (`front_door::registry`), with DUP cleared: it is a new
//! delivery to another client (MQTT 5 section 4.8.2).

use super::{shared_filter, Accepted, Delivery, Outgoing};
use crate::topic;

impl Outgoing {
    /// A copy only shared subscriptions take: queued while there is room, else handed to
    /// another member. Not part of this session's reading of the log (id 0).
    pub(super) fn take_shared(&mut self, mut delivery: Delivery) -> Accepted {
        delivery.id = 0;
        if self.waiting.len() >= self.limit || self.over_limits() {
            self.handing_over.push(delivery);
            return Accepted::HandedOver;
        }
        self.queue(delivery);
        Accepted::Queued
    }

    /// A delivery another member of one of this session's groups handed over.
    pub fn take_handed(&mut self, delivery: Delivery) {
        self.queue(Delivery {
            dup: false,
            ..delivery
        });
    }

    /// The client leaves: what only shared subscriptions took and it has not acknowledged
    /// (waiting, or in flight without a PUBREC) goes to the other members.
    pub fn release_shared(&mut self) {
        let mut released = Vec::new();
        for pkid in self.order.clone() {
            let Some(entry) = self.in_flight.get(&pkid) else {
                continue;
            };
            if !entry.released && self.shared_only(&entry.delivery) {
                if let Some(entry) = self.in_flight.remove(&pkid) {
                    released.push(entry.delivery);
                }
                self.order.retain(|p| *p != pkid);
            }
        }
        let waiting = std::mem::take(&mut self.waiting);
        self.waiting_bytes = 0;
        for delivery in waiting {
            match self.shared_only(&delivery) {
                true => released.push(delivery),
                false => self.queue(delivery),
            }
        }
        self.handing_over.extend(released);
    }

    /// Deliveries for other members, each with the shared filter (of this session's) that
    /// took it: its group's other members hold the same filter.
    pub fn handovers(&mut self) -> Vec<(String, Delivery)> {
        let handing_over = std::mem::take(&mut self.handing_over);
        handing_over
            .into_iter()
            .filter_map(|delivery| Some((self.group_of(&delivery)?, delivery)))
            .collect()
    }

    /// Whether `delivery` came through shared subscriptions only (not a retained message, not
    /// one of the log's).
    fn shared_only(&self, delivery: &Delivery) -> bool {
        delivery.id == 0 && !delivery.publish.retain && self.group_of(delivery).is_some() && {
            let topic = String::from_utf8_lossy(&delivery.publish.topic);
            !self
                .granted
                .iter()
                .any(|s| !s.filter.starts_with("$share/") && topic::matches(&s.filter, &topic))
        }
    }

    /// The first shared filter of this session's that matches the delivery's topic.
    fn group_of(&self, delivery: &Delivery) -> Option<String> {
        let topic = String::from_utf8_lossy(&delivery.publish.topic);
        self.granted
            .iter()
            .find(|s| {
                s.filter.starts_with("$share/") && topic::matches(shared_filter(&s.filter), &topic)
            })
            .map(|s| s.filter.clone())
    }
}
