//! What the rules engine needs from the database at start-up, so that a restart neither
//! loses nor duplicates an open alert and knows which devices were online.

use super::Alert;
use rumqttd::protocol::PublishProperties;
use rusqlite::Connection;

pub struct RulesState {
    pub open_alerts: Vec<Alert>,
    pub next_alert_id: i64,
    /// (device_id, last_seen, is_online, last_topic)
    pub devices: Vec<(String, i64, bool, Option<String>)>,
    /// What on_change rules last saw: (rule, key, value).
    pub rule_values: Vec<(String, String, String)>,
}

pub fn load_rules_state(conn: &Connection) -> rusqlite::Result<RulesState> {
    let mut stmt = conn.prepare(
        "SELECT id, device_id, type, metric, value, threshold, raised_at, cleared_at, payload
         FROM alerts WHERE cleared_at IS NULL",
    )?;
    let open_alerts = stmt
        .query_map([], |r| {
            let payload: String = r.get(8)?;
            Ok(Alert {
                id: r.get(0)?,
                device_id: r.get(1)?,
                alert_type: r.get(2)?,
                metric: r.get(3)?,
                value: r.get(4)?,
                threshold: r.get(5)?,
                raised_at: r.get(6)?,
                cleared_at: r.get(7)?,
                payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
            })
        })?
        .collect::<Result<_, _>>()?;
    let next_alert_id = conn.query_row("SELECT coalesce(max(id), 0) + 1 FROM alerts", [], |r| {
        r.get(0)
    })?;
    let mut stmt =
        conn.prepare("SELECT device_id, last_seen, is_online, last_topic FROM devices")?;
    let devices = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    Ok(RulesState {
        open_alerts,
        next_alert_id,
        devices,
        rule_values: super::actions::load_rule_values(conn)?,
    })
}

/// A retained message as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRetained {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub properties: Option<PublishProperties>,
    /// When it was published (unix ms).
    pub updated_at: i64,
}

/// The retained messages to give back to the broker at start-up.
pub fn load_retained(conn: &Connection) -> rusqlite::Result<Vec<StoredRetained>> {
    let mut stmt = conn.prepare(
        "SELECT topic, payload, qos, properties, updated_at FROM retained ORDER BY topic",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(StoredRetained {
            topic: r.get(0)?,
            payload: r.get(1)?,
            qos: r.get(2)?,
            properties: super::properties::from_column(r.get::<_, Option<String>>(3)?.as_deref()),
            updated_at: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// When a saved session expires: when its client left plus its interval, or, for one saved
/// while its client was connected (edgemq was killed), its last save plus its interval.
const SESSION_EXPIRES_AT: &str = "coalesce(expires_at, updated_at + expiry_interval * 1000)";

/// Deletes the persistent sessions that expired before `now`; how many.
pub fn forget_expired_sessions(conn: &Connection, now: i64) -> rusqlite::Result<usize> {
    conn.execute(
        &format!("DELETE FROM sessions WHERE {SESSION_EXPIRES_AT} <= ?1"),
        [now],
    )
}

/// Persistent sessions still valid at `now`.
pub fn load_sessions(conn: &Connection, now: i64) -> rusqlite::Result<Vec<super::SavedSession>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT client_id, subscriptions, acked_through, sent_through, {SESSION_EXPIRES_AT},
                expiry_interval
           FROM sessions WHERE {SESSION_EXPIRES_AT} IS NULL OR {SESSION_EXPIRES_AT} > ?1"
    ))?;
    let rows = stmt.query_map([now], |r| {
        let subscriptions: String = r.get(1)?;
        Ok(super::SavedSession {
            client_id: r.get(0)?,
            subscriptions: serde_json::from_str(&subscriptions).unwrap_or_default(),
            acked_through: r.get(2)?,
            sent_through: r.get(3)?,
            expires_at: r.get(4)?,
            expiry_interval: r.get(5)?,
        })
    })?;
    rows.collect()
}
