//! The MQTT 3.1.1 and 5 MUSTs that rumqttd's decoders let through, checked on the raw packet
//! before it is decoded. A violation closes the connection (MQTT 5 clients first get a
//! DISCONNECT with the reason code); the statement numbers are the specifications'.

use super::codec::{fixed_header_len, Version};
use rumqttd::protocol::DisconnectReasonCode;

/// A packet the server must not accept, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation {
    pub code: DisconnectReasonCode,
    pub why: &'static str,
}

fn malformed(why: &'static str) -> Violation {
    Violation {
        code: DisconnectReasonCode::MalformedPacket,
        why,
    }
}

fn protocol_error(why: &'static str) -> Violation {
    Violation {
        code: DisconnectReasonCode::ProtocolError,
        why,
    }
}

/// Checks the whole packet in `frame` (fixed header included) from a connected client.
pub fn check(frame: &[u8], version: Version) -> Result<(), Violation> {
    let Some(&byte1) = frame.first() else {
        return Ok(());
    };
    let (kind, flags) = (byte1 >> 4, byte1 & 0x0F);
    let body = &frame[fixed_header_len(frame).min(frame.len())..];
    match kind {
        3 => check_publish(flags, body),
        // [MQTT-3.6.1-1] PUBREL, [MQTT-3.8.1-1] SUBSCRIBE, [MQTT-3.10.1-1] UNSUBSCRIBE: 0b0010.
        6 | 8 | 10 if flags != 0b0010 => Err(malformed("reserved fixed-header flags are not 0010")),
        6 => Ok(()),
        8 => check_subscribe(body, version),
        10 => check_unsubscribe(body),
        // [MQTT-2.2.2-1, 2]: every other packet's flags are 0.
        _ if flags != 0 => Err(malformed("reserved fixed-header flags are not 0")),
        // [MQTT-3.1.0-2] A second CONNECT is a protocol violation.
        1 => Err(protocol_error("a second CONNECT")),
        // CONNACK, SUBACK, UNSUBACK and PINGRESP go from server to client only (rumqttd's v5
        // decoder panics on two of them).
        2 | 9 | 11 | 13 => Err(protocol_error("a packet only a server sends")),
        // AUTH: no authentication method was accepted at CONNECT; 3.1.1 has no packet type
        // 15, and neither version has type 0.
        15 if version == Version::V5 => Err(protocol_error("AUTH without extended authentication")),
        0 | 15 => Err(malformed("a reserved packet type")),
        _ => Ok(()),
    }
}

/// The CONNECT's own MUSTs, on the CONNECT packet in `frame` (read as MQTT 3.1.1 or 5).
pub fn check_connect(frame: &[u8], version: Version) -> Result<(), Violation> {
    if frame.first().is_some_and(|b| b & 0x0F != 0) {
        return Err(malformed("reserved fixed-header flags are not 0"));
    }
    let body = &frame[fixed_header_len(frame).min(frame.len())..];
    // Protocol name (2 + 4 bytes, "MQTT" after any 3.1 rewrite) and level, then the flags.
    let Some(&flags) = body.get(7) else {
        return Ok(()); // Too short: the decoder says so.
    };
    // [MQTT-3.1.2-3] The reserved flag must be 0.
    if flags & 0x01 != 0 {
        return Err(malformed("the CONNECT's reserved flag is set"));
    }
    // [MQTT-3.1.2-22] (3.1.1 only): a password needs a username.
    if version != Version::V5 && flags & 0x40 != 0 && flags & 0x80 == 0 {
        return Err(malformed("a password without a username"));
    }
    Ok(())
}

