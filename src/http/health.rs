//! `GET /health` (JSON) and `GET /metrics` (Prometheus text).

use super::AppState;
use crate::store;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;
use std::fmt::Write;
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
        "messages_stored": state.stored_at_start + m.stored.load(Relaxed),
        "messages_received": m.received.load(Relaxed),
        "errors": errors,
        "queue_depth": queue_depth,
        "connected_clients": m.connected_clients.load(Relaxed),
        "last_message_time": last_message_time,
        "uptime_seconds": state.started_at.elapsed().as_secs(),
    });
    (code, Json(body))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let m = &state.metrics;
    let mut out = String::with_capacity(4096);
    let counters = [
        (
            "edgemq_received_total",
            "Publishes received from clients (last wills included).",
            m.received.load(Relaxed),
        ),
        (
            "edgemq_stored_total",
            "Messages committed to the database since start.",
            m.stored.load(Relaxed),
        ),
        (
            "edgemq_sent_total",
            "Publishes sent to clients.",
            m.sent.load(Relaxed),
        ),
        (
            "edgemq_bytes_received_total",
            "Bytes received from MQTT clients.",
            m.bytes_received.load(Relaxed),
        ),
        (
            "edgemq_bytes_sent_total",
            "Bytes sent to MQTT clients.",
            m.bytes_sent.load(Relaxed),
        ),
        (
            "edgemq_held_back_total",
            "Times a connection waited for room in the store's queue (TCP backpressure).",
            m.held_back.load(Relaxed),
        ),
        (
            "edgemq_connections_total",
            "MQTT connections accepted since start.",
            m.connections_total.load(Relaxed),
        ),
        (
            "edgemq_store_errors_total",
            "Failed store transactions (each retried).",
            m.store_errors.load(Relaxed),
        ),
        (
            "edgemq_dead_letters_total",
            "Messages on a route refused by decoding or validation.",
            m.dead_letters.load(Relaxed),
        ),
        (
            "edgemq_future_timestamps_total",
            "Device times too far ahead, replaced by the arrival time.",
            m.future_times.load(Relaxed),
        ),
        (
            "edgemq_alerts_raised_total",
            "Alerts raised.",
            m.alerts_raised.load(Relaxed),
        ),
        (
            "edgemq_alerts_cleared_total",
            "Alerts cleared.",
            m.alerts_cleared.load(Relaxed),
        ),
        (
            "edgemq_pruned_total",
            "Old messages removed by retention.",
            m.pruned.load(Relaxed),
        ),
        (
            "edgemq_commits_total",
            "Store transactions committed.",
            m.commits.load(Relaxed),
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let gauges = [
        (
            "edgemq_queue_depth",
            "Messages waiting between the front door and the store.",
            m.queue_depth.load(Relaxed),
        ),
        (
            "edgemq_connected_clients",
            "MQTT clients connected.",
            m.connected_clients.load(Relaxed),
        ),
        (
            "edgemq_database_size_bytes",
            "Database size on disk, WAL included.",
            store::size_on_disk(&state.db_path),
        ),
        (
            "edgemq_messages_in_database",
            "Rows in the messages table.",
            state.stored_at_start + m.stored.load(Relaxed),
        ),
        (
            "edgemq_uptime_seconds",
            "Seconds since edgemq started.",
            state.started_at.elapsed().as_secs(),
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    m.commit_seconds.render(
        "edgemq_commit_seconds",
        "Time to write and commit one batch.",
        &mut out,
    );
    m.batch_size.render(
        "edgemq_batch_size",
        "Messages per committed batch.",
        &mut out,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
