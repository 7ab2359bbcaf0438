//! The store: one writer thread owns the write connection and group-commits what ingest hands
//! it; readers open their own connections. The schema is `schema.sql`, applied at start-up.

mod writer;

pub use writer::{spawn_writer, StoreOp};

use crate::config::Synchronous;
use bytes::Bytes;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// The schema, applied idempotently every time the store opens.
pub const SCHEMA: &str = include_str!("../../schema.sql");

/// One message as it is written to `messages`.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Unix milliseconds when edgemq received it.
    pub received_at: i64,
    pub topic: String,
    pub payload: Bytes,
    pub device_id: Option<String>,
    pub kind: Option<String>,
    /// The device's own timestamp, unix milliseconds.
    pub device_time: Option<i64>,
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
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Opens a read-only connection; the database must exist.
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Rows in `messages`.
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
