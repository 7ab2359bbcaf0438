//! Keeps a bridge's backlog figures up to date, once a second: how many messages the store
//! holds after its cursor and how long ago the oldest of them arrived.

use super::Context;
use crate::metrics::BridgeStatus;
use rusqlite::OptionalExtension;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

pub async fn watch(status: Arc<BridgeStatus>, mut context: Context) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = context.stopping.wait() => return,
        }
        let committed = *context.committed.borrow();
        let through = status.acked_through.load(Relaxed);
        let backlog = (committed - through).max(0) as u64;
        status.backlog.store(backlog, Relaxed);
        let behind = match backlog {
            0 => 0,
            _ => oldest_after(&context, through)
                .await
                .map_or(0, |at| (crate::clock::now_ms() - at).max(0) as u64 / 1000),
        };
        status.behind_seconds.store(behind, Relaxed);
    }
}

/// When the first message after `id` arrived (unix ms).
async fn oldest_after(context: &Context, id: i64) -> Option<i64> {
    let sql = "SELECT received_at FROM messages WHERE id > ?1 ORDER BY id LIMIT 1";
    let first = context
        .log
        .run(move |c| c.query_row(sql, [id], |r| r.get(0)).optional())
        .await;
    first.ok().flatten()
}
