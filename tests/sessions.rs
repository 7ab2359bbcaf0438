//! Sessions you can see: `/api/v1/sessions` lists every MQTT session, connected or kept for a
//! client that is away, the furthest behind first, and DELETE ends one.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

fn find<'a>(items: &'a Value, client_id: &str) -> Option<&'a Value> {
    items["items"]
        .as_array()?
        .iter()
        .find(|s| s["client_id"] == client_id)
}

fn metric_in(text: &str, name: &str) -> u64 {
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")));
    value
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_slowest_first_and_can_be_ended() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let away = ["-V", "mqttv5", "-c", "-i", "away", "-q", "1", "-t", "a/#"];
    Sub::start(&edgemq, &away).kill();
    let (mut plain, _) = common::raw::connected_v5(&edgemq, 0x02, "plain", &[]);
    let slow = Sub::start(&edgemq, &["-c", "-i", "slow", "-q", "1", "-t", "s/#"]);
    slow.signal(libc::SIGSTOP);
    let publisher = publish_lines(&edgemq, "s/x", "m", 500);
    tokio::task::spawn_blocking(move || publisher.join().unwrap())
        .await
        .unwrap();
    let list = wait_for_async(
        "the slow session to show its backlog",
        Duration::from_secs(10),
        || async {
            let list = get_json(&edgemq, "/api/v1/sessions").await;
            let first = &list["items"][0];
            match (
                first["client_id"].as_str(),
                first["queued_messages"].as_u64(),
            ) {
                (Some("slow"), Some(n)) if n > 0 => Ok(list),
                _ => Err(list.to_string()),
            }
        },
    )
    .await;
    let slow_view = find(&list, "slow").unwrap();
    assert_eq!(
        (
            &slow_view["connected"],
            &slow_view["persistent"],
            &slow_view["protocol"]
        ),
        (
            &Value::from(true),
            &Value::from(true),
            &Value::from("3.1.1")
        )
    );
    assert_eq!(slow_view["in_flight"], 100, "its window is full");
    let away_view = find(&list, "away").unwrap();
    assert_eq!(away_view["connected"], false);
    assert!(
        away_view["disconnected_at"].as_i64().is_some(),
        "{away_view}"
    );
    assert_eq!(away_view["subscriptions"][0]["filter"], "a/#");
    assert_eq!(away_view["subscriptions"][0]["qos"], 1);
    let plain_view = find(&list, "plain").unwrap();
    assert_eq!(
        (&plain_view["persistent"], &plain_view["protocol"]),
        (&Value::from(false), &Value::from("5"))
    );

    // The totals: one session away, the slow one's deliveries queued and in flight.
    let metrics = get_text(&edgemq, "/metrics").await;
    assert!(metrics.contains("\nedgemq_sessions_away 1\n"), "{metrics}");
    let queued: u64 = metric_in(&metrics, "edgemq_sessions_queued");
    assert!(
        queued >= 100,
        "the slow session's window at least: {queued}"
    );

    let one = get_json(&edgemq, "/api/v1/sessions/away").await;
    assert_eq!(one["client_id"], "away");
    let client = reqwest::Client::new();
    let delete = |id: &str| {
        client
            .delete(edgemq.url(&format!("/api/v1/sessions/{id}")))
            .send()
    };
    // A kept session is forgotten, in the store too.
    assert_eq!(delete("away").await.unwrap().status(), 204);
    let gone = reqwest::get(edgemq.url("/api/v1/sessions/away"))
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    rows_eventually(
        &edgemq.db,
        "SELECT client_id FROM sessions WHERE client_id = 'away'",
        0,
    );
    let metrics = get_text(&edgemq, "/metrics").await;
    assert_eq!(metric_in(&metrics, "edgemq_sessions_away"), 0);
    // A connected client is disconnected, and its session ends.
    assert_eq!(delete("plain").await.unwrap().status(), 204);
    let last =
        tokio::task::spawn_blocking(move || common::raw::until_closed(&mut plain, "the close"))
            .await
            .unwrap();
    assert_eq!(
        last.get(..3),
        Some(&[0xe0, 1, 0x98][..]),
        "administrative action: {last:02x?}"
    );
    assert_eq!(delete("nobody").await.unwrap().status(), 404);
    slow.signal(libc::SIGCONT);
    assert!(edgemq.stop().success());
}
