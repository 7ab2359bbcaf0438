//! The HTTP server (axum): health and Prometheus metrics. Reads only: it never writes SQL.

mod health;

use crate::metrics::Metrics;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// What every handler can see.
#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub db_path: PathBuf,
    pub mqtt_listeners: Vec<(&'static str, SocketAddr)>,
    /// Rows `messages` held when edgemq started.
    pub stored_at_start: u64,
    pub started_at: std::time::Instant,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
