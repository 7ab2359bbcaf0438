//! Delivery benchmark: what subscribers receive, edgemq and Mosquitto side by side in one run.
//!
//!     cargo bench --bench delivery -- [--frozen 300000,1000000] [--latency 10000]
//!         [--replay 1000000] [--only frozen|latency|replay]
//!
//! `frozen`: a persistent QoS 1 subscriber on `slow/#` stops reading its socket (as if
//! SIGSTOPped) while 4 publishers send N QoS 1 messages of ~180 bytes; then it reads again.
//! Reported per broker: how many of N it received (each once), the broker's peak RSS, and the
//! drain rate once it reads again. Mosquitto runs with its default `max_queued_messages`
//! (1,000) and with 0 (no limit, everything in RAM).
//!
//! `latency`: one QoS 1 publisher at R msg/s for 10 s and one subscriber (QoS 0, then QoS 1);
//! each payload carries its publish time, and the subscriber records publish → receive. Reported:
//! p50, p99 and max in milliseconds.
//!
//! `replay`: edgemq only (Mosquitto has no replay). 4 publishers store N QoS 1 messages on
//! `slow/#` with no subscriber; then one QoS 1 subscriber subscribes `$replay/0/slow/#` and
//! receives all N from the store. Beside it, live delivery on the same machine: a QoS 1
//! subscriber on `live/#` while the publishers send N more. Reported: msg/s each way (first
//! message published or subscribed → last received), and whether every message came once, in
//! order per publisher.

mod support;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{now_us, peak_rss_mib, percentile, start_mosquitto, Edgemq};

const PUBLISHERS: usize = 4;

fn main() {
    let value = support::flag;
    let backlogs: Vec<usize> = value("--frozen")
        .unwrap_or_else(|| "300000,1000000".into())
        .split(',')
        .map(|n| n.parse().expect("--frozen N[,N...]"))
        .collect();
    let rate: u64 = value("--latency")
        .map(|r| r.parse().expect("--latency MSG_PER_S"))
        .unwrap_or(10_000);
    let replayed: usize = value("--replay")
        .map(|n| n.parse().expect("--replay N"))
        .unwrap_or(1_000_000);
    let only = value("--only");
    let run = |part: &str| only.as_deref().is_none_or(|o| o == part);
    if run("frozen") {
        frozen(&backlogs);
    }
    if run("latency") {
        latency(rate);
    }
    if run("replay") {
        replay(replayed);
    }
}

/// A broker under test: its address and process id.
struct Broker {
    name: &'static str,
    addr: SocketAddr,
    pid: u32,
    /// Stops it when dropped.
    _running: Box<dyn std::any::Any>,
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn edgemq() -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let edgemq = Edgemq::start(dir.path());
    Broker {
        name: "edgemq",
        addr: edgemq.mqtt,
        pid: edgemq.child.id(),
        // Stopped, then its directory removed.
        _running: Box::new((edgemq, dir)),
    }
}

fn mosquitto(name: &'static str, extra: &str) -> Option<Broker> {
    let (child, addr) = start_mosquitto(extra)?;
    Some(Broker {
        name,
        addr,
        pid: child.id(),
        _running: Box::new(Killed(child)),
    })
}

/// The brokers the frozen subscriber runs against, started one at a time.
fn frozen_broker(which: usize) -> Option<Broker> {
    match which {
        0 => Some(edgemq()),
        1 => mosquitto("Mosquitto (default: max_queued_messages 1000)", ""),
        _ => mosquitto(
            "Mosquitto (max_queued_messages 0)",
            "max_queued_messages 0\n",
        ),
    }
}

fn frozen(backlogs: &[usize]) {
    let mut rows = Vec::new();
    for &n in backlogs {
        for which in 0..3 {
            let Some(broker) = frozen_broker(which) else {
                println!("Mosquitto is not installed: skipped");
                continue;
            };
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let (got, once, drain) = runtime.block_on(frozen_run(broker.addr, n));
            let rss = peak_rss_mib(broker.pid);
            println!(
                "frozen {n}: {}: {got} received ({once} once each), peak RSS {rss:.0} MiB, drain {drain:.0} msg/s",
                broker.name
            );
            rows.push((n, broker.name, got, rss, drain));
        }
    }
    println!();
    println!("| backlog | broker | received | peak RSS | drain msg/s |");
    println!("|---|---|---|---|---|");
    for (n, name, got, rss, drain) in rows {
        println!("| {n} | {name} | {got} | {rss:.0} MiB | {drain:.0} |");
    }
    println!();
}

