//! One subscription of a session: its filter, the QoS granted, its MQTT 5 identifier and
//! options, and how a persistent session saves it.

use super::qos_of;
use rumqttd::protocol::QoS;

/// One subscription: the filter as subscribed (`$share/group/...` included), the QoS granted,
/// its MQTT 5 subscription identifier and options.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub filter: String,
    pub qos: QoS,
    pub id: Option<usize>,
    /// No Local: not what this client published itself.
    pub no_local: bool,
    /// Retain As Published: live deliveries keep the publisher's retain flag.
    pub as_published: bool,
}

impl Subscription {
    pub fn new(filter: &str, qos: QoS, id: Option<usize>) -> Subscription {
        Subscription {
            filter: filter.to_string(),
            qos,
            id,
            no_local: false,
            as_published: false,
        }
    }

    /// As a persistent session saves it: the QoS and options in MQTT's subscription options
    /// byte (QoS in bits 0-1, No Local bit 2, Retain As Published bit 3).
    pub fn saved(&self) -> (String, u8, Option<usize>) {
        let options =
            self.qos as u8 | u8::from(self.no_local) << 2 | u8::from(self.as_published) << 3;
        (self.filter.clone(), options, self.id)
    }

    /// A saved subscription (a bare QoS, as saved before options were, reads the same).
    pub fn restored((filter, options, id): &(String, u8, Option<usize>)) -> Subscription {
        Subscription {
            no_local: options & 0b100 != 0,
            as_published: options & 0b1000 != 0,
            ..Subscription::new(filter, qos_of(options & 0b11), *id)
        }
    }
}
