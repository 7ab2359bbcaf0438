//! The dashboard (HTML, CSS and JavaScript written in this repo, embedded in the binary) and the
//! live event stream it listens to: server-sent events for messages, alerts and presence, and
//! the broker's health once a second.

use super::AppState;
use crate::notify::LiveEvent;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use futures_util::Stream;
use serde_json::json;
use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

pub async fn index() -> Html<&'static str> {
    Html(include_str!("dashboard/index.html"))
}

pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("dashboard/app.js"),
    )
}

pub async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("dashboard/style.css"),
    )
}

fn stats(state: &AppState) -> Event {
    let m = &state.metrics;
    let body = json!({
        "clients": m.connected_clients.load(Relaxed),
        "received": m.received.load(Relaxed),
        "stored": m.messages_in_database(),
        "errors": m.errors(),
        "queued": m.queue_depth.load(Relaxed),
    });
    Event::default().event("stats").data(body.to_string())
}

fn live(event: &LiveEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_default();
    Event::default().event(event.name()).data(data)
}

/// `GET /api/v1/events`: server-sent events until the client leaves or edgemq stops.
pub async fn events(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = state.live.subscribe();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let stopping = state.stopping.clone();
    let stream = futures_util::stream::unfold(
        (events, ticks, stopping, state),
        |(mut events, mut ticks, mut stopping, state)| async move {
            let event = tokio::select! {
                _ = stopping.wait() => return None,
                _ = ticks.tick() => stats(&state),
                received = events.recv() => match received {
                    Ok(event) => live(&event),
                    // A slow reader skips what it missed; the page reloads what it shows.
                    Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
                    Err(RecvError::Closed) => return None,
                },
            };
            Some((Ok(event), (events, ticks, stopping, state)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
