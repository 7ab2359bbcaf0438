//! One client after its CONNACK. Packets from the socket go to ingest (which numbers each
//! publish, stores it and hands its copy to the router) and, for subscriptions, to the router;
//! what the router sends goes back to the socket, without edgemq's stamp. QoS 1 and 2
//! publishes are acknowledged here, after the store has committed them when acks are durable.
//! `$SYS` subscriptions are answered here too.

use super::codec::{self, Version};
use super::connect::{Client, RECEIVE_MAXIMUM};
use super::violations;
use super::Shared;

mod access;
mod delivery;
mod inbound;
mod leave;
use delivery::{read_page, saved, PageRead, CHECKPOINT_EVERY};
use leave::End;
mod outgoing;
mod replay;
mod subscriptions;
mod visible;
mod writer;
use crate::metrics::Dropped;
use crate::shutdown::Guard;
use crate::store::Receipts;
use bytes::BytesMut;
pub use outgoing::{Delivery, Outgoing, QueueLimits};
use rumqttd::protocol::{
    Disconnect, DisconnectReasonCode, Packet, PingResp, PubAckReason, PubComp, PubCompReason,
    PubRecReason, QoS, UnsubAck, UnsubAckReason,
};
use rumqttd::Notification;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::time::Instant;
pub use visible::restored_view;

/// An acknowledgement waiting for its message's commit.
enum Waiting {
    PubAck(u16, PubAckReason),
    PubRec(u16, PubRecReason),
}

pub struct Session {
    client: Client,
    shared: Arc<Shared>,
    durable: bool,
    receipts: Arc<Receipts>,
    /// Number of the last QoS 1/2 message handed to ingest.
    last_seq: u64,
    waiting: VecDeque<(u64, Waiting)>,
    /// Incoming QoS 2 packet ids between PUBLISH and PUBREL.
    qos2_in: HashSet<u16>,
    /// MQTT 5 topic aliases the client set (client to server).
    topic_aliases: HashMap<u16, bytes::Bytes>,
    /// SUBACKs in progress: our own code per filter (`None` where the router's comes in),
    /// and the `$SYS` filters whose current values follow the SUBACK.
    subacks: HashMap<u16, subscriptions::SubAckInProgress>,
    /// UNSUBACKs waiting for the router's answer to the PINGREQ sent behind the UNSUBSCRIBE.
    unsubacks: VecDeque<(u16, Vec<UnsubAckReason>)>,
    sys_filters: Vec<String>,
    /// What the client is sent of what the router forwards.
    outgoing: Outgoing,
    /// This connection's number (for handing the session's state on).
    connection: u64,
    /// A SUBSCRIBE or UNSUBSCRIBE came: a persistent session is saved.
    subscriptions_changed: bool,
    /// What the last checkpoint saved (acked through, sent through).
    saved_at: Option<(i64, i64)>,
    slow_warnings: crate::logging::Throttle,
    /// What the ACL lets the client do.
    permissions: access::Permissions,
    /// Bytes for the socket, handed to the writer task in chunks.
    out: BytesMut,
}

/// Deliveries that may wait for a slow client; past this it catches up from the store.
pub const QUEUED_MAX: usize = 10_000;

impl Session {
    /// The session of `client`, served by `connection`; `resumed` is the state a persistent
    /// session parked when its last connection ended.
    pub fn new(mut client: Client, shared: Arc<Shared>) -> Session {
        let (connection, resumed) = (client.connection, client.resumed.take());
        let window = match client.receive_maximum {
            Some(max) => usize::from(max).min(shared.settings.max_inflight_messages),
            None => shared.settings.max_inflight_messages,
        };
        let mut outgoing = match resumed {
            Some(mut parked) => {
                let away_through = shared.outbox.last_routed();
                let queue_qos0 = shared.settings.queue_qos0_messages;
                parked.resume(window, away_through, queue_qos0);
                parked
            }
            None => Outgoing::new(window, QUEUED_MAX),
        };
        outgoing.limit_queue(shared.settings.queue_limits());
        outgoing.own(&client.client_id);
        let permissions = access::Permissions::new(&shared.acl);
        Session {
            durable: shared.settings.durable_acks,
            client,
            shared,
            receipts: Arc::new(Receipts::default()),
            last_seq: 0,
            waiting: VecDeque::new(),
            qos2_in: HashSet::new(),
            topic_aliases: HashMap::new(),
            subacks: HashMap::new(),
            unsubacks: VecDeque::new(),
            sys_filters: Vec::new(),
            outgoing,
            connection,
            subscriptions_changed: false,
            saved_at: None,
            slow_warnings: crate::logging::Throttle::new(1),
            permissions,
            out: BytesMut::with_capacity(8 * 1024),
        }
    }

