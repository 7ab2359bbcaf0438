//! Query latency: fills a database with 1,000,000 messages from 100 devices spread over the last
//! 24 hours (seed 003 telemetry, plus seed 000 status messages), then, while clients keep
//! publishing at 10,000 msg/s, times each seed endpoint and a 24-hour series bucketed to 500
//! points, one request after another.
//!
//!     cargo bench --bench query -- [--messages 1000000] [--devices 100] [--requests 200]

mod support;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{percentile, Edgemq};

const DAY_MS: i64 = 24 * 3600 * 1000;

fn arg(name: &str, default: usize) -> usize {
    let raw: Vec<String> = std::env::args().collect();
    raw.iter()
        .position(|a| a == name)
        .and_then(|i| raw.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

/// Message `i` of the fill: every 25th a status message, the rest telemetry of device i % devices,
/// with device times spread evenly over the last day.
fn fill_message(i: usize, total: usize, devices: usize, now_ms: i64) -> (String, String) {
    let ts = now_ms - DAY_MS + (i as i64 * DAY_MS / total as i64);
    if i.is_multiple_of(25) {
        let iso = chrono::DateTime::from_timestamp_millis(ts)
            .unwrap()
            .to_rfc3339();
        return (
            "status".into(),
            format!(r#"{{"status":{},"timestamp":"{iso}"}}"#, i % 7),
        );
    }
    let device = i % devices;
    let temperature = 20.0 + (i % 150) as f64 / 10.0;
    (
        format!("devices/dev-{device:03}/telemetry"),
        format!(
            r#"{{"deviceId":"dev-{device:03}","ts":{ts},"temperature":{temperature:.1},"humidity":{:.1}}}"#,
            30.0 + (i % 400) as f64 / 10.0
        ),
    )
}

async fn client(addr: SocketAddr, id: String) -> (AsyncClient, tokio::task::JoinHandle<()>) {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_inflight(100);
    options.set_keep_alive(Duration::from_secs(60));
    let (mqtt, mut events) = AsyncClient::new(options, 100);
    let pump = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    (mqtt, pump)
}

/// Fills at `FILL_RATE` msg/s: a rate the store sustains with zero loss (see the ingest bench).
const FILL_RATE: f64 = 50_000.0;

async fn fill(addr: SocketAddr, total: usize, devices: usize, now_ms: i64) {
    let clients = 10;
    let mut tasks = Vec::new();
    for c in 0..clients {
        tasks.push(tokio::spawn(async move {
            let (mqtt, pump) = client(addr, format!("fill-{c}")).await;
            let started = tokio::time::Instant::now();
            for (n, i) in (c..total).step_by(clients).enumerate() {
                if n % 100 == 0 {
                    let due =
                        started + Duration::from_secs_f64(n as f64 * clients as f64 / FILL_RATE);
                    tokio::time::sleep_until(due).await;
                }
                let (topic, payload) = fill_message(i, total, devices, now_ms);
                mqtt.publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .unwrap();
            }
            let _ = mqtt.disconnect().await;
            let _ = pump.await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Publishes about `rate` msg/s of live telemetry until `stop`.
async fn background_load(
    addr: SocketAddr,
    rate: u64,
    devices: usize,
    stop: Arc<AtomicBool>,
) -> u64 {
    let (mqtt, _pump) = client(addr, "live".into()).await;
    let mut sent = 0u64;
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let device = sent as usize % devices;
        let now = chrono::Utc::now().timestamp_millis();
        let payload = format!(
            r#"{{"deviceId":"dev-{device:03}","ts":{now},"temperature":25.0,"humidity":40.0}}"#
        );
        mqtt.publish(
            format!("devices/dev-{device:03}/telemetry"),
            QoS::AtLeastOnce,
            false,
            payload,
        )
        .await
        .unwrap();
        sent += 1;
    }
    sent
}

fn main() {
    let total = arg("--messages", 1_000_000);
    let devices = arg("--devices", 100);
    let requests = arg("--requests", 200);
    let dir = tempfile::tempdir().unwrap();
    let edgemq = Edgemq::start(dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let now = chrono::Utc::now().timestamp_millis();

    let started = Instant::now();
    runtime.block_on(fill(edgemq.mqtt, total, devices, now));
    let conn = rusqlite::Connection::open(&edgemq.db).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        if rows as usize >= total || Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "query: filled {rows} messages from {devices} devices in {:.1}s (of {total} sent)",
        started.elapsed().as_secs_f64()
    );

    // Indices ≡ 0 mod 25 are status messages; this device gets only telemetry.
    let device = format!("dev-{:03}", devices / 2 + 1);
    let hour_ago = chrono::DateTime::from_timestamp_millis(now - 3600 * 1000)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let now_iso = chrono::DateTime::from_timestamp_millis(now)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let endpoints = [
        ("seed 000 /status-count (1 h)", format!("/status-count?start_time={hour_ago}&end_time={now_iso}")),
        ("seed 001 /health/mqtt-monitor", "/health/mqtt-monitor".to_string()),
        ("seed 002 /sensors/latest", "/sensors/latest".to_string()),
        ("seed 002 /sensors/history", format!("/sensors/history?device_id={device}&limit=50")),
        ("seed 002 /alerts", "/alerts".to_string()),
        ("seed 002 /stats", "/stats".to_string()),
        ("seed 003 /api/devices/", "/api/devices/".to_string()),
        ("seed 003 /api/telemetry/", format!("/api/telemetry/?deviceId={device}&limit=100")),
        ("seed 003 /api/stats/avg/ (5m)", format!("/api/stats/avg/?deviceId={device}&window=5m")),
        ("seed 003 /api/stats/avg/ (1h)", format!("/api/stats/avg/?deviceId={device}&window=1h")),
        ("seed 003 /api/alerts/", "/api/alerts/?limit=50".to_string()),
        ("v1 series 24 h, 500 buckets", format!("/api/v1/devices/{device}/series?metric=temperature&from={}&to={now}&bucket=172800ms", now - DAY_MS)),
        ("v1 messages, one topic (100)", format!("/api/v1/messages?topic=devices/{device}/telemetry&limit=100")),
        ("v1 messages, one device (100)", format!("/api/v1/messages?device_id={device}&limit=100")),
    ];

    let stop = Arc::new(AtomicBool::new(false));
    let live = runtime.spawn(background_load(edgemq.mqtt, 10_000, devices, stop.clone()));
    let http = edgemq.http;
    let load_started = Instant::now();
    let results = runtime.block_on(async move {
        let client = reqwest::Client::new();
        let mut results = Vec::new();
        for (name, path) in &endpoints {
            let url = format!("http://{http}{path}");
            let mut samples = Vec::with_capacity(requests);
            for _ in 0..requests {
                let t = Instant::now();
                let response = client.get(&url).send().await.unwrap();
                assert!(
                    response.status().is_success(),
                    "{name}: {}",
                    response.status()
                );
                let _ = response.bytes().await.unwrap();
                samples.push(t.elapsed().as_micros() as u64);
            }
            samples.sort_unstable();
            results.push((name.to_string(), samples));
        }
        results
    });
    stop.store(true, Ordering::Relaxed);
    let sent = runtime.block_on(live).unwrap();
    let rate = sent as f64 / load_started.elapsed().as_secs_f64();
    println!("  while publishing {rate:.0} msg/s of live telemetry; {requests} requests each, one at a time:");
    println!("  {:<34} {:>9} {:>9}", "endpoint", "p50 ms", "p99 ms");
    for (name, samples) in results {
        println!(
            "  {name:<34} {:>9.2} {:>9.2}",
            percentile(&samples, 0.5) as f64 / 1000.0,
            percentile(&samples, 0.99) as f64 / 1000.0
        );
    }
    println!("  edgemq peak RSS {:.0} MiB", edgemq.peak_rss_mib());
}
