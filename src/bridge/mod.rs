//! Bridges to other brokers (`[[bridge]]`, Mosquitto's bridge options): each is one more
//! reader of the store's log. Its `out` topics are read from the log after its cursor, in id
//! order, and published upstream with the remote prefix; the cursor advances on the upstream's
//! PUBACKs and is saved about once a second, so an outage of the upstream, a restart of edgemq
//! or `kill -9` loses nothing (QoS 1: what was unacknowledged is sent again).

mod cursor;
mod inbound;
mod out;
mod status;
mod tls;
mod upstream;
mod window;

use crate::metrics::{BridgeStatus, Metrics};
use crate::query::Db;
use crate::shutdown::Stopping;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Which way a bridged topic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Out,
    In,
    Both,
}

/// `bridge_protocol_version`: the MQTT version spoken upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolVersion {
    #[default]
    Mqttv311,
    Mqttv50,
}

/// One `topic PATTERN [out|in|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]` line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeTopic {
    pub pattern: String,
    #[serde(default = "out")]
    pub direction: Direction,
    #[serde(default)]
    pub qos: u8,
    #[serde(default)]
    pub local_prefix: String,
    #[serde(default)]
    pub remote_prefix: String,
}

fn out() -> Direction {
    Direction::Out
}

impl BridgeTopic {
    fn goes_out(&self) -> bool {
        matches!(self.direction, Direction::Out | Direction::Both)
    }

    fn comes_in(&self) -> bool {
        matches!(self.direction, Direction::In | Direction::Both)
    }

    /// The upstream filter it brings in: the remote prefix and the pattern.
    fn remote_filter(&self) -> String {
        format!("{}{}", self.remote_prefix, self.pattern)
    }

    /// The local filter it forwards: the local prefix and the pattern.
    fn local_filter(&self) -> String {
        format!("{}{}", self.local_prefix, self.pattern)
    }

    /// The upstream topic for local `topic` (which matches `local_filter`).
    fn remote_topic(&self, topic: &str) -> String {
        let rest = topic.strip_prefix(&self.local_prefix).unwrap_or(topic);
        format!("{}{rest}", self.remote_prefix)
    }
}

/// `[[bridge]]`: a connection to an upstream broker.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeSection {
    /// Mosquitto's `connection NAME`.
    pub name: String,
    /// `host:port` of the upstream, tried in order (Mosquitto's `address`/`addresses`).
    pub addresses: Vec<String>,
    pub topics: Vec<BridgeTopic>,
    /// The client id upstream; default `<hostname>.<name>`, as Mosquitto's, so two boxes with
    /// the same bridge name do not take each other's place.
    pub remote_clientid: Option<String>,
    pub remote_username: Option<String>,
    pub remote_password: Option<String>,
    /// Start a clean session upstream on each connect (Mosquitto's `cleansession`).
    #[serde(default)]
    pub cleansession: bool,
    #[serde(default = "keepalive", with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// Wait before connecting again after the upstream went away.
    #[serde(default = "restart", with = "humantime_serde")]
    pub restart_timeout: Duration,
    /// Most messages a second forwarded (a long backlog does not flood the upstream); 0: no
    /// limit.
    #[serde(default)]
    pub max_rate: u32,
    /// TLS to the upstream: the CA that signs its certificate (PEM), and this side's
    /// certificate and key when it asks for one.
    pub bridge_cafile: Option<PathBuf>,
    pub bridge_certfile: Option<PathBuf>,
    pub bridge_keyfile: Option<PathBuf>,
    /// A directory of CA certificates (PEM), beside or instead of `bridge_cafile`.
    pub bridge_capath: Option<PathBuf>,
    /// Verify the upstream's certificate chain but not that it names the address connected to
    /// (Mosquitto's, for testing set-ups).
    #[serde(default)]
    pub bridge_insecure: bool,
    #[serde(default)]
    pub bridge_protocol_version: ProtocolVersion,
    /// Mosquitto's `notifications` (on by default): the bridge's state, `1` connected or `0`
    /// not, retained on `notification_topic` locally and upstream (there as its will).
    #[serde(default = "yes")]
    pub notifications: bool,
    /// Default `$SYS/broker/connection/<remote_clientid>/state`, as Mosquitto's.
    pub notification_topic: Option<String>,
    /// The state is published locally only.
    #[serde(default)]
    pub notifications_local_only: bool,
    /// Mosquitto's `round_robin`: false (the default) makes the first address the primary one,
    /// which a bridge connected elsewhere checks every 5 seconds and goes back to once it
    /// answers; true stays wherever it connected.
    #[serde(default)]
    pub round_robin: bool,
}

fn yes() -> bool {
    true
}

