//! The front door: edgemq's own MQTT listener in front of rumqttd's router. One port serves
//! MQTT 3.1, 3.1.1 and 5 (the CONNECT decides), with Mosquitto's answers: CONNACK codes for
//! refused logins, keep-alive 0, any client id, an UNSUBACK for every UNSUBSCRIBE, `$SYS`.
//! Every publish goes to ingest from here, with its client, QoS and retain flag, and with
//! durable acks its PUBACK waits for the commit. When the store falls behind, connections stop
//! reading their sockets, so TCP slows the publishers down instead of anything being dropped.

pub mod codec;
mod connect;
mod parked;
pub mod registry;
mod sessions;
pub use sessions::{Ended, Sessions};
mod session;
pub mod sys;
pub mod violations;
mod websocket;
mod wills;

use crate::auth::Logins;
use crate::broker::{Outbox, RouterHandle};
use crate::ingest::Intake;
use crate::listen::Acceptor;
use crate::metrics::Metrics;
use crate::reload::Live;
use crate::shutdown::{Guard, Stopping, Tracker};
use bytes::BytesMut;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use sys::SysTree;

/// `[mqtt]`: the listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttSection {
    /// MQTT 3.1, 3.1.1 and 5 on this one address.
    pub listen: SocketAddr,
    /// A Mosquitto configuration file whose MQTT settings apply over these (`-c FILE`).
    pub mosquitto_conf: Option<std::path::PathBuf>,
    /// Also serve MQTT over WebSockets (subprotocol `mqtt`) on `websocket_listen`.
    pub websocket: bool,
    pub websocket_listen: SocketAddr,
    /// MQTT over TLS (`[tls]` has the certificates), off unless set; 8883 is the usual port.
    pub tls_listen: Option<SocketAddr>,
    /// MQTT over WebSockets over TLS, off unless set.
    pub websocket_tls_listen: Option<SocketAddr>,
    /// Time a new connection has to send CONNECT.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Largest packet accepted; a larger one closes that client's connection.
    pub max_packet_size: usize,
    /// Send a QoS 1 PUBACK / QoS 2 PUBREC only once the message is committed to SQLite.
    pub durable_acks: bool,
    /// QoS 1/2 deliveries a client may have unacknowledged (Mosquitto's option; an MQTT 5
    /// client's own Receive Maximum lowers it).
    pub max_inflight_messages: usize,
    /// Whether QoS 0 messages published while a persistent session's client is away are
    /// delivered when it comes back (Mosquitto's option and default: no).
    pub queue_qos0_messages: bool,
    /// Most messages that may wait for a client beyond its in-flight window (Mosquitto's
    /// option); past it new messages are not delivered to that client, and are counted.
    /// None or 0: no limit (the default: a client that falls far behind reads from the store).
    pub max_queued_messages: Option<usize>,
    /// The same in payload bytes (Mosquitto's `max_queued_bytes`).
    pub max_queued_bytes: Option<usize>,
    /// How long an MQTT 3.x persistent session (clean session off) is kept after its client
    /// left (Mosquitto's `persistent_client_expiration`). None: forever. MQTT 5 clients say
    /// their own (Session Expiry Interval).
    #[serde(with = "humantime_serde")]
    pub persistent_client_expiration: Option<Duration>,
    /// Most client connections at once (TCP and WebSocket together, counted from accept);
    /// more are closed as they come, and counted. None: no limit (Mosquitto's -1).
    pub max_connections: Option<usize>,
    /// Topic aliases an MQTT 5 client may set (Topic Alias Maximum in CONNACK); 0: none.
    pub topic_alias_maximum: u16,
    /// The longest keep-alive a client may ask for (Mosquitto's option); a client asking for
    /// more, or for none (0), is given this one (MQTT 5: Server Keep Alive in CONNACK) or, with
    /// MQTT 3.x, refused (CONNACK 2, as Mosquitto does). None or 0: no limit.
    pub max_keepalive: Option<u16>,
    /// How often `$SYS/broker/...` is refreshed for its subscribers.
    #[serde(with = "humantime_serde")]
    pub sys_interval: Duration,
}