fn check_publish(flags: u8, body: &[u8]) -> Result<(), Violation> {
    let qos = (flags >> 1) & 0b11;
    // [MQTT-3.3.1-4] QoS 3 is not a QoS.
    if qos == 3 {
        return Err(malformed("a PUBLISH with QoS 3"));
    }
    // [MQTT-3.3.1-2] DUP is 0 at QoS 0.
    if qos == 0 && flags & 0b1000 != 0 {
        return Err(malformed("a QoS 0 PUBLISH with DUP set"));
    }
    // [MQTT-2.3.1-1] QoS 1 and 2 publishes carry a non-zero packet identifier.
    if qos > 0 {
        let topic_len = u16_at(body, 0).map(usize::from);
        if topic_len.and_then(|n| u16_at(body, 2 + n)) == Some(0) {
            return Err(malformed("a QoS 1 or 2 PUBLISH with packet identifier 0"));
        }
    }
    Ok(())
}

fn check_subscribe(body: &[u8], version: Version) -> Result<(), Violation> {
    if u16_at(body, 0) == Some(0) {
        return Err(malformed("a SUBSCRIBE with packet identifier 0")); // [MQTT-2.3.1-1]
    }
    let mut at = 2 + properties_len(body, 2, version);
    let mut filters = 0;
    while at < body.len() {
        let Some(len) = u16_at(body, at).map(usize::from) else {
            return Ok(());
        };
        let filter = body.get(at + 2..at + 2 + len).unwrap_or_default();
        if filter.contains(&0) {
            return Err(malformed("a topic filter contains U+0000")); // [MQTT-1.5.3-2]
        }
        let Some(&options) = body.get(at + 2 + len) else {
            return Ok(());
        };
        // [MQTT-3.8.3-4] (3.1.1: bits 2-7) and [MQTT-3.8.3-5] (5: bits 6-7) are reserved.
        let reserved = if version == Version::V5 { 0xC0 } else { 0xFC };
        if options & reserved != 0 {
            return Err(malformed("reserved subscription option bits are set"));
        }
        if version == Version::V5 && (options >> 4) & 0b11 == 3 {
            return Err(protocol_error("retain handling 3"));
        }
        if version == Version::V5 && options & 0b100 != 0 && filter.starts_with(b"$share/") {
            return Err(protocol_error("No Local on a shared subscription")); // [MQTT-3.8.3-4]
        }
        filters += 1;
        at += 2 + len + 1;
    }
    if filters == 0 {
        return Err(protocol_error("a SUBSCRIBE without topic filters")); // [MQTT-3.8.3-3]
    }
    Ok(())
}

fn check_unsubscribe(body: &[u8]) -> Result<(), Violation> {
    if u16_at(body, 0) == Some(0) {
        return Err(malformed("an UNSUBSCRIBE with packet identifier 0")); // [MQTT-2.3.1-1]
    }
    // MQTT 5 has properties before the filters; their length is at least one byte, so a
    // packet holding nothing after the packet identifier (and properties) has no filters.
    let rest = body.len().saturating_sub(2);
    let no_filters = rest == 0 || (rest == 1 && body.get(2) == Some(&0));
    if no_filters {
        return Err(protocol_error("an UNSUBSCRIBE without topic filters")); // [MQTT-3.10.3-2]
    }
    Ok(())
}

/// Bytes taken by an MQTT 5 property block (its length and the properties) at `at`.
fn properties_len(body: &[u8], at: usize, version: Version) -> usize {
    if version != Version::V5 {
        return 0;
    }
    let mut len = 0usize;
    for (i, byte) in body.iter().skip(at).take(4).enumerate() {
        len |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return i + 1 + len;
        }
    }
    0
}

