//! The `edgemq` command: parse the flags, load the config, run until SIGINT or SIGTERM.

use clap::Parser;
use edgemq::app::Stopped;
use edgemq::config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// An MQTT broker that remembers: every message published to it is stored in SQLite and served
/// back over HTTP. A drop-in replacement for Mosquitto.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Config file [default: ./rumqttd.toml when present, otherwise built-in defaults]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A Mosquitto configuration file (mosquitto.conf), read unchanged: listeners, logins, ACLs,
    /// TLS, limits, persistence, logging [config: mqtt.mosquitto_conf]
    #[arg(short = 'c', long = "mosquitto-conf", value_name = "FILE")]
    mosquitto_conf: Option<PathBuf>,
    /// SQLite database path [config: store.path; default: ./edgemq.db]
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// MQTT listen address (3.1, 3.1.1 and 5); port 0 picks a free port [config: mqtt.listen; default: 0.0.0.0:1883]
    #[arg(long, value_name = "ADDR")]
    mqtt: Option<SocketAddr>,
    /// MQTT over WebSockets listen address [config: mqtt.websocket_listen; default: 0.0.0.0:8083]
    #[arg(long = "mqtt-ws", value_name = "ADDR")]
    mqtt_ws: Option<SocketAddr>,
    /// MQTT over TLS listen address; needs [tls] certfile and keyfile [config: mqtt.tls_listen]
    #[arg(long = "mqtt-tls", value_name = "ADDR")]
    mqtt_tls: Option<SocketAddr>,
    /// MQTT over WebSockets over TLS listen address [config: mqtt.websocket_tls_listen]
    #[arg(long = "mqtt-wss", value_name = "ADDR")]
    mqtt_wss: Option<SocketAddr>,
    /// HTTP listen address [config: http.listen; default: 0.0.0.0:8000]
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Log level or filter, e.g. info, debug, "info,edgemq=debug" [config: log.level]
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Also log to this file, rotated daily [config: log.file]
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (config, warnings) = match load(&cli) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("edgemq: {e}");
            return ExitCode::from(2);
        }
    };
    let logs = match edgemq::logging::init(&config.log) {
        Ok(logs) => logs,
        Err(e) => {
            eprintln!("edgemq: {e}");
            return ExitCode::from(2);
        }
    };
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgemq: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _flushed_at_exit = logs.guard;
    let result = runtime.block_on(edgemq::app::run(config, logs.file));
    // rumqttd's router thread has no stop; the store is closed, so leave without waiting.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(Stopped { flushed: true }) => ExitCode::SUCCESS,
        // Said in the log: how many messages were not stored.
        Ok(Stopped { flushed: false }) => ExitCode::FAILURE,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("edgemq: {e}");
            ExitCode::from(2)
        }
    }
}

/// The config file (explicit, or `./rumqttd.toml` when present), then a Mosquitto file's
/// settings, then the flags on top; with the warnings the Mosquitto file gave.
fn load(cli: &Cli) -> Result<(Config, Vec<String>), String> {
    let default_file = PathBuf::from("rumqttd.toml");
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
        None if default_file.exists() => {
            Config::from_file(&default_file).map_err(|e| e.to_string())?
        }
        None => Config::default(),
    };
    let mut warnings = Vec::new();
    if let Some(path) = cli
        .mosquitto_conf
        .clone()
        .or(config.mqtt.mosquitto_conf.clone())
    {
        warnings = edgemq::mosquitto_conf::apply(&path, &mut config)?;
    }
    if let Some(db) = &cli.db {
        config.store.path = db.clone();
    }
    if let Some(addr) = cli.mqtt {
        config.mqtt.listen = addr;
    }
    if let Some(addr) = cli.mqtt_ws {
        config.mqtt.websocket = true;
        config.mqtt.websocket_listen = addr;
    }
    if let Some(addr) = cli.mqtt_tls {
        config.mqtt.tls_listen = Some(addr);
    }
    if let Some(addr) = cli.mqtt_wss {
        config.mqtt.websocket_tls_listen = Some(addr);
    }
    if let Some(addr) = cli.http {
        config.http.listen = addr;
    }
    if let Some(level) = &cli.log_level {
        config.log.level = level.clone();
    }
    if let Some(file) = &cli.log_file {
        config.log.file = Some(file.clone());
    }
    config
        .validate()
        .map_err(|e| format!("command line: {e}"))?;
    Ok((config, warnings))
}
