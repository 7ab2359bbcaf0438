//! Every listening socket, bound before anything starts (a busy port stops edgemq before it
//! touches the database), and the ready line that says where each one is.

use super::StartError;
use crate::config::Config;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// An MQTT listening socket: its label, whether it speaks WebSockets, whether TLS.
pub(super) struct MqttListener(pub &'static str, pub TcpListener, pub bool, pub bool);

/// Every listening socket, bound before anything starts.
pub(super) struct Listeners {
    pub mqtt: Vec<MqttListener>,
    pub http: TcpListener,
}

impl Listeners {
    pub async fn bind(config: &Config) -> Result<Listeners, StartError> {
        let m = &config.mqtt;
        let wanted = [
            ("mqtt", Some(m.listen), false, false),
            (
                "mqtt-ws",
                m.websocket.then_some(m.websocket_listen),
                true,
                false,
            ),
            ("mqtts", m.tls_listen, false, true),
            ("mqtt-wss", m.websocket_tls_listen, true, true),
        ];
        let mut mqtt = Vec::new();
        for (label, addr, websocket, tls) in wanted {
            if let Some(addr) = addr {
                mqtt.push(MqttListener(
                    label,
                    bind(label, addr).await?,
                    websocket,
                    tls,
                ));
            }
        }
        Ok(Listeners {
            mqtt,
            http: bind("http", config.http.listen).await?,
        })
    }

    /// Where each listener is bound (port 0 is a free port now).
    pub fn addrs(&self) -> std::io::Result<Bound> {
        let mqtt = self
            .mqtt
            .iter()
            .map(|l| Ok((l.0, l.1.local_addr()?)))
            .collect::<std::io::Result<_>>()?;
        Ok(Bound {
            mqtt,
            http: self.http.local_addr()?,
        })
    }
}

/// The bound addresses, labelled as the ready line shows them.
pub struct Bound {
    /// `mqtt`, then `mqtt-ws`, `mqtts` and `mqtt-wss` when they are on.
    pub mqtt: Vec<(&'static str, SocketAddr)>,
    pub http: SocketAddr,
}

impl Bound {
    /// The ready line (tests and scripts read the addresses from it) and the dashboard's URL.
    pub(super) fn announce(&self, config: &Config, stored_at_start: u64) {
        let mqtt: Vec<String> = self
            .mqtt
            .iter()
            .map(|(label, addr)| format!("{label}={addr}"))
            .collect();
        tracing::info!(
            "edgemq ready: {} http={} db={} ({stored_at_start} messages)",
            mqtt.join(" "),
            self.http,
            config.store.path.display()
        );
        let host = match self.http.ip() {
            ip if ip.is_unspecified() => "localhost".to_string(),
            ip => ip.to_string(),
        };
        let scheme = match config.http.tls().is_set() {
            true => "https",
            false => "http",
        };
        tracing::info!("dashboard: {scheme}://{host}:{}/", self.http.port());
    }
}

async fn bind(label: &str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            StartError(format!("{label} address {addr} is already in use"))
        } else {
            StartError(format!("{label} address {addr} cannot be bound: {e}"))
        }
    })
}
