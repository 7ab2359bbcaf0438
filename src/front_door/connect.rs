//! A new connection up to its CONNACK: read the CONNECT (MQTT 3.1, 3.1.1 or 5), check the
//! login, make the client's link into the router, and answer with Mosquitto's codes.

use super::codec::{self, Version};
use super::violations;
use super::Shared;
use crate::auth::Refusal;
use crate::topic;
use bytes::BytesMut;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{
    ConnAck, ConnAckProperties, ConnectReturnCode, DisconnectReasonCode, LastWill,
    LastWillProperties, Packet, Publish, PublishProperties,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How many QoS 1/2 publishes an MQTT 5 client may have unacknowledged: with durable acks
/// each waits for a commit, so a wide window keeps publishers streaming.
pub const RECEIVE_MAXIMUM: u16 = 1000;

/// A client that has been let in.
pub struct Client {
    pub version: Version,
    /// The id as the client sent it (or as edgemq assigned it).
    pub client_id: Arc<str>,
    /// The username it logged in with.
    pub username: Option<Arc<str>>,
    /// Its username is its client certificate's.
    pub certified: bool,
    /// Seconds; 0: no keep-alive.
    pub keep_alive: u16,
    /// The session ends with the connection (clean session / clean start without expiry).
    pub clean: bool,
    /// How long the session is kept once the connection ends (None: for ever).
    pub expiry: Option<Duration>,
    /// This connection's number (for handing the session's state on).
    pub connection: u64,
    /// The state of the session it resumes, if it does.
    pub resumed: Option<super::session::Outgoing>,
    /// MQTT 5: how many QoS 1/2 deliveries the client takes unacknowledged.
    pub receive_maximum: Option<u16>,
    /// MQTT 5: the largest packet the client takes; a delivery past it is skipped.
    pub max_packet_size: Option<usize>,
    pub will: Option<Will>,
    pub link_tx: LinkTx,
    pub link_rx: LinkRx,
}

/// A last will, ready to publish.
pub struct Will {
    pub publish: Publish,
    pub properties: Option<PublishProperties>,
    pub qos: u8,
    /// MQTT 5 Will Delay Interval.
    pub delay: Option<Duration>,
}

/// Reads the CONNECT from `socket` (bytes after it stay in `buf`) and answers it. `Err` says
/// why the connection was refused; the CONNACK saying so has been written when there is one.
/// `certified`: the username a verified client certificate gives (then no password is asked).
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    socket: &mut S,
    buf: &mut BytesMut,
    shared: &Shared,
    certified: Option<String>,
) -> Result<Client, String> {
    let max = shared.settings.max_packet_size;
    let len = tokio::time::timeout(shared.settings.connect_timeout, async {
        loop {
            match codec::frame(buf, max) {
                Ok(Some(len)) => return Ok(len),
                Ok(None) => {}
                Err(e) => return Err(format!("bad CONNECT: {e}")),
            }
            match socket.read_buf(buf).await {
                Ok(0) => return Err("closed before CONNECT".to_string()),
                Ok(_) => {}
                Err(e) => return Err(format!("closed before CONNECT: {e}")),
            }
        }
    })
    .await
    .map_err(|_| "no CONNECT in time".to_string())??;
    let mut frame = buf.split_to(len);
    let version = match codec::connect_version(&mut frame) {
        Ok(v) => v,
        Err(unknown) => {
            // 3.1.1's "unacceptable protocol version", which every client version understands.
            let _ = socket.write_all(b"\x20\x02\x00\x01").await;
            return Err(unknown.0);
        }
    };
    let refuse = |code: ConnectReturnCode| {
        let mut out = BytesMut::new();
        let connack = ConnAck {
            session_present: false,
            code,
        };
        let _ = version.write(Packet::ConnAck(connack, None), &mut out);
        out
    };
    // MQTT 5 is told why in the CONNACK; MQTT 3.x connections are just closed.
    let violation = |code: ConnectReturnCode, why: &str| match version {
        Version::V5 => (Some(refuse(code)), format!("bad CONNECT: {why}")),
        _ => (None, format!("bad CONNECT: {why}")),
    };
    if let Err(v) = violations::check_connect(&frame, version) {
        let code = match v.code {
            DisconnectReasonCode::ProtocolError => ConnectReturnCode::ProtocolError,
            _ => ConnectReturnCode::MalformedPacket,
        };
        return refused(socket, violation(code, v.why)).await;
    }
    let (connect, properties, will, will_properties, login) = match version.read(&mut frame, max) {
        Ok(Packet::Connect(c, p, w, wp, l)) => (c, p, w, wp, l),
        Ok(_) => return Err("bad CONNECT".into()),
        Err(e) => return Err(format!("bad CONNECT: {e}")),
    };
    if let Some(w) = will.as_ref().filter(|w| !topic::valid_name(&w.topic)) {
        let why = format!("will topic {:?} is not a valid topic name", w.topic);
        return refused(socket, violation(ConnectReturnCode::TopicNameInvalid, &why)).await;
    }
    // [MQTT-4.12.0-1] No extended authentication is offered: refuse the method, then close.
    if let Some(method) = properties
        .as_ref()
        .and_then(|p| p.authentication_method.as_ref())
    {
        let why = format!("authentication method {method:?} is not supported");
        let code = ConnectReturnCode::BadAuthenticationMethod;
        return refused(socket, violation(code, &why)).await;
    }
    let nul = |s: &str| s.contains('\0');
    if nul(&connect.client_id) || login.as_ref().is_some_and(|l| nul(&l.username)) {
        let why = "the client id or username contains U+0000";
        return refused(socket, violation(ConnectReturnCode::MalformedPacket, why)).await;
    }
    let login_pair = login
        .as_ref()
        .map(|l| (l.username.as_str(), l.password.as_str()));
    let checked = match certified {
        Some(_) => Ok(()),
        None => shared.logins.get().check(login_pair),
    };
    if let Err(refusal) = checked {
        let code = match (refusal, version) {
            (Refusal::BadLogin, Version::V5) => ConnectReturnCode::BadUserNamePassword,
            // Mosquitto answers 3.x clients "not authorised" for both.
            _ => ConnectReturnCode::NotAuthorized,
        };
        let _ = socket.write_all(&refuse(code)).await;
        let user = login_pair.map(|(u, _)| u).unwrap_or("(anonymous)");
        return Err(format!("login refused for {user}"));
    }

    // Mosquitto's max_keepalive: past it (or 0), an MQTT 5 client is told the server's keep
    // alive; a 3.x client cannot be told, and is refused.
    let mut keep_alive = connect.keep_alive;
    let server_keep_alive = match shared.settings.max_keepalive.filter(|max| *max > 0) {
        Some(max) if keep_alive == 0 || keep_alive > max => {
            if version != Version::V5 {
                let code = ConnectReturnCode::ClientIdentifierNotValid;
                let _ = socket.write_all(&refuse(code)).await;
                return Err(format!(
                    "keep-alive {keep_alive}s is not within [mqtt] max_keepalive ({max}s)"
                ));
            }
            keep_alive = max;
            Some(max)
        }
        _ => None,
    };
    let expiry = properties
        .as_ref()
        .and_then(|p| p.session_expiry_interval)
        .unwrap_or(0);
    // Clean start (3.x: clean session) discards a kept session; `clean` ends it with the
    // connection (MQTT 5: no expiry).
    let clean_start = connect.clean_session;
    let clean = match version {
        Version::V5 => expiry == 0,
        _ => connect.clean_session,
    };
    let expiry = match version {
        Version::V5 => session_expiry(expiry),
        _ => shared.settings.persistent_client_expiration,
    };
    let assigned = connect.client_id.is_empty();
    if assigned && !clean && version != Version::V5 {
        let _ = socket
            .write_all(&refuse(ConnectReturnCode::ClientIdentifierNotValid))
            .await;
        return Err("empty client id without clean session".into());
    }
    let client_id: Arc<str> = if assigned {
        Arc::from(generated_client_id())
    } else {
        Arc::from(connect.client_id.as_str())
    };
    let router_id = router_client_id(&client_id);
    let router = shared.router.clone();
    // The router keeps no session: edgemq does (parked, and in the store), gives the router the
    // session's filters again, and reads what the client missed from the store.
    let linked = tokio::task::spawn_blocking(move || router.link(&router_id, true)).await;
    let (link_tx, link_rx, _connack) = match linked {
        Ok(Ok(link)) => link,
        Ok(Err(e)) => {
            let code = match version {
                Version::V5 => ConnectReturnCode::ServerUnavailable,
                _ => ConnectReturnCode::ServiceUnavailable,
            };
            let _ = socket.write_all(&refuse(code)).await;
            return Err(format!("the router refused the connection: {e}"));
        }
        Err(e) => return Err(format!("linking failed: {e}")),
    };
    // Waits for a connection it takes over to hand the session on.
    // An expired session is not resumed (claim forgets it).
    let (connection, resumed) = shared.parked.claim(&client_id, !clean_start).await;
    shared
        .delayed_wills
        .client_returned(&client_id, resumed.is_some());
    let session_present = resumed.is_some() && version != Version::V31;
    let connack_properties = (version == Version::V5).then(|| ConnAckProperties {
        receive_max: Some(RECEIVE_MAXIMUM),
        max_packet_size: u32::try_from(max).ok(),
        assigned_client_identifier: assigned.then(|| client_id.to_string()),
        server_keep_alive,
        topic_alias_max: Some(shared.settings.topic_alias_maximum),
        ..Default::default()
    });
    let connack = ConnAck {
        session_present,
        code: ConnectReturnCode::Success,
    };
    let mut out = BytesMut::new();
    version
        .write(Packet::ConnAck(connack, connack_properties), &mut out)
        .map_err(|e| format!("CONNACK: {e}"))?;
    if let Err(e) = socket.write_all(&out).await {
        // The link exists: end it so the router forgets it; the session stays for next time.
        let mut link_tx = link_tx;
        end_link(&mut link_tx).await;
        let keep = resumed.filter(|_| !clean);
        shared.parked.park(&client_id, connection, keep, expiry);
        return Err(format!("closed before CONNACK: {e}"));
    }
    Ok(Client {
        version,
        client_id,
        certified: certified.is_some(),
        username: certified
            .map(Arc::from)
            .or_else(|| login.map(|l| Arc::from(l.username.as_str()))),
        keep_alive,
        clean,
        expiry,
        connection,
        resumed,
        receive_maximum: properties.as_ref().and_then(|p| p.receive_maximum),
        max_packet_size: properties
            .as_ref()
            .and_then(|p| p.max_packet_size)
            .map(|n| n as usize),
        will: will.map(|w| to_will(w, will_properties)),
        link_tx,
        link_rx,
    })
}

