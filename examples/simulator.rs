//! Device simulator: N devices publishing every interval, one MQTT connection each.
//!
//! Profiles, one per seed:
//! - `telemetry` (seed 003, the default): `devices/<id>/telemetry` with deviceId, ts (unix ms),
//!   temperature 20-35 °C, humidity 30-70 %; 1 message in 30 is dropped (not sent).
//! - `status` (seed 000): `{"status": 0-6, "timestamp": ISO}` on `status`.
//! - `autocore` (seed 001): announces `autocore/<id>/status` online with a last will saying
//!   offline (kill the simulator to see it), then telemetry and now and then a relay change.
//! - `sensors` (seed 002): `sensors/<id>` with the five readings; now and then one is out of range.
//! - `home` (seed 004): `home/temperature`, `home/power` and `home/fingerprint` in turn.
//!
//! Run it:
//!
//!     cargo run --example simulator -- --devices 3
//!     cargo run --example simulator -- --device-id device-001 --profile sensors

use clap::{Parser, ValueEnum};
use rand::Rng;
use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS};
use serde_json::json;
use std::time::Duration;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Profile {
    Telemetry,
    Status,
    Autocore,
    Sensors,
    Home,
}

#[derive(Parser)]
#[command(about = "Simulated devices for each of edgemq's seed systems")]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// How many devices.
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Id of the (first) device; more devices get -2, -3, ... appended.
    #[arg(long)]
    device_id: Option<String>,
    /// Time between messages of one device, e.g. 1s, 200ms.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    #[arg(long, value_enum, default_value_t = Profile::Telemetry)]
    profile: Profile,
    /// Drop one message in this many (telemetry profile; 0 never drops).
    #[arg(long, default_value_t = 30)]
    drop_every: u64,
    /// Stop each device after this many messages (default: run until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
}

fn device_ids(args: &Args) -> Vec<String> {
    let base = args
        .device_id
        .clone()
        .unwrap_or_else(|| match args.profile {
            Profile::Autocore => "ESP32_001".to_string(),
            _ => "device-001".to_string(),
        });
    (0..args.devices)
        .map(|i| {
            if i == 0 {
                base.clone()
            } else {
                format!("{base}-{}", i + 1)
            }
        })
        .collect()
}

