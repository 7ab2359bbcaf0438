//! Raw MQTT on a TCP socket, for what client libraries will not send or do not show: packets
//! built byte by byte, and exactly what edgemq sends back.

use super::Edgemq;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// An MQTT packet: type-and-flags byte, remaining length, body.
pub fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![byte1];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

pub fn string(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// A CONNECT: `level` 4 (3.1.1) or 5, `flags`, client id, then `rest` (will, login).
pub fn connect(level: u8, flags: u8, client_id: &str, rest: &[u8]) -> Vec<u8> {
    let mut body = string(b"MQTT");
    body.extend([level, flags, 0, 60]);
    if level == 5 {
        body.push(0); // no properties
    }
    body.extend(string(client_id.as_bytes()));
    body.extend_from_slice(rest);
    packet(0x10, &body)
}

/// A 3.1.1 or 5 CONNECT with a QoS 0 will on `topic`.
pub fn connect_with_will(level: u8, client_id: &str, topic: &[u8]) -> Vec<u8> {
    let mut will = Vec::new();
    if level == 5 {
        will.push(0); // no will properties
    }
    will.extend(string(topic));
    will.extend(string(b"gone"));
    connect(level, 0x04 | 0x02, client_id, &will)
}

pub fn open(edgemq: &Edgemq) -> TcpStream {
    let stream = TcpStream::connect(edgemq.mqtt).expect("connect to edgemq");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    stream
}

/// Everything the server sends until it closes the connection; fails if it stays open.
#[track_caller]
pub fn until_closed(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return seen,
            Err(_) if Instant::now() < deadline => {}
            Err(_) => panic!("{what}: the connection stayed open; it sent {seen:02x?}"),
        }
    }
}

/// Reads exactly `n` bytes, or fails saying what came.
#[track_caller]
pub fn read_exact(stream: &mut TcpStream, n: usize, what: &str) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    let mut buf = [0u8; 1];
    while seen.len() < n {
        match stream.read(&mut buf) {
            Ok(0) => panic!("{what}: closed after {seen:02x?}"),
            Ok(_) => seen.push(buf[0]),
            Err(_) if Instant::now() < deadline => {}
            Err(_) => panic!("{what}: waited for {n} bytes; got {seen:02x?}"),
        }
    }
    seen
}

/// A client that connected well (CONNACK 0) with a clean session, and may then break the rules.
pub fn connected(edgemq: &Edgemq, level: u8, client_id: &str) -> TcpStream {
    connected_with(edgemq, level, 0x02, client_id).0
}

/// A client connected with CONNECT `flags`, and the CONNACK's session-present flag.
#[track_caller]
pub fn connected_with(edgemq: &Edgemq, level: u8, flags: u8, client_id: &str) -> (TcpStream, bool) {
    let mut stream = open(edgemq);
    stream
        .write_all(&connect(level, flags, client_id, &[]))
        .unwrap();
    let connack = read_exact(&mut stream, 2, "CONNACK header");
    assert_eq!(connack[0], 0x20, "a CONNACK for {client_id}");
    let rest = read_exact(&mut stream, usize::from(connack[1]), "CONNACK body");
    assert_eq!(rest[1], 0, "CONNACK accepted for {client_id}: {rest:02x?}");
    (stream, rest[0] & 1 == 1)
}

/// The next whole packet (remaining length under 128 bytes): its first byte and its body.
#[track_caller]
pub fn next_packet(stream: &mut TcpStream, what: &str) -> (u8, Vec<u8>) {
    let header = read_exact(stream, 2, what);
    assert!(
        header[1] < 0x80,
        "{what}: a short packet, got {header:02x?}"
    );
    (header[0], read_exact(stream, usize::from(header[1]), what))
}

/// An MQTT 5 CONNECT with CONNECT `flags` and `properties` (already encoded, without their
/// length), and the CONNACK's session-present flag once accepted.
#[track_caller]
pub fn connected_v5(
    edgemq: &Edgemq,
    flags: u8,
    client_id: &str,
    properties: &[u8],
) -> (TcpStream, bool) {
    let mut body = string(b"MQTT");
    body.extend([5, flags, 0, 60, properties.len() as u8]);
    body.extend_from_slice(properties);
    body.extend(string(client_id.as_bytes()));
    let mut stream = open(edgemq);
    stream.write_all(&packet(0x10, &body)).unwrap();
    let (byte1, connack) = next_packet(&mut stream, "CONNACK");
    assert_eq!(
        (byte1, connack.get(1)),
        (0x20, Some(&0)),
        "CONNACK for {client_id}: {connack:02x?}"
    );
    (stream, connack[0] & 1 == 1)
}
