//! The store: one writer thread owns the write connection and group-commits what ingest hands
//! it; readers open their own connections. The schema is `schema.sql`, applied at start-up.

mod actions;
mod config;
pub mod properties;
mod receipt;
mod retention;
mod side;
mod state;
mod writer;

pub use actions::{Command, RuleValue, WebhookCall};
pub use config::{StoreSection, Synchronous};
pub use receipt::{Receipt, Receipts};
pub use side::SideConnection;
pub use state::{load_retained, load_rules_state, RulesState, StoredRetained};

pub use writer::{start_writer, write_batch, StoreOp, WriterHandle};

use crate::metrics::Metrics;
use bytes::Bytes;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::Arc;

/// The store, started: the writer, and what the database remembers from earlier runs.
pub struct Started {
    pub writer: WriterHandle,
    /// Rows in `messages` at start.
    pub stored_at_start: u64,
    pub rules_state: RulesState,
    /// Retained messages, to give back to the broker.
    pub retained: Vec<StoredRetained>,
    /// The id the next message received gets: past every message and dead letter kept.
    pub next_id: i64,
    /// Persistent sessions that have not expired.
    pub sessions: Vec<SavedSession>,
}

/// Opens the database (applying the schema), reads what the other stages need from it, and
/// starts the writer. The error is one line naming the database.
pub fn start(section: &StoreSection, metrics: Arc<Metrics>) -> Result<Started, String> {
    let path = section.path.display();
    let conn = open_writer(&section.path, section.synchronous)
        .map_err(|e| format!("cannot open database {path}: {e}"))?;
    let cannot_read = |e: rusqlite::Error| format!("cannot read database {path}: {e}");
    let stored_at_start = count_messages(&conn).map_err(cannot_read)?;
    let rules_state = load_rules_state(&conn).map_err(cannot_read)?;
    let retained = load_retained(&conn).map_err(cannot_read)?;
    let next_id = next_id(&conn).map_err(cannot_read)?;
    let now = crate::clock::now_ms();
    let expired = state::forget_expired_sessions(&conn, now).map_err(cannot_read)?;
    if expired > 0 {
        tracing::info!("{expired} persistent sessions expired while edgemq was stopped");
        metrics
            .sessions_expired
            .fetch_add(expired as u64, std::sync::atomic::Ordering::Relaxed);
    }
    let sessions = state::load_sessions(&conn, now).map_err(cannot_read)?;
    metrics
        .stored_at_start
        .store(stored_at_start, std::sync::atomic::Ordering::Relaxed);
    metrics
        .database_ok
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let retention = section.retention.clone();
    let writer = start_writer(conn, section.batch_max, retention, metrics, next_id - 1)
        .map_err(|e| format!("cannot start the store's writer: {e}"))?;
    Ok(Started {
        writer,
        stored_at_start,
        rules_state,
        retained,
        next_id,
        sessions,
    })
}

/// The schema, applied idempotently every time the store opens.
pub const SCHEMA: &str = include_str!("../../schema.sql");

/// One message as it is written to `messages`.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Its place in the log of everything received, shared with `dead_letters`: ingest numbers
    /// each message in the order it hands copies to the router.
    pub id: i64,
    /// Unix milliseconds when edgemq received it.
    pub received_at: i64,
    pub topic: String,
    pub payload: Bytes,
    pub device_id: Option<String>,
    /// The route's kind; `None` for a topic no route matches.
    pub kind: Option<&'static str>,
    /// The device's own time in unix milliseconds, else `received_at`.
    pub device_time: i64,
    /// Who published it and how; `None` when not known.
    pub publisher: Option<Publisher>,
    /// Its MQTT 5 properties as kept (`properties::to_column`).
    pub properties: Option<String>,
}

/// The client a message came from (a last will: the client that left it) and how it was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Publisher {
    pub client_id: Arc<str>,
    /// The username it logged in with, if any.
    pub username: Option<Arc<str>>,
    pub qos: u8,
    pub retain: bool,
}

/// A retained message set (or, with an empty payload, cleared) on a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct RetainedChange {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub at: i64,
    /// Its MQTT 5 properties as kept (`properties::to_column`).
    pub properties: Option<String>,
}

/// A persistent session as it is kept in `sessions`.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedSession {
    pub client_id: String,
    /// (filter, granted QoS, MQTT 5 subscription identifier)
    pub subscriptions: Vec<(String, u8, Option<usize>)>,
    pub acked_through: i64,
    pub sent_through: i64,
    /// Unix ms; None while connected, or when it never expires.
    pub expires_at: Option<i64>,
    /// Seconds it outlives its client; None: for ever.
    pub expiry_interval: Option<u64>,
}