fn keepalive() -> Duration {
    Duration::from_secs(60)
}

fn restart() -> Duration {
    Duration::from_secs(5)
}

impl BridgeSection {
    pub fn validate(&self) -> Result<(), String> {
        let at = format!("bridge `{}`", self.name);
        if self.name.is_empty() || self.addresses.is_empty() {
            return Err("bridge: needs a name and at least one address".into());
        }
        for address in &self.addresses {
            if host_port(address).is_none() {
                return Err(format!("{at}: `{address}` is not host:port"));
            }
        }
        if self.bridge_certfile.is_some() != self.bridge_keyfile.is_some() {
            return Err(format!(
                "{at}: bridge_certfile and bridge_keyfile go together"
            ));
        }
        let tls = self.bridge_cafile.is_some() || self.bridge_capath.is_some();
        if self.bridge_certfile.is_some() && !tls {
            return Err(format!(
                "{at}: a client certificate needs bridge_cafile or bridge_capath (TLS)"
            ));
        }
        if self.bridge_insecure && !tls {
            return Err(format!(
                "{at}: bridge_insecure needs bridge_cafile or bridge_capath (TLS)"
            ));
        }
        self.tls().map_err(|e| format!("{at}: {e}"))?;
        if let Some(topic) = &self.notification_topic {
            if !crate::topic::valid_name(topic.as_bytes()) {
                return Err(format!("{at}: notification_topic `{topic}` is not a topic"));
            }
        }
        if self.topics.is_empty() {
            return Err(format!("{at}: needs at least one topic"));
        }
        for t in &self.topics {
            if !crate::topic::valid_filter(&t.local_filter()) || t.qos > 1 {
                return Err(format!(
                    "{at}: topic `{}`: a valid filter with its prefixes, QoS 0 or 1",
                    t.pattern
                ));
            }
        }
        Ok(())
    }

    /// A bridge with this name and every default (Mosquitto's `connection NAME`).
    pub fn named(name: &str) -> BridgeSection {
        BridgeSection {
            name: name.to_string(),
            addresses: Vec::new(),
            topics: Vec::new(),
            remote_clientid: None,
            remote_username: None,
            remote_password: None,
            cleansession: false,
            keepalive_interval: keepalive(),
            restart_timeout: restart(),
            max_rate: 0,
            bridge_cafile: None,
            bridge_certfile: None,
            bridge_keyfile: None,
            bridge_capath: None,
            bridge_insecure: false,
            bridge_protocol_version: ProtocolVersion::default(),
            notifications: true,
            notification_topic: None,
            notifications_local_only: false,
            round_robin: false,
        }
    }

    /// rumqttc's TLS settings for the upstream, when `bridge_cafile` or `bridge_capath` is given.
    fn tls(&self) -> Result<Option<rumqttc::TlsConfiguration>, String> {
        tls::configuration(self)
    }

    /// Its name as the local client of what it brings in.
    fn local_client_id(&self) -> String {
        format!("edgemq-bridge-{}", self.name)
    }

    /// Where its state is published, when notifications are on.
    fn notification_topic(&self) -> Option<String> {
        let default = || format!("$SYS/broker/connection/{}/state", self.client_id());
        self.notifications
            .then(|| self.notification_topic.clone().unwrap_or_else(default))
    }

    fn client_id(&self) -> String {
        self.remote_clientid.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            let host = host.trim();
            let host = if host.is_empty() { "edgemq" } else { host };
            format!("{host}.{}", self.name)
        })
    }
}

/// `host:port`, split.
fn host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    Some((
        host.trim_matches(['[', ']']).to_string(),
        port.parse().ok()?,
    ))
}

/// What every bridge needs from the rest of edgemq.
#[derive(Clone)]
pub struct Context {
    pub log: Arc<Db>,
    pub committed: watch::Receiver<i64>,
    pub database: PathBuf,
    pub metrics: Arc<Metrics>,
    pub stopping: Stopping,
    /// Where what comes in goes to be stored and routed.
    pub intake: flume::Sender<crate::ingest::Intake>,
}

/// Starts every bridge, each on its own task until the stop, and what keeps its backlog
/// figures up to date.
pub fn spawn(bridges: &[BridgeSection], context: Context) {
    let statuses: Vec<Arc<BridgeStatus>> = bridges
        .iter()
        .map(|b| {
            let status = BridgeStatus::new(&b.name, b.client_id(), b.notification_topic());
            Arc::new(status)
        })
        .collect();
    let _ = context.metrics.bridges.set(statuses.clone());
    for (bridge, status) in bridges.iter().zip(statuses) {
        tokio::spawn(status::watch(status.clone(), context.clone()));
        tokio::spawn(out::run(bridge.clone(), status, context.clone()));
    }
}
