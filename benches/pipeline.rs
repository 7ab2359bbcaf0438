//! Micro-benchmarks (criterion): one message through route, decode and rules, and the store's
//! batch insert.
//!
//!     cargo bench --bench pipeline

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use edgemq::config::Config;
use edgemq::ingest::decode::{decode, DecodeSettings};
use edgemq::ingest::Incoming;
use edgemq::rules::Rules;
use edgemq::store::{self, Batch, Record, RulesState};

fn incoming(topic: &'static str, payload: String) -> Incoming {
    Incoming::new(
        Bytes::from_static(topic.as_bytes()),
        payload,
        1_795_400_000_000,
    )
}

fn empty_state() -> RulesState {
    RulesState {
        open_alerts: Vec::new(),
        next_alert_id: 1,
        devices: Vec::new(),
        rule_values: Vec::new(),
    }
}

fn one_message(c: &mut Criterion) {
    let config = Config::default();
    let mut routes = config.routes();
    let settings = DecodeSettings {
        max_payload: 256 * 1024,
        zone: chrono_tz::UTC,
        future_tolerance_ms: 86_400_000,
    };
    let mut rules = Rules::new(config.rules(), empty_state(), |_| Some(10_000));
    let seed_003 = incoming(
        "devices/dev-042/telemetry",
        r#"{"deviceId":"dev-042","ts":1795399999000,"temperature":26.3,"humidity":47.9}"#.into(),
    );
    let seed_002 = incoming(
        "sensors/device1",
        r#"{"device_id":"device_01","temperature":28.4,"humidity":65.2,"voltage":229.1,"current":3.4,"pressure":1008.5}"#
            .into(),
    );
    let mut group = c.benchmark_group("one message");
    group.throughput(Throughput::Elements(1));
    for (name, message) in [
        ("seed 003 telemetry", &seed_003),
        ("seed 002 sensors", &seed_002),
    ] {
        group.bench_function(format!("route + decode + rules: {name}"), |b| {
            let mut batch = Batch::default();
            b.iter(|| {
                let topic = std::str::from_utf8(&message.topic).unwrap();
                let route = routes.find_cached(topic).expect("a route");
                let decoded = decode(message, topic, route, &settings).expect("valid");
                rules.on_message(decoded.reading(), Some(10_000), &mut batch);
                batch.records.push(decoded.record);
                if batch.records.len() >= 1000 {
                    batch = Batch::default();
                }
            })
        });
    }
    group.finish();
}

fn batch_insert(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = store::open_writer(
        &dir.path().join("bench.db"),
        edgemq::store::Synchronous::Normal,
    )
    .unwrap();
    let mut group = c.benchmark_group("store");
    // Time moves on between batches, as it does in a running edgemq: indexes append.
    let mut clock = 1_795_400_000_000i64;
    let client: std::sync::Arc<str> = std::sync::Arc::from("bench-client");
    for size in [100u64, 1000, 8192] {
        group.throughput(Throughput::Elements(size));
        group.bench_function(format!("batch insert of {size} telemetry messages"), |b| {
            b.iter_batched(
                || {
                    clock += size as i64;
                    Batch {
                    records: (0..size)
                        .map(|i| Record {
                            id: 0,
                            received_at: clock + i as i64,
                            topic: format!("devices/dev-{:03}/telemetry", i % 100),
                            payload: Bytes::from(format!(
                                r#"{{"deviceId":"dev-{:03}","ts":1795399999000,"temperature":26.3,"humidity":47.9}}"#,
                                i % 100
                            )),
                            device_id: Some(format!("dev-{:03}", i % 100)),
                            kind: Some("telemetry"),
                            device_time: clock + i as i64,
                            publisher: Some(store::Publisher {
                                client_id: client.clone(),
                                username: None,
                                qos: 1,
                                retain: false,
                            }),
                            properties: None,
                        })
                        .collect(),
                    ..Batch::default()
                }
                },
                |batch| store::write_batch(&mut conn, &batch).unwrap(),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, one_message, batch_insert);
criterion_main!(benches);