/// A persistent session saved, or ended (a clean start, an expiry).
#[derive(Debug, Clone, PartialEq)]
pub enum SessionChange {
    Save(SavedSession),
    End(String),
}

/// A message on a route that failed decoding or validation.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Numbered with the messages (see `Record::id`).
    pub id: i64,
    pub received_at: i64,
    pub topic: String,
    pub payload: Bytes,
    pub reason: String,
    /// Who published it, with its QoS and retain flag (none: edgemq's own).
    pub publisher: Option<Publisher>,
    /// Its MQTT 5 properties as kept (`properties::to_column`).
    pub properties: Option<String>,
}

/// A change to a device's registry entry; `None` fields are left as they are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceChange {
    pub device_id: String,
    pub online: Option<bool>,
    pub ip_address: Option<String>,
    pub firmware_version: Option<String>,
    pub uptime: Option<i64>,
}

/// A device's current value of a named state (`relay/0`, `eb`, `avg/temperature`).
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    pub device_id: String,
    pub name: String,
    pub value: String,
    pub at: i64,
}

/// An alert as stored and as published on MQTT.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Alert {
    pub id: i64,
    pub device_id: String,
    #[serde(rename = "type")]
    pub alert_type: String,
    pub metric: Option<String>,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub raised_at: i64,
    pub cleared_at: Option<i64>,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AlertChange {
    Raised(Alert),
    /// The alert, with `cleared_at` set.
    Cleared(Alert),
}

/// Count, min, max and sum of one metric of one device over some readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Totals {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
}

impl Totals {
    pub fn of(value: f64) -> Totals {
        Totals {
            count: 1,
            min: value,
            max: value,
            sum: value,
        }
    }

    pub fn add(&mut self, value: f64) {
        self.merge(&Totals::of(value));
    }

    pub fn merge(&mut self, other: &Totals) {
        self.count += other.count;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }
}

/// Everything one transaction writes.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<Record>,
    pub dead_letters: Vec<DeadLetter>,
    pub devices: Vec<DeviceChange>,
    pub states: Vec<StateChange>,
    pub alerts: Vec<AlertChange>,
    /// Telemetry totals of this batch by device, then metric and minute: added to
    /// `metric_minutes` and, summed over minutes, to `metric_stats`.
    pub totals: rustc_hash::FxHashMap<String, Vec<MinuteTotals>>,
    pub retained: Vec<RetainedChange>,
    /// Persistent sessions saved or ended.
    pub sessions: Vec<SessionChange>,
    /// What rule actions do: commands to publish, webhook calls, on_change values.
    pub commands: Vec<Command>,
    pub webhooks: Vec<WebhookCall>,
    pub rule_values: Vec<RuleValue>,
    /// Released once this batch is committed: the senders' acknowledgements wait on them.
    pub receipts: Vec<Receipt>,
}

/// Totals of one metric of one device within one minute of device time.
#[derive(Debug, Clone, PartialEq)]
pub struct MinuteTotals {
    pub metric: String,
    /// Unix minutes.
    pub minute: i64,
    pub totals: Totals,
}

impl Batch {
    /// Adds a reading to the device's totals for that metric and minute.
    pub fn add_reading(&mut self, device: &str, metric: &str, minute: i64, value: f64) {
        let list = match self.totals.get_mut(device) {
            Some(list) => list,
            None => self.totals.entry(device.to_string()).or_default(),
        };
        match list
            .iter_mut()
            .find(|e| e.minute == minute && e.metric == metric)
        {
            Some(entry) => entry.totals.add(value),
            None => list.push(MinuteTotals {
                metric: metric.to_string(),
                minute,
                totals: Totals::of(value),
            }),
        }
    }
}

impl Batch {
    /// The highest message (or dead letter) id in the batch.
    pub fn last_id(&self) -> Option<i64> {
        let records = self.records.iter().map(|r| r.id);
        records.chain(self.dead_letters.iter().map(|d| d.id)).max()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.dead_letters.is_empty()
            && self.devices.is_empty()
            && self.states.is_empty()
            && self.alerts.is_empty()
            && self.totals.is_empty()
            && self.retained.is_empty()
            && self.sessions.is_empty()
            && self.receipts.is_empty()
            && self.commands.is_empty()
            && self.webhooks.is_empty()
            && self.rule_values.is_empty()
    }

    /// Messages in the batch (records and dead letters): what `batch_max` bounds.
    pub fn messages(&self) -> usize {
        self.records.len() + self.dead_letters.len()
    }

