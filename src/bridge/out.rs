//! The `out` direction of one bridge: connect upstream (the addresses in order, moving on when
//! one fails), then read the log after the cursor in pages and publish what the `out` topics
//! match, with the remote prefix, at most 1,000 unacknowledged. The cursor is the last id before
//! the oldest unacknowledged message; it is saved every 100 ms while it moves and when the
//! connection ends, and a new connection starts from it, so what was in flight is sent again
//! (after `kill -9`, what was acknowledged in the last 100 ms too).

use super::cursor::Cursor;
use super::inbound::Inbound;
use super::{host_port, Backlog, BridgeSection, Context};
use crate::query::log::{self, Logged};
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;

/// Ids read from the log per page.
const PAGE_IDS: i64 = 1_000;
/// Messages taken for publishing and not yet acknowledged, at most.
const WINDOW: usize = 1_000;
/// How often the cursor is saved while it moves.
const SAVE_EVERY: Duration = Duration::from_millis(100);

type Page = Pin<Box<dyn Future<Output = (Result<Vec<Logged>, String>, i64)> + Send>>;

/// How a connection ended, and the cursor then.
enum Ended {
    Stopped(i64),
    Lost(i64, String),
}

pub async fn run(bridge: BridgeSection, mut context: Context) {
    let head = *context.committed.borrow();
    let cursor = match Cursor::open(&context.database, &bridge.name) {
        Ok(cursor) => cursor,
        Err(e) => return tracing::error!("bridge {}: cannot open its cursor: {e}", bridge.name),
    };
    let mut acked_through = match cursor.load().await {
        Ok(Some(saved)) => saved,
        // A new bridge forwards what comes from now on.
        Ok(None) => head,
        Err(e) => return tracing::error!("bridge {}: cannot read its cursor: {e}", bridge.name),
    };
    cursor.save(acked_through).await;
    let mut address = 0;
    let mut backlog = Backlog::default();
    loop {
        backlog.report(
            &context.metrics,
            *context.committed.borrow() - acked_through,
        );
        let at = &bridge.addresses[address % bridge.addresses.len()];
        let state = (acked_through, &cursor, &mut backlog);
        match connection(&bridge, at, state, &mut context).await {
            Ended::Stopped(through) => {
                cursor.save(through).await;
                return;
            }
            Ended::Lost(through, why) => {
                acked_through = through;
                cursor.save(through).await;
                tracing::warn!(
                    "bridge {}: {at}: {why}; trying again in {:?}",
                    bridge.name,
                    bridge.restart_timeout
                );
                address += 1;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(bridge.restart_timeout) => {}
            _ = context.stopping.wait() => return,
        }
    }
}

fn options(bridge: &BridgeSection, address: &str) -> Option<MqttOptions> {
    let (host, port) = host_port(address)?;
    let mut options = MqttOptions::new(bridge.client_id(), host, port);
    options.set_keep_alive(bridge.keepalive_interval.max(Duration::from_secs(5)));
    options.set_clean_session(bridge.cleansession);
    options.set_inflight(100);
    // What comes in is acknowledged once stored.
    options.set_manual_acks(true);
    options.set_max_packet_size(1 << 28, 1 << 28);
    if let Ok(Some(tls)) = bridge.tls() {
        options.set_transport(rumqttc::Transport::tls_with_config(tls));
    }
    if let Some(user) = &bridge.remote_username {
        options.set_credentials(user, bridge.remote_password.clone().unwrap_or_default());
    }
    Some(options)
}

/// Connects and waits for the CONNACK.
async fn connect(
    bridge: &BridgeSection,
    address: &str,
) -> Result<(AsyncClient, EventLoop), String> {
    let options = options(bridge, address).ok_or("not host:port")?;
    let (client, mut events) = AsyncClient::new(options, 100);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                return match ack.code {
                    ConnectReturnCode::Success => Ok((client, events)),
                    ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized => {
                        Err(format!(
                            "refused: bad remote_username or remote_password ({:?})",
                            ack.code
                        ))
                    }
                    code => Err(format!("refused: {code:?}")),
                };
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("cannot connect: {e}")),
            Err(_) => return Err("no CONNACK within 10s".into()),
        }
    }
}

/// What a connection has taken from the log and not yet had acknowledged.
#[derive(Default)]
struct Window {
    /// Ids taken for publishing, in order, until acknowledged.
    pending: VecDeque<i64>,
    /// Taken and not yet handed to the client: (id, topic, payload, QoS, retain).
    to_send: VecDeque<(i64, String, Vec<u8>, QoS, bool)>,
    /// Handed to the client, waiting for their packet id.
    handed: VecDeque<(i64, QoS)>,
    in_flight: HashMap<u16, i64>,
    acked: HashSet<i64>,
    /// Everything up to here was read from the log.
    read_through: i64,
}

impl Window {
    /// Every message up to this id was acknowledged (or was not for the upstream).
    fn acked_through(&mut self) -> i64 {
        while let Some(front) = self.pending.front() {
            if !self.acked.remove(front) {
                return front - 1;
            }
            self.pending.pop_front();
        }
        self.read_through
    }

