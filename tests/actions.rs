//! Rules that act: a hot reading publishes a command once per raise, a webhook receiver gets
//! every raise and clear once even when it was down and edgemq restarted in between, and a
//! critical relay switching raises RELAY_CHANGED with its old and new state.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::Duration;

/// A webhook receiver on a fixed port: answers 200 and hands on each request's headers (lower
/// case) and JSON body. Stopping it closes the port.
struct Hook {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Request = (std::collections::HashMap<String, String>, Value);

impl Hook {
    fn start(port: u16, calls: std::sync::mpsc::Sender<Request>) -> Hook {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                if let Some(request) = stream.ok().and_then(|s| answer(s).ok()) {
                    let _ = calls.send(request);
                }
            }
        });
        Hook {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// Reads one HTTP request and answers 200.
fn answer(stream: std::net::TcpStream) -> std::io::Result<Request> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut headers = std::collections::HashMap::new();
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let Some((name, value)) = line.trim_end().split_once(": ") else {
            break;
        };
        headers.insert(name.to_lowercase(), value.to_string());
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut stream = stream;
    stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    Ok((
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    ))
}

/// The next `n` calls, waiting up to `wait` for each.
fn next_calls(calls: &Receiver<Request>, n: usize, wait: Duration) -> Vec<Request> {
    (0..n)
        .map(|i| {
            calls
                .recv_timeout(wait)
                .unwrap_or_else(|_| panic!("webhook call {} of {n} within {wait:?}", i + 1))
        })
        .collect()
}

fn no_more_calls(calls: &Receiver<Request>) {
    let more = calls.recv_timeout(Duration::from_millis(1500));
    assert!(
        more.is_err(),
        "no more webhook calls; got {:?}",
        more.map(|c| c.1)
    );
}

const OVERHEAT: &str = "[[rule]]\nfilter = \"autocore/+/telemetry\"\nmetric = \"temperature\"\n\
                        max = 40.0\ntype = \"OVERHEAT\"\n";

