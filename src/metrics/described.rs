//! Every metric described once: its Prometheus name, help text, kind, the `$SYS/broker/...`
//! topics Mosquitto users know it by, and how to read it. `/metrics` and `$SYS` are both made
//! from `METRICS`, so a metric cannot be added to one and forgotten in the other.

use super::Metrics;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One metric.
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// Its `$SYS/broker/...` topics (Mosquitto's names), if any.
    pub sys: &'static [&'static str],
    /// Appended to the value on `$SYS` (Mosquitto writes "12 seconds").
    pub sys_unit: &'static str,
    pub read: fn(&Metrics) -> u64,
}

const fn counter(name: &'static str, help: &'static str, read: fn(&Metrics) -> u64) -> Metric {
    Metric {
        name,
        help,
        kind: Kind::Counter,
        sys: &[],
        sys_unit: "",
        read,
    }
}

const fn gauge(name: &'static str, help: &'static str, read: fn(&Metrics) -> u64) -> Metric {
    Metric {
        kind: Kind::Gauge,
        ..counter(name, help, read)
    }
}

impl Metric {
    const fn sys(self, topics: &'static [&'static str]) -> Metric {
        Metric {
            sys: topics,
            ..self
        }
    }
}

/// Every plain metric, in the order `/metrics` lists them.
pub const METRICS: &[Metric] = &[
    counter(
        "edgemq_received_total",
        "Publishes received from clients (last wills included).",
        |m| m.received.load(Relaxed),
    )
    .sys(&["publish/messages/received"]),
    counter(
        "edgemq_stored_total",
        "Messages committed to the database since start.",
        |m| m.stored.load(Relaxed),
    )
    .sys(&["store/messages/stored"]),
    counter("edgemq_sent_total", "Publishes sent to clients.", |m| {
        m.sent.load(Relaxed)
    })
    .sys(&["publish/messages/sent"]),
    counter(
        "edgemq_packets_received_total",
        "MQTT packets of every kind received from clients.",
        |m| m.packets_received.load(Relaxed),
    )
    .sys(&["messages/received"]),
    counter(
        "edgemq_packets_sent_total",
        "MQTT packets of every kind sent to clients.",
        |m| m.packets_sent.load(Relaxed),
    )
    .sys(&["messages/sent"]),
    counter(
        "edgemq_bytes_received_total",
        "Bytes received from MQTT clients.",
        |m| m.bytes_received.load(Relaxed),
    )
    .sys(&["bytes/received"]),
    counter(
        "edgemq_bytes_sent_total",
        "Bytes sent to MQTT clients.",
        |m| m.bytes_sent.load(Relaxed),
    )
    .sys(&["bytes/sent"]),
    counter(
        "edgemq_held_back_total",
        "Times a connection waited for room in the store's queue (TCP backpressure).",
        |m| m.held_back.load(Relaxed),
    ),
    counter(
        "edgemq_connections_total",
        "MQTT connections accepted since start.",
        |m| m.connections_total.load(Relaxed),
    )
    .sys(&["clients/total"]),
    counter(
        "edgemq_connections_refused_total",
        "MQTT connections refused: a bad login, an unknown protocol, no or a malformed CONNECT.",
        |m| m.connections_refused.load(Relaxed),
    ),
    counter(
        "edgemq_delivered_from_store_total",
        "Deliveries read from the store because their client had fallen behind live delivery.",
        |m| m.delivered_from_store.load(Relaxed),
    ),
    counter(
        "edgemq_router_skips_total",
        "Times a session found that the router had skipped copies for it (read from the store).",
        |m| m.router_skips.load(Relaxed),
    ),
    counter(
        "edgemq_denied_publishes_total",
        "Publishes the ACL did not allow (not stored, not routed).",
        |m| m.denied_publishes.load(Relaxed),
    ),
    counter(
        "edgemq_denied_subscriptions_total",
        "Subscriptions refused because the ACL lets the client read nothing they match.",
        |m| m.denied_subscriptions.load(Relaxed),
    ),
    counter(
        "edgemq_denied_deliveries_total",
        "Messages not sent to a subscriber because the ACL does not let it read their topic.",
        |m| m.denied_deliveries.load(Relaxed),
    ),
    counter(
        "edgemq_denied_wills_total",
        "Last wills not published because the ACL does not let their client publish there.",
        |m| m.denied_wills.load(Relaxed),
    ),
    gauge(
        "edgemq_bridges_connected",
        "Bridges connected to their upstream broker now.",
        |m| m.over_bridges(|b| b.connected.load(Relaxed) as u64),
    ),
    counter(
        "edgemq_bridged_total",
        "Messages bridges forwarded upstream and had acknowledged (QoS 1) or sent (QoS 0).",
        |m| m.over_bridges(|b| b.forwarded.load(Relaxed)),
    ),
    gauge(
        "edgemq_bridges_configured",
        "Bridges configured ([[bridge]] or `connection` in mosquitto.conf).",
        |m| m.bridges().len() as u64,
    ),
    gauge(
        "edgemq_bridge_backlog",
        "Messages in the store after the bridges' cursors, over all bridges.",
        |m| m.over_bridges(|b| b.backlog.load(Relaxed)),
    ),
    counter(
        "edgemq_bridged_in_total",
        "Messages bridges brought in from upstream, stored and acknowledged.",
        |m| m.over_bridges(|b| b.brought_in.load(Relaxed)),
    ),
    gauge(
        "edgemq_webhook_outbox",
        "Webhook calls of rule actions waiting to be sent (or sent again).",
        |m| m.webhook_outbox.load(Relaxed),
    ),
    counter(
        "edgemq_http_refused_total",
        "HTTP connections closed at once because [http] max_connections were open.",
        |m| m.http_refused.load(Relaxed),
    ),
    counter(
        "edgemq_store_errors_total",
        "Failed store transactions (each retried).",
        |m| m.store_errors.load(Relaxed),
    ),
    counter(
        "edgemq_dead_letters_total",
        "Messages on a route refused by decoding or validation.",
        |m| m.dead_letters.load(Relaxed),
    ),
    counter(
        "edgemq_future_timestamps_total",
        "Device times too far ahead, replaced by the arrival time.",
        |m| m.future_times.load(Relaxed),
    ),
    counter("edgemq_alerts_raised_total", "Alerts raised.", |m| {
        m.alerts_raised.load(Relaxed)
    }),
    counter("edgemq_alerts_cleared_total", "Alerts cleared.", |m| {
        m.alerts_cleared.load(Relaxed)
    }),
    counter(
        "edgemq_pruned_total",
        "Old messages removed by retention.",
        |m| m.pruned.load(Relaxed),
    ),
    counter(
        "edgemq_commits_total",
        "Store transactions committed.",
        |m| m.commits.load(Relaxed),
    ),
    gauge(
        "edgemq_queue_depth",
        "Messages waiting between the front door and the store.",
        |m| m.queue_depth.load(Relaxed),
    ),
    gauge(
        "edgemq_sessions_away",
        "Persistent sessions kept while their clients are away.",
        |m| m.sessions_away.load(Relaxed),
    )
    .sys(&["clients/disconnected"]),
    counter(
        "edgemq_sessions_expired_total",
        "Persistent sessions removed because they expired.",
        |m| m.sessions_expired.load(Relaxed),
    )
    .sys(&["clients/expired"]),
    gauge(
        "edgemq_sessions_queued",
        "Deliveries waiting for their clients or in flight, over all sessions.",
        |m| m.sessions_queued.load(Relaxed),
    )
    .sys(&["clients/queued"]),
    gauge("edgemq_connected_clients", "MQTT clients connected.", |m| {
        m.connected_clients.load(Relaxed)
    })
    .sys(&["clients/connected", "clients/active"]),
    gauge(
        "edgemq_database_size_bytes",
        "Database size on disk, WAL included.",
        |m| m.database_size.load(Relaxed),
    ),
    gauge(
        "edgemq_messages_in_database",
        "Rows in the messages table.",
        Metrics::messages_in_database,
    ),
    Metric {
        sys_unit: " seconds",
        ..gauge(
            "edgemq_uptime_seconds",
            "Seconds since edgemq started.",
            |m| m.started.elapsed().as_secs(),
        )
        .sys(&["uptime"])
    },
];

