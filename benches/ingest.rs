//! End-to-end ingest benchmark: C clients publish N JSON messages (~150 bytes) to the real
//! edgemq binary as fast as they can; it waits until every one is in the database and reports
//! the persisted rate, publish→commit latency (p50/p99) and edgemq's peak RSS.
//!
//!     cargo bench --bench ingest -- [--clients 10] [--messages 1000000] [--qos 1]
//!                                   [--payload raw,seed] [--rate MSG_PER_S] [--inflight 100]
//!
//! Without `--rate` the clients publish as fast as the broker acknowledges; with it, they
//! publish at that total rate (to find the highest rate a load sustains with zero loss).
//!
//! `raw`: topics no route claims (stored as received). `seed`: seed 003 telemetry on
//! `devices/+/telemetry` and seed 002 readings on `sensors/+`, decoded, validated and checked
//! against the rules (HIGH_TEMP, the ranges). Each payload kind runs on a fresh edgemq, one
//! after the other, so the figures are side by side from one run.
//!
//! `--acks durable,immediate` runs each payload with PUBACKs after the commit (edgemq's default)
//! and/or on receipt (`[mqtt] durable_acks = false`).
//!
//! `--matrix` runs raw payloads at QoS 0 and 1 with 1, 10 and 100 clients instead, and runs
//! Mosquitto on the same load as the reference: its pub→sub rate (a subscriber on `#`
//! receiving every message), and edgemq's persisted rate as a ratio of it.
//!
//! `--pubsub` measures pub→sub (a subscriber on `#` receiving every message) at QoS 0 and 1
//! through edgemq's front door (durable and immediate acks), through rumqttd's own listener
//! (rumqttd alone, in this process, same router settings, nothing stored) and through Mosquitto.
//!
//! Commit time is observed by polling `max(id)` every millisecond from a read connection;
//! each payload carries its publish time, so latency = first poll that saw the row - publish.

mod support;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{now_us, percentile, start_mosquitto, Edgemq};

struct Args {
    clients: usize,
    messages: usize,
    qos: QoS,
    payloads: Vec<Payload>,
    /// Total messages per second across all clients; 0 = as fast as possible.
    rate: u64,
    /// Durable acks (PUBACK after commit) for each run, in order.
    acks: Vec<bool>,
    /// QoS 1 messages each client may have unacknowledged.
    inflight: u16,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Payload {
    Raw,
    Seed,
}

fn args() -> Args {
    let mut args = Args {
        clients: 10,
        messages: 1_000_000,
        qos: QoS::AtLeastOnce,
        payloads: vec![Payload::Raw, Payload::Seed],
        rate: 0,
        acks: vec![true],
        inflight: 100,
    };
    let raw: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        raw.iter()
            .position(|a| a == name)
            .and_then(|i| raw.get(i + 1))
    };
    if let Some(v) = value("--clients") {
        args.clients = v.parse().expect("--clients N");
    }
    if let Some(v) = value("--messages") {
        args.messages = v.parse().expect("--messages N");
    }
    if let Some(v) = value("--payload") {
        args.payloads = v
            .split(',')
            .map(|p| match p {
                "raw" => Payload::Raw,
                "seed" => Payload::Seed,
                _ => panic!("--payload raw,seed"),
            })
            .collect();
    }
    if let Some(v) = value("--acks") {
        args.acks = v
            .split(',')
            .map(|a| match a {
                "durable" => true,
                "immediate" => false,
                _ => panic!("--acks durable,immediate"),
            })
            .collect();
    }
    if let Some(v) = value("--inflight") {
        args.inflight = v.parse().expect("--inflight N");
    }
    if let Some(v) = value("--rate") {
        args.rate = v.parse().expect("--rate MSG_PER_S");
    }
    if let Some(v) = value("--qos") {
        args.qos = match v.as_str() {
            "0" => QoS::AtMostOnce,
            "1" => QoS::AtLeastOnce,
            _ => panic!("--qos 0|1"),
        };
    }
    args
}

/// Topic and ~150-byte payload of message `seq` from `client`.
fn message(payload: Payload, client: usize, seq: usize) -> (String, String) {
    let temperature = 20.0 + (seq % 150) as f64 / 10.0; // 20.0-34.9: HIGH_TEMP comes and goes
    let humidity = 30.0 + (seq % 400) as f64 / 10.0;
    match (payload, client % 2) {
        (Payload::Seed, 1) => (
            format!("sensors/bench-{client:03}"),
            format!(
                "{{\"device_id\":\"bench-{client:03}\",\"temperature\":{temperature:.1},\"humidity\":{humidity:.1},\"voltage\":229.1,\"current\":3.4,\"pressure\":1008.5,\"t\":{}}}",
                now_us()
            ),
        ),
        _ => {
            let topic = match payload {
                Payload::Seed => format!("devices/bench-{client:03}/telemetry"),
                Payload::Raw => format!("bench/{client:03}/data"),
            };
            let body = format!(
                "{{\"deviceId\":\"bench-{client:03}\",\"ts\":{},\"temperature\":{temperature:.1},\"humidity\":{humidity:.1},\"seq\":{seq},\"pad\":\"{pad}\",\"t\":{},\"fw\":\"1.2.0\"}}",
                now_us() / 1000,
                now_us(),
                pad = &"........"[..8 - seq.to_string().len().min(8)]
            );
            (topic, body)
        }
    }
}

