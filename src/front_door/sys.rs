//! `$SYS/broker/...`: Mosquitto's common broker statistics. rumqttd's router refuses `$`
//! filters, so the front door answers `$SYS` subscriptions itself: a task rebuilds the tree
//! every `sys_interval` (and at once when a bridge connects or goes away), and each connection
//! sends the topics its `$SYS` filters match.

use crate::metrics::Metrics;
use crate::shutdown::Stopping;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

/// The current `$SYS` topics and their values.
pub type SysTree = Arc<Vec<(String, Bytes)>>;

/// Rebuilds the tree every `interval` until the stop, or until every receiver is gone.
pub async fn publish(
    metrics: Arc<Metrics>,
    interval: Duration,
    tree: tokio::sync::watch::Sender<SysTree>,
    mut stopping: Stopping,
) {
    let mut ticks = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = metrics.sys_changed.notified() => {}
            _ = stopping.wait() => return,
        }
        if tree.send(Arc::new(build(&metrics))).is_err() {
            return;
        }
    }
}

/// The tree now: edgemq's version and every metric that has a `$SYS` name.
pub fn build(m: &Metrics) -> Vec<(String, Bytes)> {
    let version = format!("edgemq version {}", env!("CARGO_PKG_VERSION"));
    std::iter::once(("$SYS/broker/version".to_string(), version))
        .chain(m.sys_topics())
        .map(|(topic, value)| (topic, Bytes::from(value)))
        .collect()
}

/// Whether `filter` is answered here rather than by the router.
pub fn is_sys_filter(filter: &str) -> bool {
    filter == "$SYS" || filter.starts_with("$SYS/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    #[test]
    fn the_tree_has_mosquittos_common_topics() {
        let m = Metrics::default();
        m.connected_clients.store(3, Relaxed);
        let tree = build(&m);
        let get = |t: &str| {
            tree.iter()
                .find(|(topic, _)| topic == t)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("$SYS/broker/clients/connected"), Some(Bytes::from("3")));
        assert_eq!(get("$SYS/broker/uptime"), Some(Bytes::from("0 seconds")));
        assert!(get("$SYS/broker/messages/received").is_some());
        m.dropped(crate::metrics::Dropped::QueueLimit);
        m.dropped(crate::metrics::Dropped::NoticeQueueFull);
        let tree = build(&m);
        let get = |t: &str| {
            tree.iter()
                .find(|(topic, _)| topic == t)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            get("$SYS/broker/publish/messages/dropped"),
            Some(Bytes::from("1"))
        );
        assert_eq!(
            get("$SYS/broker/dropped/queue_limit"),
            Some(Bytes::from("1"))
        );
        assert_eq!(
            get("$SYS/broker/dropped/notice_queue_full"),
            Some(Bytes::from("1"))
        );
        assert!(is_sys_filter("$SYS/#") && !is_sys_filter("$SYSTEM/x"));
    }
}
