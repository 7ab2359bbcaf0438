//! Start-up as a list of stages, and the stop. Start-up binds every listener first (a busy port
//! is an immediate error), then starts the stages from the store outwards: store, broker,
//! notifier, ingest, front door, request/response, HTTP. The stop runs the other way: stop
//! accepting, let ingest hand everything received to the store, commit it, send the last
//! acknowledgements, close the database.

mod listeners;

use crate::auth::Logins;
use crate::broker::{self, Outbox};
use crate::config::Config;
use crate::front_door::{self, sys, FrontDoor};
use crate::http::{self, AppState};
use crate::ingest::{self, Ingest, Intake};
use crate::listen;
use crate::logging::{LogFile, Throttle};
use crate::metrics::Metrics;
use crate::notify;
use crate::query::Db;
use crate::reload::{Live, Reloadable};
use crate::rpc::{self, Rpc};
use crate::rules::Rules;
use crate::shutdown::{self, Shutdown, Stopping};
use crate::store::{self, WriterHandle};
pub use listeners::Bound;
use listeners::{Listeners, MqttListener};
use rumqttd::local::{LinkRx, LinkTx};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

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

/// How long the stop waits for the last acknowledgements to be sent.
const LAST_ACKS_TIMEOUT: Duration = Duration::from_secs(3);
/// Dead letters logged one by one per second (all are stored).
const DEAD_LETTER_WARNINGS_PER_SECOND: u32 = 10;
/// Live events that may wait for a slow dashboard before it skips some.
const LIVE_EVENTS_QUEUED: usize = 1024;

/// Runs edgemq until SIGINT or SIGTERM, then stops cleanly.
pub async fn run(config: Config, log_file: LogFile) -> Result<Stopped, StartError> {
    run_telling(config, log_file, |_| ()).await
}

/// [`run`], telling `ready` where each listener is bound once every stage is up (for programs
/// that embed edgemq, such as the fuzz targets).
pub async fn run_telling(
    config: Config,
    log_file: LogFile,
    ready: impl FnOnce(&Bound),
) -> Result<Stopped, StartError> {
    // Installed first: a signal that arrives while starting must still stop cleanly, and a
    // SIGHUP must never stop edgemq.
    let signal = shutdown::signal()?;
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let (shutdown, stopping) = Shutdown::new();
    listen::raise_open_files_limit();
    let listeners = Listeners::bind(&config).await?;
    let addrs = listeners.addrs()?;
    let metrics = Arc::new(Metrics::default());

    let store = store::start(&config.store, metrics.clone()).map_err(StartError)?;
    let broker =
        tokio::task::block_in_place(|| broker::start(config.id, &config.router, store.retained))?;
    let (live, _) = broadcast::channel(LIVE_EVENTS_QUEUED);
    let notices = notify::spawn(live.clone(), metrics.clone())?;
    let rules = rules(&config, store.rules_state);
    let _ = metrics.rules.set(rules.statuses());
    let ingest = Ingest {
        settings: config.ingest.decode_settings().map_err(StartError)?,
        routes: config.routes(),
        rules,
        notices,
        fanout: ingest::Fanout::new(
            broker.outbox.clone(),
            broker.retained.clone(),
            store.next_id,
        ),
        metrics: metrics.clone(),
        batch_max: config.store.batch_max,
        warnings: Throttle::new(DEAD_LETTER_WARNINGS_PER_SECOND),
    };
    let capacity = config.store.queue_capacity;
    let intake = ingest::start(ingest, capacity, store.writer.queue(), stopping.clone())?;
    let mqtt = listeners.mqtt;
    let log = (Db::new(config.store.path.clone()), store.writer.committed());
    let (front_door, security) =
        start_front_door(&config, mqtt, &broker, (&intake, log), &metrics, &stopping)?;
    front_door.restore_sessions(store.sessions);
    start_rpc(&config, broker.rpc_link, &broker.outbox, &metrics)?;
    let bridges = crate::bridge::Context {
        log: Db::new(config.store.path.clone()),
        committed: store.writer.committed(),
        database: config.store.path.clone(),
        metrics: metrics.clone(),
        stopping: stopping.clone(),
        intake: intake.clone(),
    };
    crate::bridge::spawn(&config.bridge, bridges);
    tokio::spawn(crate::webhook::run(
        config.store.path.clone(),
        metrics.clone(),
        stopping.clone(),
    ));
    let state = AppState {
        sessions: front_door.sessions(),
        metrics: metrics.clone(),
        db: Db::new(config.store.path.clone()),
        intake: intake.clone(),
        mqtt_listeners: addrs.mqtt.clone(),
        queue_capacity: capacity,
        token: config.http.token.as_deref().map(Arc::from),
        logins: security.logins.clone(),
        metrics_public: config.http.metrics_public,
        live,
        stopping: stopping.clone(),
    };
    let https = match config.http.tls().is_set() {
        true => Some(Arc::new(
            crate::tls::Server::new(&config.http.tls(), true)
                .map_err(|e| StartError(format!("http: {e}")))?,
        )),
        false => None,
    };
    let reloadable = Reloadable {
        auth: config.auth.clone(),
        replies: config.rpc_routes().into_iter().map(|r| r.reply).collect(),
        logins: security.logins,
        acl: security.acl,
        tls: security.tls.into_iter().chain(https.clone()).collect(),
        log_file,
        sessions: front_door.sessions(),
    };
    tokio::spawn(reloadable.on_hangups(hangups));
    let http = start_http(listeners.http, state, &config, stopping, https);
    metrics.listeners_up.store(true, Relaxed);
    addrs.announce(&config, store.stored_at_start);
    ready(&addrs);

    let signal = signal.await;
    tracing::info!("{signal}: shutting down, flushing the store");
    let running = Running {
        shutdown,
        front_door,
        intake,
        writer: store.writer,
        http,
        stop_timeout: config.store.stop_timeout,
        metrics: metrics.clone(),
    };
    let flushed = running.stop().await;
    tracing::info!(
        "stopped: {} messages stored this run, {} in the database",
        metrics.stored.load(Relaxed),
        metrics.messages_in_database()
    );
    Ok(Stopped { flushed })
}

