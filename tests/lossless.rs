//! Nothing acknowledged is lost and nothing is dropped: a PUBACK means the message is on disk
//! (kill -9 at any moment keeps every acknowledged message), and when the store falls behind
//! the front door stops reading, so publishers slow down instead of messages being dropped.

mod common;

use common::*;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_the_store_is_stalled_no_puback_is_sent_and_nothing_is_lost() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    // Stall the writer: another connection holds the write lock.
    let blocker = rusqlite::Connection::open(&edgemq.db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    // A window wide enough for every message. The probe is a SUBSCRIBE sent behind them: the
    // front door reads packets in order and would have written any PUBACK before handing the
    // SUBSCRIBE to the router, whose SUBACK comes back on the same socket.
    let mut options = rumqttc::MqttOptions::new("held", "127.0.0.1", edgemq.mqtt.port());
    options.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let acked = Arc::new(AtomicUsize::new(0));
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let (probe_tx, probe) = tokio::sync::oneshot::channel();
    let counter = acked.clone();
    let driver = tokio::spawn(async move {
        let (mut subscribed_tx, mut probe_tx) = (Some(subscribed_tx), Some(probe_tx));
        while counter.load(SeqCst) < 500 {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    counter.fetch_add(1, SeqCst);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => match subscribed_tx.take() {
                    Some(tx) => drop(tx.send(())),
                    None => drop(probe_tx.take().map(|tx| tx.send(counter.load(SeqCst)))),
                },
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
    });
    client
        .subscribe("held/probe", QoS::AtMostOnce)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .expect("a SUBACK for held/probe")
        .unwrap();
    for i in 0..500 {
        let payload = format!("{{\"i\":{i}}}");
        client
            .publish("held/a", QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    client
        .subscribe("held/probe2", QoS::AtMostOnce)
        .await
        .unwrap();
    let acked_before_probe = tokio::time::timeout(Duration::from_secs(10), probe)
        .await
        .expect("the SUBACK of the SUBSCRIBE sent after the 500 messages")
        .unwrap();
    assert_eq!(acked_before_probe, 0, "no PUBACK before the commit");
    assert_eq!(acked.load(SeqCst), 0, "no PUBACK before the commit");

    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    tokio::time::timeout(Duration::from_secs(30), driver)
        .await
        .expect("every PUBACK after the store caught up")
        .unwrap();
    // Acknowledged means committed: no waiting needed.
    let held = query(
        &edgemq.db,
        "SELECT count(*) FROM messages WHERE topic = 'held/a'",
    );
    assert_eq!(held, [["500"]]);
    assert!(edgemq.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_store_slows_publishers_down_and_loses_nothing() {
    let dir = temp_dir();
    // Acks on receipt and QoS 0: only backpressure can keep this lossless.
    std::fs::write(
        dir.path().join("small.toml"),
        "[mqtt]\ndurable_acks = false\n[store]\nqueue_capacity = 100\nbatch_max = 50\n",
    )
    .unwrap();
    let edgemq = Edgemq::start(dir.path(), &["--config", "small.toml"]);
    let blocker = rusqlite::Connection::open(&edgemq.db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();

    // 3,000 messages of 8 KiB: far more than the queue and the sockets' buffers hold.
    const TOTAL: usize = 3000;
    let (client, mut eventloop) = mqtt_client(edgemq.mqtt, "fast");
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    let publisher = tokio::spawn(async move {
        for i in 0..TOTAL {
            let payload = format!("{{\"i\":{i},\"pad\":\"{}\"}}", "p".repeat(8192));
            client
                .publish("fast/a", QoS::AtMostOnce, false, payload)
                .await
                .unwrap();
        }
        client.disconnect().await.unwrap();
        done.store(true, SeqCst);
    });
    let driver = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
    });
    let metrics_url = edgemq.url("/metrics");
    let held_back = wait_for_async(
        "the front door to hold the publisher back (edgemq_held_back_total > 0)",
        Duration::from_secs(20),
        || async {
            let metrics = reqwest::get(&metrics_url)
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            let line = metrics
                .lines()
                .find(|l| l.starts_with("edgemq_held_back_total "))
                .unwrap_or("no edgemq_held_back_total line")
                .to_string();
            match line.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()) {
                Some(n) if n > 0 => Ok(n),
                _ => Err(line),
            }
        },
    )
    .await;
    assert!(held_back > 0);
    assert!(!finished.load(SeqCst), "the publisher is held back");
    assert_eq!(count(&edgemq.db), 0);
    let health = get_json(&edgemq, "/health").await;
    assert_eq!(health["status"], "degraded", "{health}");
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    tokio::time::timeout(Duration::from_secs(60), publisher)
        .await
        .expect("the publisher finishes once the store catches up")
        .unwrap();
    driver.await.unwrap();
    count_eventually(&edgemq.db, TOTAL as u64);
    let health = get_json(&edgemq, "/health").await;
    assert_eq!(health["status"], "healthy", "{health}");
    assert!(edgemq.stop().success());
}

/// One client publishing `dur/<n>` at QoS 1 as fast as it can, recording which of its
/// messages were acknowledged, until the connection breaks.
async fn publish_until_killed(
    addr: std::net::SocketAddr,
    n: usize,
    acked: Arc<Mutex<HashSet<(usize, u64)>>>,
) {
    let mut options = MqttOptions::new(format!("dur-{n}"), addr.ip().to_string(), addr.port());
    options.set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    tokio::spawn(async move {
        for i in 0u64.. {
            let payload = format!("{{\"c\":{n},\"i\":{i}}}");
            if client
                .publish(format!("dur/{n}"), QoS::AtLeastOnce, false, payload)
                .await
                .is_err()
            {
                return;
            }
        }
    });
    // Packet ids are reused; map each to the message it was last sent with.
    let mut in_flight = HashMap::new();
    let mut sent = 0u64;
    loop {
        match eventloop.poll().await {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                in_flight.insert(pkid, sent);
                sent += 1;
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if let Some(i) = in_flight.remove(&ack.pkid) {
                    acked.lock().unwrap().insert((n, i));
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_at_a_random_moment_keeps_every_acknowledged_message() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let clients: Vec<_> = (0..4)
        .map(|n| tokio::spawn(publish_until_killed(edgemq.mqtt, n, acked.clone())))
        .collect();
    // Under load (over 100 acknowledged), then at a random moment up to 1.5 s later.
    let counted = acked.clone();
    wait_for_async(
        "over 100 acknowledged messages",
        Duration::from_secs(30),
        || {
            let n = counted.lock().unwrap().len();
            async move {
                if n > 100 {
                    Ok(())
                } else {
                    Err(format!("{n} acknowledged"))
                }
            }
        },
    )
    .await;
    let moment = rand::random::<u64>() % 1500;
    tokio::time::sleep(Duration::from_millis(moment)).await;
    let db = edgemq.db.clone();
    edgemq.kill9();
    for client in clients {
        let _ = tokio::time::timeout(Duration::from_secs(10), client).await;
    }

    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 100,
        "killed {moment} ms after 100 acks, only {} acknowledged",
        acked.len()
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare("SELECT payload FROM messages WHERE topic LIKE 'dur/%'")
        .unwrap();
    let stored: HashSet<(usize, u64)> = stmt
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_slice(&p.unwrap()).unwrap();
            (v["c"].as_u64().unwrap() as usize, v["i"].as_u64().unwrap())
        })
        .collect();
    let missing: Vec<_> = acked.difference(&stored).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged messages missing after kill -9 at {moment} ms, e.g. {missing:?}",
        acked.difference(&stored).count(),
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_while_the_store_is_stuck_ends_within_stop_timeout_and_says_what_was_not_stored() {
    let dir = temp_dir();
    std::fs::write(
        dir.path().join("stop.toml"),
        "[store]\nstop_timeout = \"2s\"\n",
    )
    .unwrap();
    let mut edgemq = Edgemq::start(dir.path(), &["--config", "stop.toml"]);
    // As with a full disk: nothing can be committed.
    let blocker = rusqlite::Connection::open(&edgemq.db).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let (client, mut eventloop) = mqtt_client(edgemq.mqtt, "stuck");
    for i in 0..5 {
        client
            .publish("stuck/a", QoS::AtLeastOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    let driver = tokio::spawn(async move {
        let mut acked = 0;
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Packet::PubAck(_)) = event {
                acked += 1;
            }
        }
        acked
    });
    let metrics_url = edgemq.url("/metrics");
    wait_for_async(
        "edgemq_received_total 5",
        Duration::from_secs(10),
        || async {
            let text = reqwest::get(&metrics_url)
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            let line = text
                .lines()
                .find(|l| l.starts_with("edgemq_received_total "))
                .unwrap_or("no edgemq_received_total")
                .to_string();
            (line == "edgemq_received_total 5")
                .then_some(())
                .ok_or(line)
        },
    )
    .await;

    edgemq.signal(libc::SIGTERM);
    let status = wait_exit(&mut edgemq.child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "exit 1: not everything was stored");
    let log = wait_for(
        "the stop's last line",
        Duration::from_secs(5),
        || match edgemq.log_text() {
            log if log.contains("stopped:") => Ok(log),
            log => Err(log),
        },
    );
    assert!(
        log.contains("5 messages received were not stored; none of them was acknowledged"),
        "{log}"
    );
    assert_eq!(driver.await.unwrap(), 0, "nothing was acknowledged");
    blocker.execute_batch("ROLLBACK").unwrap();
    let check: String = blocker
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}
