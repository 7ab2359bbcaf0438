//! The native API, `/api/v1`: devices, messages, metric series, alerts (and clearing one),
//! dead letters. Lists are `{"items": [...], "next_cursor": ...}`; pass `cursor` to go on.

use super::error::{ApiError, ApiResult};
use super::params::Params;
use super::AppState;
use crate::ingest::Intake;
use crate::query::messages::{self, MessageFilter};
use crate::query::native::{self, AlertFilter, SeriesQuery};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

type Q = Query<HashMap<String, String>>;

/// Points a series aims for when no bucket is given.
const TARGET_POINTS: i64 = 500;
/// The most points a series may have.
const MAX_POINTS: i64 = 10_000;

pub async fn devices(State(s): State<AppState>, Query(q): Q) -> ApiResult<Json<Value>> {
    let p = Params(q);
    let limit = p.limit("limit", 100, 1000)?;
    let after = p.get("cursor").map(str::to_string);
    let page =
        s.db.run(move |c| native::devices(c, after.as_deref(), limit))
            .await?;
    Ok(Json(page.to_json()))
}

pub async fn device(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let wanted = id.clone();
    s.db.run(move |c| native::device_by_id(c, &wanted))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no device `{id}`")))
}

/// `GET /api/v1/devices/{id}/series?metric=temperature&from=&to=&bucket=1m`.
pub async fn series(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<Json<Value>> {
    let p = Params(q);
    let metric = p.required("metric")?.to_string();
    if !metric
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        || metric.len() > 64
    {
        return Err(ApiError::bad_request(format!(
            "`metric` must be a payload field name (letters, digits, _ and -), got `{metric}`"
        )));
    }
    let now = crate::clock::now_ms();
    let to = p.time("to")?.unwrap_or(now);
    let from = p.time("from")?.unwrap_or(to - 24 * 3600 * 1000);
    if from >= to {
        return Err(ApiError::bad_request("`from` must be before `to`"));
    }
    let span = to - from;
    let bucket = match p.duration_ms("bucket")? {
        Some(b) => b,
        None => (span / TARGET_POINTS).max(1000),
    };
    if span / bucket > MAX_POINTS {
        return Err(ApiError::bad_request(format!(
            "that is more than {MAX_POINTS} buckets: choose a larger `bucket` or a shorter range"
        )));
    }
    let (device, m) = (id.clone(), metric.clone());
    let points =
        s.db.run(move |c| {
            let q = SeriesQuery {
                device_id: &device,
                metric: &m,
                from_ms: from,
                to_ms: to,
                bucket_ms: bucket,
            };
            native::series(c, &q)
        })
        .await?;
    Ok(Json(json!({
        "device_id": id,
        "metric": metric,
        "from": crate::clock::iso_ms(from),
        "to": crate::clock::iso_ms(to),
        "bucket_ms": bucket,
        "points": points,
    })))
}

/// `GET /api/v1/messages?topic=FILTER&device_id=&from=&to=&limit=&cursor=`, newest first (by
/// the device's own time when one device is asked for; see `query::messages`).
pub async fn messages(State(s): State<AppState>, Query(q): Q) -> ApiResult<Json<Value>> {
    let p = Params(q);
    let topic = p.get("topic").map(str::to_string);
    if let Some(t) = &topic {
        if !crate::topic::valid_filter(t) {
            return Err(ApiError::bad_request(format!(
                "`topic` must be an MQTT topic or filter, got `{t}`"
            )));
        }
    }
    let device = p.get("device_id").map(str::to_string);
    let from = p.time("from")?.unwrap_or(0);
    let to = p.time("to")?.unwrap_or(i64::MAX);
    let cursor = p.get("cursor").map(str::to_string);
    let limit = p.limit("limit", 100, 1000)?;
    let page =
        s.db.run(move |c| {
            let f = MessageFilter {
                topic: topic.as_deref(),
                device_id: device.as_deref(),
                from_ms: from,
                to_ms: to,
                cursor: cursor.as_deref(),
                limit,
            };
            messages::messages(c, &f)
        })
        .await?
        .map_err(ApiError::bad_request)?;
    Ok(Json(page.to_json()))
}

/// `GET /api/v1/alerts?device_id=&type=&state=open|cleared&limit=&cursor=`, newest first.
pub async fn alerts(State(s): State<AppState>, Query(q): Q) -> ApiResult<Json<Value>> {
    let p = Params(q);
    let open = match p.get("state") {
        None | Some("all") => None,
        Some("open") => Some(true),
        Some("cleared") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`state` must be open, cleared or all, got `{other}`"
            )))
        }
    };
    let device = p.get("device_id").map(str::to_string);
    let alert_type = p.get("type").map(str::to_string);
    let before_id = p.cursor()?;
    let limit = p.limit("limit", 100, 1000)?;
    let page =
        s.db.run(move |c| {
            let f = AlertFilter {
                device_id: device.as_deref(),
                alert_type: alert_type.as_deref(),
                open,
                before_id,
                limit,
            };
            native::alerts(c, &f)
        })
        .await?;
    Ok(Json(page.to_json()))
}