/// Why something was given up on: one series each of `edgemq_dropped_total{reason="..."}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The notifier's queue was full: a batch's live events were not shown on the dashboard
    /// (all of it is stored and published).
    NoticeQueueFull,
    /// The router refused an MQTT reply.
    ReplyNotPublished,
    /// A packet could not be encoded for its client.
    EncodeFailed,
    /// A last will could not be handed to the router or the store.
    WillNotPublished,
    /// A client with a will was still connected when edgemq stopped (wills are not sent then).
    WillAtShutdown,
    /// The router refused a message's copy: stored, but not delivered live.
    NotRouted,
    /// A slow client already had the most deliveries waiting: stored, not delivered to it.
    SessionQueueFull,
    /// A client had `max_queued_messages` / `max_queued_bytes` waiting: not delivered to it.
    QueueLimit,
    /// The delivery would have been larger than the client's MQTT 5 Maximum Packet Size.
    PacketTooLarge,
    /// Its MQTT 5 Message Expiry Interval ran out before it was sent to a subscriber.
    Expired,
    /// A shared subscription's message its member could not take (its queue full, or it left
    /// before acknowledging), with no other member of the group connected.
    NoGroupMember,
}

impl Dropped {
    pub const ALL: [Dropped; 11] = [
        Dropped::NoticeQueueFull,
        Dropped::ReplyNotPublished,
        Dropped::EncodeFailed,
        Dropped::WillNotPublished,
        Dropped::WillAtShutdown,
        Dropped::NotRouted,
        Dropped::SessionQueueFull,
        Dropped::QueueLimit,
        Dropped::PacketTooLarge,
        Dropped::Expired,
        Dropped::NoGroupMember,
    ];