async fn publisher(
    addr: SocketAddr,
    client: usize,
    count: usize,
    qos: QoS,
    kind: Payload,
    rate: u64,
    inflight: u16,
) {
    let mut options = MqttOptions::new(
        format!("bench-{client}"),
        addr.ip().to_string(),
        addr.port(),
    );
    options.set_inflight(inflight);
    options.set_keep_alive(Duration::from_secs(60));
    // A short request queue: the payload is timestamped just before it goes out.
    let (mqtt, mut eventloop) = AsyncClient::new(options, 10);
    let sender = tokio::spawn(async move {
        // Paced in 10 ms steps when a rate is given.
        let per_step = (rate as f64 / 100.0).max(1.0);
        let started = tokio::time::Instant::now();
        for seq in 0..count {
            if rate > 0 && seq % (per_step as usize).max(1) == 0 {
                let due = started + Duration::from_secs_f64(seq as f64 / rate as f64);
                tokio::time::sleep_until(due).await;
            }
            let (topic, payload) = message(kind, client, seq);
            mqtt.publish(topic, qos, false, payload).await.unwrap();
        }
        mqtt
    });
    let mut acked = 0;
    let mut sent = 0;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
            Ok(Event::Outgoing(rumqttc::Outgoing::Publish(_))) => sent += 1,
            Ok(_) => {}
            Err(e) => panic!("client {client}: {e}"),
        }
        let done = if qos == QoS::AtMostOnce { sent } else { acked };
        if done >= count {
            break;
        }
    }
    let mqtt = sender.await.unwrap();
    let _ = mqtt.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
}

fn main() {
    let mut args = args();
    if std::env::args().any(|a| a == "--matrix") {
        return matrix(&mut args);
    }
    if std::env::args().any(|a| a == "--pubsub") {
        return pub_sub_comparison(&mut args);
    }
    let qos = if args.qos == QoS::AtMostOnce { 0 } else { 1 };
    println!(
        "ingest: {} clients, {} messages of ~150 B each run, QoS {qos}, {}",
        args.clients,
        args.messages,
        if args.rate == 0 {
            "as fast as possible".to_string()
        } else {
            format!("{} msg/s offered", args.rate)
        }
    );
    let mut rates = Vec::new();
    for &durable in &args.acks.clone() {
        for &payload in &args.payloads {
            let (rate, rows) = run(&args, payload, durable);
            rates.push((payload, durable, (rows == args.messages).then_some(rate)));
        }
    }
    println!();
    println!("| payload | acks | persisted msg/s |");
    println!("|---|---|---|");
    for (payload, durable, rate) in &rates {
        let rate = rate.map_or("lost messages".to_string(), |r| format!("{r:.0}"));
        println!("| {payload:?} | {} | {rate} |", acks_name(*durable));
    }
    let rate_of = |p: Payload, d: bool| {
        rates
            .iter()
            .find(|(payload, durable, _)| *payload == p && *durable == d)
            .and_then(|(_, _, r)| *r)
    };
    for durable in [true, false] {
        if let (Some(raw), Some(seed)) = (
            rate_of(Payload::Raw, durable),
            rate_of(Payload::Seed, durable),
        ) {
            println!(
                "{} acks: seed payloads with routes and rules at {:.0}% of the raw rate",
                acks_name(durable),
                100.0 * seed / raw
            );
        }
    }
    for payload in [Payload::Raw, Payload::Seed] {
        if let (Some(d), Some(i)) = (rate_of(payload, true), rate_of(payload, false)) {
            println!(
                "{payload:?}: durable acks at {:.0}% of the immediate-ack rate",
                100.0 * d / i
            );
        }
    }
}

fn acks_name(durable: bool) -> &'static str {
    if durable {
        "durable"
    } else {
        "immediate"
    }
}

/// The config of a run: the defaults (durable acks), or immediate acks.
fn config(durable: bool) -> String {
    if durable {
        String::new()
    } else {
        "[mqtt]\ndurable_acks = false\n".into()
    }
}