fn u16_at(body: &[u8], at: usize) -> Option<u16> {
    Some(u16::from(*body.get(at)?) << 8 | u16::from(*body.get(at + 1)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Version::{V311, V5};

    fn code(frame: &[u8], version: Version) -> Option<DisconnectReasonCode> {
        check(frame, version).err().map(|v| v.code)
    }

    #[test]
    fn fixed_header_flags() {
        let subscribe = b"\x82\x06\x00\x01\x00\x01a\x00";
        assert_eq!(code(subscribe, V311), None);
        assert!(code(b"\x80\x06\x00\x01\x00\x01a\x00", V311).is_some());
        assert!(code(b"\xa0\x05\x00\x01\x00\x01a", V311).is_some());
        assert!(code(b"\xc1\x00", V311).is_some()); // PINGREQ with a flag
        assert_eq!(code(b"\x62\x02\x00\x01", V311), None); // PUBREL 0010
        assert!(code(b"\x60\x02\x00\x01", V311).is_some());
    }

    #[test]
    fn packets_a_client_never_sends() {
        for frame in [
            &b"\x20\x03\x00\x00\x00"[..],
            b"\xb0\x03\x00\x01\x00",
            b"\xd0\x00",
        ] {
            assert_eq!(code(frame, V5), Some(DisconnectReasonCode::ProtocolError));
        }
        assert_eq!(
            code(b"\xf0\x02\x00\x00", V5),
            Some(DisconnectReasonCode::ProtocolError)
        );
        assert_eq!(
            code(b"\xf0\x00", V311),
            Some(DisconnectReasonCode::MalformedPacket)
        );
        assert_eq!(
            code(b"\x00\x00", V311),
            Some(DisconnectReasonCode::MalformedPacket)
        );
    }

    #[test]
    fn subscribe_musts() {
        assert!(code(b"\x82\x06\x00\x00\x00\x01a\x00", V311).is_some()); // packet id 0
        assert!(code(b"\x82\x02\x00\x01", V311).is_some()); // no filters
        assert!(code(b"\x82\x06\x00\x01\x00\x01a\x04", V311).is_some()); // reserved bits
        assert_eq!(code(b"\x82\x07\x00\x01\x00\x00\x01a\x04", V5), None); // v5: no local
        assert!(code(b"\x82\x07\x00\x01\x00\x00\x01a\x30", V5).is_some()); // retain handling 3
        let shared_no_local = b"\x82\x10\x00\x01\x00\x00\x0a$share/g/a\x04";
        assert!(code(shared_no_local, V5).is_some());
        assert!(code(&[&shared_no_local[..15], b"\x00"].concat(), V5).is_none());
        assert!(code(b"\x82\x03\x00\x01\x00", V5).is_some()); // v5, no filters
        assert!(code(b"\x82\x06\x00\x01\x00\x01\x00\x00", V311).is_some()); // NUL
    }

    #[test]
    fn unsubscribe_and_publish_musts() {
        assert!(code(b"\xa2\x02\x00\x01", V311).is_some());
        assert!(code(b"\xa2\x03\x00\x01\x00", V5).is_some());
        assert_eq!(code(b"\xa2\x05\x00\x01\x00\x01a", V311), None);
        assert!(code(b"\xa2\x05\x00\x00\x00\x01a", V311).is_some());
        assert!(code(b"\x36\x05\x00\x01a\x00\x01", V311).is_some()); // QoS 3
        assert!(code(b"\x38\x03\x00\x01a", V311).is_some()); // QoS 0 with DUP
        assert!(code(b"\x32\x05\x00\x01a\x00\x00", V311).is_some()); // packet id 0
        assert_eq!(code(b"\x32\x05\x00\x01a\x00\x07", V311), None);
        assert!(code(b"\x10\x00", V311).is_some()); // a second CONNECT
    }

    #[test]
    fn connect_musts() {
        let ok = b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c1";
        assert_eq!(check_connect(ok, V311), Ok(()));
        assert!(check_connect(b"\x10\x0e\x00\x04MQTT\x04\x03\x00\x3c\x00\x02c1", V311).is_err());
        assert!(check_connect(b"\x11\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c1", V311).is_err());
        let password_only = b"\x10\x0e\x00\x04MQTT\x04\x42\x00\x3c\x00\x02c1";
        assert!(check_connect(password_only, V311).is_err());
        assert_eq!(check_connect(password_only, V5), Ok(()));
    }
}
