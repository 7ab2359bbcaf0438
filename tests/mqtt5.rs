//! MQTT 5 behaviour on edgemq's sessions, each test asserting what the specification says the
//! client must see, with mosquitto_sub/pub `-V mqttv5` and their `-D` properties.

mod common;

use common::*;

#[test]
fn nothing_larger_than_the_clients_maximum_packet_size_is_sent_to_it() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let small = ["-D", "connect", "maximum-packet-size", "64"];
    let mut qos0 = Sub::start(
        &edgemq,
        &[&["-V", "mqttv5", "-t", "mps/#"], &small[..]].concat(),
    );
    let args = [
        &["-V", "mqttv5", "-q", "1", "-i", "mps-1", "-t", "mps/#"],
        &small[..],
    ]
    .concat();
    let mut qos1 = Sub::start(&edgemq, &args);
    let big = "x".repeat(100);
    for (topic, payload) in [
        ("mps/a", "small"),
        ("mps/b", big.as_str()),
        ("mps/c", "after"),
    ] {
        mosquitto_pub(&edgemq, topic, payload.as_bytes(), &["-q", "1"]);
    }
    // The large one is skipped [MQTT-3.1.2-25]; QoS 1 deliveries go on after it.
    assert_eq!(qos0.messages(2), ["mps/a small", "mps/c after"]);
    assert_eq!(qos1.messages(2), ["mps/a small", "mps/c after"]);
    qos1.nothing_more();
    let skipped = metric(
        &edgemq,
        r#"edgemq_dropped_total{reason="packet_too_large"}"#,
    );
    assert_eq!(skipped, Ok(2), "one for each subscriber");
    // The session says what it was not sent, and why.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let expected = serde_json::json!({"packet_too_large": 1});
    let drops = std::time::Duration::from_secs(5);
    wait_for("mps-1's session to count its drop", drops, || {
        let session = runtime.block_on(get_json(&edgemq, "/api/v1/sessions/mps-1"));
        match session["dropped"] == expected {
            true => Ok(()),
            false => Err(session.to_string()),
        }
    });
    assert!(edgemq.stop().success());
}

fn now_ms() -> u128 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.unwrap().as_millis()
}

#[test]
fn an_expired_message_is_not_delivered_and_a_delivered_one_carries_what_is_left() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let format = ["-F", "%t %p [%E]"];
    let session = ["-V", "mqttv5", "-c", "-i", "away", "-q", "1", "-t", "exp/#"];
    Sub::start(&edgemq, &[&session[..], &format].concat()).kill();
    rows_eventually(&edgemq.db, "SELECT client_id FROM sessions", 1);
    let expiring = |seconds: &'static str| {
        [
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-D",
            "publish",
            "message-expiry-interval",
            seconds,
        ]
    };
    let published = now_ms();
    mosquitto_pub(&edgemq, "exp/short", b"gone", &expiring("1"));
    mosquitto_pub(&edgemq, "exp/long", b"kept", &expiring("600"));
    mosquitto_pub(&edgemq, "exp/none", b"plain", &["-V", "mqttv5", "-q", "1"]);
    mosquitto_pub(
        &edgemq,
        "exp/retained",
        b"r",
        &[&expiring("1")[..], &["-r"]].concat(),
    );
    wait_for(
        "a second to pass",
        std::time::Duration::from_secs(5),
        || {
            (now_ms() > published + 1_100)
                .then_some(())
                .ok_or(format!("{}", now_ms()))
        },
    );
    // Waiting in the session's queue (its client away), and retained: expired is not sent.
    let mut back = Sub::start(&edgemq, &[&session[..], &format].concat());
    let got = back.messages(2);
    assert_eq!(got[1], "exp/none plain []");
    let (head, left) = got[0].split_once(" [").unwrap();
    assert_eq!(head, "exp/long kept");
    let left: u32 = left.trim_end_matches(']').parse().unwrap();
    assert!((595..=600).contains(&left), "what is left of 600 s: {left}");
    back.nothing_more();
    let mut fresh = Sub::start(&edgemq, &["-V", "mqttv5", "-t", "exp/retained"]);
    fresh.nothing_more();
    let expired = metric(&edgemq, r#"edgemq_dropped_total{reason="expired"}"#);
    // Queued for the absent session: exp/short and exp/retained; sent as retained on each
    // SUBSCRIBE (mosquitto_sub subscribes again when it comes back): exp/retained twice.
    assert_eq!(expired, Ok(4));
    assert!(edgemq.stop().success());
}

