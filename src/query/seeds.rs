//! The seeds' read queries, in the shapes their clients expect (seeds 000, 002 and 003).

use super::payload_json;
use crate::clock::iso;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};

/// Seed 000: how many status messages of each value 0..6 have a device time in [start, end].
pub fn status_count(conn: &Connection, start_ms: i64, end_ms: i64) -> rusqlite::Result<Value> {
    let mut counts = [0i64; 7];
    let mut stmt = conn.prepare_cached(
        "SELECT json_extract(payload, '$.status'), count(*) FROM messages
         WHERE kind = 'status' AND device_time >= ?1 AND device_time <= ?2 GROUP BY 1",
    )?;
    let mut rows = stmt.query(params![start_ms, end_ms])?;
    while let Some(row) = rows.next()? {
        if let (Ok(status), Ok(n)) = (row.get::<_, i64>(0), row.get::<_, i64>(1)) {
            if let Some(slot) = usize::try_from(status).ok().and_then(|s| counts.get_mut(s)) {
                *slot = n;
            }
        }
    }
    let map: Map<String, Value> = counts
        .iter()
        .enumerate()
        .map(|(i, n)| (i.to_string(), json!(n)))
        .collect();
    Ok(Value::Object(map))
}

/// A telemetry row as seed 002 shows it: id, device_id, timestamp, then the payload's fields.
fn reading(id: i64, device_id: String, device_time: i64, payload: &[u8]) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    out.insert("device_id".into(), json!(device_id));
    out.insert("timestamp".into(), json!(iso(device_time)));
    if let Value::Object(fields) = payload_json(payload) {
        for (k, v) in fields {
            if v.is_number() && !out.contains_key(&k) {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

/// Seed 002: each device's latest telemetry reading.
pub fn sensors_latest(conn: &Connection) -> rusqlite::Result<Vec<Value>> {
    let mut devices = conn.prepare_cached("SELECT device_id FROM devices ORDER BY device_id")?;
    let ids: Vec<String> = devices
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut latest = conn.prepare_cached(
        "SELECT id, device_id, device_time, payload FROM messages
         WHERE device_id = ?1 AND kind = 'telemetry' ORDER BY device_time DESC, id DESC LIMIT 1",
    )?;
    let mut out = Vec::new();
    for id in ids {
        let row = latest
            .query_row([&id], |r| {
                Ok(reading(
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    &r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .optional()?;
        out.extend(row);
    }
    Ok(out)
}

/// Seed 002: a device's telemetry, newest first.
pub fn sensors_history(
    conn: &Connection,
    device_id: &str,
    limit: u32,
) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, device_id, device_time, payload FROM messages
         WHERE device_id = ?1 AND kind = 'telemetry' ORDER BY device_time DESC, id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![device_id, limit], |r| {
        Ok(reading(
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            &r.get::<_, Vec<u8>>(3)?,
        ))
    })?;
    rows.collect()
}

/// Seed 002: count, min, max and average of every metric of every device.
pub fn stats(conn: &Connection) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT device_id, metric, count, min, max, sum / count FROM metric_stats ORDER BY device_id, metric",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(json!({
            "device_id": r.get::<_, String>(0)?,
            "metric": r.get::<_, String>(1)?,
            "count": r.get::<_, i64>(2)?,
            "min": r.get::<_, f64>(3)?,
            "max": r.get::<_, f64>(4)?,
            "avg": round2(r.get::<_, f64>(5)?),
        }))
    })?;
    rows.collect()
}

/// Seed 003: every device with ONLINE/OFFLINE and last_seen.
pub fn devices(conn: &Connection) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = conn
        .prepare_cached("SELECT device_id, is_online, last_seen FROM devices ORDER BY device_id")?;
    let rows = stmt.query_map([], |r| {
        Ok(json!({
            "device_id": r.get::<_, String>(0)?,
            "status": if r.get::<_, bool>(1)? { "ONLINE" } else { "OFFLINE" },
            "last_seen": iso(r.get(2)?),
        }))
    })?;
    rows.collect()
}

/// Seed 003: a device's telemetry (id, device_id, ts, temperature, humidity), newest first.
pub fn telemetry(conn: &Connection, device_id: &str, limit: u32) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, device_id, device_time, json_extract(payload, '$.temperature'), json_extract(payload, '$.humidity')
         FROM messages WHERE device_id = ?1 AND kind = 'telemetry' ORDER BY device_time DESC, id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![device_id, limit], |r| {
        Ok(json!({
            "id": r.get::<_, i64>(0)?,
            "device_id": r.get::<_, String>(1)?,
            "ts": iso(r.get(2)?),
            "temperature": r.get::<_, Option<f64>>(3).ok().flatten(),
            "humidity": r.get::<_, Option<f64>>(4).ok().flatten(),
        }))
    })?;
    rows.collect()
}

/// Seed 003: average temperature and humidity of a device over the last `window_ms`.
pub fn stats_avg(
    conn: &Connection,
    device_id: &str,
    window: &str,
    window_ms: i64,
    now_ms: i64,
) -> rusqlite::Result<Value> {
    let mut stmt = conn.prepare_cached(
        "SELECT avg(json_extract(payload, '$.temperature')), avg(json_extract(payload, '$.humidity')), count(*)
         FROM messages WHERE device_id = ?1 AND kind = 'telemetry' AND device_time >= ?2 AND device_time <= ?3",
    )?;
    stmt.query_row(params![device_id, now_ms - window_ms, now_ms], |r| {
        Ok(json!({
            "device_id": device_id,
            "window": window,
            "avg_temperature": r.get::<_, Option<f64>>(0)?.map(round2),
            "avg_humidity": r.get::<_, Option<f64>>(1)?.map(round2),
            "data_points": r.get::<_, i64>(2)?,
        }))
    })
}

/// Seed 003: alerts newest first, optionally of one device and one type.
pub fn alerts(
    conn: &Connection,
    limit: u32,
    device_id: Option<&str>,
    alert_type: Option<&str>,
) -> rusqlite::Result<Vec<Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, device_id, type, raised_at, payload FROM alerts
         WHERE (?1 IS NULL OR device_id = ?1) AND (?2 IS NULL OR type = ?2) ORDER BY id DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![device_id, alert_type, limit], |r| {
        let payload: String = r.get(4)?;
        Ok(json!({
            "id": r.get::<_, i64>(0)?,
            "device_id": r.get::<_, String>(1)?,
            "alert_type": r.get::<_, String>(2)?,
            "ts": iso(r.get(3)?),
            "payload": serde_json::from_str::<Value>(&payload).unwrap_or(Value::Null),
        }))
    })?;
    rows.collect()
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
