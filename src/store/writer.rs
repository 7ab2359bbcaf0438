//! The writer thread: takes whatever is queued (up to `batch_max` records), writes it in one
//! transaction, and starts the next batch as soon as that commit ends. No timer: idle means
//! one-message commits with low latency, load means large batches.

use super::Record;
use crate::metrics::Metrics;
use rusqlite::Connection;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the writer is asked to do.
pub enum StoreOp {
    Records(Vec<Record>),
    /// Fires once everything queued before it is committed.
    Barrier(flume::Sender<()>),
    /// Commit what came before, close the database and end the thread.
    Stop,
}

/// Starts the writer thread on an open connection.
pub fn spawn_writer(
    conn: Connection,
    ops: flume::Receiver<StoreOp>,
    batch_max: usize,
    metrics: Arc<Metrics>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || Writer { conn, metrics }.run(ops, batch_max))
}

struct Writer {
    conn: Connection,
    metrics: Arc<Metrics>,
}

impl Writer {
    fn run(mut self, ops: flume::Receiver<StoreOp>, batch_max: usize) {
        let mut records: Vec<Record> = Vec::new();
        let mut barriers = Vec::new();
        loop {
            let mut stop = false;
            let Ok(first) = ops.recv() else { break };
            let mut next = Some(first);
            while let Some(op) = next.take() {
                match op {
                    StoreOp::Records(mut batch) => records.append(&mut batch),
                    StoreOp::Barrier(done) => barriers.push(done),
                    StoreOp::Stop => {
                        stop = true;
                        break;
                    }
                }
                if records.len() < batch_max {
                    next = ops.try_recv().ok();
                }
            }
            if !records.is_empty() {
                self.commit_until_written(&records);
                records.clear();
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

    /// Retries a failing batch (disk full, locked database) rather than dropping it; upstream
    /// queues fill meanwhile and the failure is visible in /health and /metrics.
    fn commit_until_written(&mut self, records: &[Record]) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let started = Instant::now();
            match self.write(records) {
                Ok(()) => {
                    self.metrics
                        .observe_commit(records.len(), started.elapsed());
                    self.metrics.database_ok.store(true, Relaxed);
                    return;
                }
                Err(e) => {
                    self.metrics.store_errors.fetch_add(1, Relaxed);
                    self.metrics.database_ok.store(false, Relaxed);
                    tracing::error!(
                        "store: writing {} messages failed, retrying in {backoff:?}: {e}",
                        records.len()
                    );
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    fn write(&mut self, records: &[Record]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO messages (received_at, topic, payload, device_id, kind, device_time)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for r in records {
                insert.execute((
                    r.received_at,
                    &r.topic,
                    r.payload.as_ref(),
                    &r.device_id,
                    &r.kind,
                    r.device_time,
                ))?;
            }
        }
        tx.commit()
    }
}
