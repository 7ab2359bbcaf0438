//! Each bridge's state as the bridge reports it: connected or not, where, how far behind, how
//! much it forwarded and brought in, and what failed. `/metrics` (labelled by bridge),
//! `/health`, `/api/v1/bridges`, the dashboard and `$SYS/broker/connection/...` read it.

use serde::Serialize;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// One bridge's state.
#[derive(Default)]
pub struct BridgeStatus {
    pub name: String,
    /// Its client id upstream.
    pub client_id: String,
    /// Where Mosquitto's `notifications` put its state locally (`1` connected, `0` not); none
    /// when notifications are off.
    pub notification_topic: Option<String>,
    pub connected: AtomicBool,
    /// The upstream it is connected to, or last tried.
    pub address: Mutex<String>,
    /// Why the last connection ended or failed.
    pub last_error: Mutex<Option<String>>,
    /// Messages in the store after its cursor (it has still to look at them).
    pub backlog: AtomicU64,
    /// Seconds since the oldest message after its cursor arrived (0 when caught up).
    pub behind_seconds: AtomicU64,
    /// The last id of the log forwarded and acknowledged (or not for the upstream).
    pub acked_through: AtomicI64,
    /// Messages forwarded and acknowledged (QoS 1) or sent (QoS 0).
    pub forwarded: AtomicU64,
    /// Messages brought in from upstream, stored and acknowledged.
    pub brought_in: AtomicU64,
    /// Connections refused or lost.
    pub connection_failures: AtomicU64,
    /// Messages the upstream refused (an MQTT 5 PUBACK with an error reason); counted, not sent
    /// again.
    pub refused: AtomicU64,
}

/// What `/api/v1/bridges` and `/health` show of one bridge.
#[derive(Serialize)]
pub struct BridgeView {
    pub name: String,
    pub client_id: String,
    pub connected: bool,
    pub address: String,
    pub last_error: Option<String>,
    pub backlog: u64,
    pub behind_seconds: u64,
    pub forwarded: u64,
    pub brought_in: u64,
    pub connection_failures: u64,
    pub refused: u64,
}

impl BridgeStatus {
    pub fn new(name: &str, client_id: String, notification_topic: Option<String>) -> BridgeStatus {
        BridgeStatus {
            name: name.to_string(),
            client_id,
            notification_topic,
            ..Default::default()
        }
    }

    /// A connection failed or ended, and why.
    pub fn failed(&self, why: &str) {
        self.connection_failures.fetch_add(1, Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.to_string());
    }

    pub fn view(&self) -> BridgeView {
        let text = |m: &Mutex<String>| m.lock().unwrap_or_else(|e| e.into_inner()).clone();
        BridgeView {
            name: self.name.clone(),
            client_id: self.client_id.clone(),
            connected: self.connected.load(Relaxed),
            address: text(&self.address),
            last_error: (self.last_error.lock().unwrap_or_else(|e| e.into_inner())).clone(),
            backlog: self.backlog.load(Relaxed),
            behind_seconds: self.behind_seconds.load(Relaxed),
            forwarded: self.forwarded.load(Relaxed),
            brought_in: self.brought_in.load(Relaxed),
            connection_failures: self.connection_failures.load(Relaxed),
            refused: self.refused.load(Relaxed),
        }
    }
}

/// The labelled per-bridge series, in Prometheus text format.
pub fn render(bridges: &[std::sync::Arc<BridgeStatus>], out: &mut String) {
    type Read = fn(&BridgeStatus) -> u64;
    let series: [(&str, &str, &str, Read); 7] = [
        (
            "edgemq_bridge_up",
            "gauge",
            "1 while the bridge is connected upstream.",
            |b| b.connected.load(Relaxed) as u64,
        ),
        (
            "edgemq_bridge_backlog_messages",
            "gauge",
            "Messages in the store after the bridge's cursor.",
            |b| b.backlog.load(Relaxed),
        ),
        (
            "edgemq_bridge_behind_seconds",
            "gauge",
            "Age of the oldest message after the bridge's cursor (0: caught up).",
            |b| b.behind_seconds.load(Relaxed),
        ),
        (
            "edgemq_bridge_forwarded_total",
            "counter",
            "Messages forwarded upstream and acknowledged (QoS 1) or sent (QoS 0).",
            |b| b.forwarded.load(Relaxed),
        ),
        (
            "edgemq_bridge_received_total",
            "counter",
            "Messages brought in from upstream, stored and acknowledged.",
            |b| b.brought_in.load(Relaxed),
        ),
        (
            "edgemq_bridge_connection_failures_total",
            "counter",
            "Connections to the upstream refused or lost.",
            |b| b.connection_failures.load(Relaxed),
        ),
        (
            "edgemq_bridge_refused_total",
            "counter",
            "Messages the upstream refused (MQTT 5 PUBACK with an error).",
            |b| b.refused.load(Relaxed),
        ),
    ];
    for (name, kind, help, read) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for b in bridges {
            let _ = writeln!(out, "{name}{{bridge=\"{}\"}} {}", escape(&b.name), read(b));
        }
    }
}

/// A label value as Prometheus wants it.
pub(super) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Mosquitto's bridge notifications under `$SYS`: each bridge's state topic and `1` or `0`
/// (a `notification_topic` outside `$SYS` is published as a retained message instead).
pub fn sys_topics(bridges: &[std::sync::Arc<BridgeStatus>]) -> Vec<(String, String)> {
    bridges
        .iter()
        .filter_map(|b| {
            let topic = b
                .notification_topic
                .as_ref()
                .filter(|t| t.starts_with("$SYS/"))?;
            let state = if b.connected.load(Relaxed) { "1" } else { "0" };
            Some((topic.clone(), state.to_string()))
        })
        .collect()
}
