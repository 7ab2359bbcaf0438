//! What rule actions leave in a batch, written in the same transaction as the alert change that
//! fired them: commands to publish (numbered and stored by ingest like the alert messages),
//! webhook calls for the outbox, and the last values on_change rules watch.

use bytes::Bytes;
use rusqlite::Transaction;

/// A command a rule's action publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
}

/// A webhook call for the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookCall {
    /// The rule's and the action's place in the configuration (for their counts).
    pub rule: usize,
    pub action: usize,
    pub url: String,
    /// A JSON object of extra headers.
    pub headers: String,
    pub body: String,
    pub created_at: i64,
    pub give_up_at: i64,
    pub timeout_ms: i64,
    pub retry_max_ms: i64,
}

/// An on_change rule's new last value for one key.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleValue {
    pub rule: String,
    pub key: String,
    pub value: String,
    pub at: i64,
}

pub(super) fn write_webhooks(tx: &Transaction, calls: &[WebhookCall]) -> rusqlite::Result<()> {
    if calls.is_empty() {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO webhook_outbox (rule, action, url, headers, body, created_at, give_up_at,
                                     timeout_ms, retry_max_ms, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?6)",
    )?;
    for c in calls {
        insert.execute((
            c.rule as i64,
            c.action as i64,
            &c.url,
            &c.headers,
            &c.body,
            c.created_at,
            c.give_up_at,
            c.timeout_ms,
            c.retry_max_ms,
        ))?;
    }
    Ok(())
}

pub(super) fn write_rule_values(tx: &Transaction, values: &[RuleValue]) -> rusqlite::Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    let mut upsert = tx.prepare_cached(
        "INSERT INTO rule_values (rule, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (rule, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )?;
    for v in values {
        upsert.execute((&v.rule, &v.key, &v.value, v.at))?;
    }
    Ok(())
}

/// Every on_change value kept: (rule, key, value).
pub fn load_rule_values(
    conn: &rusqlite::Connection,
) -> rusqlite::Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare("SELECT rule, key, value FROM rule_values")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}
