//! What one connection of a bridge has taken from the log and not yet had acknowledged: the
//! ids in order, what is still to be handed to the client, and the packet ids in flight. The
//! cursor is the last id before the oldest unacknowledged one.

use super::BridgeSection;
use crate::query::log::Logged;
use std::collections::{HashMap, HashSet, VecDeque};

/// A message to publish upstream: its id in the log, remote topic, payload, QoS, retain.
pub struct Forward {
    pub id: i64,
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
}

#[derive(Default)]
pub struct Window {
    /// Ids taken for publishing, in order, until acknowledged.
    pending: VecDeque<i64>,
    /// Taken and not yet handed to the client.
    pub to_send: VecDeque<Forward>,
    /// Handed to the client, waiting for their packet id: the log id (none for the bridge's
    /// own notification) and QoS.
    handed: VecDeque<(Option<i64>, u8)>,
    in_flight: HashMap<u16, i64>,
    acked: HashSet<i64>,
    /// Everything up to here was read from the log.
    pub read_through: i64,
}

impl Window {
    pub fn starting_after(acked_through: i64) -> Window {
        Window {
            read_through: acked_through,
            ..Default::default()
        }
    }

    /// How many messages are taken and not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Every message up to this id was acknowledged (or was not for the upstream).
    pub fn acked_through(&mut self) -> i64 {
        while let Some(front) = self.pending.front() {
            if !self.acked.remove(front) {
                return front - 1;
            }
            self.pending.pop_front();
        }
        self.read_through
    }

    /// A page of the log: what the `out` topics match is taken, except what the bridge brought
    /// in itself.
    pub fn take(&mut self, bridge: &BridgeSection, rows: Vec<Logged>, through: i64) {
        let own = bridge.local_client_id();
        let outs: Vec<_> = bridge
            .topics
            .iter()
            .filter(|t| t.goes_out())
            .map(|t| (t.local_filter(), t))
            .collect();
        for row in rows {
            if row.client_id.as_deref() == Some(own.as_str()) {
                continue;
            }
            let topic = outs
                .iter()
                .find(|(filter, _)| crate::topic::matches(filter, &row.topic));
            if let Some((_, t)) = topic {
                self.pending.push_back(row.id);
                self.to_send.push_back(Forward {
                    id: row.id,
                    topic: t.remote_topic(&row.topic),
                    payload: row.payload,
                    qos: row.qos.min(t.qos),
                    retain: row.retain,
                });
            }
        }
        self.read_through = through;
    }

    /// A message (or, with no id, a notification) was handed to the client.
    pub fn handed(&mut self, id: Option<i64>, qos: u8) {
        self.handed.push_back((id, qos));
    }

    /// The client sent the next handed publish with packet id `pkid`; true when it was a QoS 0
    /// message of the log, which is done once sent.
    pub fn sent(&mut self, pkid: u16) -> bool {
        match self.handed.pop_front() {
            Some((Some(id), 0)) => {
                self.acked.insert(id);
                true
            }
            Some((Some(id), _)) => {
                self.in_flight.insert(pkid, id);
                false
            }
            _ => false,
        }
    }

    /// The upstream acknowledged packet `pkid`; true when it was a message of the log.
    pub fn acknowledged(&mut self, pkid: u16) -> bool {
        match self.in_flight.remove(&pkid) {
            Some(id) => self.acked.insert(id),
            None => false,
        }
    }
}
