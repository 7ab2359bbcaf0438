//! The HTTP server (axum): the seeds' endpoints at their paths, the native `/api/v1`, health
//! and Prometheus metrics. It reads through `query` and never writes SQL; clearing an alert is
//! a command to the rules, answered once it is stored.

mod error;
mod health;
mod idle;
mod live;
mod login;
mod params;
mod seeds;
mod server;
mod v1;

use crate::ingest::Intake;
use crate::metrics::Metrics;
use crate::query::Db;
use axum::http::{header, HeaderValue, Method};
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use error::ApiError;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use server::serve;
pub use v1::OPENAPI;

/// `[http]`: the HTTP API's address, optional bearer token and CORS origins.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub listen: SocketAddr,
    /// When set, every endpoint but the health checks needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// `/metrics` open to all, even with a token or logins.
    pub metrics_public: bool,
    /// Origins allowed to call the API from a browser; `"*"` allows any.
    pub cors_origins: Vec<String>,
    /// Connections served at once; more are closed as they come (and counted).
    pub max_connections: usize,
    /// Time a client has to send a request's headers.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection on which nothing moves for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// HTTPS: the server's certificate chain and key (PEM); plain HTTP without them.
    pub certfile: Option<std::path::PathBuf>,
    pub keyfile: Option<std::path::PathBuf>,
}

impl HttpSection {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections < 1 {
            return Err("http.max_connections: must be at least 1".into());
        }
        if self.header_read_timeout.is_zero() || self.idle_timeout.is_zero() {
            return Err(
                "http.header_read_timeout and http.idle_timeout: must be more than 0".into(),
            );
        }
        self.tls().validate("http")
    }

    /// The TLS settings its certificate and key make.
    pub fn tls(&self) -> crate::tls::TlsSection {
        crate::tls::TlsSection {
            certfile: self.certfile.clone(),
            keyfile: self.keyfile.clone(),
            ..Default::default()
        }
    }
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: "0.0.0.0:8000".parse().expect("built-in address"),
            token: None,
            metrics_public: false,
            cors_origins: vec!["*".to_string()],
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            certfile: None,
            keyfile: None,
        }
    }
}

/// What every handler can see.
#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub db: Arc<Db>,
    /// Commands to ingest (clearing an alert).
    pub intake: flume::Sender<Intake>,
    pub mqtt_listeners: Vec<(&'static str, SocketAddr)>,
    /// `[store] queue_capacity`: /health is degraded when the queue is nearly full.
    pub queue_capacity: usize,
    pub token: Option<Arc<str>>,
    /// The MQTT logins, for HTTP Basic (reloaded on SIGHUP).
    pub logins: Arc<crate::reload::Live<crate::auth::Logins>>,
    /// `/metrics` without a login.
    pub metrics_public: bool,
    /// Live events for the dashboard.
    pub live: tokio::sync::broadcast::Sender<crate::notify::LiveEvent>,
    /// Says when edgemq is stopping: long-lived responses end.
    pub stopping: crate::shutdown::Stopping,
    /// MQTT sessions, to show and end.
    pub sessions: crate::front_door::Sessions,
}

/// Both `/path` and `/path/`, as seed 003's clients use either.
fn both<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    path: &str,
    route: axum::routing::MethodRouter<S>,
) -> Router<S> {
    router
        .route(path, route.clone())
        .route(&format!("{path}/"), route)
}

pub fn router(state: AppState, cors_origins: &[String]) -> Router {
    let mut open = Router::new()
        .route("/health", get(health::health))
        .route("/health/mqtt-monitor", get(seeds::mqtt_monitor));
    open = both(open, "/api/health", get(seeds::api_health));
    let pages = Router::new()
        .route("/", get(live::index))
        .route("/dashboard/app.js", get(live::script))
        .route("/dashboard/style.css", get(live::style))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            login::require_page,
        ));
    let metrics = Router::new().route("/metrics", get(health::metrics));
    let metrics = match state.metrics_public {
        true => metrics,
        false => metrics.route_layer(middleware::from_fn_with_state(
            state.clone(),
            login::require_api,
        )),
    };

    let mut api = Router::new()
        .route("/status-count", get(seeds::status_count))
        .route("/sensors/latest", get(seeds::sensors_latest))
        .route("/sensors/history", get(seeds::sensors_history))
        .route("/alerts", get(seeds::alerts))
        .route("/stats", get(seeds::stats))
        .route("/api/v1/devices", get(v1::devices))
        .route("/api/v1/devices/:id", get(v1::device))
        .route("/api/v1/devices/:id/series", get(v1::series))
        .route("/api/v1/messages", get(v1::messages))
        .route("/api/v1/alerts", get(v1::alerts))
        .route("/api/v1/alerts/:id", get(v1::alert))
        .route("/api/v1/alerts/:id/clear", post(v1::clear_alert))
        .route("/api/v1/dead-letters", get(v1::dead_letters))
        .route("/api/v1/bridges", get(v1::bridges))
        .route("/api/v1/rules", get(v1::rules))
        .route("/api/v1/sessions", get(v1::sessions))
        .route(
            "/api/v1/sessions/:id",
            get(v1::session).delete(v1::end_session),
        )
        .route("/api/v1/events", get(live::events))
        .route("/api/v1/openapi.json", get(v1::openapi));
    api = both(api, "/api/devices", get(seeds::api_devices));
    api = both(api, "/api/telemetry", get(seeds::api_telemetry));
    api = both(api, "/api/stats/avg", get(seeds::api_stats_avg));
    api = both(api, "/api/alerts", get(seeds::api_alerts));
    let api = api.route_layer(middleware::from_fn_with_state(
        state.clone(),
        login::require_api,
    ));

    open.merge(pages)
        .merge(metrics)
        .merge(api)
        .fallback(not_found)
        .layer(cors(cors_origins))
        .with_state(state)
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no endpoint {method} {}", uri.path()))
}
