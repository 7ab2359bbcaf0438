//! The writer thread: takes whatever is queued (up to `batch_max` records), writes it in one
//! transaction, and starts the next batch as soon as that commit ends. No timer: idle means
//! one-message commits with low latency, load means large batches.

use super::retention::Retention;
use super::{AlertChange, Batch, Record};
use crate::metrics::Metrics;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the writer is asked to do.
pub enum StoreOp {
    Batch(Box<Batch>),
    /// Fires once everything queued before it is committed.
    Barrier(flume::Sender<()>),
    /// Commit what came before, close the database and end the thread.
    Stop,
}

/// The running writer: its queue, and the thread to join at the end.
pub struct WriterHandle {
    ops: flume::Sender<StoreOp>,
    thread: JoinHandle<()>,
    committed: tokio::sync::watch::Receiver<i64>,
}

impl WriterHandle {
    /// Where ingest hands its batches.
    pub fn queue(&self) -> flume::Sender<StoreOp> {
        self.ops.clone()
    }

    /// The highest message id committed so far (sessions read the log up to it).
    pub fn committed(&self) -> tokio::sync::watch::Receiver<i64> {
        self.committed.clone()
    }

    /// Commits what is queued, closes the database and waits for the thread to end.
    pub async fn stop(self) {
        let _ = self.ops.send_async(StoreOp::Stop).await;
        let _ = tokio::task::spawn_blocking(move || self.thread.join()).await;
    }
}

/// Batches of records that may wait for the writer; each holds up to `batch_max` messages.
const QUEUED_BATCHES: usize = 4;

/// Starts the writer thread on an open connection where every id up to `committed_through`
/// is already written.
pub fn start_writer(
    conn: Connection,
    batch_max: usize,
    retention: BTreeMap<String, Duration>,
    metrics: Arc<Metrics>,
    committed_through: i64,
) -> std::io::Result<WriterHandle> {
    let (ops, rx) = flume::bounded(QUEUED_BATCHES);
    let (committed_tx, committed) = tokio::sync::watch::channel(committed_through);
    let thread = spawn_writer(conn, rx, batch_max, retention, metrics, committed_tx)?;
    Ok(WriterHandle {
        ops,
        thread,
        committed,
    })
}

/// Starts the writer thread on an open connection, reading `ops`.
fn spawn_writer(
    conn: Connection,
    ops: flume::Receiver<StoreOp>,
    batch_max: usize,
    retention: BTreeMap<String, Duration>,
    metrics: Arc<Metrics>,
    committed: tokio::sync::watch::Sender<i64>,
) -> std::io::Result<JoinHandle<()>> {
    let retention = Retention::new(retention);
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            Writer {
                conn,
                metrics,
                retention,
                size_measured: None,
                committed,
            }
            .run(ops, batch_max)
        })
}

struct Writer {
    conn: Connection,
    metrics: Arc<Metrics>,
    retention: Retention,
    /// When the database's size on disk was last measured for `/metrics`.
    size_measured: Option<Instant>,
    /// The highest message id committed.
    committed: tokio::sync::watch::Sender<i64>,
}