fn options(addr: SocketAddr, id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_inflight(100);
    options.set_keep_alive(Duration::from_secs(600));
    options.set_max_packet_size(1 << 20, 1 << 20);
    options
}

/// Polls until the SUBACK.
async fn subscribed(events: &mut EventLoop) {
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => return,
            Ok(_) => {}
            Err(e) => panic!("subscriber: {e}"),
        }
    }
}

/// (messages received, distinct ones, drain rate after thawing).
async fn frozen_run(addr: SocketAddr, n: usize) -> (usize, usize, f64) {
    let mut sub_options = options(addr, "frozen");
    sub_options.set_clean_session(false);
    let (sub, mut events) = AsyncClient::new(sub_options, 10);
    sub.subscribe("slow/#", QoS::AtLeastOnce).await.unwrap();
    subscribed(&mut events).await;
    // Frozen: nothing polls `events`, so nothing reads its socket.
    publish_all(addr, "slow", n).await;
    let thawed = Instant::now();
    let mut last = thawed;
    let mut seen: HashMap<Vec<u8>, ()> = HashMap::with_capacity(n);
    let mut got = 0;
    while got < n {
        match tokio::time::timeout(Duration::from_secs(5), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                got += 1;
                last = Instant::now();
                seen.insert(p.payload[..p.payload.len().min(13)].to_vec(), ());
            }
            Ok(Ok(_)) => {}
            _ => break,
        }
    }
    let drain = got as f64 / last.duration_since(thawed).as_secs_f64().max(1e-3);
    (got, seen.len(), drain)
}

/// Receives `n` messages: (how many came, whether each came once in order per publisher, when
/// the last came).
async fn receive_in_order(events: &mut EventLoop, n: usize) -> (usize, bool, Instant) {
    let mut next = [0usize; PUBLISHERS];
    let (mut got, mut in_order, mut last) = (0, true, Instant::now());
    while got < n {
        match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                got += 1;
                last = Instant::now();
                let head = std::str::from_utf8(&p.payload[..13]).unwrap_or("");
                let publisher: usize = head[..2].parse().unwrap_or(0);
                let seq: usize = head[3..13].parse().unwrap_or(usize::MAX);
                in_order &= next.get(publisher) == Some(&seq);
                if let Some(n) = next.get_mut(publisher) {
                    *n = seq + 1;
                }
            }
            Ok(Ok(_)) => {}
            _ => break,
        }
    }
    (got, in_order, last)
}

/// Publishes `n` messages over the publishers, on `<prefix>/<publisher>`.
async fn publish_all(addr: SocketAddr, prefix: &'static str, n: usize) {
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let count = n / PUBLISHERS + usize::from(p < n % PUBLISHERS);
            tokio::spawn(publish_on(addr, prefix, p, count, 0))
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
}

fn replay(n: usize) {
    let broker = edgemq();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        publish_all(broker.addr, "slow", n).await;
        let (sub, mut events) = AsyncClient::new(options(broker.addr, "replayer"), 10);
        let started = Instant::now();
        sub.subscribe("$replay/0/slow/#", QoS::AtLeastOnce)
            .await
            .unwrap();
        let (got, in_order, last) = receive_in_order(&mut events, n).await;
        let rate = got as f64 / last.duration_since(started).as_secs_f64();
        println!("replay {n}: {got} received, once each in order: {in_order}, {rate:.0} msg/s");

        let (sub, mut events) = AsyncClient::new(options(broker.addr, "live"), 10);
        sub.subscribe("live/#", QoS::AtLeastOnce).await.unwrap();
        subscribed(&mut events).await;
        let started = Instant::now();
        let receiver = tokio::spawn(async move { receive_in_order(&mut events, n).await });
        publish_all(broker.addr, "live", n).await;
        let (live, live_in_order, last) = receiver.await.unwrap();
        let live_rate = live as f64 / last.duration_since(started).as_secs_f64();
        println!(
            "live {n}: {live} received, once each in order: {live_in_order}, {live_rate:.0} msg/s"
        );
        println!();
        println!("| edgemq, one QoS 1 subscriber | received | in order | msg/s |");
        println!("|---|---|---|---|");
        println!("| replay of {n} stored | {got} | {in_order} | {rate:.0} |");
        println!("| live, {n} published meanwhile | {live} | {live_in_order} | {live_rate:.0} |");
    });
}

