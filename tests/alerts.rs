//! Alerts: OFFLINE after silence and ONLINE on return; one alert per condition however long it
//! holds, cleared once; no duplicate after a restart; every change published on MQTT and kept
//! in the log, so a persistent session gets what it missed.

mod common;

use common::*;
use std::process::Stdio;
use std::time::Duration;

/// The next alert published on MQTT: its topic and JSON body.
fn next_json(sub: &mut Sub) -> (String, serde_json::Value) {
    let (topic, body) = sub.next();
    let body = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("an alert on {topic} as JSON, got `{body}`: {e}"));
    (topic, body)
}

#[test]
fn offline_after_silence_then_online_with_the_next_message() {
    let dir = temp_dir();
    std::fs::write(
        dir.path().join("fast.toml"),
        "[[route]]\nfilter = \"devices/+/telemetry\"\nkind = \"telemetry\"\n\
         device_id = [\"payload:deviceId\", \"topic:1\"]\ntime = \"payload:ts\"\noffline_after = \"1s\"\n",
    )
    .unwrap();
    let edgemq = Edgemq::start(dir.path(), &["--config", "fast.toml"]);
    let mut alerts = Sub::start(&edgemq, &["-t", "edgemq/alerts/#"]);
    let reading = br#"{"deviceId":"dev-a","temperature":21.0,"humidity":40.0}"#;

    mosquitto_pub(&edgemq, "devices/dev-a/telemetry", reading, &[]);
    let offline = rows_eventually(&edgemq.db, "SELECT type, cleared_at FROM alerts", 1);
    assert_eq!(offline, [["OFFLINE", "NULL"]]);
    assert_eq!(query(&edgemq.db, "SELECT is_online FROM devices"), [["0"]]);
    let (topic, body) = next_json(&mut alerts);
    assert_eq!(topic, "edgemq/alerts/dev-a/OFFLINE");
    assert_eq!(
        (body["state"].as_str(), body["device_id"].as_str()),
        (Some("raised"), Some("dev-a"))
    );

    mosquitto_pub(&edgemq, "devices/dev-a/telemetry", reading, &[]);
    let all = rows_eventually(
        &edgemq.db,
        "SELECT type FROM alerts WHERE cleared_at IS NOT NULL ORDER BY id",
        2,
    );
    assert_eq!(all, [["OFFLINE"], ["ONLINE"]]);
    assert_eq!(query(&edgemq.db, "SELECT is_online FROM devices"), [["1"]]);
    let (topic, body) = next_json(&mut alerts);
    assert_eq!(
        (topic.as_str(), body["state"].as_str()),
        ("edgemq/alerts/dev-a/OFFLINE", Some("cleared"))
    );
    let (topic, _) = next_json(&mut alerts);
    assert_eq!(topic, "edgemq/alerts/dev-a/ONLINE");
    alerts.kill();
    // Each publication is in the log as edgemq's own, not as device data.
    assert_eq!(
        query(
            &edgemq.db,
            "SELECT topic, json_extract(payload, '$.state'), client_id, qos,
                    coalesce(device_id, kind, 'no device') FROM messages
              WHERE topic LIKE 'edgemq/%' ORDER BY id"
        ),
        [
            [
                "edgemq/alerts/dev-a/OFFLINE",
                "raised",
                "edgemq-outbox",
                "1",
                "no device"
            ],
            [
                "edgemq/alerts/dev-a/OFFLINE",
                "cleared",
                "edgemq-outbox",
                "1",
                "no device"
            ],
            [
                "edgemq/alerts/dev-a/ONLINE",
                "raised",
                "edgemq-outbox",
                "1",
                "no device"
            ],
            [
                "edgemq/alerts/dev-a/ONLINE",
                "cleared",
                "edgemq-outbox",
                "1",
                "no device"
            ],
        ]
    );
}

/// `count` readings at `temperature` for device `hot-1`, in one mosquitto_pub run.
fn readings(edgemq: &Edgemq, count: usize, temperature: f64) {
    let line = format!(r#"{{"deviceId":"hot-1","temperature":{temperature},"humidity":50}}"#);
    let lines = format!("{line}\n").repeat(count);
    mosquitto_pub_lines(edgemq, "devices/hot-1/telemetry", &lines);
}

fn mosquitto_pub_lines(edgemq: &Edgemq, topic: &str, lines: &str) {
    use std::io::Write;
    let mut child = mosquitto(edgemq, "mosquitto_pub")
        .args(["-t", topic, "-l", "-q", "1"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn fifty_hot_readings_raise_one_alert_cleared_once_even_across_a_restart() {
    let dir = temp_dir();
    let first = Edgemq::start(dir.path(), &[]);
    // A persistent session that is away while the alert is raised.
    let watcher = ["-c", "-i", "watcher", "-q", "1", "-t", "edgemq/alerts/#"];
    Sub::start(&first, &watcher).kill();
    rows_eventually(&first.db, "SELECT client_id FROM sessions", 1);
    readings(&first, 50, 31.5);
    rows_eventually(
        &first.db,
        "SELECT id FROM messages WHERE kind = 'telemetry'",
        50,
    );
    let open = query(&first.db, "SELECT type, value, cleared_at FROM alerts");
    assert_eq!(open, [["HIGH_TEMP", "31.5", "NULL"]]);
    assert!(first.stop().success());

    let second = Edgemq::start(dir.path(), &[]);
    let mut back = Sub::start(&second, &watcher);
    let (topic, body) = next_json(&mut back);
    assert_eq!(
        (topic.as_str(), body["state"].as_str()),
        ("edgemq/alerts/hot-1/HIGH_TEMP", Some("raised")),
        "the alert raised while the session was away"
    );
    back.kill();
    let mut alerts = Sub::start(&second, &["-t", "edgemq/alerts/#"]);
    readings(&second, 10, 33.0);
    rows_eventually(
        &second.db,
        "SELECT id FROM messages WHERE kind = 'telemetry'",
        60,
    );
    assert_eq!(
        query(&second.db, "SELECT count(*) FROM alerts"),
        [["1"]],
        "still the one alert"
    );
    readings(&second, 1, 24.0);
    let alerts_now = rows_eventually(
        &second.db,
        "SELECT type, value FROM alerts WHERE cleared_at IS NOT NULL",
        1,
    );
    assert_eq!(alerts_now, [["HIGH_TEMP", "31.5"]]);
    let (topic, body) = next_json(&mut alerts);
    assert_eq!(topic, "edgemq/alerts/hot-1/HIGH_TEMP");
    assert_eq!(body["state"], "cleared");
    assert_eq!(
        body["payload"],
        serde_json::json!({"temperature": 31.5, "threshold": 30.0})
    );
    assert_eq!(
        alerts.quiet_for(Duration::from_millis(500)),
        Vec::<String>::new(),
        "nothing else was published"
    );
    alerts.kill();
    assert_eq!(query(&second.db, "SELECT count(*) FROM alerts"), [["1"]]);
    assert_eq!(
        query(
            &second.db,
            "SELECT json_extract(payload, '$.state') FROM messages
              WHERE topic LIKE 'edgemq/%' ORDER BY id"
        ),
        [["raised"], ["cleared"]],
        "the alert's two publications are in the log"
    );
}
