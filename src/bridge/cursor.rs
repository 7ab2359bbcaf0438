//! A bridge's place in the log, kept in the `bridges` table on a connection of its own.

use crate::store::SideConnection;
use rusqlite::OptionalExtension;
use std::path::Path;

/// Bridge `name`'s row.
pub struct Cursor {
    conn: SideConnection,
    name: String,
}

impl Cursor {
    pub fn open(database: &Path, name: &str) -> rusqlite::Result<Cursor> {
        Ok(Cursor {
            conn: SideConnection::open(database)?,
            name: name.to_string(),
        })
    }

    /// The saved cursor, if the bridge has one.
    pub async fn load(&self) -> Result<Option<i64>, String> {
        let name = self.name.clone();
        let sql = "SELECT acked_through FROM bridges WHERE name = ?1";
        let load =
            move |c: &rusqlite::Connection| c.query_row(sql, [name], |r| r.get(0)).optional();
        self.conn.run(load).await
    }

    /// Saves the cursor; a failure is logged (the next save tries again).
    pub async fn save(&self, acked_through: i64) {
        let name = self.name.clone();
        let save = move |c: &rusqlite::Connection| {
            c.execute(
                "INSERT INTO bridges (name, acked_through, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET acked_through = ?2, updated_at = ?3",
                (&name, acked_through, crate::clock::now_ms()),
            )
        };
        if let Err(e) = self.conn.run(save).await {
            tracing::warn!("bridge {}: cannot save its cursor: {e}", self.name);
        }
    }
}
