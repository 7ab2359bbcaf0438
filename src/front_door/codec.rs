//! Packets on the wire, per protocol version: rumqttd's v4 and v5 codecs, MQTT 3.1's CONNECT
//! rewritten as 3.1.1's (everything after CONNECT is the same in both), and what rumqttd's
//! `Publish` keeps private (QoS, packet id) read from the raw bytes.

use bytes::{BufMut, BytesMut};
use rumqttd::protocol::{self, v4, v5, Disconnect, DisconnectReasonCode, Packet, Protocol, QoS};

/// Which MQTT a client speaks, from its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V31,
    V311,
    V5,
}

/// A CONNECT asking for a protocol this broker does not speak.
#[derive(Debug, PartialEq, Eq)]
pub struct UnknownProtocol(pub String);

impl Version {
    pub fn is_v5(self) -> bool {
        self == Version::V5
    }

    /// The next whole packet in `buf`; `InsufficientBytes` when it is not all there yet.
    pub fn read(self, buf: &mut BytesMut, max_size: usize) -> Result<Packet, protocol::Error> {
        match self {
            // A v5 DISCONNECT may carry a reason code without properties; rumqttd's decoder
            // wants the properties' length too (Mosquitto's clients send `e0 01 00`).
            Version::V5 if buf.starts_with(&[0xE0, 0x01]) && buf.len() >= 3 => {
                let reason_code = match buf[2] {
                    0x00 => DisconnectReasonCode::NormalDisconnection,
                    0x04 => DisconnectReasonCode::DisconnectWithWillMessage,
                    _ => DisconnectReasonCode::UnspecifiedError,
                };
                let _ = buf.split_to(3);
                Ok(Packet::Disconnect(Disconnect { reason_code }, None))
            }
            // rumqttd's v5 decoder panics on these two (only servers send them).
            Version::V5 if matches!(buf.first().map(|b| b >> 4), Some(2 | 11)) => {
                Err(protocol::Error::InvalidPacketType(buf[0] >> 4))
            }
            Version::V5 => v5::V5.read_mut(buf, max_size),
            Version::V31 | Version::V311 => v4::V4.read_mut(buf, max_size),
        }
    }

    /// Appends `packet` to `out`. MQTT 3.x has no properties: they are dropped first (rumqttd's
    /// v3.1.1 encoder panics on a packet that carries any).
    pub fn write(self, packet: Packet, out: &mut BytesMut) -> Result<usize, protocol::Error> {
        match self {
            Version::V5 => v5::V5.write(packet, out),
            Version::V31 | Version::V311 => v4::V4.write(without_properties(packet), out),
        }
    }
}

fn without_properties(packet: Packet) -> Packet {
    match packet {
        Packet::Connect(c, _, will, _, login) => Packet::Connect(c, None, will, None, login),
        Packet::ConnAck(p, _) => Packet::ConnAck(p, None),
        Packet::Publish(p, _) => Packet::Publish(p, None),
        Packet::PubAck(p, _) => Packet::PubAck(p, None),
        Packet::SubAck(p, _) => Packet::SubAck(p, None),
        Packet::PubRec(p, _) => Packet::PubRec(p, None),
        Packet::PubRel(p, _) => Packet::PubRel(p, None),
        Packet::PubComp(p, _) => Packet::PubComp(p, None),
        Packet::UnsubAck(p, _) => Packet::UnsubAck(p, None),
        Packet::Disconnect(p, _) => Packet::Disconnect(p, None),
        Packet::Subscribe(p, _) => Packet::Subscribe(p, None),
        Packet::Unsubscribe(p, _) => Packet::Unsubscribe(p, None),
        other => other,
    }
}

