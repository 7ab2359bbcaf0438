//! `GET /health` (JSON) and `GET /metrics` (Prometheus text).

use super::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;

pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let m = &state.metrics;
    let database_readable = state
        .db
        .run(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)))
        .await
        .is_ok();
    let database_ok = database_readable && m.database_ok.load(Relaxed);
    let listeners_up = m.listeners_up.load(Relaxed);
    let queue_depth = m.queue_depth.load(Relaxed);
    let errors = m.errors();
    // Past 90% of the queue, the front door is about to hold publishers back.
    let status = if !database_ok || !listeners_up {
        "unhealthy"
    } else if queue_depth * 10 >= state.queue_capacity as u64 * 9 {
        "degraded"
    } else if m.bridges().iter().any(|b| !b.connected.load(Relaxed)) {
        // A bridge is down: nothing is lost (its backlog waits in the store), but it is behind.
        "degraded"
    } else {
        "healthy"
    };
    let last_ms = m.last_message_ms.load(Relaxed);
    let last_message_time = (last_ms > 0)
        .then(|| chrono::DateTime::from_timestamp_millis(last_ms as i64))
        .flatten()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let listeners: serde_json::Map<_, _> = state
        .mqtt_listeners
        .iter()
        .map(|(label, addr)| (format!("{label} {addr}"), json!(listeners_up)))
        .collect();
    let code = if status == "unhealthy" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = json!({
        "status": status,
        "listeners": listeners,
        "database": if database_ok { "ok" } else { "error" },
        "messages_stored": m.messages_in_database(),
        "messages_received": m.received.load(Relaxed),
        "errors": errors,
        "queue_depth": queue_depth,
        "connected_clients": m.connected_clients.load(Relaxed),
        "last_message_time": last_message_time,
        "uptime_seconds": m.started.elapsed().as_secs(),
        "bridges": {
            "configured": m.bridges().len(),
            "connected": m.over_bridges(|b| b.connected.load(Relaxed) as u64),
            "backlog": m.over_bridges(|b| b.backlog.load(Relaxed)),
            "behind_seconds": m.bridges().iter().map(|b| b.behind_seconds.load(Relaxed)).max().unwrap_or(0),
        },
    });
    (code, Json(body))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.prometheus(),
    )
}
