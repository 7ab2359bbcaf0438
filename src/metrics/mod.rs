//! Counters every stage updates and `/health`, `/metrics` and `$SYS` read: what was received,
//! sent, stored, refused and dropped (with the reason), and how the store's commits are doing.
//! Lock-free: atomics only. Each one's name, help text, kind and `$SYS` topics are described
//! once, in `described`, and both `/metrics` and `$SYS` are made from that description.

mod bridges;
mod described;
mod rules;

pub use bridges::{BridgeStatus, BridgeView};
pub use rules::{ActionStatus, RuleStatus};

pub use described::{Dropped, Kind, Metric, METRICS};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the commit latency histogram buckets.
pub const COMMIT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Upper bounds of the batch size histogram buckets.
pub const BATCH_BUCKETS: [f64; 8] = [1.0, 10.0, 100.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0];

pub struct Metrics {
    /// When edgemq started.
    pub started: Instant,
    /// Rows `messages` held when edgemq started.
    pub stored_at_start: AtomicU64,
    /// The database's size on disk, WAL included, as the writer last saw it.
    pub database_size: AtomicU64,
    /// Publishes received from clients (last wills included).
    pub received: AtomicU64,
    /// Publishes sent to clients.
    pub sent: AtomicU64,
    /// MQTT packets of every kind received from and sent to clients.
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Client connections accepted (CONNACK success) since start.
    pub connections_total: AtomicU64,
    /// Connections refused before or at CONNECT.
    pub connections_refused: AtomicU64,
    /// HTTP connections closed at once because `[http] max_connections` were open.
    pub http_refused: AtomicU64,
    /// Deliveries read from the store for clients that fell behind.
    pub delivered_from_store: AtomicU64,
    /// Times a session found that the router had skipped copies for it.
    pub router_skips: AtomicU64,
    /// What the ACL refused: publishes, subscriptions, deliveries and wills.
    pub denied_publishes: AtomicU64,
    pub denied_subscriptions: AtomicU64,
    pub denied_deliveries: AtomicU64,
    pub denied_wills: AtomicU64,
    /// Each configured bridge's state, set once at start.
    pub bridges: std::sync::OnceLock<Vec<std::sync::Arc<BridgeStatus>>>,
    /// Each rule in force, with its actions' counts, set once at start.
    pub rules: std::sync::OnceLock<Vec<std::sync::Arc<RuleStatus>>>,
    /// Webhook calls waiting in the outbox (as the sender last counted them).
    pub webhook_outbox: AtomicU64,
    /// Woken when a commit put webhook calls in the outbox.
    pub webhooks_written: tokio::sync::Notify,
    /// Woken when something `$SYS` shows changed and should go out before the next interval
    /// (a bridge connecting or going away).
    pub sys_changed: tokio::sync::Notify,
    /// Things given up on, by reason (`Dropped`).
    pub dropped_by_reason: [AtomicU64; Dropped::ALL.len()],
    /// Messages committed to the `messages` table.
    pub stored: AtomicU64,
    /// Failed store transactions.
    pub store_errors: AtomicU64,
    /// Messages on a route that failed decoding or validation (counted once stored).
    pub dead_letters: AtomicU64,
    /// Device times too far in the future, replaced by the arrival time.
    pub future_times: AtomicU64,
    pub alerts_raised: AtomicU64,
    pub alerts_cleared: AtomicU64,
    /// Old rows removed by retention.
    pub pruned: AtomicU64,
    /// Unix milliseconds of the last device message received; 0 = none yet.
    pub last_message_ms: AtomicU64,
    /// MQTT clients connected now.
    pub connected_clients: AtomicU64,
    /// Persistent sessions kept while their clients are away.
    pub sessions_away: AtomicU64,
    /// Persistent sessions removed because they expired.
    pub sessions_expired: AtomicU64,
    /// Deliveries waiting for their clients and in flight, over all sessions (refreshed
    /// about once a second).
    pub sessions_queued: AtomicU64,
    /// Messages waiting between the front door and ingest (sampled by ingest per batch, and
    /// set to the capacity when a connection finds the queue full).
    pub queue_depth: AtomicU64,
    /// Times a connection found the queue full and stopped reading until there was room.
    pub held_back: AtomicU64,
    pub commits: AtomicU64,
    pub commit_seconds: Histogram<12>,
    pub batch_size: Histogram<8>,
    /// The MQTT listener is bound and accepting.
    pub listeners_up: AtomicBool,
    /// The writer can write (false after a failed transaction until the next success).
    pub database_ok: AtomicBool,
}

