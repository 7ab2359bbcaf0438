//! Protocol violations are refused and nobody else notices: a bad will topic, a bad MQTT 5
//! response topic, and the MQTT MUSTs rumqttd's decoders let through each close (or answer)
//! only the offender, and a normal publish → subscribe → store round trip works right after.

mod common;

use common::raw::*;
use common::*;
use std::io::Write;
use std::time::Duration;

/// A normal client still gets what it subscribed to, and the message is stored.
fn round_trip_works(edgemq: &Edgemq, watcher: &mut Sub, n: usize) {
    let topic = format!("rt/after/{n}");
    mosquitto_pub(edgemq, &topic, b"still fine", &["-q", "1"]);
    let seen = watcher.messages(1);
    assert_eq!(
        seen[0].trim_end(),
        format!("{topic} still fine"),
        "the # subscriber"
    );
    let sql = format!("SELECT topic FROM messages WHERE topic = '{topic}'");
    rows_eventually(&edgemq.db, &sql, 1);
}

#[test]
fn bad_will_topics_are_refused_at_connect_and_never_published() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut watcher = Sub::start(&edgemq, &["-t", "#"]);
    let bad: [&[u8]; 5] = [b"w/#", b"+", b"", b"w/\0x", b"w/\xff\xfe"];
    for (n, topic) in bad.iter().enumerate() {
        // MQTT 3.1.1: the connection is closed without a CONNACK.
        let mut v311 = open(&edgemq);
        v311.write_all(&connect_with_will(4, &format!("w311-{n}"), topic))
            .unwrap();
        let sent = until_closed(&mut v311, &format!("3.1.1 will topic {topic:?}"));
        assert_eq!(sent, b"", "no CONNACK for will topic {topic:?}");
        // MQTT 5: CONNACK 0x90 Topic Name invalid, then closed.
        let mut v5 = open(&edgemq);
        v5.write_all(&connect_with_will(5, &format!("w5-{n}"), topic))
            .unwrap();
        let sent = until_closed(&mut v5, &format!("5 will topic {topic:?}"));
        assert_eq!(sent.get(..4), Some(&b"\x20\x03\x00\x90"[..]), "{sent:02x?}");
        round_trip_works(&edgemq, &mut watcher, n);
    }
    assert_eq!(
        watcher.quiet_for(Duration::from_millis(300)),
        Vec::<String>::new()
    );
    let wills = query(
        &edgemq.db,
        "SELECT count(*) FROM messages WHERE payload = 'gone'",
    );
    assert_eq!(wills, [["0"]], "no will was stored");
    assert!(edgemq.stop().success());
}

#[test]
fn protocol_musts_close_only_the_offender() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut watcher = Sub::start(&edgemq, &["-t", "#"]);
    // The CONNECT's reserved flag ([MQTT-3.1.2-3]).
    let mut reserved = open(&edgemq);
    reserved
        .write_all(&connect(4, 0x03, "reserved", &[]))
        .unwrap();
    assert_eq!(until_closed(&mut reserved, "reserved flag"), b"");
    round_trip_works(&edgemq, &mut watcher, 0);

    let subscribe_body = |pkid: u16| {
        let mut body = pkid.to_be_bytes().to_vec();
        body.extend(string(b"x/#"));
        body.push(0);
        body
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "SUBSCRIBE with flags 0000",
            packet(0x80, &subscribe_body(1)),
        ),
        (
            "UNSUBSCRIBE with flags 0000",
            packet(0xa0, &{
                let mut b = 1u16.to_be_bytes().to_vec();
                b.extend(string(b"x/#"));
                b
            }),
        ),
        (
            "SUBSCRIBE with packet id 0",
            packet(0x82, &subscribe_body(0)),
        ),
        ("SUBSCRIBE without filters", packet(0x82, &[0, 1])),
        ("UNSUBSCRIBE without filters", packet(0xa2, &[0, 1])),
        ("a second CONNECT", connect(4, 0x02, "again", &[])),
    ];
    for (n, (what, bad)) in cases.iter().enumerate() {
        let mut client = connected(&edgemq, 4, &format!("breaker-{n}"));
        client.write_all(bad).unwrap();
        assert_eq!(
            until_closed(&mut client, what),
            b"",
            "{what}: nothing sent back"
        );
        round_trip_works(&edgemq, &mut watcher, n + 1);
    }
    // MQTT 5 clients are told why: DISCONNECT 0x81 (malformed) or 0x82 (protocol error).
    let mut v5 = connected(&edgemq, 5, "breaker-v5");
    v5.write_all(&packet(0xa2, &[0, 1, 0])).unwrap();
    let sent = until_closed(&mut v5, "MQTT 5 UNSUBSCRIBE without filters");
    assert_eq!(sent.get(..3), Some(&b"\xe0\x01\x82"[..]), "{sent:02x?}");
    round_trip_works(&edgemq, &mut watcher, 99);
    // Packets only a server sends (rumqttd's v5 decoder panicked on CONNACK and UNSUBACK), and
    // AUTH without an authentication method: DISCONNECT 0x82.
    let server_only: [&[u8]; 3] = [
        b"\x20\x03\x00\x00\x00",
        b"\xb0\x03\x00\x01\x00",
        b"\xf0\x02\x00\x00",
    ];
    for (n, bad) in server_only.iter().enumerate() {
        let mut v5 = connected(&edgemq, 5, &format!("server-only-{n}"));
        v5.write_all(bad).unwrap();
        let sent = until_closed(&mut v5, &format!("MQTT 5 client sending {bad:02x?}"));
        assert_eq!(
            sent.get(..3),
            Some(&b"\xe0\x01\x82"[..]),
            "{bad:02x?}: {sent:02x?}"
        );
        round_trip_works(&edgemq, &mut watcher, 200 + n);
    }

    // [MQTT-4.12.0-1] An authentication method edgemq does not offer: CONNACK 0x8C, closed.
    let mut body = string(b"MQTT");
    body.extend([5, 0x02, 0, 60]);
    let method = [&[0x15][..], &string(b"SCRAM-SHA-1")].concat();
    body.push(method.len() as u8);
    body.extend(method);
    body.extend(string(b"scram"));
    let mut scram = open(&edgemq);
    scram.write_all(&packet(0x10, &body)).unwrap();
    let sent = until_closed(&mut scram, "a CONNECT with an authentication method");
    assert_eq!(sent.get(..4), Some(&b"\x20\x03\x00\x8c"[..]), "{sent:02x?}");
    round_trip_works(&edgemq, &mut watcher, 100);
    assert!(edgemq.stop().success());
}