/// How a run ended.
pub struct Stopped {
    /// Everything received was stored before edgemq exited.
    pub flushed: bool,
}

fn rules(config: &Config, state: store::RulesState) -> Rules {
    let routes = config.routes();
    let offline_after = |topic: &str| {
        let route = routes.find(topic)?;
        route.offline_after.map(|d| d.as_millis() as i64)
    };
    Rules::new(config.rules(), state, offline_after)
}

/// What SIGHUP reloads of the front door's: logins, ACL, its TLS certificates.
struct Security {
    logins: Arc<Live<Logins>>,
    acl: Arc<Live<crate::acl::Acl>>,
    tls: Option<Arc<crate::tls::Server>>,
}

/// The MQTT listeners, and the `$SYS` tree they serve.
fn start_front_door(
    config: &Config,
    mqtt: Vec<MqttListener>,
    broker: &broker::Broker,
    (intake, (db, committed)): (&flume::Sender<Intake>, (Arc<Db>, watch::Receiver<i64>)),
    metrics: &Arc<Metrics>,
    stopping: &Stopping,
) -> Result<(FrontDoor, Security), StartError> {
    let logins = Logins::from_config(&config.auth)
        .map_err(|e| StartError(format!("auth.password_file: {e}")))?;
    let routes = config.rpc_routes();
    let replies: Vec<&str> = routes.iter().map(|r| r.reply.as_str()).collect();
    let acl = crate::acl::Acl::new(config.auth.acl_file.as_deref(), logins.any(), &replies)
        .map_err(|e| StartError(format!("auth.acl_file: {e}")))?;
    let (sys_tx, sys_rx) = tokio::sync::watch::channel(Arc::new(sys::build(metrics)));
    tokio::spawn(sys::publish(
        metrics.clone(),
        config.mqtt.sys_interval,
        sys_tx,
        stopping.clone(),
    ));
    let shared = front_door::Shared {
        settings: config.mqtt.clone(),
        router: broker.router.clone(),
        outbox: broker.outbox.clone(),
        intake: intake.clone(),
        logins: Arc::new(Live::new(logins)),
        acl: Arc::new(Live::new(acl)),
        rpc_requests: routes.iter().map(|r| r.request.clone()).collect(),
        metrics: metrics.clone(),
        sys: sys_rx,
        stopping: stopping.clone(),
        parked: Default::default(),
        delayed_wills: Default::default(),
        sessions: Arc::new(front_door::registry::Registry::new(metrics.clone())),
        retained: broker.retained.clone(),
        log: db,
        committed,
    };
    let tls = match mqtt.iter().any(|l| l.3) {
        true => Some(Arc::new(
            crate::tls::Server::new(&config.tls, false)
                .map_err(|e| StartError(format!("tls: {e}")))?,
        )),
        false => None,
    };
    let listeners = mqtt
        .into_iter()
        .map(
            |MqttListener(label, socket, websocket, with_tls)| front_door::Listener {
                socket,
                label,
                websocket,
                tls: tls.clone().filter(|_| with_tls),
            },
        )
        .collect();
    let security = Security {
        logins: shared.logins.clone(),
        acl: shared.acl.clone(),
        tls,
    };
    Ok((front_door::start(listeners, Arc::new(shared)), security))
}

