//! Seed 000's client: a random status 0-6 with an ISO timestamp on `status`, every second.
//!
//!     cargo run --example status_client -- [--host 127.0.0.1] [--port 1883] [--interval 1s] [--count N]

use clap::Parser;
use rand::Rng;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use std::time::Duration;

#[derive(Parser)]
#[command(
    about = "Seed 000's status client: publishes {\"status\": 0-6, \"timestamp\": ISO} on `status`"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Time between messages, e.g. 1s, 250ms.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Stop after this many messages (default: run until Ctrl-C).
    #[arg(long)]
    count: Option<u64>,
    #[arg(long, default_value = "status")]
    topic: String,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut options = MqttOptions::new(
        format!("status-client-{}", std::process::id()),
        &args.host,
        args.port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(options, 10);
    tokio::spawn(async move {
        loop {
            if let Err(e) = events.poll().await {
                eprintln!("connection: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    let mut sent = 0;
    let mut ticks = tokio::time::interval(args.interval);
    while args.count.is_none_or(|n| sent < n) {
        ticks.tick().await;
        let status = rand::thread_rng().gen_range(0..=6);
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let payload = format!(r#"{{"status": {status}, "timestamp": "{timestamp}"}}"#);
        if let Err(e) = client
            .publish(&args.topic, QoS::AtLeastOnce, false, payload.clone())
            .await
        {
            eprintln!("publish: {e}");
            return;
        }
        println!("Published: {payload}");
        sent += 1;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = client.disconnect().await;
}
