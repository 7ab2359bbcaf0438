//! What each fuzz target runs (`fuzz_targets/*.rs` are one line each). Pure stages are called
//! directly; the connection and HTTP targets talk to a whole edgemq started once in this
//! process on loopback ports, so the front door, ingest, rules, the store and the HTTP API all
//! run for real. A panic in any thread aborts the process (libFuzzer's panic hook), and a
//! connection edgemq neither answers nor closes is reported as a hang.

use bytes::BytesMut;
use edgemq::config::Config;
use edgemq::front_door::codec::{self, Version};
use edgemq::front_door::violations;
use edgemq::ingest::decode::{decode, DecodeSettings};
use edgemq::ingest::route::Routes;
use edgemq::ingest::{time, Incoming};
use edgemq::rules::Rules;
use edgemq::store::{Batch, RulesState};
use serde_json::Value;
use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

/// Largest packet the pure packet target reads (the product's default is 4 MiB).
const MAX_PACKET: usize = 64 * 1024;
/// How long edgemq may take to answer and close one fuzzed connection.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

/// MQTT framing, the CONNECT (3.1 rewritten as 3.1.1, the CONNECT's MUSTs) and every later
/// packet as a session reads it: the violation checks, rumqttd's decoders, and the encoders
/// (whatever one client sends, edgemq encodes for another).
pub fn packets(data: &[u8]) {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let mut buf = BytesMut::from(bytes);
    let mut version = [Version::V31, Version::V311, Version::V5][usize::from(choice % 3)];
    if let Ok(Some(len)) = codec::frame(&buf, MAX_PACKET) {
        let mut frame = buf.clone().split_to(len);
        if let Ok(v) = codec::connect_version(&mut frame) {
            let _ = buf.split_to(len);
            version = v;
            if violations::check_connect(&frame, v).is_ok() {
                reencode(v, v.read(&mut frame, MAX_PACKET));
            }
        }
    }
    while let Ok(Some(len)) = codec::frame(&buf, MAX_PACKET) {
        if violations::check(&buf[..len], version).is_err() {
            return;
        }
        let _ = codec::publish_header(&buf[..len]);
        let before = buf.len();
        reencode(version, version.read(&mut buf, MAX_PACKET));
        if buf.len() == before {
            return;
        }
    }
}

fn reencode(
    version: Version,
    read: Result<rumqttd::protocol::Packet, rumqttd::protocol::Error>,
) {
    if let Ok(packet) = read {
        for v in [Version::V311, Version::V5, version] {
            let _ = v.write(packet.clone(), &mut BytesMut::new());
        }
    }
}

/// CONNECTs a session may start with: none (the input is the whole connection), MQTT 3.1,
/// 3.1.1 and 5, each with a clean session and a client id of its own.
const CONNECTS: [&[u8]; 4] = [
    b"",
    b"\x10\x12\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x04fz31",
    b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04fz11",
    b"\x10\x11\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x04fz50",
];

/// One whole connection to edgemq's MQTT listener: the first byte picks a CONNECT to start
/// with (or none), the rest is what the client sends; then the client half-closes and edgemq
/// must close too, whatever it was sent.
pub fn connection(data: &[u8]) {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let mut sent = CONNECTS[usize::from(choice) % CONNECTS.len()].to_vec();
    sent.extend_from_slice(bytes);
    let answer = exchange(edgemq().mqtt, &sent);
    drop(answer);
}

/// Paths that take query parameters.
const QUERIED: [&str; 16] = [
    "/api/v1/messages",
    "/api/v1/devices",
    "/api/v1/devices/device123",
    "/api/v1/devices/device123/series",
    "/api/v1/alerts",
    "/api/v1/dead-letters",
    "/sensors/latest",
    "/sensors/history",
    "/status-count",
    "/alerts",
    "/stats",
    "/api/devices",
    "/api/telemetry",
    "/api/stats/avg",
    "/api/alerts",
    "/health/mqtt-monitor",
];

/// A GET with fuzzed query parameters on one of the API's paths: the answer is a whole HTTP
/// response, and never a 5xx (bad parameters are the client's error).
pub fn http_query(data: &[u8]) {
    let Some((&choice, query)) = data.split_first() else {
        return;
    };
    let path = QUERIED[usize::from(choice) % QUERIED.len()];
    let request = format!(
        "GET {path}?{} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n",
        percent_encoded(query)
    );
    let answer = exchange(edgemq().http, request.as_bytes());
    let head = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(code) if code < 500 => {}
        _ => panic!("GET {path}?{query:?} answered {head:?}"),
    }
}

