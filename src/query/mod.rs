//! The read side shared by HTTP and RPC: a small pool of read-only connections and the queries
//! the APIs make. Every query is served by an index; nothing here writes.

pub mod log;
pub mod messages;
pub mod native;
pub mod rpc;
pub mod seeds;

use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Idle read connections kept for reuse.
const POOL_SIZE: usize = 4;

pub struct Db {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("query task failed: {0}")]
    Task(String),
}

impl Db {
    pub fn new(path: PathBuf) -> Arc<Db> {
        Arc::new(Db {
            path,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` on a read connection, on the calling thread.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, QueryError> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => crate::store::open_reader(&self.path)?,
        };
        let result = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL_SIZE {
            idle.push(conn);
        }
        Ok(result?)
    }

    /// Runs `f` on a read connection off the async runtime.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, QueryError> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.with(f))
            .await
            .map_err(|e| QueryError::Task(e.to_string()))?
    }
}

/// A payload as JSON when it is JSON, else as text.
pub fn payload_json(payload: &[u8]) -> serde_json::Value {
    serde_json::from_slice(payload).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(payload).into_owned())
    })
}
