//! The connection to the upstream broker, in the protocol `bridge_protocol_version` names:
//! rumqttc's MQTT 3.1.1 or MQTT 5 client behind one small interface, so forwarding and bringing
//! in are written once. On MQTT 5, `in` topics are subscribed with No Local (what the bridge
//! sends is never sent back to it) and Retain As Published, as Mosquitto's bridge does.

use super::{host_port, BridgeSection, ProtocolVersion};
use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5 as mqtt5;
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::{v5, ConnectReturnCode, Event, Outgoing, Packet, QoS};
use std::time::Duration;

/// The client half: what the bridge asks of the upstream.
pub enum Client {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

/// The event half, polled for what happened.
pub enum Events {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

/// A message from upstream, kept until it is acknowledged.
pub enum Received {
    V4(rumqttc::Publish),
    V5(mqtt5::Publish),
}

/// What polling the connection gave.
pub enum Happened {
    /// A publish went out with this packet id.
    Sent(u16),
    /// The upstream acknowledged a publish; `Some(reason)` when it refused it (MQTT 5).
    Acked(u16, Option<String>),
    Message(Received),
    Other,
}

impl Received {
    pub fn topic(&self) -> String {
        match self {
            Received::V4(p) => p.topic.clone(),
            Received::V5(p) => String::from_utf8_lossy(&p.topic).into_owned(),
        }
    }

    pub fn payload(&self) -> Bytes {
        match self {
            Received::V4(p) => p.payload.clone(),
            Received::V5(p) => p.payload.clone(),
        }
    }