/// ~180 bytes: which publisher, its sequence number and publish time first.
fn payload(publisher: usize, seq: usize) -> String {
    let head = format!("{publisher:02}-{seq:010}-{:016}", now_us());
    format!("{head:<180}")
}

/// Publishes `count` QoS 1 messages on `slow/<publisher>`, at `rate` msg/s (0: as fast as
/// acknowledged), and waits for every PUBACK.
async fn publish(addr: SocketAddr, publisher: usize, count: usize, rate: u64) {
    publish_on(addr, "slow", publisher, count, rate).await
}

/// `publish` on `<prefix>/<publisher>`.
async fn publish_on(
    addr: SocketAddr,
    prefix: &'static str,
    publisher: usize,
    count: usize,
    rate: u64,
) {
    let (client, mut events) = AsyncClient::new(options(addr, &format!("pub-{publisher}")), 10);
    let sender = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        for seq in 0..count {
            // Paced in 1 ms steps when a rate is given.
            let per_ms = (rate / 1000).max(1) as usize;
            if rate > 0 && seq % per_ms == 0 {
                let due = started + Duration::from_secs_f64(seq as f64 / rate as f64);
                tokio::time::sleep_until(due).await;
            }
            let topic = format!("{prefix}/{publisher}");
            let body = payload(publisher, seq);
            client
                .publish(topic, QoS::AtLeastOnce, false, body)
                .await
                .unwrap();
        }
        client
    });
    support::acknowledged(&mut events, count, publisher).await;
    let client = sender.await.unwrap();
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_millis(500), events.poll()).await;
}

fn latency(rate: u64) {
    let n = (rate * 10) as usize;
    let mut rows = Vec::new();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let brokers = [Some(edgemq()), mosquitto("Mosquitto", "")];
        for broker in brokers.into_iter().flatten() {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let mut samples = runtime.block_on(latency_run(broker.addr, n, rate, qos));
            samples.sort_unstable();
            let ms = |p: f64| percentile(&samples, p) as f64 / 1000.0;
            let (p50, p99, max) = (ms(0.5), ms(0.99), ms(1.0));
            println!(
                "latency at {rate} msg/s, QoS {}: {}: {} of {n} received, p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
                qos as u8,
                broker.name,
                samples.len()
            );
            rows.push((qos as u8, broker.name, samples.len(), p50, p99, max));
        }
    }
    println!();
    println!("| subscriber QoS | broker | received | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for (q, name, got, p50, p99, max) in rows {
        println!("| {q} | {name} | {got} of {n} | {p50:.2} | {p99:.2} | {max:.2} |");
    }
}

/// Publish → receive latencies in microseconds of `n` messages published at `rate`.
async fn latency_run(addr: SocketAddr, n: usize, rate: u64, qos: QoS) -> Vec<u64> {
    let (sub, mut events) = AsyncClient::new(options(addr, "timed"), 10);
    sub.subscribe("slow/#", qos).await.unwrap();
    subscribed(&mut events).await;
    let receiver = tokio::spawn(async move {
        let mut samples = Vec::with_capacity(n);
        while samples.len() < n {
            match tokio::time::timeout(Duration::from_secs(5), events.poll()).await {
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                    let at = now_us();
                    let sent: Option<u64> = std::str::from_utf8(&p.payload[14..30])
                        .ok()
                        .and_then(|t| t.parse().ok());
                    samples.extend(sent.map(|s| at.saturating_sub(s)));
                }
                Ok(Ok(_)) => {}
                _ => break,
            }
        }
        samples
    });
    publish(addr, 0, n, rate).await;
    receiver.await.unwrap()
}