/// An MQTT 5 PUBLISH (QoS 0) with a response topic and correlation data.
fn request_v5(topic: &str, response_topic: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut properties = vec![0x08];
    properties.extend(string(response_topic));
    properties.push(0x09);
    properties.extend(string(b"corr-1"));
    let mut body = string(topic.as_bytes());
    body.push(properties.len() as u8);
    body.extend(properties);
    body.extend_from_slice(payload);
    packet(0x30, &body)
}

#[test]
fn a_bad_response_topic_is_answered_with_an_error_on_the_reply_topic() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut watcher = Sub::start(&edgemq, &["-t", "#", "-V", "mqttv5", "-F", "%t %p %D"]);
    let mut requester = connected(&edgemq, 5, "app-x");
    let request = br#"{"device_id": "temp_sensor_01", "date": "2026-01-22"}"#;
    for bad in [&b""[..], b"a/#", b"+"] {
        requester
            .write_all(&request_v5("home/gettemp/x", bad, request))
            .unwrap();
        let seen = watcher.messages(2);
        assert_eq!(
            seen[0].split(' ').next(),
            Some("home/gettemp/x"),
            "{seen:?}"
        );
        let (topic, rest) = seen[1].split_once(' ').unwrap_or_default();
        assert_eq!(
            topic, "home/datatemp/x",
            "answered on the reply topic: {seen:?}"
        );
        assert!(
            rest.contains("is not a valid topic name") && rest.ends_with(" corr-1"),
            "an error with the correlation data: {rest}"
        );
    }
    round_trip_works(&edgemq, &mut watcher, 0);
    assert!(edgemq.stop().success());
}

/// A PUBLISH from a client must not carry a subscription identifier [MQTT-3.3.4-6]. rumqttd's
/// router drops the whole link such a copy arrives on, which is the one every copy takes: one
/// client could have stopped all live delivery. That client is disconnected instead.
#[test]
fn a_publish_with_a_subscription_identifier_closes_only_its_client() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut watcher = Sub::start(&edgemq, &["-t", "#"]);
    let mut client = connected(&edgemq, 5, "sid-sender");
    let mut body = string(b"sid/x");
    body.extend([2, 0x0b, 7]); // properties: subscription identifier 7
    body.extend_from_slice(b"forged");
    client.write_all(&packet(0x30, &body)).unwrap();
    let sent = until_closed(&mut client, "a PUBLISH with a subscription identifier");
    assert_eq!(sent.get(..3), Some(&b"\xe0\x01\x82"[..]), "{sent:02x?}");
    for n in 0..3 {
        round_trip_works(&edgemq, &mut watcher, 300 + n);
    }
    assert!(edgemq.stop().success());
}

#[test]
fn topics_starting_with_a_multibyte_character_are_delivered_and_break_nothing() {
    // rumqttd's router panics on such a topic unless edgemq escapes it (found by fuzzing):
    // before, the first one stopped every live delivery for good.
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut all = Sub::start(&edgemq, &["-t", "#"]);
    let mut exact = Sub::start(&edgemq, &["-t", "温度/+"]);
    let mut percent = Sub::start(&edgemq, &["-t", "%/x"]);
    for (topic, payload) in [
        ("温度/室内", "21"),
        ("é", "e"),
        ("%/x", "p"),
        ("plain/after", "ok"),
    ] {
        mosquitto_pub(&edgemq, topic, payload.as_bytes(), &["-q", "1"]);
    }
    assert_eq!(
        all.messages(4),
        ["温度/室内 21", "é e", "%/x p", "plain/after ok"]
    );
    assert_eq!(exact.messages(1), ["温度/室内 21"]);
    assert_eq!(percent.messages(1), ["%/x p"]);
    exact.nothing_more();
    assert!(edgemq.stop().success());
}