    /// QoS and retain flag.
    pub fn qos_retain(&self) -> (u8, bool) {
        match self {
            Received::V4(p) => (p.qos as u8, p.retain),
            Received::V5(p) => (p.qos as u8, p.retain),
        }
    }
}

fn qos4(qos: u8) -> QoS {
    if qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

fn qos5(qos: u8) -> QoS5 {
    if qos == 0 {
        QoS5::AtMostOnce
    } else {
        QoS5::AtLeastOnce
    }
}

/// A will or notification: topic, payload.
pub type Will = Option<(String, &'static str)>;

/// Connects to `address` and waits for the CONNACK; `will` is left upstream for when the
/// connection is lost (retained, QoS 1).
pub async fn connect(
    bridge: &BridgeSection,
    address: &str,
    will: Will,
) -> Result<(Client, Events), String> {
    let (host, port) = host_port(address).ok_or("not host:port")?;
    let (client, mut events) = match bridge.bridge_protocol_version {
        ProtocolVersion::Mqttv311 => {
            let (c, e) = rumqttc::AsyncClient::new(options4(bridge, host, port, will), 100);
            (Client::V4(c), Events::V4(Box::new(e)))
        }
        ProtocolVersion::Mqttv50 => {
            let (c, e) = v5::AsyncClient::new(options5(bridge, host, port, will), 100);
            (Client::V5(c), Events::V5(Box::new(e)))
        }
    };
    loop {
        let polled = tokio::time::timeout(Duration::from_secs(10), events.connack()).await;
        match polled {
            Ok(Ok(Some(()))) => return Ok((client, events)),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("no CONNACK within 10s".into()),
        }
    }
}

fn options4(bridge: &BridgeSection, host: String, port: u16, will: Will) -> rumqttc::MqttOptions {
    let mut options = rumqttc::MqttOptions::new(bridge.client_id(), host, port);
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
    if let Some((topic, payload)) = will {
        options.set_last_will(rumqttc::LastWill::new(
            topic,
            payload,
            QoS::AtLeastOnce,
            true,
        ));
    }
    options
}

fn options5(bridge: &BridgeSection, host: String, port: u16, will: Will) -> v5::MqttOptions {
    let mut options = v5::MqttOptions::new(bridge.client_id(), host, port);
    if !bridge.cleansession {
        // Kept upstream while the bridge is away, as a 3.1.1 session without clean session.
        let mut properties = mqtt5::ConnectProperties::new();
        properties.session_expiry_interval = Some(u32::MAX);
        options.set_connect_properties(properties);
    }
    options.set_keep_alive(bridge.keepalive_interval.max(Duration::from_secs(5)));
    options.set_clean_start(bridge.cleansession);
    options.set_outgoing_inflight_upper_limit(100);
    options.set_manual_acks(true);
    options.set_max_packet_size(Some(1 << 28));
    if let Ok(Some(tls)) = bridge.tls() {
        options.set_transport(rumqttc::Transport::tls_with_config(tls));
    }
    if let Some(user) = &bridge.remote_username {
        options.set_credentials(user, bridge.remote_password.clone().unwrap_or_default());
    }
    if let Some((topic, payload)) = will {
        let will = mqtt5::LastWill::new(topic, payload, QoS5::AtLeastOnce, true, None);
        options.set_last_will(will);
    }
    options
}

/// Why a CONNACK refused the bridge, said for a person.
fn refused(code: impl std::fmt::Debug) -> String {
    let code = format!("{code:?}");
    if code.contains("UserNamePassword") || code.contains("NotAuthorized") {
        format!("refused: bad remote_username or remote_password ({code})")
    } else {
        format!("refused: {code}")
    }
}

impl Events {
    /// `Some(())` on a successful CONNACK, `None` for anything else before it.
    async fn connack(&mut self) -> Result<Option<()>, String> {
        match self {
            Events::V4(e) => match e.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => match ack.code {
                    ConnectReturnCode::Success => Ok(Some(())),
                    code => Err(refused(code)),
                },
                Ok(_) => Ok(None),
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => Err(refused(code)),
                Err(e) => Err(format!("cannot connect: {e}")),
            },
            Events::V5(e) => match e.poll().await {
                Ok(v5::Event::Incoming(mqtt5::Packet::ConnAck(ack))) => match ack.code {
                    mqtt5::ConnectReturnCode::Success => Ok(Some(())),
                    code => Err(refused(code)),
                },
                Ok(_) => Ok(None),
                Err(v5::ConnectionError::ConnectionRefused(code)) => Err(refused(code)),
                Err(e) => Err(format!("cannot connect: {e}")),
            },
        }
    }

    /// The next thing that happened on the connection; an error when it is lost.
    pub async fn poll(&mut self) -> Result<Happened, String> {
        Ok(match self {
            Events::V4(e) => match e.poll().await.map_err(|e| e.to_string())? {
                Event::Outgoing(Outgoing::Publish(pkid)) => Happened::Sent(pkid),
                Event::Incoming(Packet::PubAck(ack)) => Happened::Acked(ack.pkid, None),
                Event::Incoming(Packet::Publish(p)) => Happened::Message(Received::V4(p)),
                _ => Happened::Other,
            },
            Events::V5(e) => match e.poll().await.map_err(|e| e.to_string())? {
                v5::Event::Outgoing(Outgoing::Publish(pkid)) => Happened::Sent(pkid),
                v5::Event::Incoming(mqtt5::Packet::PubAck(ack)) => {
                    let refused = match ack.reason {
                        mqtt5::PubAckReason::Success
                        | mqtt5::PubAckReason::NoMatchingSubscribers => None,
                        reason => Some(format!("{reason:?}")),
                    };
                    Happened::Acked(ack.pkid, refused)
                }
                v5::Event::Incoming(mqtt5::Packet::Publish(p)) => {
                    Happened::Message(Received::V5(p))
                }
                _ => Happened::Other,
            },
        })
    }
}

impl Client {
    /// Queues a publish; false when the client's queue is full (try again later).
    pub fn try_publish(&self, topic: &str, qos: u8, retain: bool, payload: &[u8]) -> bool {
        match self {
            Client::V4(c) => c
                .try_publish(topic, qos4(qos), retain, payload.to_vec())
                .is_ok(),
            Client::V5(c) => c
                .try_publish(topic, qos5(qos), retain, payload.to_vec())
                .is_ok(),
        }
    }

    /// Subscribes to `filters` (filter, QoS); on MQTT 5 with No Local and Retain As Published.
    pub fn subscribe(&self, filters: Vec<(String, u8)>) {
        if filters.is_empty() {
            return;
        }
        match self {
            Client::V4(c) => {
                let filters = filters.into_iter();
                let _ = c.try_subscribe_many(
                    filters.map(|(f, qos)| rumqttc::SubscribeFilter::new(f, qos4(qos))),
                );
            }
            Client::V5(c) => {
                let _ = c.try_subscribe_many(filters.into_iter().map(|(f, qos)| {
                    let mut filter = mqtt5::Filter::new(f, qos5(qos));
                    filter.nolocal = true;
                    filter.preserve_retain = true;
                    filter
                }));
            }
        }
    }

    pub fn ack(&self, received: &Received) {
        match (self, received) {
            (Client::V4(c), Received::V4(p)) => drop(c.try_ack(p)),
            (Client::V5(c), Received::V5(p)) => drop(c.try_ack(p)),
            _ => {}
        }
    }

    pub fn disconnect(&self) {
        match self {
            Client::V4(c) => drop(c.try_disconnect()),
            Client::V5(c) => drop(c.try_disconnect()),
        }
    }
}
