//! A writable connection of its own, beside the writer's, for a stage that keeps a small table
//! of its own (a bridge's cursor in `bridges`, the webhook sender's `webhook_outbox`). Used off
//! the async runtime, one statement at a time.

use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub struct SideConnection(Arc<Mutex<Connection>>);

impl SideConnection {
    pub fn open(database: &Path) -> rusqlite::Result<SideConnection> {
        let conn = Connection::open(database)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(SideConnection(Arc::new(Mutex::new(conn))))
    }

    /// Runs `f` on the connection on a blocking thread.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let conn = self.0.clone();
        let ran = tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await;
        ran.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
    }
}