impl Writer {
    fn run(mut self, ops: flume::Receiver<StoreOp>, batch_max: usize) {
        let mut batch = Batch::default();
        let mut barriers = Vec::new();
        loop {
            let mut stop = false;
            self.prune();
            self.measure_size();
            let first = match ops.recv_timeout(Duration::from_millis(500)) {
                Ok(op) => op,
                Err(flume::RecvTimeoutError::Timeout) => continue,
                Err(flume::RecvTimeoutError::Disconnected) => break,
            };
            let mut next = Some(first);
            while let Some(op) = next.take() {
                match op {
                    StoreOp::Batch(mut more) => batch.append(&mut more),
                    StoreOp::Barrier(done) => barriers.push(done),
                    StoreOp::Stop => {
                        stop = true;
                        break;
                    }
                }
                if batch.messages() < batch_max {
                    next = ops.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.commit_until_written(&batch);
                super::receipt::release(&batch.receipts);
                if let Some(last) = batch.last_id() {
                    self.committed.send_if_modified(|through| {
                        let newer = last > *through;
                        *through = (*through).max(last);
                        newer
                    });
                }
                batch = Batch::default();
            }
            for done in barriers.drain(..) {
                let _ = done.send(());
            }
            if stop {
                break;
            }
        }
        if let Err((_, e)) = self.conn.close() {
            tracing::error!("closing the database: {e}");
        }
    }

    /// The database's size on disk, at most once a second.
    fn measure_size(&mut self) {
        if self
            .size_measured
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.size_measured = Some(Instant::now());
        if let Some(path) = self.conn.path() {
            let size = super::size_on_disk(std::path::Path::new(path));
            self.metrics.database_size.store(size, Relaxed);
        }
    }

    /// One round of retention, when due; failures are logged and retried next round.
    fn prune(&mut self) {
        match self.retention.maybe_run(&self.conn, crate::clock::now_ms()) {
            Ok(0) => {}
            Ok(n) => {
                self.metrics.pruned.fetch_add(n, Relaxed);
            }
            Err(e) => tracing::error!("retention: {e}"),
        }
    }

    /// Retries a failing batch (disk full, locked database) rather than dropping it; upstream
    /// queues fill meanwhile and the failure is visible in /health and /metrics.
    fn commit_until_written(&mut self, batch: &Batch) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let started = Instant::now();
            match self.write(batch) {
                Ok(()) => {
                    self.metrics.observe_commit(
                        batch.records.len(),
                        batch.dead_letters.len(),
                        started.elapsed(),
                    );
                    self.metrics.database_ok.store(true, Relaxed);
                    if !batch.webhooks.is_empty() {
                        self.metrics.webhooks_written.notify_one();
                    }
                    return;
                }
                Err(e) => {
                    self.metrics.store_errors.fetch_add(1, Relaxed);
                    self.metrics.database_ok.store(false, Relaxed);
                    tracing::error!(
                        "store: writing {} messages failed, retrying in {backoff:?}: {e}",
                        batch.messages()
                    );
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    fn write(&mut self, batch: &Batch) -> rusqlite::Result<()> {
        write_batch(&mut self.conn, batch)
    }
}

/// Writes everything in `batch` in one transaction.
pub fn write_batch(conn: &mut Connection, batch: &Batch) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    insert_records(&tx, &batch.records)?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO dead_letters (id, received_at, topic, payload, reason, qos, properties,
                                       client_id, username, retain)
             VALUES (nullif(?1, 0), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for d in &batch.dead_letters {
            let p = d.publisher.as_ref();
            insert.execute((
                d.id,
                d.received_at,
                &d.topic,
                d.payload.as_ref(),
                &d.reason,
                p.map_or(0, |p| p.qos),
                &d.properties,
                p.map(|p| p.client_id.as_ref()),
                p.and_then(|p| p.username.as_deref()),
                p.map(|p| p.retain),
            ))?;
        }
    }
    {
        let mut update = tx.prepare_cached(
            "UPDATE devices SET is_online = coalesce(?2, is_online),
                    ip_address = coalesce(?3, ip_address),
                    firmware_version = coalesce(?4, firmware_version),
                    uptime = coalesce(?5, uptime)
                 WHERE device_id = ?1",
        )?;
        for d in &batch.devices {
            update.execute((
                &d.device_id,
                d.online,
                &d.ip_address,
                &d.firmware_version,
                d.uptime,
            ))?;
        }
    }
    {
        // Only the last value of each state in the batch matters.
        let mut last = HashMap::new();
        for s in &batch.states {
            last.insert((&s.device_id, &s.name), s);
        }
        let mut upsert = tx.prepare_cached(
                "INSERT INTO device_state (device_id, name, value, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (device_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )?;
        for s in last.values() {
            upsert.execute((&s.device_id, &s.name, &s.value, s.at))?;
        }
    }
    write_alerts(&tx, &batch.alerts)?;
    write_totals(&tx, batch)?;
    write_retained(&tx, &batch.retained)?;
    write_sessions(&tx, &batch.sessions)?;
    super::actions::write_webhooks(&tx, &batch.webhooks)?;
    super::actions::write_rule_values(&tx, &batch.rule_values)?;
    tx.commit()
}

/// Saves or ends persistent sessions.
fn write_sessions(
    tx: &rusqlite::Transaction,
    sessions: &[super::SessionChange],
) -> rusqlite::Result<()> {
    use super::SessionChange;
    let mut save = tx.prepare_cached(
        "INSERT OR REPLACE INTO sessions
           (client_id, subscriptions, acked_through, sent_through, expires_at, updated_at,
            expiry_interval)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut end = tx.prepare_cached("DELETE FROM sessions WHERE client_id = ?1")?;
    let now = crate::clock::now_ms();
    for change in sessions {
        match change {
            SessionChange::Save(s) => {
                let subscriptions = serde_json::to_string(&s.subscriptions).unwrap_or_default();
                let row = (&s.client_id, subscriptions, s.acked_through, s.sent_through);
                let expiry = (s.expires_at, now, s.expiry_interval);
                save.execute((row.0, row.1, row.2, row.3, expiry.0, expiry.1, expiry.2))?;
            }
            SessionChange::End(client_id) => {
                end.execute([client_id])?;
            }
        }
    }
    Ok(())
}

/// Sets or (empty payload) clears each topic's retained message.
fn write_retained(
    tx: &rusqlite::Transaction,
    changes: &[super::RetainedChange],
) -> rusqlite::Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut set = tx.prepare_cached(
        "INSERT INTO retained (topic, payload, qos, updated_at, properties)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (topic) DO UPDATE SET payload = excluded.payload, qos = excluded.qos,
            updated_at = excluded.updated_at, properties = excluded.properties",
    )?;
    let mut clear = tx.prepare_cached("DELETE FROM retained WHERE topic = ?1")?;
    for c in changes {
        if c.payload.is_empty() {
            clear.execute([&c.topic])?;
        } else {
            set.execute((&c.topic, c.payload.as_ref(), c.qos, c.at, &c.properties))?;
        }
    }
    Ok(())
}

/// Adds the batch's telemetry totals to `metric_minutes` and `metric_stats`.
fn write_totals(tx: &rusqlite::Transaction, batch: &Batch) -> rusqlite::Result<()> {
    let mut minutes = tx.prepare_cached(
        "INSERT INTO metric_minutes (device_id, metric, minute, count, min, max, sum)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (device_id, metric, minute) DO UPDATE SET count = count + excluded.count,
            min = min(min, excluded.min), max = max(max, excluded.max), sum = sum + excluded.sum",
    )?;
    let mut stats = tx.prepare_cached(
        "INSERT INTO metric_stats (device_id, metric, count, min, max, sum) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (device_id, metric) DO UPDATE SET count = count + excluded.count,
            min = min(min, excluded.min), max = max(max, excluded.max), sum = sum + excluded.sum",
    )?;
    for (device, entries) in &batch.totals {
        for e in entries {
            let t = &e.totals;
            minutes.execute((
                device,
                &e.metric,
                e.minute,
                t.count as i64,
                t.min,
                t.max,
                t.sum,
            ))?;
            stats.execute((device, &e.metric, t.count as i64, t.min, t.max, t.sum))?;
        }
    }
    Ok(())
}

fn insert_records(tx: &rusqlite::Transaction, records: &[Record]) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO messages (id, received_at, topic, payload, device_id, kind, device_time,
                               client_id, username, qos, retain, properties)
         VALUES (nullif(?1, 0), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    // Each device's registry entry is touched once per batch, with its latest message.
    let mut seen: HashMap<&str, (i64, i64, &Record)> = HashMap::new();
    let mut topics: std::collections::HashSet<(&str, &str)> = Default::default();
    for r in records {
        let publisher = r.publisher.as_ref();
        insert.execute((
            r.id,
            r.received_at,
            &r.topic,
            r.payload.as_ref(),
            &r.device_id,
            r.kind,
            r.device_time,
            publisher.map(|p| p.client_id.as_ref()),
            publisher.and_then(|p| p.username.as_deref()),
            publisher.map(|p| p.qos),
            publisher.map(|p| p.retain),
            &r.properties,
        ))?;
        if let Some(id) = &r.device_id {
            topics.insert((&r.topic, id));
            seen.entry(id)
                .and_modify(|(_, last, latest)| {
                    *last = r.received_at;
                    *latest = r;
                })
                .or_insert((r.received_at, r.received_at, r));
        }
    }
    let mut upsert = tx.prepare_cached(
        "INSERT INTO devices (device_id, first_seen, last_seen, is_online, last_topic, last_payload)
         VALUES (?1, ?2, ?3, 1, ?4, ?5)
         ON CONFLICT (device_id) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen),
            last_topic = excluded.last_topic, last_payload = excluded.last_payload",
    )?;
    for (id, (first, last, latest)) in seen {
        upsert.execute((id, first, last, &latest.topic, latest.payload.as_ref()))?;
    }
    let mut pair = tx
        .prepare_cached("INSERT OR IGNORE INTO topic_devices (topic, device_id) VALUES (?1, ?2)")?;
    for (topic, device) in topics {
        pair.execute((topic, device))?;
    }
    Ok(())
}

fn write_alerts(tx: &rusqlite::Transaction, alerts: &[AlertChange]) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO alerts (id, device_id, type, metric, value, threshold, raised_at, cleared_at, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut clear = tx.prepare_cached("UPDATE alerts SET cleared_at = ?2 WHERE id = ?1")?;
    for change in alerts {
        match change {
            AlertChange::Raised(a) => {
                insert.execute((
                    a.id,
                    &a.device_id,
                    &a.alert_type,
                    &a.metric,
                    a.value,
                    a.threshold,
                    a.raised_at,
                    a.cleared_at,
                    a.payload.to_string(),
                ))?;
            }
            AlertChange::Cleared(a) => {
                clear.execute((a.id, a.cleared_at))?;
            }
        }
    }
    Ok(())
}