/// Writes the refusal (when there is one) and says why the connection closes.
async fn refused<S: AsyncWrite + Unpin>(
    socket: &mut S,
    (connack, why): (Option<BytesMut>, String),
) -> Result<Client, String> {
    if let Some(connack) = connack {
        let _ = socket.write_all(&connack).await;
    }
    Err(why)
}

/// Tells the router the client is gone (a persistent session is kept).
pub async fn end_link(link_tx: &mut LinkTx) {
    let disconnect = rumqttd::protocol::Disconnect {
        reason_code: rumqttd::protocol::DisconnectReasonCode::NormalDisconnection,
    };
    let _ = link_tx.send(Packet::Disconnect(disconnect, None)).await;
}

fn to_will(will: LastWill, properties: Option<LastWillProperties>) -> Will {
    let delay = properties
        .as_ref()
        .and_then(|p| p.delay_interval)
        .filter(|seconds| *seconds > 0)
        .map(|seconds| Duration::from_secs(u64::from(seconds)));
    let properties = properties.map(|p| PublishProperties {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        content_type: p.content_type,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        user_properties: p.user_properties,
        ..Default::default()
    });
    Will {
        qos: will.qos as u8,
        publish: Publish::new(will.topic, will.message, will.retain),
        properties,
        delay,
    }
}