/// Everything but unreserved characters and the query's own `=` and `&` as %XX.
fn percent_encoded(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~=&".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every route's decoder and the rules behind it: the input is a topic, a NUL, and a payload.
/// The rules keep their state from one input to the next, as they do in edgemq.
pub fn payloads(data: &[u8]) {
    let (topic, payload) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(topic) = std::str::from_utf8(topic) else {
        return;
    };
    PIPELINE.with(|pipeline| {
        let pipeline = &mut *pipeline.borrow_mut();
        let Some(route) = pipeline.routes.find(topic) else {
            return;
        };
        let incoming = Incoming::new(topic.to_string(), payload.to_vec(), 1_795_400_000_000);
        if let Ok(decoded) = decode(&incoming, topic, route, &pipeline.settings) {
            let offline_after = route.offline_after.map(|d| d.as_millis() as i64);
            let mut batch = Batch::default();
            pipeline
                .rules
                .on_message(decoded.reading(), offline_after, &mut batch);
        }
    });
}

/// The built-in routes and rules, as ingest runs them.
struct Pipeline {
    routes: Routes,
    settings: DecodeSettings,
    rules: Rules,
}

thread_local! {
    static PIPELINE: RefCell<Pipeline> = RefCell::new(pipeline());
}

fn pipeline() -> Pipeline {
    let config = Config::default();
    let routes = config.routes();
    let state = RulesState {
        open_alerts: Vec::new(),
        next_alert_id: 1,
        devices: Vec::new(),
        rule_values: Vec::new(),
    };
    let rules = Rules::new(config.rules(), state, |topic| {
        let route = routes.find(topic)?;
        route.offline_after.map(|d| d.as_millis() as i64)
    });
    Pipeline {
        settings: config.ingest.decode_settings().expect("built-in [ingest]"),
        routes: config.routes(),
        rules,
    }
}

/// The device-time reader (as JSON and as a string, in zones with and without summer time) and
/// ISO 8601 out again for whatever it accepted, as the HTTP API shows stored times.
pub fn device_time(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut values = vec![Value::String(text.into_owned())];
    if let Ok(json) = serde_json::from_slice::<Value>(data) {
        values.push(json);
    }
    for zone in [chrono_tz::UTC, chrono_tz::Europe::Berlin, chrono_tz::Asia::Kolkata] {
        for value in &values {
            if let Ok(ms) = time::parse(value, zone) {
                let _ = (edgemq::clock::iso(ms), edgemq::clock::iso_ms(ms));
            }
        }
    }
}

/// The config file reader, and what start-up builds from a config it accepted.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::from_toml(text, "fuzz.toml") {
        let _ = (config.routes(), config.rules(), config.rpc_routes());
        let _ = config.ingest.decode_settings();
    }
}

/// Where the in-process edgemq listens.
struct Running {
    mqtt: SocketAddr,
    http: SocketAddr,
}

/// edgemq with its built-in defaults on loopback ports and a database in a temporary
/// directory, started by the first input that needs it and kept for the whole run.
fn edgemq() -> &'static Running {
    static RUNNING: OnceLock<Running> = OnceLock::new();
    RUNNING.get_or_init(|| {
        keep_panic_messages();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = dir.path().join("fuzz.db");
        let text = format!(
            "[mqtt]\nlisten = \"127.0.0.1:0\"\nwebsocket = false\n\
             [http]\nlisten = \"127.0.0.1:0\"\n[store]\npath = {:?}\n\
             [log]\nlevel = \"off\"\n",
            db.display().to_string()
        );
        let config = Config::from_toml(&text, "fuzz").expect("the fuzz config");
        let (ready, bound) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _dir = dir;
            let runtime = tokio::runtime::Runtime::new().expect("a runtime");
            let run = edgemq::app::run_telling(config, Default::default(), move |b| {
                let _ = ready.send((b.mqtt[0].1, b.http));
            });
            if let Err(e) = runtime.block_on(run) {
                panic!("edgemq did not start: {e}");
            }
        });
        let (mqtt, http) = bound.recv().expect("edgemq's listeners");
        Running { mqtt, http }
    })
}

/// Sends `bytes` on a new connection to `addr`, half-closes, and reads until edgemq closes.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut socket = TcpStream::connect(addr).expect("edgemq accepts");
    socket
        .set_read_timeout(Some(CLOSE_WITHIN))
        .expect("a read timeout");
    // edgemq may close before reading everything: what it did not read is not an error.
    let _ = socket.write_all(bytes);
    let _ = socket.shutdown(Shutdown::Write);
    let mut answer = Vec::new();
    match socket.read_to_end(&mut answer) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("edgemq neither answered nor closed within {CLOSE_WITHIN:?} ({e})")
        }
        _ => answer,
    }
}

/// With `EDGEMQ_FUZZ_PANICS=FILE`, every panic's message is also appended to FILE: in fork mode
/// libFuzzer keeps the crashing input but not the job's output, and a crash that depends on
/// what came before (edgemq runs across inputs) may not reproduce from the input alone.
fn keep_panic_messages() {
    let Some(path) = std::env::var_os("EDGEMQ_FUZZ_PANICS") else {
        return;
    };
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(&path) {
            let _ = writeln!(file, "{info}\n{}", std::backtrace::Backtrace::force_capture());
        }
        previous(info);
    }));
}