/// QoS 0 and 1 × 1, 10 and 100 clients, raw payloads, with Mosquitto as the reference.
fn matrix(args: &mut Args) {
    let mut table = Vec::new();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        for clients in [1, 10, 100] {
            args.qos = qos;
            args.clients = clients;
            let q = if qos == QoS::AtMostOnce { 0 } else { 1 };
            println!("== QoS {q}, {clients} clients, {} messages", args.messages);
            let edgemq = run(args, Payload::Raw, true);
            let reference = mosquitto_pub_sub(args);
            table.push((q, clients, edgemq, reference));
        }
    }
    println!();
    println!("| QoS | clients | edgemq persisted msg/s | stored | Mosquitto pub→sub msg/s | delivered | ratio |");
    println!("|---|---|---|---|---|---|---|");
    for (q, clients, (rate, rows), reference) in table {
        let (mrate, mgot) = reference.unwrap_or((0.0, 0));
        let ratio = if mrate > 0.0 {
            format!("{:.2}", rate / mrate)
        } else {
            "–".into()
        };
        println!(
            "| {q} | {clients} | {rate:.0} | {rows} of {} | {mrate:.0} | {mgot} of {} | {ratio} |",
            args.messages, args.messages
        );
    }
}

/// Mosquitto on a free port, a subscriber on `#`, the same publishers: (delivered msg/s, delivered).
fn mosquitto_pub_sub(args: &Args) -> Option<(f64, usize)> {
    let (mut broker, addr) = start_mosquitto("max_queued_messages 0\npersistence false\n")?;
    let result = pub_sub(addr, args);
    let _ = broker.kill();
    let _ = broker.wait();
    println!(
        "Mosquitto: {} of {} delivered to a subscriber on #, {:.0} msg/s",
        result.1, args.messages, result.0
    );
    Some(result)
}

/// A subscriber on `#` at `addr` and the publishers: (delivered msg/s, delivered).
fn pub_sub(addr: SocketAddr, args: &Args) -> (f64, usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let total = args.messages;
    let result = runtime.block_on(async {
        let mut options = MqttOptions::new("reference-sub", "127.0.0.1", addr.port());
        options.set_inflight(100);
        let (sub, mut events) = AsyncClient::new(options, 100);
        sub.subscribe("#", args.qos).await.unwrap();
        loop {
            if let Ok(Event::Incoming(Packet::SubAck(_))) = events.poll().await {
                break;
            }
        }
        let counter = tokio::spawn(async move {
            let started = Instant::now();
            let (got, last) = support::count_arrivals(&mut events, total).await;
            (got, last.duration_since(started))
        });
        let per_client = total / args.clients;
        let publishers: Vec<_> = (0..args.clients)
            .map(|c| {
                let n = per_client + usize::from(c < total % args.clients);
                tokio::spawn(publisher(
                    addr,
                    c,
                    n,
                    args.qos,
                    Payload::Raw,
                    0,
                    args.inflight,
                ))
            })
            .collect();
        for p in publishers {
            p.await.unwrap();
        }
        counter.await.unwrap()
    });
    let (got, took) = result;
    (got as f64 / took.as_secs_f64().max(1e-3), got)
}