#[test]
fn max_keepalive_is_announced_as_server_keep_alive_and_refuses_311_clients_past_it() {
    use common::raw::*;
    use std::io::Write;
    let dir = temp_dir();
    let edgemq = Edgemq::with_config(dir.path(), "[mqtt]\nmax_keepalive = 30\n");
    // Both raw CONNECTs ask for 60 s.
    let mut v5 = open(&edgemq);
    v5.write_all(&connect(5, 0x02, "ka5", &[])).unwrap();
    let (byte1, connack) = next_packet(&mut v5, "CONNACK");
    assert_eq!((byte1, connack[1]), (0x20, 0), "accepted: {connack:02x?}");
    assert!(
        connack.windows(3).any(|w| w == [0x13, 0, 30]),
        "Server Keep Alive 30 in {connack:02x?}"
    );
    let mut v311 = open(&edgemq);
    v311.write_all(&connect(4, 0x02, "ka3", &[])).unwrap();
    assert_eq!(
        until_closed(&mut v311, "CONNACK then close"),
        [0x20, 2, 0, 2],
        "identifier rejected, as Mosquitto answers"
    );
    let mut within = Sub::start(&edgemq, &["-k", "20", "-t", "ka/#"]);
    mosquitto_pub(&edgemq, "ka/x", b"fine", &["-k", "20"]);
    assert_eq!(within.messages(1), ["ka/x fine"]);
    assert!(edgemq.stop().success());
}

#[test]
fn a_client_past_the_announced_receive_maximum_is_disconnected_with_0x93() {
    use common::raw::*;
    use std::io::Write;
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let (mut client, _) = connected_v5(&edgemq, 0x02, "greedy", &[]);
    // QoS 2 publishes whose PUBREL never comes stay unacknowledged: 1,000 are allowed.
    let publish = |pkid: u16| {
        let mut body = string(b"rm/x");
        body.extend(pkid.to_be_bytes());
        body.push(0); // no properties
        body.extend_from_slice(b"p");
        packet(0x34, &body)
    };
    let first: Vec<u8> = (1..=1000).flat_map(publish).collect();
    client.write_all(&first).unwrap();
    for _ in 1..=1000 {
        let (byte1, _) = next_packet(&mut client, "a PUBREC");
        assert_eq!(byte1, 0x50, "PUBREC");
    }
    client.write_all(&publish(1001)).unwrap();
    let last = until_closed(&mut client, "the DISCONNECT");
    assert_eq!(last.first(), Some(&0xe0), "DISCONNECT: {last:02x?}");
    assert_eq!(
        last.get(2),
        Some(&0x93),
        "Receive Maximum exceeded: {last:02x?}"
    );
    // Only that client is closed.
    let mut sub = Sub::start(&edgemq, &["-t", "rm/#"]);
    mosquitto_pub(&edgemq, "rm/y", b"fine", &["-q", "1"]);
    assert_eq!(sub.messages(1), ["rm/y fine"]);
    assert!(edgemq.stop().success());
}

/// A raw MQTT 5 SUBSCRIBE of one filter with subscription `options`, and its SUBACK's code.
fn subscribe_v5(client: &mut std::net::TcpStream, pkid: u16, filter: &str, options: u8) -> u8 {
    use common::raw::*;
    use std::io::Write;
    let mut body = pkid.to_be_bytes().to_vec();
    body.push(0); // no properties
    body.extend(string(filter.as_bytes()));
    body.push(options);
    client.write_all(&packet(0x82, &body)).unwrap();
    let (byte1, suback) = next_packet(client, "SUBACK");
    assert_eq!(byte1, 0x90, "SUBACK: {suback:02x?}");
    suback[suback.len() - 1]
}

/// The topic and payload of a raw MQTT 5 QoS 0 PUBLISH from the server.
fn next_publish(client: &mut std::net::TcpStream) -> (u8, String, String) {
    let (byte1, body) = common::raw::next_packet(client, "PUBLISH");
    assert_eq!(byte1 & 0xf0, 0x30, "a PUBLISH: {body:02x?}");
    let len = usize::from(body[0]) << 8 | usize::from(body[1]);
    let topic = String::from_utf8_lossy(&body[2..2 + len]).into_owned();
    let props = usize::from(body[2 + len]);
    let payload = String::from_utf8_lossy(&body[3 + len + props..]).into_owned();
    (byte1, topic, payload)
}

