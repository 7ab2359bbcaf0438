//! A start-up check that a listener really is an MQTT broker: CONNECT, expect CONNACK,
//! close. rumqttd reports a failed bind only in its log, so this is how we know.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The login the probe uses when clients must log in: a secret made fresh by each process.
pub struct ProbeLogin {
    pub username: String,
    pub password: String,
}

impl ProbeLogin {
    pub fn new() -> ProbeLogin {
        use std::hash::{BuildHasher, Hasher};
        let random = || {
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        ProbeLogin {
            username: format!("edgemq-probe-{}", std::process::id()),
            password: format!("{:016x}{:016x}", random(), random()),
        }
    }
}

/// Retries until the listener at `addr` answers CONNECT with CONNACK, or `timeout` passes.
pub fn until_connack(
    addr: SocketAddr,
    version: u8,
    login: Option<&ProbeLogin>,
    timeout: Duration,
) -> Result<(), String> {
    let target = reachable(addr);
    let deadline = Instant::now() + timeout;
    loop {
        match connect_once(target, version, login) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A wildcard listen address is reached through loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

fn connect_once(addr: SocketAddr, version: u8, login: Option<&ProbeLogin>) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|e| format!("no connection: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(&connect_packet(version, login))
        .map_err(|e| e.to_string())?;
    let mut header = [0u8; 2];
    stream
        .read_exact(&mut header)
        .map_err(|e| format!("no CONNACK: {e}"))?;
    if header[0] != 0x20 || header[1] > 127 {
        return Err(format!("answered 0x{:02x}, not CONNACK", header[0]));
    }
    // Read the whole CONNACK: unread bytes would turn our close into a reset.
    let mut rest = vec![0u8; header[1] as usize];
    stream
        .read_exact(&mut rest)
        .map_err(|e| format!("short CONNACK: {e}"))?;
    // Close without DISCONNECT: rumqttd logs a peer's close quietly, but a DISCONNECT races
    // with the router dropping the link and is logged as an ERROR.
    Ok(())
}

fn connect_packet(version: u8, login: Option<&ProbeLogin>) -> Vec<u8> {
    let client_id = format!("edgemq-probe-v{version}");
    // Clean session, plus username and password flags when logging in.
    let flags = if login.is_some() { 0xc2 } else { 0x02 };
    let mut body = vec![
        0x00, 0x04, b'M', b'Q', b'T', b'T', version, flags, 0x00, 0x0a,
    ];
    if version == 5 {
        body.push(0x00); // no properties
    }
    let mut field = |text: &str| {
        body.extend_from_slice(&(text.len() as u16).to_be_bytes());
        body.extend_from_slice(text.as_bytes());
    };
    field(&client_id);
    if let Some(login) = login {
        field(&login.username);
        field(&login.password);
    }
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    packet
}
