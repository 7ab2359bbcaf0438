//! Bridge benchmark: edgemq's bridge against Mosquitto's own, each forwarding to a local
//! Mosquitto upstream, on the same load in the same run.
//!
//!     cargo bench --bench bridge -- [--live 200000] [--backlog 1000000]
//!
//! `live`: a QoS 1 subscriber on the upstream's `site1/#`; 4 publishers send N QoS 1 messages
//! of ~150 bytes to the edge broker on `sensors/<p>`, whose bridge forwards them (`topic
//! sensors/# out 1 "" site1/`). Reported: how many arrived upstream and the rate (first publish
//! → last arrival).
//! `backlog`: the upstream is down while the publishers send M; then it starts, the subscriber
//! connects, and the bridge drains its backlog. Reported: how many arrived, the drain rate
//! (upstream start → last arrival) and the edge broker's peak RSS. Mosquitto's bridge keeps its
//! queue in memory: with its default `max_queued_messages` (1,000) it drops the rest; with 0
//! it keeps them all in RAM.

mod support;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};
use support::{free_port, peak_rss_mib, start_mosquitto_on, Edgemq};

const PUBLISHERS: usize = 4;

/// An edge broker with a bridge to 127.0.0.1:`up`.
enum Edge {
    /// edgemq, and its directory (removed when it goes).
    Edgemq(Edgemq, #[allow(dead_code)] tempfile::TempDir),
    Mosquitto(Child),
}

impl Edge {
    fn start(which: usize, up: u16) -> (Edge, SocketAddr, &'static str) {
        match which {
            0 => {
                let dir = tempfile::tempdir().unwrap();
                let config = format!(
                    "[[bridge]]\nname = \"up\"\naddresses = [\"127.0.0.1:{up}\"]\nrestart_timeout = \"2s\"\n\
                     topics = [{{ pattern = \"sensors/#\", direction = \"out\", qos = 1, remote_prefix = \"site1/\" }}]\n"
                );
                let edgemq = Edgemq::start_with(dir.path(), &config);
                let addr = edgemq.mqtt;
                (Edge::Edgemq(edgemq, dir), addr, "edgemq")
            }
            _ => {
                let limit = if which == 1 {
                    ""
                } else {
                    "max_queued_messages 0\n"
                };
                let bridge = format!(
                    "{limit}connection up\naddress 127.0.0.1:{up}\ntopic sensors/# out 1 \"\" site1/\n\
                     restart_timeout 2\ncleansession false\n"
                );
                let port = free_port().unwrap();
                let (child, addr) = start_mosquitto_on(port, &bridge).expect("mosquitto");
                let name = if which == 1 {
                    "Mosquitto bridge (default: max_queued_messages 1000)"
                } else {
                    "Mosquitto bridge (max_queued_messages 0)"
                };
                (Edge::Mosquitto(child), addr, name)
            }
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Edge::Edgemq(e, _) => e.child.id(),
            Edge::Mosquitto(c) => c.id(),
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Edge::Mosquitto(child) = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn main() {
    let value = support::flag;
    let live: usize = value("--live").map_or(200_000, |v| v.parse().expect("--live N"));
    let backlog: usize = value("--backlog").map_or(1_000_000, |v| v.parse().expect("--backlog M"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut rows = Vec::new();
    for which in 0..3 {
        let up = free_port().unwrap();
        let (upstream, up_addr) =
            start_mosquitto_on(up, "max_queued_messages 0\n").expect("mosquitto");
        let (edge, addr, name) = Edge::start(which, up);
        let (got, rate) = runtime.block_on(live_run(addr, up_addr, live));
        println!("live {live}: {name}: {got} arrived upstream, {rate:.0} msg/s");
        rows.push(("live", live, name, got, rate, 0.0));
        drop(edge);
        drop_child(upstream);

        let up = free_port().unwrap();
        let (edge, addr, name) = Edge::start(which, up);
        let (got, rate) = runtime.block_on(backlog_run(addr, up, backlog));
        let rss = peak_rss_mib(edge.pid());
        println!("backlog {backlog}: {name}: {got} arrived upstream, drain {rate:.0} msg/s, peak RSS {rss:.0} MiB");
        rows.push(("backlog", backlog, name, got, rate, rss));
    }
    println!();
    println!("| load | edge broker | arrived upstream | msg/s | edge peak RSS |");
    println!("|---|---|---|---|---|");
    for (load, n, name, got, rate, rss) in rows {
        let rss = if rss > 0.0 {
            format!("{rss:.0} MiB")
        } else {
            "".into()
        };
        println!("| {load} {n} | {name} | {got} | {rate:.0} | {rss} |");
    }
}

fn drop_child(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn options(addr: SocketAddr, id: &str) -> MqttOptions {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_inflight(100);
    options.set_keep_alive(Duration::from_secs(60));
    options
}

/// A QoS 1 subscriber on the upstream's `site1/#`: once subscribed, counts arrivals until
/// `n` or 10 s without one; (count, time of the last).
async fn upstream_subscriber(
    up: SocketAddr,
    n: usize,
) -> tokio::task::JoinHandle<(usize, Instant)> {
    let (sub, mut events) = AsyncClient::new(options(up, "up-sub"), 10);
    sub.subscribe("site1/#", QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = events.poll().await {
            break;
        }
    }
    tokio::spawn(async move {
        let _sub = sub;
        support::count_arrivals(&mut events, n).await
    })
}

async fn live_run(edge: SocketAddr, up: SocketAddr, n: usize) -> (usize, f64) {
    let receiver = upstream_subscriber(up, n).await;
    // The bridge connects within its restart timeout.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    publish_all(edge, n).await;
    let (got, last) = receiver.await.unwrap();
    (got, got as f64 / last.duration_since(started).as_secs_f64())
}

async fn backlog_run(edge: SocketAddr, up: u16, n: usize) -> (usize, f64) {
    publish_all(edge, n).await;
    let started = Instant::now();
    let (upstream, up_addr) = start_mosquitto_on(up, "max_queued_messages 0\n").expect("mosquitto");
    let receiver = upstream_subscriber(up_addr, n).await;
    let (got, last) = receiver.await.unwrap();
    drop_child(upstream);
    (got, got as f64 / last.duration_since(started).as_secs_f64())
}

async fn publish_all(edge: SocketAddr, n: usize) {
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let count = n / PUBLISHERS + usize::from(p < n % PUBLISHERS);
            tokio::spawn(publish(edge, p, count))
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
}

async fn publish(edge: SocketAddr, publisher: usize, count: usize) {
    let (client, mut events) = AsyncClient::new(options(edge, &format!("pub-{publisher}")), 10);
    tokio::spawn(async move {
        for seq in 0..count {
            let body = format!(
                "{{\"p\":{publisher},\"seq\":{seq:010},\"pad\":\"{}\"}}",
                ".".repeat(110)
            );
            let topic = format!("sensors/{publisher}");
            client
                .publish(topic, QoS::AtLeastOnce, false, body)
                .await
                .unwrap();
        }
    });
    support::acknowledged(&mut events, count, publisher).await;
}
