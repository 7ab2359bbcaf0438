//! The native `/api/v1` queries: devices with their state, messages, metric series, alerts and
//! dead letters. Lists are paged by cursor: pass back `next_cursor` to get the next page.

use super::payload_json;
use crate::clock::iso_ms;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::{json, Map, Value};

/// One page of a list.
pub struct Page {
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
}

impl Page {
    /// A page of rows newest first by id: the cursor is the last id when the page is full.
    fn by_id(items: Vec<Value>, limit: u32) -> Page {
        let next_cursor = (items.len() == limit as usize)
            .then(|| items.last().map(|item| item["id"].to_string()))
            .flatten();
        Page { items, next_cursor }
    }

    pub fn to_json(&self) -> Value {
        json!({ "items": self.items, "next_cursor": self.next_cursor })
    }
}

fn device(conn: &Connection, row: &Row) -> rusqlite::Result<Value> {
    let device_id: String = row.get(0)?;
    let last_payload: Option<Vec<u8>> = row.get(8)?;
    let latest: Map<String, Value> = match last_payload.map(|p| payload_json(&p)) {
        Some(Value::Object(fields)) => fields.into_iter().filter(|(_, v)| v.is_number()).collect(),
        _ => Map::new(),
    };
    let mut state = Map::new();
    let mut stmt = conn.prepare_cached(
        "SELECT name, value FROM device_state WHERE device_id = ?1 ORDER BY name",
    )?;
    let mut rows = stmt.query([&device_id])?;
    while let Some(r) = rows.next()? {
        state.insert(r.get(0)?, json!(r.get::<_, String>(1)?));
    }
    let open_alerts: i64 = conn
        .prepare_cached("SELECT count(*) FROM alerts WHERE device_id = ?1 AND cleared_at IS NULL")?
        .query_row([&device_id], |r| r.get(0))?;
    let metrics: Vec<String> = conn
        .prepare_cached("SELECT metric FROM metric_stats WHERE device_id = ?1 ORDER BY metric")?
        .query_map([&device_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(json!({
        "device_id": device_id,
        "status": if row.get::<_, bool>(3)? { "ONLINE" } else { "OFFLINE" },
        "online": row.get::<_, bool>(3)?,
        "first_seen": iso_ms(row.get(1)?),
        "last_seen": iso_ms(row.get(2)?),
        "ip_address": row.get::<_, Option<String>>(4)?,
        "firmware_version": row.get::<_, Option<String>>(5)?,
        "uptime": row.get::<_, Option<i64>>(6)?,
        "last_topic": row.get::<_, Option<String>>(7)?,
        "latest": latest,
        "state": state,
        "metrics": metrics,
        "open_alerts": open_alerts,
    }))
}

const DEVICE_COLUMNS: &str =
    "device_id, first_seen, last_seen, is_online, ip_address, firmware_version, uptime, last_topic, last_payload";

/// Devices in id order after `after`.
pub fn devices(conn: &Connection, after: Option<&str>, limit: u32) -> rusqlite::Result<Page> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE ?1 IS NULL OR device_id > ?1 ORDER BY device_id LIMIT ?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![after, limit])?;
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        items.push(device(conn, row)?);
    }
    let next_cursor = (items.len() == limit as usize)
        .then(|| {
            items
                .last()
                .and_then(|d| d["device_id"].as_str())
                .map(str::to_string)
        })
        .flatten();
    Ok(Page { items, next_cursor })
}

pub fn device_by_id(conn: &Connection, device_id: &str) -> rusqlite::Result<Option<Value>> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = ?1");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([device_id])?;
    match rows.next()? {
        Some(row) => device(conn, row).map(Some),
        None => Ok(None),
    }
}

/// One `messages` row (columns as `messages::COLUMNS` lists them) as JSON.
pub(super) fn message(row: &Row) -> rusqlite::Result<Value> {
    let payload: Vec<u8> = row.get(3)?;
    Ok(json!({
        "id": row.get::<_, i64>(0)?,
        "received_at": iso_ms(row.get(1)?),
        "topic": row.get::<_, String>(2)?,
        "payload": payload_json(&payload),
        "device_id": row.get::<_, Option<String>>(4)?,
        "kind": row.get::<_, Option<String>>(5)?,
        "device_time": iso_ms(row.get(6)?),
        "client_id": row.get::<_, Option<String>>(7)?,
        "username": row.get::<_, Option<String>>(8)?,
        "qos": row.get::<_, Option<i64>>(9)?,
        "retain": row.get::<_, Option<bool>>(10)?,
    }))
}

/// One bucket of a metric series.
pub struct SeriesQuery<'a> {
    pub device_id: &'a str,
    /// A top-level payload field; checked by the caller to be a plain name.
    pub metric: &'a str,
    pub from_ms: i64,
    pub to_ms: i64,
    pub bucket_ms: i64,
}

