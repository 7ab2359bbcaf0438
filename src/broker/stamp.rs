//! The store id and original QoS of each copy edgemq hands the router. The router keeps a
//! publish's MQTT 5 correlation data intact, so the stamp rides at its end and is taken off
//! before any subscriber sees the message: a subscriber gets the publisher's own properties.
//! A client cannot forge one: every copy is stamped on its way in, after whatever it sent.

use bytes::{BufMut, Bytes, BytesMut};
use rumqttd::protocol::PublishProperties;

/// What edgemq knows of a copy that the router does not keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The message's id in the store (`messages.id` or `dead_letters.id`); 0 for edgemq's own
    /// publications that are not stored (replies, restored retained messages).
    pub id: i64,
    /// The QoS it was published with.
    pub qos: u8,
    /// When edgemq received it (unix ms): what an MQTT 5 message expiry counts from.
    pub received_at: i64,
    /// Published with the retain flag (for subscriptions with Retain As Published).
    pub retain: bool,
    /// `publisher_key` of the client that published it (for No Local); 0: edgemq's own.
    pub publisher: u64,
}

/// A client id as a stamp carries it: a 64-bit hash (a collision would only hold a message
/// back from a No Local subscription of the other client).
pub fn publisher_key(client_id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    client_id.hash(&mut hasher);
    hasher.finish() | 1
}

/// The last byte of a stamp.
const MARK: u8 = 0xED;
/// publisher (8 bytes), received_at (8 bytes), id (8 bytes), flags (QoS, whether there was
/// correlation data before, retain), MARK.
const LEN: usize = 26;
const HAD_CORRELATION: u8 = 0b100;
const RETAIN: u8 = 0b1000;

/// `properties` with `stamp` appended to the correlation data.
pub fn stamp(properties: Option<PublishProperties>, stamp: Stamp) -> PublishProperties {
    let mut properties = properties.unwrap_or_default();
    let original = properties.correlation_data.take();
    let mut data = BytesMut::with_capacity(original.as_ref().map_or(0, Bytes::len) + LEN);
    let mut flags = stamp.qos & 0b11;
    if stamp.retain {
        flags |= RETAIN;
    }
    if let Some(original) = &original {
        data.put_slice(original);
        flags |= HAD_CORRELATION;
    }
    data.put_u64(stamp.publisher);
    data.put_i64(stamp.received_at);
    data.put_i64(stamp.id);
    data.put_u8(flags);
    data.put_u8(MARK);
    properties.correlation_data = Some(data.freeze());
    properties
}

/// The stamp of a copy the router forwarded, and the properties as the publisher sent them
/// (`None` when it sent none). A copy without a stamp is returned as it is.
pub fn unstamp(
    properties: Option<PublishProperties>,
) -> (Option<Stamp>, Option<PublishProperties>) {
    let Some(mut properties) = properties else {
        return (None, None);
    };
    let Some(data) = properties.correlation_data.take() else {
        return (None, Some(properties));
    };
    let n = data.len();
    if n < LEN || data[n - 1] != MARK {
        properties.correlation_data = Some(data);
        return (None, Some(properties));
    }
    let (mut publisher, mut received_at, mut id) = ([0; 8], [0; 8], [0; 8]);
    publisher.copy_from_slice(&data[n - LEN..n - 18]);
    received_at.copy_from_slice(&data[n - 18..n - 10]);
    id.copy_from_slice(&data[n - 10..n - 2]);
    let flags = data[n - 2];
    let found = Stamp {
        id: i64::from_be_bytes(id),
        qos: flags & 0b11,
        received_at: i64::from_be_bytes(received_at),
        retain: flags & RETAIN != 0,
        publisher: u64::from_be_bytes(publisher),
    };
    if flags & HAD_CORRELATION != 0 {
        properties.correlation_data = Some(data.slice(..n - LEN));
    }
    let properties = (properties != PublishProperties::default()).then_some(properties);
    (Some(found), properties)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_comes_off_leaving_what_the_publisher_sent() {
        let s = Stamp {
            id: 42,
            qos: 2,
            received_at: 1_800_000_000_123,
            retain: true,
            publisher: publisher_key("me"),
        };
        assert_eq!(unstamp(Some(stamp(None, s))), (Some(s), None));

        let sent = PublishProperties {
            correlation_data: Some(Bytes::from_static(b"abc")),
            response_topic: Some("r/1".into()),
            ..Default::default()
        };
        assert_eq!(
            unstamp(Some(stamp(Some(sent.clone()), s))),
            (Some(s), Some(sent))
        );

        // Empty correlation data is kept as empty, not dropped.
        let empty = PublishProperties {
            correlation_data: Some(Bytes::new()),
            ..Default::default()
        };
        assert_eq!(
            unstamp(Some(stamp(Some(empty.clone()), s))),
            (Some(s), Some(empty))
        );
    }

    #[test]
    fn unstamped_properties_pass_as_they_are() {
        let short = PublishProperties {
            correlation_data: Some(Bytes::from_static(b"\xed")),
            ..Default::default()
        };
        assert_eq!(unstamp(Some(short.clone())), (None, Some(short)));
        assert_eq!(unstamp(None), (None, None));
    }
}
