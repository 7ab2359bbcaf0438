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
