//! Retention: old messages of a kind are deleted in small steps between batches, so ingest
//! never stalls. Ids grow with arrival time, so each kind keeps a cursor and walks the id space
//! a window at a time instead of scanning the table.

use rusqlite::{Connection, OptionalExtension};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Ids examined per step.
const WINDOW: i64 = 5000;
/// Time one round of steps may take.
const ROUND_BUDGET: Duration = Duration::from_millis(20);
/// Time between rounds.
const ROUND_EVERY: Duration = Duration::from_millis(250);

struct KindRetention {
    kind: String,
    keep_ms: i64,
    /// Every row of this kind at or below this id is known to be gone.
    cursor: Option<i64>,
}

pub struct Retention {
    kinds: Vec<KindRetention>,
    last_round: Instant,
}

impl Retention {
    pub fn new(retention: BTreeMap<String, Duration>) -> Retention {
        let kinds = retention
            .into_iter()
            .map(|(kind, keep)| KindRetention {
                kind,
                keep_ms: keep.as_millis() as i64,
                cursor: None,
            })
            .collect();
        Retention {
            kinds,
            last_round: Instant::now(),
        }
    }

    /// Runs a round if one is due; returns how many rows it deleted.
    pub fn maybe_run(&mut self, conn: &Connection, now_ms: i64) -> rusqlite::Result<u64> {
        if self.kinds.is_empty() || self.last_round.elapsed() < ROUND_EVERY {
            return Ok(0);
        }
        self.last_round = Instant::now();
        let started = Instant::now();
        let mut deleted = 0;
        for k in &mut self.kinds {
            while started.elapsed() < ROUND_BUDGET {
                let (n, more) = k.step(conn, now_ms)?;
                deleted += n;
                if !more {
                    break;
                }
            }
        }
        Ok(deleted)
    }
}

impl KindRetention {
    /// Deletes expired rows in the next window; `more` when the window was wholly expired.
    fn step(&mut self, conn: &Connection, now_ms: i64) -> rusqlite::Result<(u64, bool)> {
        let cursor = match self.cursor {
            Some(c) => c,
            None => conn.query_row("SELECT coalesce(min(id), 1) - 1 FROM messages", [], |r| {
                r.get(0)
            })?,
        };
        let end = cursor + WINDOW;
        let cutoff = now_ms - self.keep_ms;
        let deleted = conn.execute(
            "DELETE FROM messages WHERE id > ?1 AND id <= ?2 AND coalesce(kind, 'raw') = ?3 AND received_at < ?4",
            (cursor, end, &self.kind, cutoff),
        )?;
        let next: Option<i64> = conn
            .query_row(
                "SELECT received_at FROM messages WHERE id > ?1 ORDER BY id LIMIT 1",
                [end],
                |r| r.get(0),
            )
            .optional()?;
        let wholly_expired = next.is_some_and(|t| t < cutoff);
        self.cursor = Some(if wholly_expired { end } else { cursor });
        Ok((deleted as u64, wholly_expired))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletes_only_expired_rows_of_the_kind() {
        let conn = crate::store::open_writer(
            std::path::Path::new(":memory:"),
            crate::store::Synchronous::Normal,
        )
        .unwrap();
        let now = 10_000_000_000;
        for i in 0..20_000i64 {
            let kind = if i % 2 == 0 { Some("telemetry") } else { None };
            let at = now - 1_000_000 + i * 10; // 20,000 rows over 200 s
            conn.execute(
                "INSERT INTO messages (received_at, topic, payload, kind, device_time) VALUES (?1, 't', x'00', ?2, ?1)",
                (at, kind),
            )
            .unwrap();
        }
        let mut r = Retention::new(BTreeMap::from([(
            "telemetry".to_string(),
            Duration::from_millis(900_000),
        )]));
        r.last_round = Instant::now() - ROUND_EVERY;
        let mut deleted = 0;
        for _ in 0..10 {
            deleted += r.maybe_run(&conn, now).unwrap();
            r.last_round = Instant::now() - ROUND_EVERY;
        }
        // Rows older than now - 900 s: the first 10,000, of which half are telemetry.
        assert_eq!(deleted, 5_000);
        let raw: i64 = conn
            .query_row(
                "SELECT count(*) FROM messages WHERE kind IS NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(raw, 10_000);
    }
}