/// Buckets from the messages: ?2 is the JSON path of the metric.
const SERIES_FROM_MESSAGES: &str =
    "SELECT (device_time - ?3) / ?5 AS b, count(v), min(v), avg(v), max(v) FROM (
        SELECT device_time, json_extract(payload, ?2) AS v FROM messages
        WHERE device_id = ?1 AND device_time >= ?3 AND device_time < ?4 AND kind IS NOT NULL
    ) WHERE typeof(v) IN ('integer', 'real') GROUP BY b ORDER BY b";

/// Buckets from the per-minute rollups: ?2 is the metric's name.
const SERIES_FROM_MINUTES: &str = "SELECT (minute * 60000 - ?3) / ?5 AS b, sum(count), min(min), sum(sum) / sum(count), max(max)
    FROM metric_minutes
    WHERE device_id = ?1 AND metric = ?2 AND minute >= ?3 / 60000 AND minute * 60000 < ?4 AND minute * 60000 >= ?3
    GROUP BY b ORDER BY b";

/// count, min, avg and max of a device's metric per bucket of device time. Buckets of a
/// minute or more come from the per-minute rollups (each minute counted in the bucket its
/// start falls in); shorter buckets read the messages.
pub fn series(conn: &Connection, q: &SeriesQuery) -> rusqlite::Result<Vec<Value>> {
    let (sql, metric) = if q.bucket_ms >= 60_000 {
        (SERIES_FROM_MINUTES, q.metric.to_string())
    } else {
        (SERIES_FROM_MESSAGES, format!("$.{}", q.metric))
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(
        params![q.device_id, metric, q.from_ms, q.to_ms, q.bucket_ms],
        |r| {
            let start = q.from_ms + r.get::<_, i64>(0)? * q.bucket_ms;
            Ok(json!({
                "t": iso_ms(start),
                "t_ms": start,
                "count": r.get::<_, i64>(1)?,
                "min": r.get::<_, f64>(2)?,
                "avg": r.get::<_, f64>(3)?,
                "max": r.get::<_, f64>(4)?,
            }))
        },
    )?;
    rows.collect()
}

fn alert(row: &Row) -> rusqlite::Result<Value> {
    let payload: String = row.get(8)?;
    let cleared: Option<i64> = row.get(7)?;
    Ok(json!({
        "id": row.get::<_, i64>(0)?,
        "device_id": row.get::<_, String>(1)?,
        "type": row.get::<_, String>(2)?,
        "metric": row.get::<_, Option<String>>(3)?,
        "value": row.get::<_, Option<f64>>(4)?,
        "threshold": row.get::<_, Option<f64>>(5)?,
        "raised_at": iso_ms(row.get(6)?),
        "cleared_at": cleared.map(iso_ms),
        "open": cleared.is_none(),
        "payload": serde_json::from_str::<Value>(&payload).unwrap_or(Value::Null),
    }))
}

const ALERT_COLUMNS: &str =
    "id, device_id, type, metric, value, threshold, raised_at, cleared_at, payload";

/// Which alerts to list.
pub struct AlertFilter<'a> {
    pub device_id: Option<&'a str>,
    pub alert_type: Option<&'a str>,
    /// `Some(true)`: open only; `Some(false)`: cleared only.
    pub open: Option<bool>,
    pub before_id: Option<i64>,
    pub limit: u32,
}

pub fn alerts(conn: &Connection, f: &AlertFilter) -> rusqlite::Result<Page> {
    let sql = format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE (?1 IS NULL OR device_id = ?1) AND (?2 IS NULL OR type = ?2)
         AND (?3 IS NULL OR (cleared_at IS NULL) = ?3) AND id < ?4 ORDER BY id DESC LIMIT ?5"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let items: Vec<Value> = stmt
        .query_map(
            params![
                f.device_id,
                f.alert_type,
                f.open,
                f.before_id.unwrap_or(i64::MAX),
                f.limit
            ],
            alert,
        )?
        .collect::<Result<_, _>>()?;
    Ok(Page::by_id(items, f.limit))
}

pub fn alert_by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<Value>> {
    let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1");
    conn.prepare_cached(&sql)?.query_row([id], alert).optional()
}

pub fn dead_letters(
    conn: &Connection,
    before_id: Option<i64>,
    limit: u32,
) -> rusqlite::Result<Page> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, received_at, topic, payload, reason, client_id FROM dead_letters
          WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let items: Vec<Value> = stmt
        .query_map(params![before_id.unwrap_or(i64::MAX), limit], |r| {
            let payload: Vec<u8> = r.get(3)?;
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "received_at": iso_ms(r.get(1)?),
                "topic": r.get::<_, String>(2)?,
                "payload": String::from_utf8_lossy(&payload),
                "reason": r.get::<_, String>(4)?,
                "client_id": r.get::<_, Option<String>>(5)?,
            }))
        })?
        .collect::<Result<_, _>>()?;
    Ok(Page::by_id(items, limit))
}