    /// Serves the client until it leaves; `reading` is held while the socket is read.
    pub async fn run(
        mut self,
        socket: impl AsyncRead + AsyncWrite + Send + 'static,
        mut buf: BytesMut,
        reading: Guard,
    ) {
        let (mut reader, writer) = tokio::io::split(socket);
        let (chunks, mut written) = writer::spawn(writer, self.shared.metrics.clone());
        let mut reading = Some(reading);
        let mut stopping = self.shared.stopping.clone();
        let mut sys = self.shared.sys.clone();
        sys.borrow_and_update();
        let keep_alive = (self.client.keep_alive > 0)
            .then(|| Duration::from_millis(u64::from(self.client.keep_alive) * 1500));
        let mut heard = Instant::now();
        let mut committed = self.shared.committed.clone();
        let mut page: Option<PageRead> = None;
        let mut checkpoints = tokio::time::interval(CHECKPOINT_EVERY);
        let attached = self
            .shared
            .sessions
            .connected(self.view(None), self.connection);
        let (kick, mut handed) = (attached.kick, attached.handed);
        if !self.outgoing.router_subscribed {
            // Restored from the store after a restart: the router has never seen its filters.
            self.resubscribe_router().await;
        }
        // A resumed session sends what was unacknowledged first, as it was.
        for unacknowledged in self.outgoing.resend() {
            self.send(unacknowledged);
        }
        let mut end = match self.handle_input(&mut buf).await {
            Ok(end) => end,
            Err(e) => Some(End::Lost(e)),
        };
        while end.is_none() {
            self.pump();
            if page.is_none() {
                let through = *committed.borrow_and_update();
                page = self
                    .outgoing
                    .next_page(through)
                    .map(|(after, through)| read_page(self.shared.log.clone(), after, through));
            }
            if stopping.is_stopping() {
                reading = None;
            }
            if reading.is_none() && self.waiting.is_empty() {
                end = Some(End::Shutdown);
                break;
            }
            let deadline = keep_alive.map_or_else(far_future, |k| heard + k);
            end = tokio::select! {
                permit = chunks.reserve(), if !self.out.is_empty() => match permit {
                    Ok(permit) => {
                        permit.send(self.out.split().freeze());
                        None
                    }
                    Err(_) => Some(End::Lost(written.why().await)),
                },
                read = reader.read_buf(&mut buf), if reading.is_some() => match read {
                    Ok(0) => Some(End::Lost("closed by the client".into())),
                    Err(e) => Some(End::Lost(e.to_string())),
                    Ok(n) => {
                        heard = Instant::now();
                        self.shared.metrics.bytes_received.fetch_add(n as u64, Relaxed);
                        self.handle_input(&mut buf).await.unwrap_or_else(|e| Some(End::Lost(e)))
                    }
                },
                notification = self.client.link_rx.next() => match notification {
                    Ok(Some(n)) => self.handle_router(n).await,
                    Ok(None) => None,
                    Err(_) => Some(End::TakenOver),
                },
                (rows, through) = async { page.as_mut().expect("guarded").await }, if page.is_some() => {
                    page = None;
                    match rows {
                        Ok(rows) => {
                            let taken = self.outgoing.page(rows, through) as u64;
                            self.shared.metrics.delivered_from_store.fetch_add(taken, Relaxed);
                        }
                        Err(e) => {
                            tracing::warn!("client {}: reading the log: {e}", self.client.client_id);
                            self.outgoing.page_failed();
                        }
                    }
                    None
                }
                _ = committed.changed(), if page.is_none() && self.outgoing.catching_up() => None,
                _ = checkpoints.tick() => {
                    self.shared.sessions.refresh(self.view(None), self.connection);
                    if !self.client.clean {
                        self.checkpoint(false).await;
                    }
                    None
                }
                Some(delivery) = handed.recv() => {
                    self.outgoing.take_handed(delivery);
                    None
                }
                _ = kick.notified() => {
                    self.fail(DisconnectReasonCode::AdministrativeAction, "ended through the API");
                    self.client.clean = true;
                    Some(End::Lost("ended through the API".into()))
                }
                _ = self.receipts.changed(), if !self.waiting.is_empty() => {
                    self.release_acks();
                    None
                }
                changed = sys.changed(), if !self.sys_filters.is_empty() => {
                    if changed.is_ok() {
                        let tree = sys.borrow_and_update().clone();
                        self.send_sys(&tree, None);
                    }
                    None
                }
                _ = tokio::time::sleep_until(deadline), if keep_alive.is_some() => {
                    Some(End::Lost("no packet within 1.5 x keep-alive".into()))
                }
                _ = stopping.wait(), if reading.is_some() => None,
            };
        }
        let end = end.unwrap_or(End::Shutdown);
        drop(reading);
        if let End::Shutdown = end {
            if self.client.version.is_v5() {
                let bye = Disconnect {
                    reason_code: DisconnectReasonCode::ServerShuttingDown,
                };
                self.write(Packet::Disconnect(bye, None));
            }
        }
        if !self.out.is_empty() {
            let _ = chunks.send(self.out.split().freeze()).await;
        }
        drop(chunks);
        written.finish().await;
        self.finish(end).await;
    }

