//! A bridge's place in the log, kept in the `bridges` table on a connection of its own.

use rusqlite::{Connection, OptionalExtension};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Bridge `name`'s row.
#[derive(Clone)]
pub struct Cursor {
    conn: Arc<Mutex<Connection>>,
    name: String,
}

impl Cursor {
    pub fn open(database: &Path, name: &str) -> rusqlite::Result<Cursor> {
        let conn = Connection::open(database)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Cursor {
            conn: Arc::new(Mutex::new(conn)),
            name: name.to_string(),
        })
    }

    /// The saved cursor, if the bridge has one.
    pub async fn load(&self) -> Result<Option<i64>, String> {
        let this = self.clone();
        let load = move || {
            let conn = this.conn.lock().unwrap_or_else(|e| e.into_inner());
            let sql = "SELECT acked_through FROM bridges WHERE name = ?1";
            conn.query_row(sql, [&this.name], |r| r.get(0)).optional()
        };
        let loaded = tokio::task::spawn_blocking(load).await;
        loaded
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Saves the cursor; a failure is logged (the next save tries again).
    pub async fn save(&self, acked_through: i64) {
        let this = self.clone();
        let save = move || {
            let conn = this.conn.lock().unwrap_or_else(|e| e.into_inner());
            conn.execute(
                "INSERT INTO bridges (name, acked_through, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET acked_through = ?2, updated_at = ?3",
                (&this.name, acked_through, crate::clock::now_ms()),
            )
        };
        if let Ok(Err(e)) = tokio::task::spawn_blocking(save).await {
            tracing::warn!("bridge {}: cannot save its cursor: {e}", self.name);
        }
    }
}
