//! The seeds' own endpoints, at their paths, with their parameters and response shapes.

use super::error::{ApiError, ApiResult};
use super::params::{parse_time, Params};
use super::AppState;
use crate::query::{self, seeds};
use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

type Q = Query<HashMap<String, String>>;

/// Seed 000's exact error for a bad time.
const BAD_DATETIME: &str = "Invalid datetime format. Use ISO format (e.g., 2024-01-01T00:00:00Z)";

/// Seed 000: `GET /status-count?start_time=ISO&end_time=ISO`.
pub async fn status_count(State(s): State<AppState>, Query(q): Q) -> ApiResult<Json<Value>> {
    let p = Params(q);
    let start = p.required("start_time")?;
    let end = p.required("end_time")?;
    let (Some(start), Some(end)) = (parse_time(start), parse_time(end)) else {
        return Err(ApiError::bad_request(BAD_DATETIME));
    };
    if start > end {
        return Err(ApiError::bad_request(
            "start_time must not be after end_time",
        ));
    }
    Ok(Json(
        s.db.run(move |c| seeds::status_count(c, start, end))
            .await?,
    ))
}

/// Seed 001: `GET /health/mqtt-monitor`.
pub async fn mqtt_monitor(State(s): State<AppState>) -> Json<Value> {
    let m = &s.metrics;
    let connected = m.listeners_up.load(Relaxed);
    let last = m.last_message_ms.load(Relaxed) as i64;
    Json(json!({
        "status": if connected { "healthy" } else { "unhealthy" },
        "broker_connected": connected,
        "last_message_time": (last > 0).then(|| crate::clock::iso_ms(last)),
        "messages_processed": m.received.load(Relaxed),
        "errors_count": m.errors(),
    }))
}

/// Seed 002: `GET /sensors/latest`.
pub async fn sensors_latest(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(s.db.run(seeds::sensors_latest).await?)))
}

/// Seed 002: `GET /sensors/history?device_id=&limit=50`.
pub async fn sensors_history(State(s): State<AppState>, Query(q): Q) -> ApiResult<Json<Value>> {
    let p = Params(q);
    let device = p.required("device_id")?.to_string();
    let limit = p.limit("limit", 50, 1000)?;
    Ok(Json(json!(
        s.db.run(move |c| seeds::sensors_history(c, &device, limit))
            .await?
    )))
}

/// Seed 002: `GET /alerts?limit=100`: newest first, open and cleared.
pub async fn alerts(State(s): State<AppState>, Query(q): Q) -> ApiResult<Json<Value>> {
    let p = Params(q);
    let filter = AlertQuery::from(&p, 100)?;
    let page =
        s.db.run(move |c| {
            let f = query::native::AlertFilter {
                device_id: filter.device.as_deref(),
                alert_type: filter.alert_type.as_deref(),
                open: None,
                before_id: None,
                limit: filter.limit,
            };
            query::native::alerts(c, &f)
        })
        .await?;
    Ok(Json(json!(page.items)))
}

/// Seed 002: `GET /stats`: count, min, max, avg per device and metric.
pub async fn stats(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(s.db.run(seeds::stats).await?)))
}

/// Seed 003: `GET /api/health/`.
pub async fn api_health(State(s): State<AppState>) -> Json<Value> {
    let database_ok = s.metrics.database_ok.load(Relaxed)
        && s.db
            .run(|c| c.query_row("SELECT 1", [], |_| Ok(())))
            .await
            .is_ok();
    let mqtt_ok = s.metrics.listeners_up.load(Relaxed);
    Json(json!({
        "status": if database_ok && mqtt_ok { "healthy" } else { "unhealthy" },
        "database": if database_ok { "connected" } else { "disconnected" },
        "mqtt": if mqtt_ok { "connected" } else { "disconnected" },
        "timestamp": crate::clock::iso(crate::clock::now_ms()),
    }))
}

/// Seed 003: `GET /api/devices/`.
pub async fn api_devices(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    Ok(Json(json!(s.db.run(seeds::devices).await?)))
}

/// Seed 003: `GET /api/telemetry/?deviceId=&limit=100`.
pub async fn api_telemetry(State(s): State<AppState>, Query(q): Q) -> ApiResult<Json<Value>> {
    let p = Params(q);
    let device = p.required("deviceId")?.to_string();
    let limit = p.limit("limit", 100, 10_000)?;
    Ok(Json(json!(
        s.db.run(move |c| seeds::telemetry(c, &device, limit))
            .await?
    )))
}

/// Seed 003: `GET /api/stats/avg/?deviceId=&window=5m`.
pub async fn api_stats_avg(State(s): State<AppState>, Query(q): Q) -> ApiResult<Json<Value>> {
    let p = Params(q);
    let device = p.required("deviceId")?.to_string();
    let window = p.required("window")?.to_string();
    let window_ms = p.duration_ms("window")?.unwrap_or(0);
    let now = crate::clock::now_ms();
    Ok(Json(
        s.db.run(move |c| seeds::stats_avg(c, &device, &window, window_ms, now))
            .await?,
    ))
}

/// Seed 003: `GET /api/alerts/?limit=50&deviceId=&alert_type=`.
pub async fn api_alerts(State(s): State<AppState>, Query(q): Q) -> ApiResult<Json<Value>> {
    let p = Params(q);
    let f = AlertQuery::from(&p, 50)?;
    Ok(Json(json!(
        s.db.run(move |c| seeds::alerts(c, f.limit, f.device.as_deref(), f.alert_type.as_deref()))
            .await?
    )))
}

struct AlertQuery {
    limit: u32,
    device: Option<String>,
    alert_type: Option<String>,
}

impl AlertQuery {
    fn from(p: &Params, default_limit: u32) -> Result<AlertQuery, ApiError> {
        Ok(AlertQuery {
            limit: p.limit("limit", default_limit, 1000)?,
            device: p.get("deviceId").or(p.get("device_id")).map(str::to_string),
            alert_type: p.get("alert_type").or(p.get("type")).map(str::to_string),
        })
    }
}