/// MQTT request/response on its own link, when the broker made one.
fn start_rpc(
    config: &Config,
    link: Option<(LinkTx, LinkRx)>,
    outbox: &Arc<Outbox>,
    metrics: &Arc<Metrics>,
) -> std::io::Result<()> {
    let Some((tx, rx)) = link else {
        return Ok(());
    };
    let rpc = Rpc {
        routes: config.rpc_routes(),
        db: Db::new(config.store.path.clone()),
        outbox: outbox.clone(),
        metrics: metrics.clone(),
    };
    rpc::spawn(rpc, tx, rx)
}

/// The HTTP server, until the stop.
fn start_http(
    listener: TcpListener,
    state: AppState,
    config: &Config,
    stopping: Stopping,
    tls: Option<Arc<crate::tls::Server>>,
) -> JoinHandle<()> {
    let metrics = state.metrics.clone();
    let app = http::router(state, &config.http.cors_origins);
    let limits = config.http.clone();
    tokio::spawn(async move { http::serve(listener, app, (&limits, tls), metrics, stopping).await })
}

/// What the stop needs to reach.
struct Running {
    shutdown: Shutdown,
    front_door: FrontDoor,
    /// Ingest's queue: the barrier goes in behind everything received.
    intake: flume::Sender<Intake>,
    writer: WriterHandle,
    http: JoinHandle<()>,
    /// `[store] stop_timeout`: how long the store may take to commit what was received.
    stop_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Running {
    /// Stops accepting (MQTT, HTTP, ticks), waits until nothing is read from clients, lets the
    /// store commit everything received, sends the last acknowledgements, closes the database.
    /// Whether everything received was stored: when the store cannot commit within
    /// `stop_timeout` (a full disk), it stops anyway and says how much was not stored.
    async fn stop(mut self) -> bool {
        self.shutdown.begin();
        let deadline = tokio::time::Instant::now() + self.stop_timeout;
        // A connection blocked on a frozen client, or on a full queue, may take the first half.
        if !within(self.stop_timeout / 2, self.front_door.stopped_reading()).await {
            tracing::warn!(
                "some clients were still being read after {:?}",
                self.stop_timeout / 2
            );
        }
        let (done, committed) = flume::bounded(1);
        let intake = &self.intake;
        let drained = async {
            intake.send_async(Intake::Barrier(done)).await.ok()?;
            committed.recv_async().await.ok()
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let stored = tokio::time::timeout(left, drained).await.ok().flatten();
        if stored.is_none() {
            let lost = self.metrics.not_yet_stored();
            tracing::error!(
                "the store could not commit within stop_timeout ({:?}): {lost} messages received \
                 were not stored; none of them was acknowledged, so QoS 1/2 publishers resend them",
                self.stop_timeout
            );
            return false;
        }
        drop(self.intake);
        if !within(LAST_ACKS_TIMEOUT, self.front_door.closed()).await {
            tracing::warn!("connections still open after {LAST_ACKS_TIMEOUT:?}");
        }
        self.writer.stop().await;
        let _ = self.http.await;
        true
    }
}

/// Whether `phase` finished within `limit`.
async fn within(limit: Duration, phase: impl std::future::Future) -> bool {
    tokio::time::timeout(limit, phase).await.is_ok()
}