impl Default for MqttSection {
    fn default() -> Self {
        MqttSection {
            listen: SocketAddr::from(([0, 0, 0, 0], 1883)),
            mosquitto_conf: None,
            websocket: true,
            websocket_listen: SocketAddr::from(([0, 0, 0, 0], 8083)),
            tls_listen: None,
            websocket_tls_listen: None,
            connect_timeout: Duration::from_secs(10),
            max_packet_size: 4 * 1024 * 1024,
            durable_acks: true,
            max_inflight_messages: 100,
            persistent_client_expiration: None,
            queue_qos0_messages: false,
            max_queued_messages: None,
            max_queued_bytes: None,
            max_connections: None,
            max_keepalive: None,
            topic_alias_maximum: 10,
            sys_interval: Duration::from_secs(10),
        }
    }
}

/// MQTT's largest remaining length.
const MQTT_MAX_PACKET: usize = 268_435_455;

impl MqttSection {
    /// The limits on what may wait for each client (0 is no limit, as in Mosquitto).
    pub fn queue_limits(&self) -> session::QueueLimits {
        session::QueueLimits {
            messages: self.max_queued_messages.filter(|n| *n > 0),
            bytes: self.max_queued_bytes.filter(|n| *n > 0),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MQTT_MAX_PACKET).contains(&self.max_packet_size) {
            return Err(format!(
                "mqtt.max_packet_size: must be 1..={MQTT_MAX_PACKET} bytes"
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err("mqtt.connect_timeout: must be more than 0".into());
        }
        if !(1..=65535).contains(&self.max_inflight_messages) {
            return Err("mqtt.max_inflight_messages: must be 1..=65535".into());
        }
        if self.max_connections == Some(0) {
            return Err(
                "mqtt.max_connections: must be at least 1 (leave it out for no limit)".into(),
            );
        }
        if self.sys_interval < Duration::from_secs(1) {
            return Err("mqtt.sys_interval: must be at least 1s".into());
        }
        Ok(())
    }
}

/// What every connection shares.
pub struct Shared {
    pub settings: MqttSection,
    pub router: RouterHandle,
    pub outbox: Arc<Outbox>,
    pub intake: flume::Sender<Intake>,
    pub logins: Arc<Live<Logins>>,
    /// Who may publish to and read which topics.
    pub acl: Arc<Live<crate::acl::Acl>>,
    /// The request filters of `[[rpc]]` (a request's response topic must be the client's).
    pub rpc_requests: Vec<String>,
    pub metrics: Arc<Metrics>,
    /// The `$SYS` tree, refreshed every `sys_interval`.
    pub sys: watch::Receiver<SysTree>,
    /// Says when to stop accepting and reading.
    pub stopping: Stopping,
    /// Persistent sessions' own state while their clients are away.
    pub parked: parked::Parked,
    /// MQTT 5 wills waiting for their Will Delay Interval.
    pub delayed_wills: Arc<wills::Delayed>,
    /// Every session, as `/api/v1/sessions` shows it.
    pub sessions: Arc<registry::Registry>,
    /// Retained messages, for new subscriptions.
    pub retained: Arc<crate::broker::retained::Retained>,
    /// The store's log, for sessions that fell behind, and how far it is committed.
    pub log: Arc<crate::query::Db>,
    pub committed: watch::Receiver<i64>,
}

/// The running listeners, for shutdown.
pub struct FrontDoor {
    shared: Arc<Shared>,
    /// Held by every accept loop and by each connection while it reads its socket.
    reading: Tracker,
    /// Held by each connection until it has sent its last acknowledgement and closed.
    open: Tracker,
}

impl FrontDoor {
    /// Persistent sessions saved by an earlier run, for their clients to resume.
    pub fn restore_sessions(&self, sessions: Vec<crate::store::SavedSession>) {
        if !sessions.is_empty() {
            tracing::info!("{} persistent sessions restored", sessions.len());
        }
        for saved in &sessions {
            self.shared.sessions.away(session::restored_view(saved));
        }
        self.shared.parked.restore(sessions, session::QUEUED_MAX);
    }

    /// The sessions, for the API.
    pub fn sessions(&self) -> Sessions {
        Sessions(self.shared.clone())
    }

    /// Resolves once, after the stop began, nothing reads from clients any more: everything
    /// received is in ingest's queue.
    pub async fn stopped_reading(&mut self) {
        self.reading.all_done().await
    }

    /// Resolves once every connection has sent its last acknowledgement and closed.
    pub async fn closed(&mut self) {
        self.open.all_done().await
    }
}

/// One listening socket: its label in the ready line, whether clients speak WebSockets on
/// it, and its TLS when it has one.
pub struct Listener {
    pub socket: TcpListener,
    pub label: &'static str,
    pub websocket: bool,
    pub tls: Option<Arc<crate::tls::Server>>,
}

/// Serves MQTT on every listener until the stop.
pub fn start(listeners: Vec<Listener>, shared: Arc<Shared>) -> FrontDoor {
    let front_door = FrontDoor {
        shared: shared.clone(),
        reading: Tracker::default(),
        open: Tracker::default(),
    };
    let limit = shared
        .settings
        .max_connections
        .unwrap_or(Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(limit));
    for listener in listeners {
        let guards = (front_door.reading.guard(), front_door.open.guard());
        let accept = accept(listener, shared.clone(), permits.clone(), guards);
        tokio::spawn(accept);
    }
    tokio::spawn(expire_sessions(shared));
    front_door
}

/// How often parked sessions are checked for expiry.
const EXPIRY_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Removes each persistent session when its expiry passes while its client is away, from
/// memory and from the store, until the stop.
async fn expire_sessions(shared: Arc<Shared>) {
    let mut stopping = shared.stopping.clone();
    let mut every = tokio::time::interval(EXPIRY_CHECK_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stopping.wait() => return,
        }
        for client_id in shared.parked.take_expired() {
            tracing::info!("the session of client {client_id} expired");
            shared.sessions.remove(&client_id);
            shared.metrics.sessions_expired.fetch_add(1, Relaxed);
            let end = crate::store::SessionChange::End(client_id.to_string());
            if shared
                .intake
                .send_async(Intake::Session(end))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

async fn accept(
    listener: Listener,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    (reading, open): (Guard, Guard),
) {
    let mut acceptor = Acceptor::new(listener.socket, listener.label);
    let mut stopping = shared.stopping.clone();
    loop {
        let (socket, peer) = tokio::select! {
            accepted = acceptor.accept() => accepted,
            _ = stopping.wait() => return,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Over [mqtt] max_connections: closed at once, as Mosquitto does.
            shared.metrics.connections_refused.fetch_add(1, Relaxed);
            continue;
        };
        let guards = (reading.clone(), open.clone());
        let _ = socket.set_nodelay(true);
        let (shared, tls) = (shared.clone(), listener.tls.clone());
        let (label, websocket) = (listener.label, listener.websocket);
        tokio::spawn(async move {
            let timeout = shared.settings.connect_timeout;
            match tls {
                None => serve_on(socket, websocket, (peer, None), shared, guards).await,
                Some(tls) => match tokio::time::timeout(timeout, tls.accept(socket)).await {
                    Ok(Ok(stream)) => {
                        let certified = tls.username(&stream);
                        let peer = (peer, certified);
                        serve_on(stream, websocket, peer, shared, guards).await
                    }
                    Ok(Err(e)) => tracing::info!("{label}: {peer}: TLS handshake: {e}"),
                    Err(_) => tracing::info!("{label}: {peer}: no TLS handshake in time"),
                },
            }
            drop(permit);
        });
    }
}

/// Serves one connection: MQTT on it, or after a WebSocket handshake. `peer`: its address and
/// the username its client certificate gives.
async fn serve_on(
    socket: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    websocket: bool,
    peer: (SocketAddr, Option<String>),
    shared: Arc<Shared>,
    guards: (Guard, Guard),
) {
    if !websocket {
        return serve(socket, peer, shared, guards).await;
    }
    let timeout = shared.settings.connect_timeout;
    match tokio::time::timeout(timeout, websocket::bridge(socket)).await {
        Ok(Ok(stream)) => serve(stream, peer, shared, guards).await,
        Ok(Err(why)) => tracing::info!("mqtt-ws: {}: {why}", peer.0),
        Err(_) => tracing::info!("mqtt-ws: {}: no handshake in time", peer.0),
    }
}

async fn serve(
    mut socket: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    (peer, certified): (SocketAddr, Option<String>),
    shared: Arc<Shared>,
    (reading, open): (Guard, Guard),
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let client = match connect::accept(&mut socket, &mut buf, &shared, certified).await {
        Ok(client) => client,
        Err(why) => {
            shared.metrics.connections_refused.fetch_add(1, Relaxed);
            tracing::info!("mqtt: connection from {peer} refused: {why}");
            return;
        }
    };
    tracing::debug!(
        "client {} connected from {peer} ({:?}, keep-alive {}s)",
        client.client_id,
        client.version,
        client.keep_alive
    );
    shared.metrics.connected_clients.fetch_add(1, Relaxed);
    shared.metrics.connections_total.fetch_add(1, Relaxed);
    session::Session::new(client, shared)
        .run(socket, buf, reading)
        .await;
    drop(open);
}
