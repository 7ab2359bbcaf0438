//! What subscribers receive: every message numbered once in the order it reaches the router,
//! and what an MQTT 5 publisher attached reaching MQTT 5 subscribers intact.

mod common;

use common::*;

#[test]
fn messages_and_dead_letters_are_numbered_in_one_sequence_across_restarts() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let good = br#"{"device_id":"t1","temperature":21.5}"#;
    mosquitto_pub(&edgemq, "home/temperature", good, &["-q", "1"]);
    mosquitto_pub(&edgemq, "home/temperature", b"not json", &["-q", "1"]);
    mosquitto_pub(&edgemq, "plain/topic", b"raw", &["-q", "1"]);
    assert!(edgemq.stop().success());
    let edgemq = Edgemq::start(dir.path(), &[]);
    mosquitto_pub(&edgemq, "plain/topic", b"after restart", &["-q", "1"]);
    let all = "SELECT id, topic, 'message' FROM messages
               UNION ALL SELECT id, topic, 'dead letter' FROM dead_letters ORDER BY id";
    let rows = rows_eventually(&edgemq.db, all, 4);
    let row = |id: &str, topic: &str, table: &str| vec![id.to_string(), topic.into(), table.into()];
    assert_eq!(
        rows,
        [
            row("1", "home/temperature", "message"),
            row("2", "home/temperature", "dead letter"),
            row("3", "plain/topic", "message"),
            row("4", "plain/topic", "message"),
        ]
    );
    assert!(edgemq.stop().success());
}

#[test]
fn a_v5_subscriber_gets_the_publishers_properties_and_nothing_more() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let format = "%t|%p|%D|%R|%C|%P";
    let mut v5 = Sub::start(&edgemq, &["-V", "mqttv5", "-t", "props/#", "-F", format]);
    let mut v311 = Sub::start(&edgemq, &["-t", "props/#"]);
    let properties = [
        ["-D", "publish", "correlation-data", "abc"],
        ["-D", "publish", "response-topic", "r/1"],
        ["-D", "publish", "content-type", "text/plain"],
    ];
    let mut args = vec!["-V", "mqttv5", "-q", "1"];
    args.extend(properties.iter().flatten());
    args.extend(["-D", "publish", "user-property", "k", "v"]);
    mosquitto_pub(&edgemq, "props/a", b"one", &args);
    mosquitto_pub(&edgemq, "props/b", b"two", &["-V", "mqttv5"]);
    assert_eq!(
        v5.messages(2),
        ["props/a|one|abc|r/1|text/plain|k:v", "props/b|two||||"]
    );
    assert_eq!(v311.messages(2), ["props/a one", "props/b two"]);
    assert!(edgemq.stop().success());
}

/// Each subscriber's lines ("topic qos") for publishes at QoS 0, 1 and 2, sorted.
fn received(sub: &mut Sub, n: usize) -> Vec<String> {
    let mut lines = sub.messages(n);
    lines.sort();
    lines
}

#[test]
fn delivery_qos_is_the_lower_of_published_and_granted_live_and_retained() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    for version in ["mqttv311", "mqttv5"] {
        // Retained first, for subscribers that come later.
        for qos in ["0", "1", "2"] {
            let topic = format!("qr/{version}/p{qos}");
            mosquitto_pub(&edgemq, &topic, b"kept", &["-V", version, "-q", qos, "-r"]);
        }
        let mut subs: Vec<Sub> = ["0", "1", "2"]
            .iter()
            .map(|granted| {
                let args = ["-V", version, "-q", granted, "-F", "%t %q"];
                let filters = ["-t", "qos/+/+", "-t", "qr/+/+"];
                Sub::start(&edgemq, &[&args[..], &filters[..]].concat())
            })
            .collect();
        for qos in ["0", "1", "2"] {
            let topic = format!("qos/{version}/p{qos}");
            mosquitto_pub(&edgemq, &topic, b"live", &["-V", version, "-q", qos]);
        }
        for (granted, sub) in subs.iter_mut().enumerate() {
            let lines = |prefix: &str| -> Vec<String> {
                (0..3)
                    .map(|published| {
                        format!("{prefix}/{version}/p{published} {}", published.min(granted))
                    })
                    .collect()
            };
            let expected = [lines("qos"), lines("qr")].concat();
            let mut expected_sorted = expected.clone();
            expected_sorted.sort();
            assert_eq!(
                received(sub, 6),
                expected_sorted,
                "{version} subscriber granted QoS {granted}"
            );
        }
        // Cleared, so the next version's subscribers see only their own.
        for qos in ["0", "1", "2"] {
            let topic = format!("qr/{version}/p{qos}");
            let cleared = mosquitto(&edgemq, "mosquitto_pub")
                .args(["-t", &topic, "-r", "-n"])
                .status()
                .unwrap();
            assert!(cleared.success(), "clearing {topic}");
        }
    }
    assert!(edgemq.stop().success());
}

#[test]
fn overlapping_filters_deliver_each_message_once() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let filters = ["-t", "a/#", "-t", "a/b", "-t", "a/+/c", "-t", "a/b/+"];
    let mut v5 = Sub::start(
        &edgemq,
        &[&["-V", "mqttv5", "-q", "2", "-F", "%t %q"][..], &filters].concat(),
    );
    let mut v311 = Sub::start(
        &edgemq,
        &[&["-q", "1", "-F", "%t %q"][..], &filters].concat(),
    );
    mosquitto_pub(&edgemq, "a/b/c", b"x", &["-q", "1"]);
    mosquitto_pub(&edgemq, "a/b", b"x", &["-q", "2"]);
    mosquitto_pub(&edgemq, "a/x", b"x", &["-q", "0"]);
    assert_eq!(v5.messages(3), ["a/b/c 1", "a/b 2", "a/x 0"]);
    assert_eq!(v311.messages(3), ["a/b/c 1", "a/b 1", "a/x 0"]);
    let later = std::time::Duration::from_millis(500);
    assert_eq!(v5.quiet_for(later), Vec::<String>::new(), "no second copy");
    assert_eq!(
        v311.quiet_for(later),
        Vec::<String>::new(),
        "no second copy"
    );
    assert!(edgemq.stop().success());
}
