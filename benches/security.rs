//! What security costs: persisted ingest and pub→sub delivery over TLS against plain TCP, and
//! with an ACL of 1,000 lines against none, side by side in one run, on the same load.
//!
//!     cargo bench --bench security -- [--messages 200000] [--rounds 3]
//!
//! Each round starts a fresh edgemq for each variant: `plain` (no TLS, no ACL), `tls` (the same
//! clients on `[mqtt] tls_listen`, certificates made for the run), `acl` (plain TCP with an
//! `acl_file` of 500 `topic` and 500 `pattern` lines, the one that allows the load last).
//! The load: one QoS 1 subscriber on `bench/#`, then 10 publishers send N QoS 1 messages of
//! ~150 bytes (PUBACK after commit). Reported: persisted msg/s (until the last PUBACK) and
//! delivered msg/s (until the subscriber has all N), each round and the median.

#[path = "../tests/common/certs.rs"]
mod certs;
mod support;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::Edgemq;

const PUBLISHERS: usize = 10;

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Plain,
    Tls,
    Acl,
}

fn main() {
    let value = support::flag;
    let n: usize = value("--messages").map_or(200_000, |v| v.parse().expect("--messages N"));
    let rounds: usize = value("--rounds").map_or(3, |v| v.parse().expect("--rounds N"));
    let variants = [
        (Variant::Plain, "plain TCP"),
        (Variant::Tls, "TLS"),
        (Variant::Acl, "ACL of 1,000 lines"),
    ];
    let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); variants.len()];
    for round in 1..=rounds {
        for (i, (variant, name)) in variants.iter().enumerate() {
            let (ingest, delivered) = run(*variant, n);
            println!("round {round}: {name}: persisted {ingest:.0} msg/s, delivered {delivered:.0} msg/s");
            results[i].push((ingest, delivered));
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let plain = (
        median(results[0].iter().map(|r| r.0).collect()),
        median(results[0].iter().map(|r| r.1).collect()),
    );
    println!();
    println!("| {n} QoS 1 messages, 10 publishers, 1 subscriber | persisted msg/s (median) | delivered msg/s (median) | vs plain |");
    println!("|---|---|---|---|");
    for (i, (_, name)) in variants.iter().enumerate() {
        let ingest = median(results[i].iter().map(|r| r.0).collect());
        let delivered = median(results[i].iter().map(|r| r.1).collect());
        println!(
            "| {name} | {ingest:.0} | {delivered:.0} | {:.0}% / {:.0}% |",
            100.0 * ingest / plain.0,
            100.0 * delivered / plain.1
        );
    }
}

/// One variant on a fresh edgemq: (persisted msg/s, delivered msg/s).
fn run(variant: Variant, n: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    certs::certificates(dir.path());
    let config = match variant {
        Variant::Plain => String::new(),
        Variant::Tls => "[mqtt]\ntls_listen = \"127.0.0.1:0\"\n\
                         [tls]\ncertfile = \"server.pem\"\nkeyfile = \"server.key\"\n"
            .to_string(),
        Variant::Acl => {
            let mut acl = String::new();
            for i in 0..500 {
                acl.push_str(&format!("topic readwrite other/{i}/#\n"));
                acl.push_str(&format!("pattern readwrite other/%c/{i}/#\n"));
            }
            acl.push_str("topic readwrite bench/#\n");
            std::fs::write(dir.path().join("acl"), acl).unwrap();
            "[auth]\nacl_file = \"acl\"\n".to_string()
        }
    };
    let edgemq = Edgemq::start_with(dir.path(), &config);
    let (addr, ca) = match variant {
        Variant::Tls => (
            edgemq.listener("mqtts"),
            std::fs::read(dir.path().join("ca.pem")).ok(),
        ),
        _ => (edgemq.mqtt, None),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(load(addr, ca, n))
}

fn options(addr: SocketAddr, id: &str, ca: &Option<Vec<u8>>) -> MqttOptions {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_inflight(100);
    options.set_keep_alive(Duration::from_secs(60));
    if let Some(ca) = ca {
        let tls = TlsConfiguration::Simple {
            ca: ca.clone(),
            alpn: None,
            client_auth: None,
        };
        options.set_transport(Transport::tls_with_config(tls));
    }
    options
}

async fn load(addr: SocketAddr, ca: Option<Vec<u8>>, n: usize) -> (f64, f64) {
    let (sub, mut events) = AsyncClient::new(options(addr, "bench-sub", &ca), 10);
    sub.subscribe("bench/#", QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = events.poll().await {
            break;
        }
    }
    let receiver = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            match tokio::time::timeout(Duration::from_secs(30), events.poll()).await {
                Ok(Ok(Event::Incoming(Packet::Publish(_)))) => got += 1,
                Ok(Ok(_)) => {}
                _ => break,
            }
        }
        (got, Instant::now())
    });
    let started = Instant::now();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let count = n / PUBLISHERS + usize::from(p < n % PUBLISHERS);
            tokio::spawn(publish(addr, ca.clone(), p, count))
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    let persisted = n as f64 / started.elapsed().as_secs_f64();
    let (got, last) = receiver.await.unwrap();
    assert_eq!(got, n, "the subscriber got every message");
    (
        persisted,
        n as f64 / last.duration_since(started).as_secs_f64(),
    )
}

/// `count` QoS 1 messages of ~150 bytes on `bench/<publisher>/data`; returns once all are
/// acknowledged.
async fn publish(addr: SocketAddr, ca: Option<Vec<u8>>, publisher: usize, count: usize) {
    let id = format!("bench-{publisher}");
    let (client, mut events) = AsyncClient::new(options(addr, &id, &ca), 10);
    tokio::spawn(async move {
        for seq in 0..count {
            let body = format!("{{\"deviceId\":\"bench-{publisher:03}\",\"seq\":{seq:010},\"temperature\":21.5,\"humidity\":40.0,\"pad\":\"....................................................\"}}");
            let topic = format!("bench/{publisher}/data");
            client
                .publish(topic, QoS::AtLeastOnce, false, body)
                .await
                .unwrap();
        }
    });
    support::acknowledged(&mut events, count, publisher).await;
}