#[test]
fn no_local_and_retain_handling_are_applied() {
    use common::raw::*;
    use std::io::Write;
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    mosquitto_pub(&edgemq, "opt/kept", b"r", &["-r", "-q", "1"]);
    let (mut client, _) = connected_v5(&edgemq, 0x02, "options", &[]);
    // Retain Handling 2: no retained message at all.
    assert_eq!(subscribe_v5(&mut client, 1, "opt/#", 0b10_0000), 0);
    // No Local: what this client publishes itself does not come back to it.
    assert_eq!(subscribe_v5(&mut client, 2, "nl/#", 0b100), 0);
    let mut own = string(b"nl/self");
    own.push(0);
    own.extend_from_slice(b"mine");
    client.write_all(&packet(0x30, &own)).unwrap();
    mosquitto_pub(&edgemq, "nl/other", b"theirs", &[]);
    assert_eq!(next_publish(&mut client).1, "nl/other");
    // Retain Handling 1: the retained message on a new subscription only.
    assert_eq!(subscribe_v5(&mut client, 3, "opt/+", 0b01_0000), 0);
    let (byte1, topic, payload) = next_publish(&mut client);
    assert_eq!(
        (byte1 & 1, topic.as_str(), payload.as_str()),
        (1, "opt/kept", "r")
    );
    assert_eq!(subscribe_v5(&mut client, 4, "opt/+", 0b01_0000), 0);
    // Nothing came for the second subscribe: the next is a fresh publish.
    mosquitto_pub(&edgemq, "opt/live", b"l", &[]);
    assert_eq!(next_publish(&mut client).1, "opt/live");
    assert!(edgemq.stop().success());
}

#[test]
fn a_replay_applies_no_local_and_retain_as_published_to_dead_letters_too() {
    use common::raw::*;
    use std::io::Write;
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    // Seed 002's route refuses these payloads: they are dead letters, delivered all the same.
    let (mut client, _) = connected_v5(&edgemq, 0x02, "me", &[]);
    let mut own = string(b"sensors/d9");
    own.push(0);
    own.extend_from_slice(b"mine, not json");
    client.write_all(&packet(0x30, &own)).unwrap();
    mosquitto_pub(
        &edgemq,
        "sensors/d8",
        b"theirs, not json",
        &["-q", "1", "-r"],
    );
    rows_eventually(&edgemq.db, "SELECT client_id FROM dead_letters", 2);
    // No Local and Retain As Published on a replay from the start of the log. (The replay
    // may begin before the SUBACK: MQTT section 3.8.4 permits it.)
    let mut body = vec![0, 1, 0];
    body.extend(string(b"$replay/0/sensors/#"));
    body.push(0b1100);
    client.write_all(&packet(0x82, &body)).unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let (byte1, body) = next_packet(&mut client, "SUBACK or PUBLISH");
        got.push(match byte1 & 0xF0 {
            0x90 => format!("SUBACK {:02x}", body[body.len() - 1]),
            _ => format!(
                "PUBLISH retain {} {}",
                byte1 & 1,
                String::from_utf8_lossy(&body)
            ),
        });
    }
    got.sort();
    assert_eq!(
        got,
        [
            "PUBLISH retain 1 \0\nsensors/d8\0theirs, not json",
            "SUBACK 00"
        ]
    );
    // Its own came before that one and is left out: the next is a live one.
    mosquitto_pub(&edgemq, "sensors/d7", b"live", &["-q", "1"]);
    assert_eq!(next_publish(&mut client).1, "sensors/d7");
    assert!(edgemq.stop().success());
}

#[test]
fn retain_as_published_keeps_the_publishers_retain_flag_on_live_deliveries() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let format = ["-F", "%t %r"];
    let rap = ["-V", "mqttv5", "--retain-as-published", "-t", "rap/#"];
    let mut kept = Sub::start(&edgemq, &[&rap[..], &format].concat());
    let mut plain = Sub::start(
        &edgemq,
        &[&["-V", "mqttv5", "-t", "rap/#"], &format[..]].concat(),
    );
    mosquitto_pub(&edgemq, "rap/x", b"r", &["-r"]);
    mosquitto_pub(&edgemq, "rap/y", b"n", &[]);
    assert_eq!(kept.messages(2), ["rap/x 1", "rap/y 0"]);
    assert_eq!(plain.messages(2), ["rap/x 0", "rap/y 0"]);
    assert!(edgemq.stop().success());
}

