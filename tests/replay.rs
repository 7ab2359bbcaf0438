//! Subscribing from the past: `replay-from` (MQTT 5) and `$replay/<time>/<filter>` (any
//! version) give every stored message since that time, in order, then live ones, with no gap
//! and no duplicate at the seam.

mod common;

use common::*;
use std::time::Duration;

fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.unwrap().as_millis() as i64
}

#[test]
fn replay_from_an_hour_ago_gives_every_stored_and_live_message_once_in_order() {
    const N: usize = 10_000;
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    publish_lines(&edgemq, "rp/old", "old", N).join().unwrap();
    // Live traffic continues while the replaying subscriber joins.
    let live = publish_lines(&edgemq, "rp/new", "new", N);
    let an_hour_ago = (now_ms() - 3_600_000).to_string();
    let mut sub = Sub::start(
        &edgemq,
        &[
            "-V",
            "mqttv5",
            "-q",
            "1",
            "-t",
            "rp/#",
            "-D",
            "subscribe",
            "user-property",
            "replay-from",
            &an_hour_ago,
        ],
    );
    let got = sub.stream(2 * N, Duration::from_secs(10));
    live.join().unwrap();
    all_in_order(&got, &["old", "new"], N);
    sub.nothing_more();
    assert!(edgemq.stop().success());
}

#[test]
fn a_replay_filter_starts_at_its_time_for_any_protocol_version() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    publish_lines(&edgemq, "rq/a", "before", 50).join().unwrap();
    let last = rows_eventually(&edgemq.db, "SELECT max(received_at) FROM messages", 1);
    let since: i64 = last[0][0].parse::<i64>().unwrap() + 1;
    // Wait until the clock has passed `since`, then publish what the replay must include.
    wait_for(
        "the clock to pass the first batch",
        Duration::from_secs(5),
        || {
            (now_ms() > since)
                .then_some(())
                .ok_or(format!("now {}", now_ms()))
        },
    );
    publish_lines(&edgemq, "rq/a", "after", 50).join().unwrap();
    let iso = chrono::DateTime::from_timestamp_millis(since)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let mut history: Vec<String> = (0..50).map(|i| format!("rq/a after-{i}")).collect();
    let filters = [
        ("mqttv311", format!("$replay/{iso}/rq/#")),
        ("mqttv5", format!("$replay/{since}/rq/+")),
    ];
    for (version, filter) in filters {
        let mut sub = Sub::start(&edgemq, &["-V", version, "-q", "1", "-t", &filter]);
        let mut got = sub.stream(history.len(), Duration::from_secs(10));
        let live = format!("live-{version}");
        mosquitto_pub(&edgemq, "rq/a", live.as_bytes(), &["-q", "1"]);
        got.extend(sub.stream(1, Duration::from_secs(10)));
        history.push(format!("rq/a {live}"));
        assert_eq!(got, history, "{version} on {filter}");
        sub.nothing_more();
    }
    // A time that is not one is refused.
    let mut bad = Sub::start(&edgemq, &["-t", "$replay/yesterday/rq/#"]);
    assert_eq!(bad.granted(), "128");
    let mut bad = Sub::start(&edgemq, &["-V", "mqttv5", "-t", "$replay/yesterday/rq/#"]);
    assert_eq!(bad.granted(), "143", "v5: Topic Filter invalid");
    assert!(edgemq.stop().success());
}