fn alert_id(raw: &str) -> ApiResult<i64> {
    raw.parse()
        .map_err(|_| ApiError::bad_request(format!("alert id must be a number, got `{raw}`")))
}

pub async fn alert(State(s): State<AppState>, Path(raw): Path<String>) -> ApiResult<Json<Value>> {
    let id = alert_id(&raw)?;
    s.db.run(move |c| native::alert_by_id(c, id))
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no alert {id}")))
}

/// `POST /api/v1/alerts/{id}/clear`: a person acknowledged it. Answers once it is stored.
pub async fn clear_alert(
    State(s): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = alert_id(&raw)?;
    let Some(current) = s.db.run(move |c| native::alert_by_id(c, id)).await? else {
        return Err(ApiError::not_found(format!("no alert {id}")));
    };
    if current["open"] == false {
        return Err(ApiError::conflict(format!(
            "alert {id} was already cleared at {}",
            current["cleared_at"]
        )));
    }
    let (found_tx, found) = flume::bounded(1);
    let (committed_tx, committed) = flume::bounded(1);
    let command = Intake::ClearAlert {
        id,
        found: found_tx,
        committed: committed_tx,
    };
    s.intake
        .send_async(command)
        .await
        .map_err(|_| ApiError::unavailable("edgemq is shutting down"))?;
    let wait = Duration::from_secs(10);
    match tokio::time::timeout(wait, found.recv_async()).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return Err(ApiError::conflict(format!("alert {id} is no longer open"))),
        _ => return Err(ApiError::unavailable("edgemq is busy; try again")),
    }
    if tokio::time::timeout(wait, committed.recv_async())
        .await
        .is_err()
    {
        return Err(ApiError::unavailable(
            "the store is busy; the alert will be cleared shortly",
        ));
    }
    alert(State(s), Path(raw)).await
}

/// `GET /api/v1/dead-letters?limit=&cursor=`, newest first.
pub async fn dead_letters(State(s): State<AppState>, Query(q): Q) -> ApiResult<Json<Value>> {
    let p = Params(q);
    let before_id = p.cursor()?;
    let limit = p.limit("limit", 100, 1000)?;
    let page =
        s.db.run(move |c| native::dead_letters(c, before_id, limit))
            .await?;
    Ok(Json(page.to_json()))
}

/// The OpenAPI document of `/api/v1` and the seeds' endpoints.
pub async fn openapi() -> ([(axum::http::HeaderName, &'static str); 1], &'static str) {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /api/v1/rules`: each rule in force (built-in and configured, in the order they are
/// applied), how often it raised and cleared, and its actions with how often each fired,
/// delivered and failed.
pub async fn rules(State(s): State<AppState>) -> Json<Value> {
    let items: Vec<_> = (s.metrics.rules().iter().enumerate())
        .map(|(i, r)| r.view(i))
        .collect();
    Json(
        json!({ "items": items, "webhook_outbox": s.metrics.webhook_outbox.load(std::sync::atomic::Ordering::Relaxed) }),
    )
}

/// `GET /api/v1/bridges`: each bridge's state, backlog and counts.
pub async fn bridges(State(s): State<AppState>) -> Json<Value> {
    let items: Vec<_> = s.metrics.bridges().iter().map(|b| b.view()).collect();
    Json(json!({ "items": items }))
}

/// `GET /api/v1/sessions`: every MQTT session, connected or kept, the furthest behind first.
pub async fn sessions(State(s): State<AppState>) -> Json<Value> {
    Json(json!({ "items": s.sessions.list() }))
}

/// `GET /api/v1/sessions/{client_id}`.
pub async fn session(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let view = s.sessions.get(&id);
    let view = view.ok_or_else(|| ApiError::not_found(format!("no session `{id}`")))?;
    Ok(Json(json!(view)))
}

/// `DELETE /api/v1/sessions/{client_id}`: ends it (a connected client is disconnected, MQTT 5
/// with 0x98); 204, or 404 when there is none.
pub async fn end_session(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    match s.sessions.end(&id).await {
        crate::front_door::Ended::NotFound => {
            Err(ApiError::not_found(format!("no session `{id}`")))
        }
        _ => Ok(axum::http::StatusCode::NO_CONTENT),
    }
}
