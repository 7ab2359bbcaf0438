//! The spine: every publish stored exactly once, flushed on SIGTERM, kept across restarts.

mod common;

use common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Topic and payload of message `i` from client `c`: payloads vary in size and include
/// bytes that are not UTF-8, to check they are stored byte-for-byte.
fn message(c: usize, i: usize) -> (String, Vec<u8>) {
    let topic = format!("spine/client-{c}/m{}", i % 7);
    let mut payload =
        format!("{{\"c\":{c},\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 50)).into_bytes();
    if i.is_multiple_of(5) {
        payload.extend_from_slice(&[0xff, 0x00, 0xfe, (i % 256) as u8]);
    }
    (topic, payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_thousand_qos1_messages_from_ten_clients_are_stored_exactly_once() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut sent = Vec::new();
    let mut publishers = Vec::new();
    for c in 0..10 {
        let messages: Vec<_> = (0..2000).map(|i| message(c, i)).collect();
        sent.extend(messages.clone());
        publishers.push(tokio::spawn(publish_all_qos1(
            edgemq.mqtt,
            format!("pub-{c}"),
            messages,
        )));
    }
    for p in publishers {
        p.await.unwrap();
    }
    count_eventually(&edgemq.db, 20_000);
    let db = edgemq.db.clone();
    assert!(edgemq.stop().success());
    let mut rows = stored(&db);
    assert_eq!(rows.len(), 20_000);
    rows.sort();
    sent.sort();
    assert!(rows == sent, "stored rows differ from what was published");
}

#[test]
fn mosquitto_pub_lines_become_one_row_each() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut child = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &edgemq.mqtt.port().to_string()])
        .args(["-t", "lines/test", "-q", "1", "-l"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub is installed by .ci/run");
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..5000 {
        writeln!(stdin, "{{\"line\": {i}}}").unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    count_eventually(&edgemq.db, 5000);
    let db = edgemq.db.clone();
    assert!(edgemq.stop().success());
    let rows = stored(&db);
    assert_eq!(rows.len(), 5000);
    for (i, (topic, payload)) in rows.iter().enumerate() {
        assert_eq!(topic, "lines/test");
        assert_eq!(payload, format!("{{\"line\": {i}}}").as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_right_after_the_last_puback_keeps_every_acknowledged_message() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut publishers = Vec::new();
    for c in 0..4 {
        let messages: Vec<_> = (0..5000).map(|i| message(c, i)).collect();
        publishers.push(tokio::spawn(publish_all_qos1(
            edgemq.mqtt,
            format!("term-{c}"),
            messages,
        )));
    }
    for p in publishers {
        p.await.unwrap();
    }
    let db = edgemq.db.clone();
    let status = edgemq.stop();
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(count(&db), 20_000);
    assert!(
        !db.with_extension("db-wal").exists()
            || std::fs::metadata(db.with_extension("db-wal"))
                .unwrap()
                .len()
                == 0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_on_the_same_database_keeps_everything_and_appends() {
    let dir = temp_dir();
    let first = Edgemq::start(dir.path(), &[]);
    let batch: Vec<_> = (0..300).map(|i| message(1, i)).collect();
    publish_all_qos1(first.mqtt, "restart-1".into(), batch.clone()).await;
    assert!(first.stop().success());

    let second = Edgemq::start(dir.path(), &[]);
    assert!(
        second.log_text().contains("(300 messages)"),
        "{}",
        second.log_text()
    );
    let batch2: Vec<_> = (300..500).map(|i| message(2, i)).collect();
    publish_all_qos1(second.mqtt, "restart-2".into(), batch2.clone()).await;
    let health: serde_json::Value = get_json(&second, "/health").await;
    let db = second.db.clone();
    assert!(second.stop().success());

    let rows = stored(&db);
    let expected: Vec<_> = batch.into_iter().chain(batch2).collect();
    assert_eq!(
        rows, expected,
        "rows must be the first run's, then the second's, in order"
    );
    // /health counts the rows of both runs (the second run's may still be in flight then).
    let in_db = health["messages_stored"].as_u64().unwrap();
    assert!((300..=500).contains(&in_db), "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_leaves_a_database_that_opens_and_passes_integrity_check() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mqtt = edgemq.mqtt;
    let load = tokio::spawn(async move {
        let messages: Vec<_> = (0..50_000).map(|i| message(9, i)).collect();
        // The connection dies with the broker; only the database matters here.
        let _ = tokio::time::timeout(
            Duration::from_secs(60),
            publish_all_qos1_tolerant(mqtt, messages),
        )
        .await;
    });
    wait_for(
        "over 1000 rows before the kill",
        Duration::from_secs(20),
        || match count(&edgemq.db) {
            n if n > 1000 => Ok(()),
            n => Err(format!("{n} rows")),
        },
    );
    let db = edgemq.db.clone();
    edgemq.kill9();
    load.abort();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert!(rows > 1000);
    drop(conn);

    // And edgemq starts on it again, keeping what was there.
    let again = Edgemq::start(dir.path(), &[]);
    assert!(
        again.log_text().contains(&format!("({rows} messages)")),
        "{}",
        again.log_text()
    );
    let log = again.log.clone();
    let status = again.stop();
    assert!(status.success(), "{status:?}: {:?}", log.lock().unwrap());
}

/// Publishes until the connection fails, without treating that as a test failure.
async fn publish_all_qos1_tolerant(addr: std::net::SocketAddr, messages: Vec<(String, Vec<u8>)>) {
    let (client, mut eventloop) = mqtt_client(addr, "kill9");
    tokio::spawn(async move {
        for (topic, payload) in messages {
            if client
                .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
                .await
                .is_err()
            {
                return;
            }
        }
    });
    while eventloop.poll().await.is_ok() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_report_what_was_stored() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let before: serde_json::Value = get_json(&edgemq, "/health").await;
    assert_eq!(before["status"], "healthy");
    assert_eq!(before["database"], "ok");
    assert_eq!(before["messages_stored"], 0);
    assert_eq!(before["last_message_time"], serde_json::Value::Null);

    let batch: Vec<_> = (0..250).map(|i| message(3, i)).collect();
    publish_all_qos1(edgemq.mqtt, "health".into(), batch).await;
    count_eventually(&edgemq.db, 250);

    let health: serde_json::Value = get_json(&edgemq, "/health").await;
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["messages_stored"], 250);
    assert_eq!(health["queue_depth"], 0);
    assert_eq!(health["errors"], 0);
    assert!(health["last_message_time"]
        .as_str()
        .unwrap()
        .starts_with("20"));
    let listeners = health["listeners"].as_object().unwrap();
    assert_eq!(listeners.len(), 2);
    assert!(listeners.values().all(|up| up == true));

    // A client that stays connected is counted.
    let mut watcher = Sub::start(&edgemq, &["-t", "x/#"]);
    let clients = get_json(&edgemq, "/health").await["connected_clients"].clone();
    watcher.kill();
    assert_eq!(
        clients, 1,
        "one mosquitto_sub connected (it has its SUBACK)"
    );

    let metrics = get_text(&edgemq, "/metrics").await;
    for line in [
        "edgemq_received_total 250",
        "edgemq_stored_total 250",
        "edgemq_held_back_total 0",
        "edgemq_connections_total ",
        "edgemq_queue_depth ",
        "edgemq_commit_seconds_count ",
        "edgemq_batch_size_bucket{le=\"+Inf\"} ",
        "edgemq_database_size_bytes ",
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with(line)),
            "no `{line}` in\n{metrics}"
        );
    }
    assert!(edgemq.stop().success());
}