#[test]
fn a_clients_topic_aliases_are_accepted_up_to_the_announced_maximum() {
    use common::raw::*;
    use std::io::Write;
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut sub = Sub::start(&edgemq, &["-t", "ta/#"]);
    let mut client = open(&edgemq);
    client.write_all(&connect(5, 0x02, "aliases", &[])).unwrap();
    let (_, connack) = next_packet(&mut client, "CONNACK");
    assert!(
        connack.windows(3).any(|w| w == [0x22, 0, 10]),
        "Topic Alias Maximum 10 in {connack:02x?}"
    );
    let publish = |topic: &[u8], alias: u16, payload: &[u8]| {
        let mut body = string(topic);
        body.extend([3, 0x23]);
        body.extend(alias.to_be_bytes());
        body.extend_from_slice(payload);
        packet(0x30, &body)
    };
    client.write_all(&publish(b"ta/x", 1, b"one")).unwrap();
    client.write_all(&publish(b"", 1, b"two")).unwrap();
    assert_eq!(sub.messages(2), ["ta/x one", "ta/x two"]);
    client.write_all(&publish(b"ta/y", 11, b"three")).unwrap();
    let last = until_closed(&mut client, "the DISCONNECT");
    assert_eq!(
        last.get(..3),
        Some(&[0xe0, 1, 0x94][..]),
        "alias past 10: {last:02x?}"
    );
    sub.nothing_more();
    assert_eq!(
        query(
            &edgemq.db,
            "SELECT topic, CAST(payload AS TEXT) FROM messages ORDER BY id"
        ),
        [["ta/x", "one"], ["ta/x", "two"]],
        "stored under the topic the alias stands for"
    );
    assert!(edgemq.stop().success());
}

/// A raw MQTT 5 CONNECT with a session expiry and a QoS 0 will on `wd/<client_id>` delayed by
/// `delay` seconds; Clean Start off. The connection once accepted.
fn connected_with_delayed_will(
    edgemq: &Edgemq,
    client_id: &str,
    expiry: u32,
    delay: u32,
) -> std::net::TcpStream {
    use common::raw::*;
    use std::io::Write;
    let mut body = string(b"MQTT");
    body.extend([5, 0x04, 0, 60, 5, 0x11]);
    body.extend(expiry.to_be_bytes());
    body.extend(string(client_id.as_bytes()));
    body.extend([5, 0x18]);
    body.extend(delay.to_be_bytes());
    body.extend(string(format!("wd/{client_id}").as_bytes()));
    body.extend(string(b"gone"));
    let mut stream = open(edgemq);
    stream.write_all(&packet(0x10, &body)).unwrap();
    let (byte1, connack) = next_packet(&mut stream, "CONNACK");
    assert_eq!((byte1, connack.get(1)), (0x20, Some(&0)), "{connack:02x?}");
    stream
}

#[test]
fn a_delayed_will_waits_is_dropped_when_the_client_returns_and_goes_out_when_the_session_ends() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut wills = Sub::start(&edgemq, &["-t", "wd/#"]);
    // Back within its 3 s delay, to its session: no will.
    drop(connected_with_delayed_will(&edgemq, "returns", 60, 3));
    let back = connected_with_delayed_will(&edgemq, "returns", 60, 3);
    // Gone for good: its will comes once the 1 s delay has passed.
    let gone_at = std::time::Instant::now();
    drop(connected_with_delayed_will(&edgemq, "leaves", 60, 1));
    assert_eq!(wills.messages(1), ["wd/leaves gone"]);
    assert!(
        gone_at.elapsed() >= std::time::Duration::from_millis(900),
        "{:?}",
        gone_at.elapsed()
    );
    // A 60 s delay, but the session expires after 1 s: the will goes out with the session's end.
    drop(connected_with_delayed_will(&edgemq, "expires", 1, 60));
    assert_eq!(wills.messages(1), ["wd/expires gone"]);
    let left_at = std::time::Instant::now();
    drop(back);
    // `returns` left again: its will comes 3 s after that, not 3 s after its first drop.
    assert_eq!(
        wills.stream(1, std::time::Duration::from_secs(10)),
        ["wd/returns gone"]
    );
    let waited = left_at.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(2_900),
        "{waited:?}"
    );
    wills.nothing_more();
    assert!(edgemq.stop().success());
}
