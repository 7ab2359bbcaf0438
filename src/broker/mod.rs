//! The embedded rumqttd broker: its router and listeners, edgemq's link into it (the store tap
//! and the outbox for edgemq's own publications), and the checks rumqttd does not make itself
//! (a listener that failed to bind is only logged by rumqttd, and its `start()` never returns).

mod outbox;
mod probe;
mod tap;

pub use outbox::{Internal, Outbox, PublishError};

use crate::auth::PasswordFile;
use crate::config::Config;
use crate::ingest::Intake;
use crate::metrics::Metrics;
use rumqttd::local::{LinkRx, LinkTx};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

/// The client id of the store tap's link into the router (it only reads).
pub const TAP_CLIENT_ID: &str = "edgemq-tap";
/// The client id of the link edgemq publishes its own messages through (it only writes).
pub const OUTBOX_CLIENT_ID: &str = "edgemq-outbox";
/// The client id of the link MQTT requests arrive on.
pub const RPC_CLIENT_ID: &str = "edgemq-rpc";

/// A running broker.
pub struct Broker {
    /// Publishes on edgemq's behalf; the tap recognises these and leaves them out of the data.
    pub outbox: Arc<Outbox>,
    /// The MQTT listeners as bound: (label, address).
    pub listeners: Vec<(&'static str, SocketAddr)>,
    /// The link MQTT requests arrive on (taken by `rpc`).
    pub rpc_link: Option<(LinkTx, LinkRx)>,
}

/// Keeps `connected_clients` up to date: established TCP connections on the MQTT ports, read
/// from the kernel once a second. (rumqttd's own meters would do it, but turning them on
/// more than doubled edgemq's memory under load.)
pub async fn watch_clients(ports: Vec<u16>, metrics: Arc<Metrics>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticks.tick().await;
        let mut clients = 0;
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let Ok(text) = tokio::fs::read_to_string(table).await else {
                continue;
            };
            clients += established_on(&text, &ports);
        }
        metrics
            .connected_clients
            .store(clients, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Lines of a /proc/net/tcp table in state ESTABLISHED (01) whose local port is one of `ports`.
fn established_on(table: &str, ports: &[u16]) -> u64 {
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1).unwrap_or("");
            let state = fields.nth(1).unwrap_or("");
            let port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            state == "01" && port.is_some_and(|p| ports.contains(&p))
        })
        .count() as u64
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{label} address {addr} is already in use")]
    InUse {
        label: &'static str,
        addr: SocketAddr,
    },
    #[error("{label} address {addr} cannot be bound: {source}")]
    Bind {
        label: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{label} listener on {addr} did not start: {reason}")]
    NotListening {
        label: &'static str,
        addr: SocketAddr,
        reason: String,
    },
    #[error("the broker refused edgemq's own link: {0}")]
    Link(String),
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Checks that every MQTT address is free and replaces port 0 with a free port, so the bound
/// addresses are known (rumqttd binds the listeners itself and never says which port it got).
pub fn claim_addresses(config: &mut Config) -> Result<(), StartError> {
    for (label, listeners) in [("mqtt", &mut config.v4), ("mqtt-v5", &mut config.v5)] {
        for listener in listeners.values_mut() {
            listener.listen = claim(label, listener.listen)?;
        }
    }
    Ok(())
}

/// Ports tried for port 0: below Linux's ephemeral range (32768+), so that the moment between
/// our check and rumqttd's own bind cannot be lost to another program's port-0 bind.
const CLAIM_PORTS: std::ops::Range<u16> = 20000..32768;

fn claim(label: &'static str, addr: SocketAddr) -> Result<SocketAddr, StartError> {
    let bind = |addr: SocketAddr| {
        TcpListener::bind(addr).map_err(|source| match source.kind() {
            std::io::ErrorKind::AddrInUse => StartError::InUse { label, addr },
            _ => StartError::Bind {
                label,
                addr,
                source,
            },
        })
    };
    if addr.port() != 0 {
        bind(addr)?;
        return Ok(addr);
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(2654435761);
    let span = u32::from(CLAIM_PORTS.end - CLAIM_PORTS.start);
    for attempt in 0..64u32 {
        let offset = seed.wrapping_add(attempt.wrapping_mul(7919)) % span;
        let candidate = SocketAddr::new(addr.ip(), CLAIM_PORTS.start + offset as u16);
        if bind(candidate).is_ok() {
            return Ok(candidate);
        }
    }
    // Everything tried was busy: let the kernel choose.
    Ok(bind(addr)?.local_addr()?)
}

/// Starts the router, edgemq's link (subscribed to `#` before any client can connect), the
/// tap thread and the listeners, then waits until every listener answers an MQTT CONNECT.
pub fn start(
    config: &Config,
    logins: Option<Arc<PasswordFile>>,
    intake: flume::Sender<Intake>,
    metrics: Arc<Metrics>,
) -> Result<Broker, StartError> {
    let mut settings = config.to_rumqttd();
    // With logins required, edgemq's own start-up probe logs in with a secret of this process.
    let probe_login = logins.as_ref().map(|_| Arc::new(probe::ProbeLogin::new()));
    if let (Some(logins), Some(probe)) = (logins, &probe_login) {
        let servers = settings.v4.iter_mut().chain(settings.v5.iter_mut());
        for server in servers.flat_map(|listeners| listeners.values_mut()) {
            let (logins, probe) = (logins.clone(), probe.clone());
            server.set_auth_handler(move |_client, user: String, password: String| {
                let is_probe = user == probe.username && password == probe.password;
                std::future::ready(is_probe || logins.verify(&user, &password))
            });
        }
    }
    let mut broker = rumqttd::Broker::new(settings);
    let link_error = |e: rumqttd::local::LinkError| StartError::Link(e.to_string());
    // The tap's link only reads and the outbox's only writes, so the tap's scheduling in the
    // router never depends on edgemq's own publications.
    let (mut tap_tx, tap_rx) = broker.link(TAP_CLIENT_ID).map_err(link_error)?;
    tap_tx.subscribe("#").map_err(link_error)?;
    let (outbox_tx, outbox_rx) = broker.link(OUTBOX_CLIENT_ID).map_err(link_error)?;
    let outbox = Arc::new(Outbox::new(outbox_tx));
    let rpc_link = broker.link(RPC_CLIENT_ID).map_err(link_error)?;
    std::thread::Builder::new()
        .name("outbox-link".into())
        .spawn(move || outbox::drain(outbox_rx))?;

    let tap = tap::Tap {
        rx: tap_rx,
        _tx: tap_tx,
        outbox: outbox.clone(),
        intake,
        metrics,
    };
    std::thread::Builder::new()
        .name("store-tap".into())
        .spawn(move || tap.run())?;
    std::thread::Builder::new()
        .name("broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!("broker stopped: {e}");
            }
        })?;

    let listeners = config.mqtt_listeners();
    for &(label, addr) in &listeners {
        let version = if label == "mqtt-v5" { 5 } else { 4 };
        probe::until_connack(
            addr,
            version,
            probe_login.as_deref(),
            Duration::from_secs(5),
        )
        .map_err(|reason| StartError::NotListening {
            label,
            addr,
            reason,
        })?;
    }
    Ok(Broker {
        outbox,
        listeners,
        rpc_link: Some(rpc_link),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_established_connections_on_our_ports() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:075B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0100007F:075B 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0100007F:075B 0100007F:D2F2 01 00000000:00000000 00:00000000 00000000     0        0 3 1
   3: 0100007F:1F40 0100007F:D2F4 01 00000000:00000000 00:00000000 00000000     0        0 4 1
";
        // 0x075B = 1883 (one listening, two established); 0x1F40 = 8000 is not an MQTT port.
        assert_eq!(super::established_on(table, &[1883]), 2);
    }
}