/// A Prometheus-style cumulative histogram over fixed buckets.
pub struct Histogram<const N: usize> {
    bounds: [f64; N],
    counts: [AtomicU64; N],
    count: AtomicU64,
    /// Sum in millionths of the unit, to stay an integer.
    sum_micros: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    pub fn new(bounds: [f64; N]) -> Self {
        Histogram {
            bounds,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add((value * 1e6) as u64, Relaxed);
    }

    /// Appends the histogram in Prometheus text format.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

impl Default for Histogram<12> {
    fn default() -> Self {
        Histogram::new(COMMIT_BUCKETS)
    }
}

impl Default for Histogram<8> {
    fn default() -> Self {
        Histogram::new(BATCH_BUCKETS)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: Instant::now(),
            stored_at_start: Default::default(),
            database_size: Default::default(),
            received: Default::default(),
            sent: Default::default(),
            packets_received: Default::default(),
            packets_sent: Default::default(),
            bytes_received: Default::default(),
            bytes_sent: Default::default(),
            connections_total: Default::default(),
            connections_refused: Default::default(),
            delivered_from_store: Default::default(),
            router_skips: Default::default(),
            denied_publishes: Default::default(),
            denied_subscriptions: Default::default(),
            denied_deliveries: Default::default(),
            denied_wills: Default::default(),
            bridges: Default::default(),
            rules: Default::default(),
            webhook_outbox: Default::default(),
            webhooks_written: Default::default(),
            sys_changed: Default::default(),
            http_refused: Default::default(),
            dropped_by_reason: Default::default(),
            stored: Default::default(),
            store_errors: Default::default(),
            dead_letters: Default::default(),
            future_times: Default::default(),
            alerts_raised: Default::default(),
            alerts_cleared: Default::default(),
            pruned: Default::default(),
            last_message_ms: Default::default(),
            connected_clients: Default::default(),
            sessions_away: Default::default(),
            sessions_expired: Default::default(),
            sessions_queued: Default::default(),
            queue_depth: Default::default(),
            held_back: Default::default(),
            commits: Default::default(),
            commit_seconds: Default::default(),
            batch_size: Default::default(),
            listeners_up: Default::default(),
            database_ok: Default::default(),
        }
    }
}

impl Metrics {
    /// The configured bridges' states (none before the bridges start).
    pub fn bridges(&self) -> &[std::sync::Arc<BridgeStatus>] {
        self.bridges.get().map(Vec::as_slice).unwrap_or_default()
    }

    /// The rules in force with their counts (none before ingest starts).
    pub fn rules(&self) -> &[std::sync::Arc<RuleStatus>] {
        self.rules.get().map(Vec::as_slice).unwrap_or_default()
    }

    /// Sums `read` over the bridges.
    pub fn over_bridges(&self, read: impl Fn(&BridgeStatus) -> u64) -> u64 {
        self.bridges().iter().map(|b| read(b)).sum()
    }

    /// Counts one thing given up on.
    pub fn dropped(&self, why: Dropped) {
        self.dropped_by_reason[why as usize].fetch_add(1, Relaxed);
    }

    /// Messages received this run that are neither stored nor stored as dead letters yet.
    pub fn not_yet_stored(&self) -> u64 {
        let settled = self.stored.load(Relaxed) + self.dead_letters.load(Relaxed);
        self.received.load(Relaxed).saturating_sub(settled)
    }

    /// Rows in `messages` now.
    pub fn messages_in_database(&self) -> u64 {
        self.stored_at_start.load(Relaxed) + self.stored.load(Relaxed)
    }

    /// Everything refused or failed: dead letters and failed store transactions.
    pub fn errors(&self) -> u64 {
        self.dead_letters.load(Relaxed) + self.store_errors.load(Relaxed)
    }

    /// A committed batch of `batch` messages and `dead_letters` dead letters.
    pub fn observe_commit(&self, batch: usize, dead_letters: usize, took: Duration) {
        self.commits.fetch_add(1, Relaxed);
        self.stored.fetch_add(batch as u64, Relaxed);
        self.dead_letters.fetch_add(dead_letters as u64, Relaxed);
        self.commit_seconds.observe(took.as_secs_f64());
        self.batch_size.observe(batch as f64);
    }
}
