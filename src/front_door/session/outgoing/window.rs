//! The in-flight window: which waiting delivery goes out next with which packet id, the
//! client's acknowledgements, and what a resumed session sends again [MQTT-4.4.0-1].

use super::{InFlight, Outgoing, Sending};
use rumqttd::protocol::{Packet, PubRel, PubRelReason, QoS};

impl Outgoing {
    /// The next delivery the window allows, with its packet id (0 at QoS 0).
    pub fn next_to_send(&mut self) -> Option<Sending> {
        let front = self.waiting.front()?;
        if front.qos == QoS::AtMostOnce {
            let delivery = self.unqueue()?;
            self.sent_through = self.sent_through.max(delivery.id);
            return Some(Sending::Publish(delivery, 0, false));
        }
        if self.in_flight.len() >= self.window || self.in_flight.len() >= usize::from(u16::MAX) {
            return None;
        }
        let delivery = self.unqueue()?;
        self.sent_through = self.sent_through.max(delivery.id);
        let dup = delivery.dup;
        let pkid = self.free_pkid();
        self.order.push_back(pkid);
        let in_flight = InFlight {
            delivery: delivery.clone(),
            released: false,
        };
        self.in_flight.insert(pkid, in_flight);
        Some(Sending::Publish(delivery, pkid, dup))
    }

    fn free_pkid(&mut self) -> u16 {
        loop {
            let pkid = self.next_pkid;
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.in_flight.contains_key(&pkid) {
                return pkid;
            }
        }
    }

    /// A PUBACK (QoS 1) or PUBCOMP (QoS 2): the delivery is done. False for an unknown id.
    pub fn completed(&mut self, pkid: u16) -> bool {
        let known = self.in_flight.remove(&pkid).is_some();
        if known {
            self.order.retain(|p| *p != pkid);
        }
        known
    }

    /// A PUBREC: the PUBREL to send back (MQTT 5 says when the id is unknown).
    pub fn received(&mut self, pkid: u16) -> PubRel {
        let reason = match self.in_flight.get_mut(&pkid) {
            Some(entry) => {
                entry.released = true;
                PubRelReason::Success
            }
            None => PubRelReason::PacketIdentifierNotFound,
        };
        PubRel { pkid, reason }
    }

    /// On a resumed session, everything unacknowledged again, in order: PUBLISH with DUP, or
    /// PUBREL once its PUBREC came [MQTT-4.4.0-1].
    pub fn resend(&self) -> Vec<Sending> {
        self.order
            .iter()
            .filter_map(|pkid| {
                let entry = self.in_flight.get(pkid)?;
                Some(match entry.released {
                    true => Sending::Other(Packet::PubRel(
                        PubRel {
                            pkid: *pkid,
                            reason: PubRelReason::Success,
                        },
                        None,
                    )),
                    false => Sending::Publish(entry.delivery.clone(), *pkid, true),
                })
            })
            .collect()
    }
}