    /// The `reason` label.
    pub fn reason(self) -> &'static str {
        match self {
            Dropped::NoticeQueueFull => "notice_queue_full",
            Dropped::ReplyNotPublished => "reply_not_published",
            Dropped::EncodeFailed => "encode_failed",
            Dropped::WillNotPublished => "will_not_published",
            Dropped::WillAtShutdown => "will_at_shutdown",
            Dropped::NotRouted => "not_routed",
            Dropped::SessionQueueFull => "session_queue_full",
            Dropped::QueueLimit => "queue_limit",
            Dropped::PacketTooLarge => "packet_too_large",
            Dropped::Expired => "expired",
            Dropped::NoGroupMember => "no_group_member",
        }
    }

    /// Whether it is a message not delivered to a subscriber (Mosquitto's
    /// `$SYS/broker/publish/messages/dropped`).
    pub fn is_delivery(self) -> bool {
        !matches!(self, Dropped::NoticeQueueFull | Dropped::WillAtShutdown)
    }
}

impl Metrics {
    /// Everything, in Prometheus text format.
    pub fn prometheus(&self) -> String {
        let mut out = String::with_capacity(8192);
        for metric in METRICS {
            let kind = match metric.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let (name, help, value) = (metric.name, metric.help, (metric.read)(self));
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let name = "edgemq_dropped_total";
        let _ = writeln!(
            out,
            "# HELP {name} Things given up on, by reason.\n# TYPE {name} counter"
        );
        for why in Dropped::ALL {
            let value = self.dropped_by_reason[why as usize].load(Relaxed);
            let _ = writeln!(out, "{name}{{reason=\"{}\"}} {value}", why.reason());
        }
        self.commit_seconds.render(
            "edgemq_commit_seconds",
            "Time to write and commit one batch.",
            &mut out,
        );
        self.batch_size.render(
            "edgemq_batch_size",
            "Messages per committed batch.",
            &mut out,
        );
        super::bridges::render(self.bridges(), &mut out);
        super::rules::render(self.rules(), &mut out);
        out
    }

    /// Every `$SYS/broker/...` topic a metric is known by, with its value now; then
    /// `publish/messages/dropped` (Mosquitto's: messages not delivered to a subscriber) and
    /// edgemq's `dropped/<reason>` for each reason.
    pub fn sys_topics(&self) -> Vec<(String, String)> {
        let mut topics: Vec<(String, String)> = METRICS
            .iter()
            .flat_map(|metric| {
                let value = format!("{}{}", (metric.read)(self), metric.sys_unit);
                metric
                    .sys
                    .iter()
                    .map(move |topic| (format!("$SYS/broker/{topic}"), value.clone()))
            })
            .collect();
        let dropped = |why: Dropped| self.dropped_by_reason[why as usize].load(Relaxed);
        let deliveries: u64 = Dropped::ALL
            .into_iter()
            .filter(|why| why.is_delivery())
            .map(dropped)
            .sum();
        topics.push((
            "$SYS/broker/publish/messages/dropped".into(),
            deliveries.to_string(),
        ));
        for why in Dropped::ALL {
            let topic = format!("$SYS/broker/dropped/{}", why.reason());
            topics.push((topic, dropped(why).to_string()));
        }
        topics.extend(super::bridges::sys_topics(self.bridges()));
        topics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_named_once_and_rendered() {
        let m = Metrics::default();
        m.dropped(Dropped::WillAtShutdown);
        let text = m.prometheus();
        for metric in METRICS {
            assert_eq!(
                METRICS.iter().filter(|x| x.name == metric.name).count(),
                1,
                "{}",
                metric.name
            );
            assert!(
                text.contains(&format!("\n{} ", metric.name)),
                "{}",
                metric.name
            );
        }
        assert!(text.contains("edgemq_dropped_total{reason=\"will_at_shutdown\"} 1\n"));
    }
}
