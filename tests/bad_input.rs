//! Bad input on a routed topic becomes a dead letter with a reason a person understands; the
//! broker keeps serving every client, and the good messages around it are stored.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_message_is_a_dead_letter_with_its_reason() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let huge = format!(
        r#"{{"device_id":"big","pad":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "sensors/d1",
            br#"{"temperature": 28.4,"#.to_vec(),
            "invalid JSON",
        ),
        (
            "sensors/d1",
            br#"{"device_id":"d1","temperature":"hot"}"#.to_vec(),
            "field `temperature` must be a number, got \"hot\"",
        ),
        (
            "sensors/d1",
            br#"{"temperature": NaN}"#.to_vec(),
            "invalid JSON",
        ),
        (
            "devices/x/telemetry",
            br#"{"deviceId":"x","temperature":"NaN","humidity":50}"#.to_vec(),
            "field `temperature` must be a number",
        ),
        ("sensors/d1", vec![b'{', 0xff, 0xfe, b'}'], "not UTF-8"),
        (
            "sensors/d1",
            huge.into_bytes(),
            "larger than the limit of 262144 bytes",
        ),
        (
            "devices/x/telemetry",
            br#"{"deviceId":"x","temperature":20}"#.to_vec(),
            "missing field `humidity`",
        ),
        (
            "status",
            br#"{"status": 9, "timestamp": "2024-12-10T10:21:45Z"}"#.to_vec(),
            "`status` must be an integer from 0 to 6, got 9",
        ),
        (
            "status",
            br#"{"timestamp": "2024-12-10T10:21:45Z"}"#.to_vec(),
            "missing field `status`",
        ),
        (
            "status",
            br#"{"status": 2, "timestamp": "yesterday"}"#.to_vec(),
            "field `timestamp`: `yesterday` is not an ISO 8601 time",
        ),
        (
            "sensors/d1",
            b"[1, 2, 3]".to_vec(),
            "must be a JSON object, got an array",
        ),
        (
            "home/power",
            br#"{"device_id":"p1","status":"EB_MAYBE"}"#.to_vec(),
            "must be EB_ON, EB_OFF, DG_ON or DG_OFF",
        ),
        (
            "autocore/E1/relay/0/status",
            br#"{"state":"sideways"}"#.to_vec(),
            "`state` must be true or false",
        ),
        (
            "home/fingerprint",
            br#"{"device_id":"f1","user_id":"u","authStatus":1}"#.to_vec(),
            "`authStatus` must be a string",
        ),
    ];

    // A subscriber on everything: it must keep receiving through all of it.
    let mut watcher = Sub::start(&edgemq, &["-t", "#"]);

    // At QoS 1 each is stored before the next is sent: the dead letters' order is theirs.
    for (topic, payload, _) in &cases {
        mosquitto_pub(&edgemq, topic, payload, &["-q", "1"]);
    }
    let good = br#"{"device_id":"d1","temperature":21.5,"humidity":40}"#;
    mosquitto_pub(&edgemq, "sensors/d1", good, &[]);

    let letters = rows_eventually(
        &edgemq.db,
        "SELECT topic, reason FROM dead_letters ORDER BY id",
        cases.len(),
    );
    assert_eq!(letters.len(), cases.len(), "{letters:#?}");
    for ((topic, _, reason), row) in cases.iter().zip(&letters) {
        assert_eq!(&row[0], topic);
        assert!(
            row[1].contains(reason),
            "{topic}: expected `{reason}` in `{}`",
            row[1]
        );
    }
    // The payload is kept as it came, byte for byte.
    let raw = query(
        &edgemq.db,
        "SELECT hex(payload) FROM dead_letters WHERE reason LIKE '%UTF-8%'",
    );
    assert_eq!(raw, [["7BFFFE7D"]]);
    // The good message after them is stored, and only it.
    let stored = rows_eventually(&edgemq.db, "SELECT topic, device_id FROM messages", 1);
    assert_eq!(stored, [["sensors/d1", "d1"]]);

    // Every message reached the subscriber, the good one last (no payload has a newline).
    let seen = watcher.messages(cases.len() + 1);
    let mut topics: Vec<&str> = seen
        .iter()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect();
    let mut sent: Vec<&str> = cases
        .iter()
        .map(|(t, _, _)| *t)
        .chain(["sensors/d1"])
        .collect();
    topics.sort();
    sent.sort();
    assert_eq!(topics, sent, "the subscriber saw every message");
    assert_eq!(
        seen.last().map(String::as_str),
        Some("sensors/d1 {\"device_id\":\"d1\",\"temperature\":21.5,\"humidity\":40}")
    );

    let health = get_json(&edgemq, "/health").await;
    assert_eq!(health["errors"], cases.len());
    let metrics = get_text(&edgemq, "/metrics").await;
    assert!(metrics.contains(&format!("\nedgemq_dead_letters_total {}\n", cases.len())));
    assert!(edgemq.stop().success());
}

#[test]
fn sql_looking_device_ids_are_stored_as_text() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let sneaky = r#"x'); DROP TABLE messages; --"#;
    let payload = format!(r#"{{"device_id":"{sneaky}","temperature":20.0}}"#);
    mosquitto_pub(&edgemq, "sensors/d2", payload.as_bytes(), &[]);
    let rows = rows_eventually(&edgemq.db, "SELECT device_id FROM messages", 1);
    assert_eq!(rows, [[sneaky]]);
    assert_eq!(
        query(&edgemq.db, "SELECT device_id FROM devices"),
        [[sneaky]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_times_far_in_the_future_fall_back_to_arrival_and_are_counted() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let payload = br#"{"deviceId":"f1","ts":4102444800000,"temperature":20,"humidity":40}"#; // 2100
    mosquitto_pub(&edgemq, "devices/f1/telemetry", payload, &[]);
    let rows = rows_eventually(
        &edgemq.db,
        "SELECT device_time = received_at FROM messages",
        1,
    );
    assert_eq!(rows, [["1"]]);
    let metrics = get_text(&edgemq, "/metrics").await;
    assert!(
        metrics.contains("\nedgemq_future_timestamps_total 1\n"),
        "{metrics}"
    );
}

#[test]
fn a_packet_over_the_size_limit_closes_only_that_connection() {
    let dir = temp_dir();
    std::fs::write(
        dir.path().join("small.toml"),
        "[mqtt]\nmax_packet_size = 100000\n",
    )
    .unwrap();
    let edgemq = Edgemq::start(dir.path(), &["--config", "small.toml"]);
    let big = dir.path().join("big.txt");
    std::fs::write(&big, "a".repeat(200_000)).unwrap();
    let out = mosquitto(&edgemq, "mosquitto_pub")
        .args(["-q", "1", "-t", "big/one", "-f"])
        .arg(&big)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("The connection was lost"),
        "{out:?}"
    );
    mosquitto_pub(&edgemq, "small/one", b"fine", &["-q", "1"]);
    let rows = rows_eventually(&edgemq.db, "SELECT topic FROM messages", 1);
    assert_eq!(rows, [["small/one"]]);
    assert!(
        edgemq
            .log_text()
            .contains("a packet of 200011 bytes is over [mqtt] max_packet_size (100000)"),
        "{}",
        edgemq.log_text()
    );
    assert!(edgemq.stop().success());
}