/// rumqttd alone (no store), with edgemq's router settings and its own v4 listener.
fn start_rumqttd() -> SocketAddr {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let listener = rumqttd::ServerSettings {
        name: "v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: rumqttd::ConnectionSettings {
            connection_timeout_ms: 10_000,
            max_payload_size: 4 * 1024 * 1024,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = rumqttd::Config {
        router: edgemq::broker::RouterSection::default().router_config(),
        v4: Some([("1".to_string(), listener)].into_iter().collect()),
        ..Default::default()
    };
    std::thread::spawn(move || {
        let _ = rumqttd::Broker::new(config).start();
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    addr
}

/// Pub→sub at QoS 0 and 1 through rumqttd alone, edgemq's front door (both ack modes) and
/// Mosquitto, side by side.
fn pub_sub_comparison(args: &mut Args) {
    let mut table = Vec::new();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        args.qos = qos;
        let q = qos as u8;
        println!(
            "== pub→sub, QoS {q}, {} clients, {} messages",
            args.clients, args.messages
        );
        let mut row = Vec::new();
        let rumqttd = start_rumqttd();
        row.push(("rumqttd alone (own listener)", pub_sub(rumqttd, args)));
        for durable in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let edgemq = Edgemq::start_with(dir.path(), &config(durable));
            let name = if durable {
                "edgemq, durable acks"
            } else {
                "edgemq, immediate acks"
            };
            row.push((name, pub_sub(edgemq.mqtt, args)));
        }
        if let Some(reference) = mosquitto_pub_sub(args) {
            row.push(("Mosquitto", reference));
        }
        for (name, (rate, got)) in &row {
            println!("  {name}: {got} delivered, {rate:.0} msg/s");
        }
        table.push((q, row));
    }
    println!();
    println!("| QoS | broker | delivered | pub→sub msg/s | vs rumqttd alone |");
    println!("|---|---|---|---|---|");
    for (q, row) in table {
        let base = row[0].1 .0;
        for (name, (rate, got)) in row {
            println!(
                "| {q} | {name} | {got} of {} | {rate:.0} | {:.0}% |",
                args.messages,
                100.0 * rate / base
            );
        }
    }
}

/// One run on a fresh edgemq: (persisted rate, rows stored).
fn run(args: &Args, payload: Payload, durable: bool) -> (f64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let edgemq = Edgemq::start_with(dir.path(), &config(durable));
    let (mqtt, http, db) = (edgemq.mqtt, edgemq.http, edgemq.db.clone());

    // Poll commit progress: (microsecond timestamp, max id) every millisecond.
    let total = args.messages as i64;
    let watcher_db = db.clone();
    let watcher = std::thread::spawn(move || watch_commits(&watcher_db, total));

    let started = Instant::now();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let per_client = args.messages / args.clients;
        let tasks: Vec<_> = (0..args.clients)
            .map(|c| {
                let n = per_client + usize::from(c < args.messages % args.clients);
                let rate = args.rate / args.clients as u64;
                tokio::spawn(publisher(
                    mqtt,
                    c,
                    n,
                    args.qos,
                    payload,
                    rate,
                    args.inflight,
                ))
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let published = started.elapsed();
    let observations = watcher.join().unwrap();
    // Until the last commit seen (the watcher waits a while longer for rows that never come).
    let started_us = now_us() - started.elapsed().as_micros() as u64;
    let last_commit_us = observations.last().map_or(started_us, |(at, _)| *at);
    let persisted = Duration::from_micros(last_commit_us.saturating_sub(started_us));
    let rss_mib = edgemq.peak_rss_mib();

    let metrics = runtime.block_on(async {
        reqwest::get(format!("http://{http}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let metric = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let held_back = metric("edgemq_held_back_total");
    let commits = metric("edgemq_commit_seconds_count").max(1.0);
    println!(
        "  {commits:.0} commits: {:.0} messages and {:.2} ms each on average",
        metric("edgemq_batch_size_sum") / commits,
        1000.0 * metric("edgemq_commit_seconds_sum") / commits
    );
    drop(edgemq);

    let latencies = latencies(&db, &observations);
    let rows = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM messages", [], |r| r.get::<_, i64>(0))
        .unwrap();
    let rate = rows as f64 / persisted.as_secs_f64();
    println!("{payload:?}, {} acks:", acks_name(durable));
    println!(
        "  published in {:.2}s, persisted in {:.2}s: {:.0} msg/s persisted",
        published.as_secs_f64(),
        persisted.as_secs_f64(),
        rate
    );
    println!(
        "  rows {rows} of {} (lost {}); publishers held back {} times",
        args.messages,
        args.messages as i64 - rows,
        held_back
    );
    println!(
        "  publish->commit latency p50 {:.1} ms, p99 {:.1} ms; edgemq peak RSS {rss_mib:.0} MiB",
        percentile(&latencies, 0.50) as f64 / 1000.0,
        percentile(&latencies, 0.99) as f64 / 1000.0
    );
    (rate, rows as usize)
}

/// Returns (time in µs, max id) whenever max(id) changed, until it reaches `total` or stalls.
fn watch_commits(db: &Path, total: i64) -> Vec<(u64, i64)> {
    let mut observations = Vec::new();
    let conn = loop {
        match rusqlite::Connection::open(db) {
            Ok(c) => break c,
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let mut last = 0;
    let mut last_change = Instant::now();
    while last < total && last_change.elapsed() < Duration::from_secs(10) {
        let max: i64 = conn
            .query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
                r.get(0)
            })
            .unwrap_or(last);
        if max != last {
            observations.push((now_us(), max));
            last = max;
            last_change = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    observations
}

/// Publish→commit latency of every row, in µs.
fn latencies(db: &Path, observations: &[(u64, i64)]) -> Vec<u64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, payload FROM messages ORDER BY id")
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().unwrap() {
        let id: i64 = row.get(0).unwrap();
        let payload: Vec<u8> = row.get(1).unwrap();
        let text = String::from_utf8_lossy(&payload);
        let Some(sent) = text
            .split("\"t\":")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let seen = observations.partition_point(|(_, max)| *max < id);
        if let Some((at, _)) = observations.get(seen) {
            out.push(at.saturating_sub(sent));
        }
    }
    out.sort_unstable();
    out
}
