//! Seed 004's request/response queries: one device's temperature, power or fingerprint records
//! on one date, in the seed's record shapes, a page at a time.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

/// Which of seed 004's tables a request reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTable {
    Temperature,
    Power,
    Fingerprint,
}

impl LogTable {
    fn kind(self) -> &'static str {
        match self {
            LogTable::Temperature => "temperature",
            LogTable::Power => "power",
            LogTable::Fingerprint => "fingerprint",
        }
    }

    /// A record in the seed's shape, from the stored payload and timestamp text.
    fn record(self, payload: &Value, timestamp: String) -> Value {
        let field = |name: &str| payload.get(name).cloned().unwrap_or(Value::Null);
        match self {
            LogTable::Temperature => json!({
                "temperature": field("temperature"),
                "humidity": field("humidity"),
                "status": field("status"),
                "timestamp": timestamp,
            }),
            LogTable::Power => {
                let status = payload.get("status").and_then(Value::as_str).unwrap_or("");
                let (eb, dg) = match status {
                    "EB_ON" => ("ON", ""),
                    "EB_OFF" => ("OFF", ""),
                    "DG_ON" => ("", "ON"),
                    "DG_OFF" => ("", "OFF"),
                    _ => ("", ""),
                };
                json!({ "ebstatus": eb, "dgstatus": dg, "timestamp": timestamp })
            }
            LogTable::Fingerprint => json!({
                "user_id": field("user_id"),
                "authStatus": field("authStatus"),
                "timestamp": timestamp,
            }),
        }
    }
}

/// Whether edgemq has ever heard from this device.
pub fn device_known(conn: &Connection, device_id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM devices WHERE device_id = ?1")?
        .query_row([device_id], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
}

/// Records of `device_id` whose date (the day of the device's own timestamp) is `date`, in
/// time order: `(total matching, the page from offset)`. The day's device-time range, widened
/// by the largest UTC offsets, keeps the search on the device's index.
pub fn day_records(
    conn: &Connection,
    table: LogTable,
    device_id: &str,
    date: chrono::NaiveDate,
    offset: u32,
    limit: u32,
) -> rusqlite::Result<(u64, Vec<Value>)> {
    let day_start = date
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0);
    const WIDEN_MS: i64 = 15 * 3600 * 1000;
    let (from, to) = (
        day_start - WIDEN_MS,
        day_start + 24 * 3600 * 1000 + WIDEN_MS,
    );
    let date_text = date.format("%Y-%m-%d").to_string();
    let mut stmt = conn.prepare_cached(
        "SELECT payload, coalesce(json_extract(payload, '$.timestamp'),
                                  strftime('%Y-%m-%dT%H:%M:%S', device_time / 1000, 'unixepoch')) AS ts
         FROM messages
         WHERE device_id = ?1 AND device_time >= ?2 AND device_time < ?3 AND kind = ?4
           AND coalesce(substr(json_extract(payload, '$.timestamp'), 1, 10), date(device_time / 1000, 'unixepoch')) = ?5
         ORDER BY ts, id",
    )?;
    let mut rows = stmt.query(params![device_id, from, to, table.kind(), date_text])?;
    let mut total = 0u64;
    let mut records = Vec::new();
    while let Some(row) = rows.next()? {
        total += 1;
        if total > u64::from(offset) && records.len() < limit as usize {
            let payload: Vec<u8> = row.get(0)?;
            let payload = super::payload_json(&payload);
            records.push(table.record(&payload, row.get(1)?));
        }
    }
    Ok((total, records))
}