fn now_iso() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The next message of device `id`, or `None` when this one is dropped.
fn next_message(profile: Profile, id: &str, n: u64, drop_every: u64) -> Option<(String, String)> {
    let mut rng = rand::thread_rng();
    let r = |lo: f64, hi: f64, rng: &mut rand::rngs::ThreadRng| {
        (rng.gen_range(lo..hi) * 10.0_f64).round() / 10.0
    };
    let message = match profile {
        Profile::Telemetry => {
            if drop_every > 0 && rng.gen_range(0..drop_every) == 0 {
                return None;
            }
            let payload = json!({
                "deviceId": id,
                "ts": chrono::Utc::now().timestamp_millis(),
                "temperature": r(20.0, 35.0, &mut rng),
                "humidity": r(30.0, 70.0, &mut rng),
            });
            (format!("devices/{id}/telemetry"), payload.to_string())
        }
        Profile::Status => (
            "status".to_string(),
            json!({ "status": rng.gen_range(0..=6), "timestamp": now_iso() }).to_string(),
        ),
        Profile::Autocore if n % 10 == 5 => {
            let relay = rng.gen_range(0..4);
            let payload = json!({
                "device_id": id, "relay_index": relay, "state": rng.gen_bool(0.5),
                "triggered_by": "manual", "timestamp": now_iso(),
            });
            (
                format!("autocore/{id}/relay/{relay}/status"),
                payload.to_string(),
            )
        }
        Profile::Autocore => {
            let payload = json!({
                "device_id": id, "temperature": r(24.0, 27.0, &mut rng), "humidity": r(40.0, 50.0, &mut rng),
                "voltage": r(3.2, 3.35, &mut rng), "memory_free": rng.gen_range(40_000..50_000), "timestamp": now_iso(),
            });
            (format!("autocore/{id}/telemetry"), payload.to_string())
        }
        Profile::Sensors => {
            // One reading in 20 is out of range, to show the alerts.
            let wild = rng.gen_range(0..20) == 0;
            let temperature = if wild {
                r(51.0, 60.0, &mut rng)
            } else {
                r(18.0, 35.0, &mut rng)
            };
            let payload = json!({
                "device_id": id, "temperature": temperature, "humidity": r(30.0, 80.0, &mut rng),
                "voltage": r(215.0, 235.0, &mut rng), "current": r(0.5, 8.0, &mut rng), "pressure": r(990.0, 1030.0, &mut rng),
            });
            (format!("sensors/{id}"), payload.to_string())
        }
        Profile::Home => {
            let local = chrono::Local::now().format("%Y-%m-%dT%H:%M:%S").to_string();
            match n % 3 {
                0 => {
                    let t = r(18.0, 32.0, &mut rng);
                    let status = if t > 26.0 { "HIGH" } else { "LOW" };
                    let payload = json!({"device_id": id, "temperature": t, "humidity": r(30.0, 70.0, &mut rng), "status": status, "timestamp": local});
                    ("home/temperature".to_string(), payload.to_string())
                }
                1 => {
                    let status = ["EB_ON", "EB_OFF", "DG_ON", "DG_OFF"][rng.gen_range(0..4)];
                    (
                        "home/power".to_string(),
                        json!({"device_id": id, "status": status, "timestamp": local}).to_string(),
                    )
                }
                _ => {
                    let result = if rng.gen_bool(0.8) { "PASS" } else { "FAIL" };
                    let payload = json!({"device_id": id, "user_id": format!("user_{}", rng.gen_range(100..130)), "authStatus": result, "timestamp": local});
                    ("home/fingerprint".to_string(), payload.to_string())
                }
            }
        }
    };
    Some(message)
}

async fn run_device(args: &'static Args, id: String) {
    let mut options = MqttOptions::new(id.clone(), &args.host, args.port);
    options.set_keep_alive(Duration::from_secs(30));
    if let Profile::Autocore = args.profile {
        let will = json!({ "device_id": id, "status": "offline" }).to_string();
        options.set_last_will(LastWill::new(
            format!("autocore/{id}/status"),
            will,
            QoS::AtLeastOnce,
            false,
        ));
    }
    let (client, mut events) = AsyncClient::new(options, 10);
    tokio::spawn(async move {
        loop {
            if let Err(e) = events.poll().await {
                eprintln!("connection: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    println!("Connected to MQTT Broker at {}:{}", args.host, args.port);
    if let Profile::Autocore = args.profile {
        let online = json!({
            "device_id": id, "status": "online", "ip_address": "192.168.1.100",
            "firmware_version": "1.2.0", "uptime": 0, "timestamp": now_iso(),
        });
        let _ = client
            .publish(
                format!("autocore/{id}/status"),
                QoS::AtLeastOnce,
                false,
                online.to_string(),
            )
            .await;
    }
    println!("Publishing telemetry for {id}...");
    let mut ticks = tokio::time::interval(args.interval);
    let mut n = 0;
    while args.count.is_none_or(|c| n < c) {
        ticks.tick().await;
        n += 1;
        let Some((topic, payload)) = next_message(args.profile, &id, n, args.drop_every) else {
            println!(
                "[{}] Dropped a message of {id}",
                chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
            );
            continue;
        };
        if let Err(e) = client
            .publish(&topic, QoS::AtLeastOnce, false, payload.clone())
            .await
        {
            eprintln!("publish: {e}");
            return;
        }
        println!(
            "[{}] Published: {payload}",
            chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = client.disconnect().await;
}

#[tokio::main]
async fn main() {
    let args: &'static Args = Box::leak(Box::new(Args::parse()));
    let devices: Vec<_> = device_ids(args)
        .into_iter()
        .map(|id| tokio::spawn(run_device(args, id)))
        .collect();
    for d in devices {
        let _ = d.await;
    }
}
