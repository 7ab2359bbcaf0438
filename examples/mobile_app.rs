//! Seed 004's mobile app: asks edgemq over MQTT for one device's records on one date and prints
//! the reply. MQTT 3.1.1 uses the seed's topics (`home/get<kind>/<client>` answered on
//! `home/data<kind>/<client>`); `--v5` sends a response topic and correlation data instead.
//!
//!     cargo run --example mobile_app -- --device-id temp_sensor_01 --date 2026-01-22
//!     cargo run --example mobile_app -- --device-id power_switch_01 --date 2026-01-22 --kind power --v5

use clap::{Parser, ValueEnum};
use std::time::Duration;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    Temp,
    Power,
    Fingerprint,
}

#[derive(Parser)]
#[command(about = "Seed 004's mobile app: request a device's data for a date over MQTT")]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// edgemq serves MQTT 3.1.1 and 5 on the same port.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    #[arg(long)]
    device_id: String,
    /// YYYY-MM-DD
    #[arg(long)]
    date: String,
    #[arg(long, value_enum, default_value_t = Kind::Temp)]
    kind: Kind,
    /// This app's client id: the last level of its request and reply topics.
    #[arg(long, default_value = "mobile_app")]
    client_id: String,
    /// Ask with MQTT 5: a response topic and correlation data.
    #[arg(long)]
    v5: bool,
    /// Records from this offset (for the next page of a long day).
    #[arg(long)]
    offset: Option<u64>,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Temp => "temp",
        Kind::Power => "power",
        Kind::Fingerprint => "fingerprint",
    }
}

fn request_body(args: &Args) -> String {
    let mut request = serde_json::json!({ "device_id": args.device_id, "date": args.date });
    if let Some(offset) = args.offset {
        request["offset"] = offset.into();
    }
    request.to_string()
}

fn print_reply(payload: &[u8]) {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
        Err(_) => println!("{}", String::from_utf8_lossy(payload)),
    }
}

async fn ask_v311(args: &Args) -> Result<(), String> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let kind = kind_name(args.kind);
    let request_topic = format!("home/get{kind}/{}", args.client_id);
    let reply_topic = format!("home/data{kind}/{}", args.client_id);
    let mut options = MqttOptions::new(&args.client_id, &args.host, args.port);
    options.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
    let (client, mut events) = AsyncClient::new(options, 10);
    client
        .subscribe(&reply_topic, QoS::AtLeastOnce)
        .await
        .map_err(|e| e.to_string())?;
    let mut asked = false;
    loop {
        match events
            .poll()
            .await
            .map_err(|e| format!("connection: {e}"))?
        {
            Event::Incoming(Packet::SubAck(_)) if !asked => {
                println!("→ {request_topic} {}", request_body(args));
                client
                    .publish(&request_topic, QoS::AtLeastOnce, false, request_body(args))
                    .await
                    .map_err(|e| e.to_string())?;
                asked = true;
            }
            Event::Incoming(Packet::Publish(p)) if p.topic == reply_topic => {
                println!("← {reply_topic}");
                print_reply(&p.payload);
                return Ok(());
            }
            _ => {}
        }
    }
}

async fn ask_v5(args: &Args) -> Result<(), String> {
    use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let kind = kind_name(args.kind);
    let request_topic = format!("home/get{kind}/{}", args.client_id);
    let response_topic = format!("replies/{}/{}", args.client_id, std::process::id());
    let correlation = format!("req-{}", chrono::Utc::now().timestamp_millis());
    let mut options = MqttOptions::new(&args.client_id, &args.host, args.port);
    options.set_max_packet_size(Some(16 * 1024 * 1024));
    let (client, mut events) = AsyncClient::new(options, 10);
    client
        .subscribe(&response_topic, QoS::AtLeastOnce)
        .await
        .map_err(|e| e.to_string())?;
    let mut asked = false;
    loop {
        match events
            .poll()
            .await
            .map_err(|e| format!("connection: {e}"))?
        {
            Event::Incoming(Packet::SubAck(_)) if !asked => {
                let properties = PublishProperties {
                    response_topic: Some(response_topic.clone()),
                    correlation_data: Some(correlation.clone().into()),
                    ..Default::default()
                };
                println!("→ {request_topic} {} (response topic {response_topic}, correlation {correlation})", request_body(args));
                client
                    .publish_with_properties(
                        &request_topic,
                        QoS::AtLeastOnce,
                        false,
                        request_body(args),
                        properties,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                asked = true;
            }
            Event::Incoming(Packet::Publish(p)) => {
                let echoed = p.properties.and_then(|p| p.correlation_data);
                println!(
                    "← {} (correlation {})",
                    String::from_utf8_lossy(&p.topic),
                    String::from_utf8_lossy(echoed.as_deref().unwrap_or_default())
                );
                print_reply(&p.payload);
                return Ok(());
            }
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let ask = async {
        if args.v5 {
            ask_v5(&args).await
        } else {
            ask_v311(&args).await
        }
    };
    let result = tokio::time::timeout(args.timeout, ask)
        .await
        .unwrap_or_else(|_| Err(format!("no reply within {:?}", args.timeout)));
    if let Err(e) = result {
        eprintln!("mobile_app: {e}");
        std::process::exit(1);
    }
}