    fn write(&mut self, packet: Packet) {
        self.shared.metrics.packets_sent.fetch_add(1, Relaxed);
        if let Err(e) = self.client.version.write(packet, &mut self.out) {
            self.shared.metrics.dropped(Dropped::EncodeFailed);
            tracing::warn!(
                "client {}: cannot encode a packet: {e}",
                self.client.client_id
            );
        }
    }

    /// Handles every whole packet in `buf`, then passes what the router needs in one go.
    async fn handle_input(&mut self, buf: &mut BytesMut) -> Result<Option<End>, String> {
        let max = self.shared.settings.max_packet_size;
        let mut to_router = Vec::new();
        let mut end = None;
        loop {
            let len = match codec::frame(buf, max) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => return Err(self.refuse_packet(e)),
            };
            if let Err(v) = violations::check(&buf[..len], self.client.version) {
                return Err(self.fail(v.code, v.why));
            }
            let header = (buf[0] >> 4 == 3)
                .then(|| codec::publish_header(&buf[..len]))
                .flatten();
            let packet = match self.client.version.read(buf, max) {
                Ok(packet) => packet,
                Err(e) => return Err(self.refuse_packet(e)),
            };
            self.shared.metrics.packets_received.fetch_add(1, Relaxed);
            match packet {
                Packet::Publish(publish, properties) => {
                    let (qos, pkid) = header.unwrap_or((QoS::AtMostOnce, 0));
                    self.publish(publish, properties, qos, pkid).await?;
                }
                Packet::PubAck(ack, _) => {
                    self.outgoing.completed(ack.pkid);
                }
                Packet::PubComp(comp, _) => {
                    self.outgoing.completed(comp.pkid);
                }
                Packet::PubRec(rec, _) => {
                    let pubrel = self.outgoing.received(rec.pkid);
                    self.write(Packet::PubRel(pubrel, None));
                }
                Packet::PubRel(pubrel, _) => {
                    let known = self.qos2_in.remove(&pubrel.pkid);
                    let reason = if known || !self.client.version.is_v5() {
                        PubCompReason::Success
                    } else {
                        PubCompReason::PacketIdentifierNotFound
                    };
                    let pubcomp = PubComp {
                        pkid: pubrel.pkid,
                        reason,
                    };
                    self.write(Packet::PubComp(pubcomp, None));
                }
                Packet::Subscribe(subscribe, properties) => {
                    self.subscribe(subscribe, properties, &mut to_router);
                    self.subscriptions_changed = true;
                }
                Packet::Unsubscribe(unsubscribe, properties) => {
                    self.unsubscribe(unsubscribe, properties, &mut to_router);
                    self.subscriptions_changed = true;
                }
                Packet::PingReq(_) => self.write(Packet::PingResp(PingResp)),
                Packet::Disconnect(disconnect, properties) => {
                    // MQTT 5 may change how long the session is kept (not from 0: [MQTT-3.14.2-2]).
                    let expiry = properties.and_then(|p| p.session_expiry_interval);
                    if let (Some(seconds), false) = (expiry, self.client.clean) {
                        self.client.expiry = super::connect::session_expiry(seconds);
                        self.client.clean = seconds == 0;
                    }
                    // Only a normal disconnection deletes the will (MQTT 5, 3.1.4).
                    let with_will =
                        disconnect.reason_code != DisconnectReasonCode::NormalDisconnection;
                    end = Some(End::Disconnected { with_will });
                    break;
                }
                _ => {
                    return Err(self.fail(
                        DisconnectReasonCode::ProtocolError,
                        "a packet only a broker sends",
                    ))
                }
            }
        }
        self.send_to_router(to_router).await?;
        if std::mem::take(&mut self.subscriptions_changed) && !self.client.clean {
            self.checkpoint(true).await;
        }
        Ok(end)
    }

    /// Passes packets to the router with one wake-up (`send` blocks on the router's channel).
    async fn send_to_router(&mut self, mut packets: Vec<Packet>) -> Result<(), String> {
        let Some(last) = packets.pop() else {
            return Ok(());
        };
        self.client.link_tx.buffer().extend(packets);
        self.client
            .link_tx
            .send(last)
            .await
            .map(drop)
            .map_err(|e| format!("the router is gone: {e}"))
    }

    async fn handle_router(&mut self, notification: Notification) -> Option<End> {
        match notification {
            Notification::Forward(forward) => self.take(forward),
            Notification::DeviceAck(ack) => match Packet::from(ack) {
                Packet::SubAck(suback, properties) => {
                    self.finish_suback(suback, properties);
                    // Shared groups find their members by the registry's view: it knows at once.
                    self.shared
                        .sessions
                        .refresh(self.view(None), self.connection);
                }
                Packet::PingResp(_) => {
                    if let Some((pkid, reasons)) = self.unsubacks.pop_front() {
                        self.write(Packet::UnsubAck(UnsubAck { pkid, reasons }, None));
                        self.shared
                            .sessions
                            .refresh(self.view(None), self.connection);
                    }
                }
                // UNSUBACKs are answered on the PINGRESP; the rest acknowledge nothing we sent.
                _ => {}
            },
            Notification::Unschedule if self.client.link_rx.wake().await.is_err() => {
                return Some(End::TakenOver);
            }
            Notification::Disconnect(disconnect, properties) => {
                if self.client.version.is_v5() {
                    self.write(Packet::Disconnect(disconnect, properties));
                }
                return Some(End::TakenOver);
            }
            _ => {}
        }
        None
    }

    /// A packet that cannot be read: said to an MQTT 5 client, then the connection closes.
    fn refuse_packet(&mut self, e: rumqttd::protocol::Error) -> String {
        match e {
            rumqttd::protocol::Error::PayloadSizeLimitExceeded(size) => {
                let max = self.shared.settings.max_packet_size;
                let why =
                    format!("a packet of {size} bytes is over [mqtt] max_packet_size ({max})");
                self.fail(DisconnectReasonCode::PacketTooLarge, &why)
            }
            e => self.fail(
                DisconnectReasonCode::MalformedPacket,
                &format!("malformed packet: {e}"),
            ),
        }
    }

    fn fail(&mut self, code: DisconnectReasonCode, why: &str) -> String {
        if self.client.version == Version::V5 {
            self.write(Packet::Disconnect(Disconnect { reason_code: code }, None));
        }
        tracing::info!("client {}: disconnected: {why}", self.client.client_id);
        why.to_string()
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}