/// The length of the whole packet at the front of `buf`, once it is all there.
pub fn frame(buf: &[u8], max_size: usize) -> Result<Option<usize>, protocol::Error> {
    match v4::check(buf.iter(), max_size) {
        Ok(header) => Ok(Some(header.frame_length())),
        Err(protocol::Error::InsufficientBytes(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads the protocol of the CONNECT that fills `frame`; a 3.1 CONNECT is rewritten in place
/// as the equivalent 3.1.1 one so rumqttd's v3.1.1 decoder reads it.
pub fn connect_version(frame: &mut BytesMut) -> Result<Version, UnknownProtocol> {
    let bad = |what: &str| UnknownProtocol(what.to_string());
    if frame.first().map(|b| b >> 4) != Some(1) {
        return Err(bad("the first packet is not a CONNECT"));
    }
    let header_len = fixed_header_len(frame);
    let body = &frame[header_len.min(frame.len())..];
    let name_len = match body {
        [hi, lo, ..] => usize::from(*hi) << 8 | usize::from(*lo),
        _ => return Err(bad("CONNECT too short")),
    };
    let name = body
        .get(2..2 + name_len)
        .ok_or_else(|| bad("CONNECT too short"))?;
    let level = *body
        .get(2 + name_len)
        .ok_or_else(|| bad("CONNECT too short"))?;
    match (name, level) {
        (b"MQTT", 4) => Ok(Version::V311),
        (b"MQTT", 5) => Ok(Version::V5),
        (b"MQIsdp", 3) => {
            let rest = body[2 + name_len + 1..].to_vec();
            let mut rewritten = BytesMut::with_capacity(frame.len());
            rewritten.put_u8(0x10);
            v4::write_remaining_length(&mut rewritten, 2 + 4 + 1 + rest.len())
                .map_err(|_| bad("CONNECT too long"))?;
            rewritten.put_slice(b"\x00\x04MQTT\x04");
            rewritten.put_slice(&rest);
            *frame = rewritten;
            Ok(Version::V31)
        }
        (name, level) => Err(UnknownProtocol(format!(
            "protocol `{}` level {level}",
            String::from_utf8_lossy(name)
        ))),
    }
}

/// Bytes of the fixed header at the front of `frame`: the type byte and the remaining length
/// (1 to 4 bytes, each but the last with its top bit set).
pub fn fixed_header_len(frame: &[u8]) -> usize {
    let continued = frame.iter().skip(1).take(4).take_while(|b| *b & 0x80 != 0);
    1 + continued.count() + 1
}

/// A QoS 0 PUBLISH (as rumqttd's encoders write it: `Publish` keeps its QoS and packet id
/// private) rewritten at `qos` with `pkid` and the DUP flag: the flags change, and the packet
/// id goes in after the topic name.
pub fn with_packet_id(frame: &[u8], qos: QoS, pkid: u16, dup: bool) -> BytesMut {
    let header_len = fixed_header_len(frame);
    let body = &frame[header_len.min(frame.len())..];
    let topic_end = match body {
        [hi, lo, ..] => (2 + (usize::from(*hi) << 8 | usize::from(*lo))).min(body.len()),
        _ => body.len(),
    };
    let mut out = BytesMut::with_capacity(frame.len() + 3);
    let flags = (frame[0] & 0b0001) | (qos as u8) << 1 | u8::from(dup) << 3;
    out.put_u8(0x30 | flags);
    // Within MQTT's limit: rumqttd wrote it two bytes shorter.
    let _ = v4::write_remaining_length(&mut out, body.len() + 2);
    out.put_slice(&body[..topic_end]);
    out.put_u16(pkid);
    out.put_slice(&body[topic_end..]);
    out
}

/// QoS and packet id of the PUBLISH that fills `frame`.
pub fn publish_header(frame: &[u8]) -> Option<(QoS, u16)> {
    let byte1 = *frame.first()?;
    let qos = protocol::qos((byte1 >> 1) & 0b11)?;
    if qos == QoS::AtMostOnce {
        return Some((qos, 0));
    }
    let header_len = fixed_header_len(frame);
    let topic_len =
        usize::from(*frame.get(header_len)?) << 8 | usize::from(*frame.get(header_len + 1)?);
    let at = header_len + 2 + topic_len;
    let pkid = u16::from(*frame.get(at)?) << 8 | u16::from(*frame.get(at + 1)?);
    Some((qos, pkid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttd::protocol::Publish;

    #[test]
    fn a_v31_connect_is_read_as_v311() {
        // mosquitto_pub -V mqttv31 -i c1: "MQIsdp", level 3, clean session, keepalive 60.
        let mut frame = BytesMut::from(&b"\x10\x10\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x02c1"[..]);
        assert_eq!(connect_version(&mut frame), Ok(Version::V31));
        match Version::V31.read(&mut frame, 1024).unwrap() {
            Packet::Connect(connect, ..) => {
                assert_eq!(connect.client_id, "c1");
                assert_eq!(connect.keep_alive, 60);
                assert!(connect.clean_session);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_v5_disconnect_with_only_a_reason_code_is_read() {
        let mut buf = BytesMut::from(&b"\xe0\x01\x04\xc0\x00"[..]);
        match Version::V5.read(&mut buf, 1024).unwrap() {
            Packet::Disconnect(d, None) => {
                assert_eq!(
                    d.reason_code,
                    DisconnectReasonCode::DisconnectWithWillMessage
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(&buf[..], b"\xc0\x00");
    }

    /// Found by the `packets` fuzz target: a v5 CONNECT written as 3.1.1 panicked rumqttd's
    /// encoder (its properties were not dropped).
    #[test]
    fn any_v5_packet_can_be_written_as_v311() {
        let mut frame = BytesMut::from(
            &b"\x10\x15\x00\x04MQTT\x05\x02\x00\x1e\x08\x11\x00\x00\x00\x3c\x21\x00\x0a\x00\x00"[..],
        );
        let packet = Version::V5.read(&mut frame, 1024).unwrap();
        assert!(
            matches!(packet, Packet::Connect(_, Some(_), ..)),
            "{packet:?}"
        );
        let mut out = BytesMut::new();
        Version::V311.write(packet, &mut out).unwrap();
        assert_eq!(&out[..], b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x1e\x00\x00");
    }

    #[test]
    fn a_qos_0_publish_is_rewritten_with_a_packet_id() {
        let mut v311 = BytesMut::new();
        let publish = Publish::new(&b"a/b"[..], &b"hi"[..], true);
        Version::V311
            .write(Packet::Publish(publish.clone(), None), &mut v311)
            .unwrap();
        let frame = with_packet_id(&v311, QoS::ExactlyOnce, 7, true);
        assert_eq!(&frame[..], b"\x3d\x09\x00\x03a/b\x00\x07hi");
        let mut v5 = BytesMut::new();
        Version::V5
            .write(Packet::Publish(publish, None), &mut v5)
            .unwrap();
        let mut frame = with_packet_id(&v5, QoS::AtLeastOnce, 0x0102, false);
        assert_eq!(publish_header(&frame), Some((QoS::AtLeastOnce, 0x0102)));
        match Version::V5.read(&mut frame, 1024).unwrap() {
            Packet::Publish(p, _) => {
                assert_eq!((&p.topic[..], &p.payload[..]), (&b"a/b"[..], &b"hi"[..]))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_protocols_are_named() {
        let mut frame = BytesMut::from(&b"\x10\x0c\x00\x04MQTT\x07\x02\x00\x3c\x00\x00"[..]);
        assert_eq!(
            connect_version(&mut frame),
            Err(UnknownProtocol("protocol `MQTT` level 7".into()))
        );
    }

    #[test]
    fn publish_header_reads_qos_and_packet_id() {
        // QoS 1, topic "a/b", packet id 0x0102, payload "x".
        let frame = b"\x32\x08\x00\x03a/b\x01\x02x";
        assert_eq!(publish_header(frame), Some((QoS::AtLeastOnce, 0x0102)));
        assert_eq!(
            publish_header(b"\x30\x06\x00\x03a/bx"),
            Some((QoS::AtMostOnce, 0))
        );
    }
}
