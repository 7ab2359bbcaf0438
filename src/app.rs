//! Wires the stages together (front door → ingest → store, the router beside the front door,
//! the HTTP server beside them all) and owns shutdown: on SIGINT or SIGTERM, stop HTTP, stop
//! reading from clients, let the store commit everything received, send the last
//! acknowledgements, then close the database.

use crate::auth::Logins;
use crate::broker;
use crate::config::Config;
use crate::front_door::{self, sys};
use crate::http::{self, AppState};
use crate::ingest::{self, decode::DecodeSettings, Ingest, Intake};
use crate::metrics::Metrics;
use crate::query::Db;
use crate::rpc::{self, Rpc};
use crate::rules::Rules;
use crate::store::{self, StoreOp};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A reason edgemq could not start, said in one line (exit status 2).
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for StartError {
    fn from(e: E) -> Self {
        StartError(e.to_string())
    }
}

/// Batches of records that may wait for the writer; each holds up to `batch_max` messages.
const STORE_QUEUE_BATCHES: usize = 4;
/// How long shutdown waits for the store to catch up with the broker.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs edgemq until a signal, then shuts down cleanly.
pub async fn run(config: Config) -> Result<(), StartError> {
    let started_at = Instant::now();
    // Installed first: a signal that arrives while starting must still shut down cleanly.
    let signal = shutdown_signal()?;
    let mqtt_addr = config.mqtt.listen;
    let mqtt_listener = tokio::net::TcpListener::bind(mqtt_addr)
        .await
        .map_err(|e| bind_error("mqtt", mqtt_addr, e))?;
    let mqtt_addr = mqtt_listener.local_addr()?;
    let ws_listener = match config.mqtt.websocket {
        false => None,
        true => {
            let addr = config.mqtt.websocket_listen;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| bind_error("mqtt-ws", addr, e))?;
            Some(listener)
        }
    };
    let mut mqtt_listeners = vec![("mqtt", mqtt_addr)];
    if let Some(ws) = &ws_listener {
        mqtt_listeners.push(("mqtt-ws", ws.local_addr()?));
    }
    let http_addr = config.http.listen;
    let http_listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .map_err(|e| bind_error("http", http_addr, e))?;
    let http_addr = http_listener.local_addr()?;

    let metrics = Arc::new(Metrics::default());
    let db_path = config.store.path.clone();
    let conn = store::open_writer(&db_path, config.store.synchronous)
        .map_err(|e| StartError(format!("cannot open database {}: {e}", db_path.display())))?;
    let stored_at_start = store::count_messages(&conn)
        .map_err(|e| StartError(format!("cannot read database {}: {e}", db_path.display())))?;
    let rules_state = store::load_rules_state(&conn)
        .map_err(|e| StartError(format!("cannot read database {}: {e}", db_path.display())))?;
    let retained = store::load_retained(&conn)
        .map_err(|e| StartError(format!("cannot read database {}: {e}", db_path.display())))?;
    metrics.database_ok.store(true, Relaxed);

    let batch_max = config.store.batch_max;
    let (store_tx, store_rx) = flume::bounded(STORE_QUEUE_BATCHES);
    let retention = config.store.retention.clone();
    let writer = store::spawn_writer(conn, store_rx, batch_max, retention, metrics.clone())?;
    let (intake_tx, intake_rx) = flume::bounded(config.store.queue_capacity);
    let ticks = intake_tx.clone();
    let commands = intake_tx.clone();
    let logins = Logins::from_config(&config.auth)
        .map_err(|e| StartError(format!("auth.password_file: {e}")))?;
    let mut broker =
        tokio::task::block_in_place(|| broker::start(config.id, &config.router, retained))?;

    let routes = config.routes();
    let offline_after = |topic: &str| {
        let route = routes.find(topic)?;
        route.offline_after.map(|d| d.as_millis() as i64)
    };
    let rules = Rules::new(config.rules(), rules_state, offline_after);
    let (live, _) = tokio::sync::broadcast::channel(1024);
    let ingest = Ingest {
        live: live.clone(),
        settings: DecodeSettings {
            max_payload: config.ingest.max_payload,
            zone: config
                .ingest
                .timezone
                .parse()
                .map_err(|_| StartError("ingest.timezone: unknown zone".into()))?,
            future_tolerance_ms: config.ingest.future_tolerance.as_millis() as i64,
        },
        routes,
        rules,
        outbox: broker.outbox.clone(),
        metrics: metrics.clone(),
        batch_max,
        warnings: Default::default(),
    };
    ingest::spawn(ingest, intake_rx, ticks, store_tx.clone())?;

    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    let (sys_tx, sys_rx) = tokio::sync::watch::channel(Arc::new(sys::build(&metrics, started_at)));
    tokio::spawn(sys::publish(
        metrics.clone(),
        started_at,
        config.mqtt.sys_interval,
        sys_tx,
    ));
    let shared = front_door::Shared {
        settings: config.mqtt.clone(),
        router: broker.router.clone(),
        outbox: broker.outbox.clone(),
        intake: intake_tx,
        logins,
        metrics: metrics.clone(),
        sys: sys_rx,
        started: started_at,
        closing: closing_rx.clone(),
    };
    let mut front_door = front_door::start(mqtt_listener, ws_listener, Arc::new(shared));
    metrics.listeners_up.store(true, Relaxed);
    tracing::info!(
        "edgemq ready: {} http={http_addr} db={} ({stored_at_start} messages)",
        mqtt_listeners
            .iter()
            .map(|(label, addr)| format!("{label}={addr}"))
            .collect::<Vec<_>>()
            .join(" "),
        db_path.display()
    );
    let dashboard_host = if http_addr.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        http_addr.ip().to_string()
    };
    tracing::info!("dashboard: http://{dashboard_host}:{}/", http_addr.port());

    let db = Db::new(db_path.clone());
    if let Some((tx, rx)) = broker.rpc_link.take() {
        let rpc = Rpc {
            routes: config.rpc_routes(),
            db: db.clone(),
            outbox: broker.outbox.clone(),
        };
        rpc::spawn(rpc, tx, rx)?;
    }
    let state = AppState {
        metrics: metrics.clone(),
        db,
        db_path: db_path.clone(),
        intake: commands.clone(),
        mqtt_listeners,
        queue_capacity: config.store.queue_capacity,
        stored_at_start,
        started_at,
        token: config.http.token.as_deref().map(Arc::from),
        live,
        closing: closing_rx,
    };
    let app = http::router(state, &config.http.cors_origins);
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(http::serve(http_listener, app, async {
        let _ = http_stopped.await;
    }));

    let signal = signal.await;
    tracing::info!("{signal}: shutting down, flushing the store");
    let _ = stop_http.send(());
    let _ = closing.send(true);

    if tokio::time::timeout(DRAIN_TIMEOUT, front_door.stopped_reading())
        .await
        .is_err()
    {
        tracing::error!("clients still being read after {DRAIN_TIMEOUT:?}");
    }
    let (done, fired) = flume::bounded(1);
    let drained = async {
        commands.send_async(Intake::Barrier(done)).await.ok()?;
        fired.recv_async().await.ok()
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        tracing::error!("the store did not catch up within {DRAIN_TIMEOUT:?}");
    }
    // Last acknowledgements out, connections closed.
    let _ = tokio::time::timeout(Duration::from_secs(3), front_door.closed()).await;
    let _ = store_tx.send_async(StoreOp::Stop).await;
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    match tokio::time::timeout(Duration::from_secs(5), http).await {
        Ok(Ok(Err(e))) => tracing::error!("http server: {e}"),
        Err(_) => tracing::warn!("http requests still open at shutdown"),
        _ => {}
    }
    tracing::info!(
        "stopped: {} messages stored this run, {} in the database",
        metrics.stored.load(Relaxed),
        stored_at_start + metrics.stored.load(Relaxed)
    );
    Ok(())
}

fn bind_error(label: &str, addr: std::net::SocketAddr, e: std::io::Error) -> StartError {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        StartError(format!("{label} address {addr} is already in use"))
    } else {
        StartError(format!("{label} address {addr} cannot be bound: {e}"))
    }
}

/// Resolves with the name of the first SIGINT or SIGTERM received after this call.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    })
}