    /// A page of the log: what the `out` topics match is taken, except what the bridge brought
    /// in itself.
    fn take(&mut self, bridge: &BridgeSection, rows: Vec<Logged>, through: i64) {
        let own = bridge.local_client_id();
        let outs: Vec<_> = bridge
            .topics
            .iter()
            .filter(|t| t.goes_out())
            .map(|t| (t.local_filter(), t))
            .collect();
        for row in rows {
            if row.client_id.as_deref() == Some(own.as_str()) {
                continue;
            }
            let topic = outs
                .iter()
                .find(|(filter, _)| crate::topic::matches(filter, &row.topic));
            if let Some((_, t)) = topic {
                let qos = if row.qos.min(t.qos) == 0 {
                    QoS::AtMostOnce
                } else {
                    QoS::AtLeastOnce
                };
                self.pending.push_back(row.id);
                self.to_send.push_back((
                    row.id,
                    t.remote_topic(&row.topic),
                    row.payload,
                    qos,
                    row.retain,
                ));
            }
        }
        self.read_through = through;
    }
}

async fn connection(
    bridge: &BridgeSection,
    address: &str,
    state: (i64, &Cursor, &mut Backlog),
    context: &mut Context,
) -> Ended {
    let acked_through = state.0;
    let (client, mut events) = match connect(bridge, address).await {
        Ok(connected) => connected,
        Err(why) => return Ended::Lost(acked_through, why),
    };
    tracing::info!("bridge {}: connected to {address}", bridge.name);
    Inbound::subscribe(bridge, &client);
    context.metrics.bridges_connected.fetch_add(1, Relaxed);
    let ended = forward(bridge, (&client, &mut events), state, context).await;
    context.metrics.bridges_connected.fetch_sub(1, Relaxed);
    ended
}

async fn forward(
    bridge: &BridgeSection,
    (client, events): (&AsyncClient, &mut EventLoop),
    (acked_through, cursor, backlog): (i64, &Cursor, &mut Backlog),
    context: &mut Context,
) -> Ended {
    let mut inbound = Inbound::new(bridge);
    let mut window = Window {
        read_through: acked_through,
        ..Default::default()
    };
    let mut page: Option<Page> = None;
    let mut saved_at = Instant::now();
    let mut saved = acked_through;
    let (mut second, mut sent_this_second) = (Instant::now(), 0u32);
    loop {
        // Hand the client what the rate allows.
        if second.elapsed() >= Duration::from_secs(1) {
            (second, sent_this_second) = (Instant::now(), 0);
        }
        while bridge.max_rate == 0 || sent_this_second < bridge.max_rate {
            let Some((id, topic, payload, qos, retain)) = window.to_send.pop_front() else {
                break;
            };
            match client.try_publish(topic.clone(), qos, retain, payload.clone()) {
                Ok(()) => {
                    window.handed.push_back((id, qos));
                    sent_this_second += 1;
                }
                Err(_) => {
                    window.to_send.push_front((id, topic, payload, qos, retain));
                    break;
                }
            }
        }
        let committed = *context.committed.borrow();
        if page.is_none() && window.pending.len() < WINDOW && committed > window.read_through {
            let (after, through) = (
                window.read_through,
                committed.min(window.read_through + PAGE_IDS),
            );
            let db = context.log.clone();
            page = Some(Box::pin(async move {
                let rows = db.run(move |conn| log::between(conn, after, through)).await;
                (rows.map_err(|e| e.to_string()), through)
            }));
        }
        let rate_wait = (bridge.max_rate > 0
            && sent_this_second >= bridge.max_rate
            && !window.to_send.is_empty())
        .then(|| second + Duration::from_secs(1));
        tokio::select! {
            event = events.poll() => match event {
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if let Some((id, qos)) = window.handed.pop_front() {
                        match qos {
                            QoS::AtMostOnce => {
                                window.acked.insert(id);
                                window.acked_through();
                            }
                            _ => { window.in_flight.insert(pkid, id); }
                        }
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    inbound.take(bridge, publish, context).await;
                    inbound.acknowledge(client, context);
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(id) = window.in_flight.remove(&ack.pkid) {
                        window.acked.insert(id);
                        context.metrics.bridged.fetch_add(1, Relaxed);
                        // Acknowledged ones leave the window, making room for the next page.
                        window.acked_through();
                    }
                }
                Ok(_) => {}
                Err(e) => return Ended::Lost(window.acked_through(), format!("connection lost: {e}")),
            },
            (rows, through) = async { page.as_mut().expect("guarded").await }, if page.is_some() => {
                page = None;
                match rows {
                    Ok(rows) => window.take(bridge, rows, through),
                    Err(e) => {
                        tracing::warn!("bridge {}: reading the log: {e}", bridge.name);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
            _ = context.committed.changed() => {}
            _ = inbound.changed(), if inbound.waiting() => inbound.acknowledge(client, context),
            _ = tokio::time::sleep_until(rate_wait.unwrap_or_else(Instant::now)), if rate_wait.is_some() => {}
            _ = tokio::time::sleep_until(saved_at + SAVE_EVERY) => {
                let through = window.acked_through();
                backlog.report(&context.metrics, *context.committed.borrow() - through);
                if through != saved {
                    cursor.save(through).await;
                    saved = through;
                }
                saved_at = Instant::now();
            }
            _ = context.stopping.wait() => {
                let _ = client.try_disconnect();
                return Ended::Stopped(window.acked_through());
            }
        }
    }
}