/// An id for a client that sent none, unique within this run.
fn generated_client_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "auto-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The id the router knows a client by. The router refuses ids containing `+ $ # /`, and ids
/// starting `edgemq-` name edgemq's own links, so those are escaped; `%` is escaped too, which
/// keeps two different client ids from ever meeting in the router.
pub fn router_client_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            '+' => out.push_str("%2B"),
            '#' => out.push_str("%23"),
            '$' => out.push_str("%24"),
            c => out.push(c),
        }
    }
    if out.starts_with("edgemq-") {
        out.replace_range(..1, "%65");
    }
    out
}

/// An MQTT 5 Session Expiry Interval: seconds, with 0xFFFFFFFF meaning for ever.
pub fn session_expiry(seconds: u32) -> Option<Duration> {
    (seconds != u32::MAX).then(|| Duration::from_secs(u64::from(seconds)))
}

#[cfg(test)]
mod tests {
    use super::router_client_id;

    #[test]
    fn client_ids_the_router_refuses_are_escaped_one_to_one() {
        assert_eq!(router_client_id("plain-id"), "plain-id");
        assert_eq!(router_client_id("site/7#a+b$"), "site%2F7%23a%2Bb%24");
        assert_eq!(router_client_id("50%/x"), "50%25%2Fx");
        assert_eq!(router_client_id("edgemq-rpc"), "%65dgemq-rpc");
        assert_ne!(router_client_id("a/b"), router_client_id("a%2Fb"));
    }
}
