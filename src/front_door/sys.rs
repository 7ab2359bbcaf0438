//! `$SYS/broker/...`: Mosquitto's common broker statistics. rumqttd's router refuses `$`
//! filters, so the front door answers `$SYS` subscriptions itself: a task rebuilds the tree
//! every `sys_interval`, and each connection sends the topics its `$SYS` filters match.

use crate::metrics::Metrics;
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The current `$SYS` topics and their values.
pub type SysTree = Arc<Vec<(String, Bytes)>>;

/// Rebuilds the tree every `interval` until every receiver is gone.
pub async fn publish(
    metrics: Arc<Metrics>,
    started: Instant,
    interval: Duration,
    tree: tokio::sync::watch::Sender<SysTree>,
) {
    let mut ticks = tokio::time::interval(interval);
    loop {
        ticks.tick().await;
        if tree.send(Arc::new(build(&metrics, started))).is_err() {
            return;
        }
    }
}

/// The tree now.
pub fn build(m: &Metrics, started: Instant) -> Vec<(String, Bytes)> {
    let count = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed).to_string();
    let entries = [
        (
            "version",
            format!("edgemq version {}", env!("CARGO_PKG_VERSION")),
        ),
        ("uptime", format!("{} seconds", started.elapsed().as_secs())),
        ("clients/connected", count(&m.connected_clients)),
        ("clients/active", count(&m.connected_clients)),
        ("clients/total", count(&m.connections_total)),
        ("messages/received", count(&m.packets_received)),
        ("messages/sent", count(&m.packets_sent)),
        ("publish/messages/received", count(&m.received)),
        ("publish/messages/sent", count(&m.sent)),
        ("bytes/received", count(&m.bytes_received)),
        ("bytes/sent", count(&m.bytes_sent)),
        ("store/messages/stored", count(&m.stored)),
    ];
    entries
        .into_iter()
        .map(|(name, value)| (format!("$SYS/broker/{name}"), Bytes::from(value)))
        .collect()
}

/// Whether `filter` is answered here rather than by the router.
pub fn is_sys_filter(filter: &str) -> bool {
    filter == "$SYS" || filter.starts_with("$SYS/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_has_mosquittos_common_topics() {
        let m = Metrics::default();
        m.connected_clients.store(3, Relaxed);
        let tree = build(&m, Instant::now());
        let get = |t: &str| {
            tree.iter()
                .find(|(topic, _)| topic == t)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("$SYS/broker/clients/connected"), Some(Bytes::from("3")));
        assert_eq!(get("$SYS/broker/uptime"), Some(Bytes::from("0 seconds")));
        assert!(get("$SYS/broker/messages/received").is_some());
        assert!(is_sys_filter("$SYS/#") && !is_sys_filter("$SYSTEM/x"));
    }
}
