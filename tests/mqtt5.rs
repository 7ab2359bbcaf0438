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
    let args = [&["-V", "mqttv5", "-q", "1", "-t", "mps/#"], &small[..]].concat();
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