    pub fn append(&mut self, other: &mut Batch) {
        self.records.append(&mut other.records);
        self.dead_letters.append(&mut other.dead_letters);
        self.devices.append(&mut other.devices);
        self.states.append(&mut other.states);
        self.alerts.append(&mut other.alerts);
        self.retained.append(&mut other.retained);
        self.sessions.append(&mut other.sessions);
        self.receipts.append(&mut other.receipts);
        self.commands.append(&mut other.commands);
        self.webhooks.append(&mut other.webhooks);
        self.rule_values.append(&mut other.rule_values);
        for (device, entries) in other.totals.drain() {
            let mine = self.totals.entry(device).or_default();
            for entry in entries {
                let same =
                    |e: &&mut MinuteTotals| e.minute == entry.minute && e.metric == entry.metric;
                match mine.iter_mut().find(same) {
                    Some(existing) => existing.totals.merge(&entry.totals),
                    None => mine.push(entry),
                }
            }
        }
    }
}

/// Opens the database for writing, creating it and its tables when missing.
pub fn open_writer(path: &Path, synchronous: Synchronous) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    // 16 MiB of page cache keeps the indexes' hot pages in the writer instead of re-reading them.
    conn.pragma_update(None, "cache_size", -16384)?;
    conn.execute_batch(SCHEMA)?;
    add_missing_columns(&conn)?;
    replace_topic_index(&conn)?;
    Ok(conn)
}

/// Databases made before `topic_devices` have an index on every message's topic: fill
/// `topic_devices` from their messages once, then drop that index.
fn replace_topic_index(conn: &Connection) -> rusqlite::Result<()> {
    let old: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'messages_topic_time'",
        [],
        |r| r.get(0),
    )?;
    if old > 0 {
        conn.execute_batch(
            "BEGIN;
             INSERT OR IGNORE INTO topic_devices (topic, device_id)
                 SELECT DISTINCT topic, device_id FROM messages WHERE device_id IS NOT NULL;
             DROP INDEX messages_topic_time;
             COMMIT;",
        )?;
    }
    Ok(())
}

/// Columns added after a table's first release, for databases made before them.
fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    for (table, column, ty) in [
        ("messages", "client_id", "TEXT"),
        ("messages", "username", "TEXT"),
        ("messages", "qos", "INTEGER"),
        ("messages", "retain", "INTEGER"),
        ("messages", "properties", "TEXT"),
        ("dead_letters", "qos", "INTEGER"),
        ("dead_letters", "properties", "TEXT"),
        ("dead_letters", "client_id", "TEXT"),
        ("dead_letters", "username", "TEXT"),
        ("dead_letters", "retain", "INTEGER"),
        ("retained", "properties", "TEXT"),
        ("sessions", "expiry_interval", "INTEGER"),
    ] {
        let exists: bool = conn.query_row(
            "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
            (table, column),
            |r| r.get(0),
        )?;
        if !exists {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {ty}"))?;
        }
    }
    Ok(())
}

/// Opens a read-only connection; the database must exist.
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Rows in `messages`.
/// One past the highest id of any message or dead letter, or any a saved session has seen
/// (ids are never reused, even when retention has deleted the newest rows).
pub fn next_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT max(coalesce((SELECT max(id) FROM messages), 0),
                    coalesce((SELECT max(id) FROM dead_letters), 0),
                    coalesce((SELECT max(sent_through) FROM sessions), 0)) + 1",
        [],
        |r| r.get(0),
    )
}

pub fn count_messages(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
}

/// Bytes the database occupies on disk, WAL included.
pub fn size_on_disk(path: &Path) -> u64 {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    [path.as_os_str(), wal.as_os_str()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_topic_index_is_replaced_by_topic_devices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE messages (id INTEGER PRIMARY KEY, received_at INTEGER NOT NULL,
                 topic TEXT NOT NULL, payload BLOB NOT NULL, device_id TEXT, kind TEXT,
                 device_time INTEGER);
             CREATE INDEX messages_topic_time ON messages (topic, received_at);
             INSERT INTO messages (received_at, topic, payload, device_id, kind, device_time)
             VALUES (1, 'sensors/s1', x'7b7d', 's1', 'telemetry', 1),
                    (2, 'raw/x', x'00', NULL, NULL, 2);",
        )
        .unwrap();
        drop(old);
        let conn = open_writer(&path, Synchronous::Normal).unwrap();
        let pairs: Vec<(String, String)> = conn
            .prepare("SELECT topic, device_id FROM topic_devices")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(pairs, [("sensors/s1".to_string(), "s1".to_string())]);
        let old_index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'messages_topic_time'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(old_index, 0);
        // Opening again changes nothing.
        drop(conn);
        open_writer(&path, Synchronous::Normal).unwrap();
    }
}
