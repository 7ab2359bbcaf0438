//! Nothing lost silently: when the store tap falls behind the broker's memory budget, every
//! message is either in the database or counted as skipped, and /health says so.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_store_makes_the_broker_skip_and_every_skip_is_counted() {
    let dir = temp_dir();
    // A tiny broker budget (one 1 KiB segment per filter) and a one-message queue.
    std::fs::write(
        dir.path().join("tiny.toml"),
        "[router]\nmax_segment_size = 1024\nmax_segment_count = 1\n\
         [store]\nqueue_capacity = 1\nbatch_max = 1\n",
    )
    .unwrap();
    let edgemq = Edgemq::start(dir.path(), &["--config", "tiny.toml"]);

    // Stall the writer: another connection holds the write lock while clients publish.
    let blocker = rusqlite::Connection::open(&edgemq.db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let messages: Vec<_> = (0..2000)
        .map(|i| {
            (
                "lossless/a".to_string(),
                format!("{{\"i\":{i},\"pad\":\"{}\"}}", "p".repeat(80)).into_bytes(),
            )
        })
        .collect();
    publish_all_qos1(edgemq.mqtt, "stall".into(), messages).await;
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);

    let mut health = get_json(&edgemq, "/health").await;
    for _ in 0..200 {
        let stored = count(&edgemq.db);
        let skipped = health["skipped"].as_u64().unwrap();
        if stored + skipped == 2000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        health = get_json(&edgemq, "/health").await;
    }
    let stored = count(&edgemq.db);
    let skipped = health["skipped"].as_u64().unwrap();
    assert!(
        skipped > 0,
        "the stall should have made the broker skip: {health}"
    );
    assert_eq!(
        stored + skipped,
        2000,
        "every message is stored or counted: {health}"
    );
    assert_eq!(health["status"], "degraded", "{health}");

    let metrics = get_text(&edgemq, "/metrics").await;
    assert!(
        metrics.contains(&format!("\nedgemq_skipped_total {skipped}\n")),
        "{metrics}"
    );
    assert!(
        edgemq.log_text().contains("messages skipped"),
        "a WARN says so"
    );
    assert!(edgemq.stop().success());
}
