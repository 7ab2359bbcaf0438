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
