//! One client cannot take the broker away from the others: half-sent HTTP requests are closed
//! after `header_read_timeout`, connections past `max_connections` (HTTP and MQTT) are closed at
//! once and counted, and when the process runs out of file descriptors the listeners back off,
//! log it at most once a second, and recover by themselves.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `n` connections to `addr`, each having sent `first` (possibly nothing).
fn attackers(addr: SocketAddr, n: usize, first: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| {
            let mut s = TcpStream::connect(addr).ok()?;
            let _ = s.write_all(first);
            s.set_read_timeout(Some(Duration::from_millis(50))).ok()?;
            Some(s)
        })
        .collect()
}

/// How many of `streams` the server has closed (so far, in all).
fn closed(streams: &mut [TcpStream]) -> usize {
    let mut buf = [0u8; 1024];
    let mut count = 0;
    for s in streams.iter_mut() {
        let is_closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        count += usize::from(is_closed);
    }
    count
}

/// A normal client: publish → subscribe → stored, with `n` making the topic unique.
fn round_trip(edgemq: &Edgemq, n: usize) {
    let mut sub = Sub::start(edgemq, &["-t", "ok/#"]);
    let topic = format!("ok/{n}");
    mosquitto_pub(edgemq, &topic, b"fine", &["-q", "1"]);
    assert_eq!(sub.messages(1), [format!("{topic} fine")]);
    let sql = format!("SELECT id FROM messages WHERE topic = '{topic}'");
    rows_eventually(&edgemq.db, &sql, 1);
}

#[test]
fn half_sent_http_requests_are_closed_and_connections_past_the_limit_refused() {
    let dir = temp_dir();
    let edgemq = Edgemq::with_config(
        dir.path(),
        "[http]\nmax_connections = 20\nheader_read_timeout = \"1s\"\nidle_timeout = \"30s\"\n",
    );
    let mut slow = attackers(edgemq.http, 30, b"GET /health HTTP/1.1\r\nHost: x\r\n");
    wait_for(
        "every half-sent request closed after header_read_timeout",
        Duration::from_secs(10),
        || match closed(&mut slow) {
            30 => Ok(()),
            n => Err(format!("{n} of 30 closed")),
        },
    );
    let refused = wait_for("edgemq_http_refused_total", Duration::from_secs(5), || {
        metric(&edgemq, "edgemq_http_refused_total")
    });
    assert!(refused >= 10, "{refused} refused");
    round_trip(&edgemq, 0);
    assert!(edgemq.stop().success());
}

/// Found by the `http_query` fuzz target: a client that shut its side down after sending the
/// request got no answer most of the time (hyper closed on the EOF).
#[test]
fn a_request_followed_by_a_half_close_is_answered() {
    use std::io::{Read, Write};
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut unanswered = Vec::new();
    for n in 1..=200 {
        let mut socket = TcpStream::connect(edgemq.http).unwrap();
        let request = format!(
            "GET /api/v1/alerts?limit={n} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).unwrap();
        socket.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        let _ = socket.read_to_string(&mut answer);
        if !answer.starts_with("HTTP/1.1 200") {
            unanswered.push((n, answer));
        }
    }
    assert_eq!(unanswered, [], "requests without a 200 answer");
    assert!(edgemq.stop().success());
}

#[test]
fn mqtt_max_connections_closes_the_next_one_and_counts_it() {
    let dir = temp_dir();
    let edgemq = Edgemq::with_config(dir.path(), "[mqtt]\nmax_connections = 2\n");
    let first = Sub::start(&edgemq, &["-t", "a"]);
    let second = Sub::start(&edgemq, &["-t", "b"]);
    let third = mosquitto(&edgemq, "mosquitto_pub")
        .args(["-t", "c", "-m", "x"])
        .output()
        .unwrap();
    assert!(
        !third.status.success(),
        "the third connection is closed: {third:?}"
    );
    let refused = wait_for(
        "edgemq_connections_refused_total 1",
        Duration::from_secs(5),
        || match metric(&edgemq, "edgemq_connections_refused_total")? {
            1 => Ok(1),
            n => Err(format!("{n}")),
        },
    );
    assert_eq!(refused, 1);
    drop((first, second));
    // Room again once they are gone.
    wait_for(
        "a connection after the others left",
        Duration::from_secs(10),
        || {
            let out = mosquitto(&edgemq, "mosquitto_pub")
                .args(["-t", "c", "-m", "x"])
                .output()
                .map_err(|e| e.to_string())?;
            out.status.success().then_some(()).ok_or(format!("{out:?}"))
        },
    );
    assert!(edgemq.stop().success());
}

#[test]
fn out_of_file_descriptors_the_listeners_back_off_and_recover() {
    let dir = temp_dir();
    let edgemq = Edgemq::config_under(
        &["prlimit", "--nofile=256:256", "--"],
        dir.path(),
        "[http]\nheader_read_timeout = \"2s\"\n[mqtt]\nconnect_timeout = \"2s\"\n",
    );
    // 300 half-sent HTTP requests: more than edgemq has file descriptors.
    let attack = attackers(edgemq.http, 300, b"GET / HTTP/1.1\r\n");
    assert!(attack.len() > 256, "{} attackers connected", attack.len());
    wait_for(
        "accept failing for lack of file descriptors, in the log",
        Duration::from_secs(10),
        || match edgemq.log_text() {
            log if log.contains("cannot accept a connection") => Ok(()),
            log => Err(log),
        },
    );
    // While the attacker stays connected, its requests time out and everyone gets in again.
    round_trip(&edgemq, 1);
    let health = wait_for("/health answering", Duration::from_secs(15), || {
        metric(&edgemq, "edgemq_uptime_seconds")
    });
    assert!(health < 3600);
    let log = edgemq.log_text();
    let lines = log.matches("cannot accept a connection").count();
    assert!(
        lines <= 2 * (edgemq_uptime(&log) + 2),
        "{lines} lines:\n{log}"
    );
    drop(attack);
    assert!(edgemq.stop().success());
}

/// Seconds between the first and the last line of the log, rounded up.
fn edgemq_uptime(log: &str) -> usize {
    let times: Vec<chrono::DateTime<chrono::Utc>> = log
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    match (times.first(), times.last()) {
        (Some(a), Some(b)) => (*b - *a).num_seconds() as usize + 1,
        _ => 1,
    }
}