fn temperature(edgemq: &Edgemq, value: f64) {
    let payload = format!(r#"{{"device_id":"ESP32_001","temperature":{value}}}"#);
    let topic = "autocore/ESP32_001/telemetry";
    mosquitto_pub(edgemq, topic, payload.as_bytes(), &["-q", "1"]);
}

fn relay(edgemq: &Edgemq, index: u8, state: bool) {
    let payload = format!(
        r#"{{"device_id":"ESP32_001","relay_index":{index},"state":{state},"triggered_by":"manual"}}"#
    );
    let topic = format!("autocore/ESP32_001/relay/{index}/status");
    mosquitto_pub(edgemq, &topic, payload.as_bytes(), &["-q", "1"]);
}

/// Rule `alert_type`'s entry in `/api/v1/rules`.
fn rule_entry(edgemq: &Edgemq, alert_type: &str) -> Value {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let rules = runtime.block_on(get_json(edgemq, "/api/v1/rules"));
    let items = rules["items"].as_array().cloned().unwrap_or_default();
    items
        .into_iter()
        .find(|r| r["type"] == alert_type)
        .unwrap_or_else(|| panic!("{alert_type} in /api/v1/rules: {rules}"))
}

#[test]
fn a_hot_reading_publishes_the_command_once_per_raise() {
    let dir = temp_dir();
    let config = format!(
        "{OVERHEAT}[[rule.action]]\non = \"raise\"\npublish = \"autocore/{{device_id}}/relay/0/set\"\n\
         payload = '{{\"state\": true, \"reason\": \"{{type}} {{value}}\"}}'\nqos = 1\n"
    );
    let edgemq = Edgemq::with_config(dir.path(), &config);
    let command = "autocore/ESP32_001/relay/0/set";
    let device_args = ["-c", "-i", "esp32", "-q", "1", "-t", command];
    let device = Sub::start(&edgemq, &device_args);
    let mut watcher = Sub::start(&edgemq, &["-q", "1", "-t", "autocore/+/relay/+/set"]);
    // Three hot readings: one raise, one command.
    for t in [45.5, 46.0, 47.0] {
        temperature(&edgemq, t);
    }
    let first = format!(r#"{command} {{"state": true, "reason": "OVERHEAT 45.5"}}"#);
    assert_eq!(watcher.stream(1, Duration::from_secs(10)), [first]);
    // The device goes away; the room cools down and heats up again.
    drop(device);
    temperature(&edgemq, 20.0);
    temperature(&edgemq, 48.0);
    let second = format!(r#"{command} {{"state": true, "reason": "OVERHEAT 48"}}"#);
    assert_eq!(
        watcher.stream(1, Duration::from_secs(10)),
        std::slice::from_ref(&second)
    );
    watcher.nothing_more();
    // The command waited in the device's session.
    let mut device = Sub::start(&edgemq, &device_args);
    assert_eq!(device.stream(1, Duration::from_secs(10)), [second]);
    // Stored like any message.
    let sql = format!("SELECT count(*) FROM messages WHERE topic = '{command}'");
    assert_eq!(query(&edgemq.db, &sql), [["2"]]);
    let rule = rule_entry(&edgemq, "OVERHEAT");
    assert_eq!(
        (&rule["raised"], &rule["cleared"]),
        (&2.into(), &1.into()),
        "{rule}"
    );
    assert_eq!(rule["actions"][0]["fired"], 2, "{rule}");
    assert!(edgemq.stop().success());
}

#[test]
fn a_webhook_gets_every_raise_and_clear_once_across_its_outage_and_a_restart() {
    let (dir, port) = (temp_dir(), free_port());
    let config = format!(
        "{OVERHEAT}[[rule.action]]\non = \"both\"\nwebhook = \"http://127.0.0.1:{port}/notify\"\n\
         headers = {{ Authorization = \"Bearer s3cret\" }}\nretry_max = \"1s\"\n"
    );
    let (tx, calls) = channel();
    let hook = Hook::start(port, tx.clone());
    let edgemq = Edgemq::with_config(dir.path(), &config);
    temperature(&edgemq, 45.0);
    temperature(&edgemq, 20.0);
    let got = next_calls(&calls, 2, Duration::from_secs(10));
    let states: Vec<&Value> = got.iter().map(|(_, body)| &body["state"]).collect();
    assert_eq!(states, ["raised", "cleared"]);
    let (headers, body) = &got[0];
    assert_eq!(headers["authorization"], "Bearer s3cret");
    assert!(headers.contains_key("x-edgemq-delivery"));
    assert_eq!(
        (&body["type"], &body["device_id"]),
        (&"OVERHEAT".into(), &"ESP32_001".into())
    );
    assert_eq!(body["value"], 45.0);

    // The receiver goes down; two more changes wait in the outbox, across a restart.
    hook.stop();
    temperature(&edgemq, 50.0);
    temperature(&edgemq, 21.0);
    // Tried again and again, a second or so apart (retry_max).
    wait_for(
        "two calls failing in the outbox, tried three times",
        Duration::from_secs(10),
        || {
            let rows = query(
                &edgemq.db,
                "SELECT count(*), max(attempts) FROM webhook_outbox",
            );
            let outbox = metric(&edgemq, "edgemq_webhook_outbox");
            let tried = rows[0][1].parse::<i64>().unwrap_or(0) >= 3;
            (rows[0][0] == "2" && tried && outbox == Ok(2))
                .then_some(())
                .ok_or(format!("{rows:?}, outbox {outbox:?}"))
        },
    );
    let failures = rule_entry(&edgemq, "OVERHEAT")["actions"][0]["failed"].clone();
    assert!(failures.as_u64() >= Some(3), "failures counted: {failures}");
    assert!(edgemq.stop().success());
    let edgemq = Edgemq::with_config(dir.path(), &config);
    let _hook = Hook::start(port, tx);
    let got = next_calls(&calls, 2, Duration::from_secs(10));
    let seen: Vec<(&Value, &Value)> = got
        .iter()
        .map(|(_, b)| (&b["state"], &b["value"]))
        .collect();
    assert_eq!(
        seen,
        [
            (&"raised".into(), &50.0.into()),
            (&"cleared".into(), &50.0.into())
        ]
    );
    no_more_calls(&calls);
    assert_eq!(
        query(&edgemq.db, "SELECT count(*) FROM webhook_outbox"),
        [["0"]]
    );
    // The header's value is not shown.
    let rule = rule_entry(&edgemq, "OVERHEAT");
    assert!(!rule.to_string().contains("s3cret"), "{rule}");
    assert!(edgemq.stop().success());
}

#[test]
fn a_critical_relay_switching_off_raises_relay_changed_and_its_webhook_fires() {
    let (dir, port) = (temp_dir(), free_port());
    let config = format!(
        "[[rule]]\nfilter = \"autocore/+/relay/+/status\"\nmetric = \"state\"\non_change = true\n\
         type = \"RELAY_CHANGED\"\ncritical = [\"ESP32_001/0\"]\n\
         [[rule.action]]\nwebhook = \"http://127.0.0.1:{port}/notify\"\n"
    );
    let (tx, calls) = channel();
    let _hook = Hook::start(port, tx);
    let edgemq = Edgemq::with_config(dir.path(), &config);
    relay(&edgemq, 0, true); // the first state seen: no change yet
    relay(&edgemq, 1, true);
    relay(&edgemq, 1, false); // not a critical relay
    relay(&edgemq, 0, true); // the same state
    relay(&edgemq, 0, false);
    let got = next_calls(&calls, 1, Duration::from_secs(10));
    let body = &got[0].1;
    assert_eq!(body["type"], "RELAY_CHANGED");
    let change = &body["payload"];
    assert_eq!(
        (&change["key"], &change["old"], &change["new"]),
        (&"ESP32_001/0".into(), &true.into(), &false.into())
    );
    no_more_calls(&calls);
    // An event: raised and cleared at once.
    let sql = "SELECT count(*) FROM alerts WHERE type = 'RELAY_CHANGED' AND cleared_at = raised_at";
    assert_eq!(query(&edgemq.db, sql), [["1"]]);
    // The last state is kept across a restart: switching back on is a change.
    assert!(edgemq.stop().success());
    let edgemq = Edgemq::with_config(dir.path(), &config);
    relay(&edgemq, 0, true);
    let got = next_calls(&calls, 1, Duration::from_secs(10));
    let change = &got[0].1["payload"];
    assert_eq!(
        (&change["old"], &change["new"]),
        (&false.into(), &true.into())
    );
    assert!(edgemq.stop().success());
}

#[test]
fn an_action_that_would_make_an_invalid_topic_stops_edgemq_at_start() {
    let dir = temp_dir();
    let config = format!("{OVERHEAT}[[rule.action]]\npublish = \"relay/+/{{devce}}\"\n");
    std::fs::write(dir.path().join("edgemq.toml"), &config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgemq"))
        .arg("--config")
        .arg(dir.path().join("edgemq.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown {devce}"), "{stderr}");
}
