//! Test harness: the real `edgemq` binary on ephemeral ports in a temp dir, real MQTT clients.
#![allow(dead_code)]

pub mod certs;
pub mod raw;
pub mod upstream;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_edgemq");

/// Every listener on a free loopback port.
pub const EPHEMERAL: [&str; 6] = [
    "--mqtt",
    "127.0.0.1:0",
    "--mqtt-ws",
    "127.0.0.1:0",
    "--http",
    "127.0.0.1:0",
];

/// A running edgemq process.
pub struct Edgemq {
    pub child: Child,
    pub dir: PathBuf,
    pub db: PathBuf,
    /// MQTT 3.1, 3.1.1 and 5.
    pub mqtt: SocketAddr,
    /// MQTT over WebSockets.
    pub mqtt_ws: SocketAddr,
    pub http: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Edgemq {
    /// Starts edgemq with its database in `dir` and waits until it says it is ready.
    pub fn start(dir: &Path, extra: &[&str]) -> Edgemq {
        Edgemq::start_under(&[], dir, extra)
    }

    /// The same, with `config` written to `dir/edgemq.toml` and passed as `--config`.
    pub fn with_config(dir: &Path, config: &str) -> Edgemq {
        Edgemq::config_under(&[], dir, config)
    }

    /// [`Edgemq::with_config`], run by a wrapper command.
    pub fn config_under(wrapper: &[&str], dir: &Path, config: &str) -> Edgemq {
        std::fs::write(dir.join("edgemq.toml"), config).expect("the test's config file");
        Edgemq::start_under(wrapper, dir, &["--config", "edgemq.toml"])
    }

    /// The same, run by a wrapper command (such as `prlimit --nofile=256:256 --`).
    pub fn start_under(wrapper: &[&str], dir: &Path, extra: &[&str]) -> Edgemq {
        let db = dir.join("edgemq.db");
        let args = [&["--db", db.to_str().unwrap()][..], &EPHEMERAL, extra].concat();
        Edgemq::spawn(wrapper, dir, db.clone(), &args)
    }

    /// edgemq with only these arguments (and an ephemeral HTTP port): its listeners and
    /// database are where `args` (a Mosquitto file, say) put them, `db` among them.
    pub fn start_as_configured(dir: &Path, db: PathBuf, args: &[&str]) -> Edgemq {
        let args = [args, &["--http", "127.0.0.1:0"]].concat();
        Edgemq::spawn(&[], dir, db, &args)
    }

    fn spawn(wrapper: &[&str], dir: &Path, db: PathBuf, args: &[&str]) -> Edgemq {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        let mut child = command
            .current_dir(dir)
            .args(["--log-level", "info"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn edgemq");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let ready = line.contains("edgemq ready:").then(|| line.clone());
                sink.lock().unwrap().push(line);
                if let Some(line) = ready {
                    let _ = ready_tx.send(line);
                }
            }
        });
        let ready = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("edgemq did not start: {:?}", log.lock().unwrap())
            });
        let addr = |key: &str| -> SocketAddr {
            let Some(at) = ready.find(&format!(" {key}=")) else {
                return SocketAddr::from(([0, 0, 0, 0], 0)); // not listening
            };
            let start = at + key.len() + 2;
            let rest = &ready[start..];
            rest[..rest.find(' ').unwrap_or(rest.len())]
                .parse()
                .unwrap()
        };
        Edgemq {
            mqtt: addr("mqtt"),
            mqtt_ws: addr("mqtt-ws"),
            http: addr("http"),
            child,
            dir: dir.to_path_buf(),
            db,
            log,
        }
    }

    pub fn signal(&self, signal: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        wait_exit(&mut self.child, Duration::from_secs(30))
    }

    /// SIGKILL: no chance to flush.
    pub fn kill9(mut self) {
        self.signal(libc::SIGKILL);
        wait_exit(&mut self.child, Duration::from_secs(10));
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The address of the listener the ready line labels `label` (`mqtts`, `mqtt-wss`, ...).
    pub fn listener(&self, label: &str) -> SocketAddr {
        let log = self.log_text();
        let ready = log.lines().find(|l| l.contains("edgemq ready:")).unwrap();
        let key = format!(" {label}=");
        let start = ready
            .find(&key)
            .unwrap_or_else(|| panic!("no {label} in {ready}"))
            + key.len();
        let rest = &ready[start..];
        rest[..rest.find(' ').unwrap_or(rest.len())]
            .parse()
            .unwrap()
    }
}

impl Drop for Edgemq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh temp dir for one test.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Runs edgemq to completion with these arguments (for start-up failures).
pub fn run_to_exit(dir: &Path, args: &[&str]) -> (ExitStatus, String) {
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run edgemq");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Rows of `messages` as (topic, payload), in id order.
pub fn stored(db: &Path) -> Vec<(String, Vec<u8>)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT topic, payload FROM messages ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    rows
}

/// The stored messages that clients published (not edgemq's own alerts).
pub const FROM_CLIENTS: &str = "SELECT id FROM messages WHERE client_id IS NOT 'edgemq-outbox'";

/// How many messages clients published are stored.
pub fn count(db: &Path) -> u64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    let sql = format!("SELECT count(*) FROM ({FROM_CLIENTS})");
    conn.query_row(&sql, [], |r| r.get(0)).unwrap()
}

/// Polls `check` until it returns `Ok`, and gives back that value. `check` says what it sees
/// now as its `Err`; if `timeout` passes first, the test fails saying what it waited for and
/// what it saw last.
#[track_caller]
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) if Instant::now() > deadline => {
                panic!("waited {timeout:?} for {what}; saw {seen}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// `wait_for` in async tests: polls without blocking the runtime.
pub async fn wait_for_async<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if Instant::now() > deadline => {
                panic!("waited {timeout:?} for {what}; saw {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Waits until the `messages` table holds exactly `n` rows.
#[track_caller]
pub fn count_eventually(db: &Path, n: u64) {
    wait_for(
        &format!("{n} rows in messages"),
        Duration::from_secs(20),
        || match count(db) {
            seen if seen == n => Ok(()),
            seen => Err(format!("{seen} rows")),
        },
    )
}

/// An MQTT 3.1.1 client connected to `addr`.
pub fn mqtt_client(addr: SocketAddr, id: &str) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_inflight(100);
    options.set_max_packet_size(8 * 1024 * 1024, 8 * 1024 * 1024);
    AsyncClient::new(options, 1000)
}

/// Publishes every (topic, payload) at QoS 1 from one client and returns once every PUBACK
/// has arrived.
pub async fn publish_all_qos1(addr: SocketAddr, id: String, messages: Vec<(String, Vec<u8>)>) {
    let (client, mut eventloop) = mqtt_client(addr, &id);
    let total = messages.len();
    let publisher = tokio::spawn(async move {
        for (topic, payload) in messages {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
        }
        client
    });
    let mut acked = 0;
    while acked < total {
        match tokio::time::timeout(Duration::from_secs(30), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{id}: connection error after {acked} acks: {e}"),
            Err(_) => panic!("{id}: no progress after {acked} of {total} acks"),
        }
    }
    let client = publisher.await.unwrap();
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
}

/// GET a JSON document from edgemq's HTTP API.
pub async fn get_json(edgemq: &Edgemq, path: &str) -> serde_json::Value {
    let response = reqwest::get(edgemq.url(path)).await.expect("HTTP request");
    response.json().await.expect("a JSON body")
}

/// A mosquitto client tool (`mosquitto_pub`, `mosquitto_sub`, ...) aimed at edgemq's MQTT port.
pub fn mosquitto(edgemq: &Edgemq, tool: &str) -> Command {
    let mut command = Command::new(tool);
    command.args(["-h", "127.0.0.1", "-p", &edgemq.mqtt.port().to_string()]);
    command
}

/// Publishes one message with mosquitto_pub (payload from stdin, so any bytes go through).
pub fn mosquitto_pub(edgemq: &Edgemq, topic: &str, payload: &[u8], extra: &[&str]) {
    use std::io::Write;
    let mut child = mosquitto(edgemq, "mosquitto_pub")
        .args(["-t", topic, "-s"])
        .args(extra)
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub is installed by .ci/run");
    child.stdin.take().unwrap().write_all(payload).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "mosquitto_pub -t {topic}: {status:?}");
}

/// Runs a query on edgemq's database and returns every row as strings (NULL as "NULL").
pub fn query(db: &Path, sql: &str) -> Vec<Vec<String>> {
    use rusqlite::types::ValueRef;
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    let columns = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            Ok((0..columns)
                .map(|i| match r.get_ref(i).unwrap() {
                    ValueRef::Null => "NULL".to_string(),
                    ValueRef::Integer(n) => n.to_string(),
                    ValueRef::Real(x) => x.to_string(),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned()
                    }
                })
                .collect())
        })
        .unwrap()
        .collect::<Result<Vec<Vec<String>>, _>>()
        .unwrap();
    rows
}

/// Polls a query until it returns `n` rows, and gives them back; fails the test with the rows
/// it last saw if it never does.
#[track_caller]
pub fn rows_eventually(db: &Path, sql: &str, n: usize) -> Vec<Vec<String>> {
    wait_for(
        &format!("{n} rows from `{sql}`"),
        Duration::from_secs(20),
        || match query(db, sql) {
            rows if rows.len() == n => Ok(rows),
            rows => Err(format!(
                "{} rows: {:?}",
                rows.len(),
                &rows[..rows.len().min(10)]
            )),
        },
    )
}

/// GET a text document (such as /metrics) from edgemq's HTTP API.
pub async fn get_text(edgemq: &Edgemq, path: &str) -> String {
    let response = reqwest::get(edgemq.url(path)).await.expect("HTTP request");
    response.text().await.expect("a text body")
}

/// A running `mosquitto_sub -d -v`, subscribed (it printed its SUBACK) before `start` returns.
/// Messages come as "topic payload" lines; payload bytes that are not UTF-8 are replaced.
pub struct Sub {
    child: Child,
    lines: Receiver<String>,
    /// Messages that came before the SUBACK (a resumed session's queue).
    early: Vec<String>,
}

impl Sub {
    /// Starts `mosquitto_sub` on edgemq's MQTT port with `args` and waits for its SUBACK.
    pub fn start(edgemq: &Edgemq, args: &[&str]) -> Sub {
        Sub::start_on(edgemq.mqtt, args)
    }

    /// The same against any MQTT address.
    pub fn start_on(addr: SocketAddr, args: &[&str]) -> Sub {
        // Line-buffered, so each line arrives as it is printed.
        let mut child = Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-h"])
            .arg(addr.ip().to_string())
            .arg("-p")
            .arg(addr.port().to_string())
            .args(["-d", "-v"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub is installed by .ci/run");
        let (tx, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                if tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
                {
                    return;
                }
                line.clear();
            }
        });
        // Built first, so a failure below still kills the child (Drop).
        let mut sub = Sub {
            child,
            lines,
            early: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match sub.lines.recv_timeout(left) {
                Ok(line) if line.contains("received SUBACK") => break,
                Ok(line) => seen.push(line),
                Err(_) => panic!("mosquitto_sub {args:?} was not subscribed; it printed {seen:?}"),
            }
        }
        sub.early = seen.into_iter().filter(|l| !is_debug(l)).collect();
        sub
    }

    /// The SUBACK's codes as mosquitto_sub prints them: "1", "128", "0, 128".
    pub fn granted(&mut self) -> String {
        let printed = self.lines.recv_timeout(Duration::from_secs(10));
        let line = printed.unwrap_or_else(|e| panic!("no SUBACK codes printed: {e}"));
        match line.split_once("): ") {
            Some((head, codes)) if head.starts_with("Subscribed (mid") => codes.to_string(),
            _ => panic!("expected the SUBACK's codes, got {line:?}"),
        }
    }

    /// The next `n` messages as "topic payload" lines (debug lines left out).
    #[track_caller]
    pub fn messages(&mut self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut out: Vec<String> = self.early.drain(..).collect();
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if is_debug(&line) => {}
                Ok(line) => out.push(line),
                Err(_) => panic!("waited for {n} messages; got {}: {out:?}", out.len()),
            }
        }
        out
    }

    /// The next message, split into its topic and payload.
    #[track_caller]
    pub fn next(&mut self) -> (String, String) {
        let line = self.messages(1).remove(0);
        match line.split_once(' ') {
            Some((topic, payload)) => (topic.to_string(), payload.to_string()),
            None => (line, String::new()),
        }
    }

    /// Messages that arrive within `wait` (for checking that nothing more comes).
    pub fn quiet_for(&mut self, wait: Duration) -> Vec<String> {
        let deadline = Instant::now() + wait;
        let mut out: Vec<String> = self.early.drain(..).collect();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if !is_debug(&line) {
                out.push(line);
            }
        }
        out
    }

    /// Sends the subscriber a signal (SIGSTOP freezes it, SIGCONT lets it go on).
    pub fn signal(&self, signal: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// The next `n` messages, however long they take to come while each comes within
    /// `gap` of the last.
    #[track_caller]
    pub fn stream(&mut self, n: usize, gap: Duration) -> Vec<String> {
        let mut out: Vec<String> = self.early.drain(..).collect();
        while out.len() < n {
            match self.lines.recv_timeout(gap) {
                Ok(line) if is_debug(&line) => {}
                Ok(line) => out.push(line),
                Err(_) => panic!(
                    "waited for {n} messages; got {}, then nothing for {gap:?}; last: {:?}",
                    out.len(),
                    out.last()
                ),
            }
        }
        out
    }

    /// Fails if any message comes within 300 ms (after what was expected).
    #[track_caller]
    pub fn nothing_more(&mut self) {
        let more = self.quiet_for(Duration::from_millis(300));
        assert_eq!(more, Vec::<String>::new(), "nothing more");
    }

    /// Waits for mosquitto_sub to exit by itself (after `-C N` messages), and says how.
    #[track_caller]
    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_exit(&mut self.child, Duration::from_secs(10))
    }

    /// Kills the subscriber abruptly (no DISCONNECT: a last will goes out).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// mosquitto_sub's `-d` lines, as opposed to messages.
fn is_debug(line: &str) -> bool {
    line.starts_with("Client ") || line.starts_with("Subscribed (mid")
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One counter or gauge from edgemq's `/metrics`.
pub fn metric(edgemq: &Edgemq, name: &str) -> Result<u64, String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let text = runtime.block_on(async {
        match reqwest::get(edgemq.url("/metrics")).await {
            Ok(r) => r.text().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    })?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {name} in /metrics"))
}

/// Publishes `{tag}-{i}` for i in 0..n on `topic` at QoS 1 with one `mosquitto_pub -l`, from
/// a thread that asserts it succeeded.
pub fn publish_lines(
    edgemq: &Edgemq,
    topic: &str,
    tag: &str,
    n: usize,
) -> std::thread::JoinHandle<()> {
    let lines: String = (0..n).map(|i| format!("{tag}-{i}\n")).collect();
    let mut publisher = mosquitto(edgemq, "mosquitto_pub")
        .args(["-t", topic, "-q", "1", "-l"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = publisher.stdin.take().unwrap();
    let tag = tag.to_string();
    std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(lines.as_bytes()).unwrap();
        drop(stdin);
        assert!(
            publisher.wait().unwrap().success(),
            "mosquitto_pub -l {tag}"
        );
    })
}

/// Every payload `{tag}-{i}` for i in 0..n exactly once, in order per tag.
#[track_caller]
pub fn all_in_order(lines: &[String], tags: &[&str], n: usize) {
    for tag in tags {
        let seen: Vec<usize> = lines
            .iter()
            .filter_map(|l| {
                l.split_once(' ')?
                    .1
                    .strip_prefix(&format!("{tag}-"))?
                    .parse()
                    .ok()
            })
            .collect();
        let expected: Vec<usize> = (0..n).collect();
        if seen != expected {
            let missing: Vec<&usize> = expected.iter().filter(|i| !seen.contains(i)).collect();
            panic!(
                "{tag}: {} received, {} missing (first missing {:?}), first {:?}",
                seen.len(),
                missing.len(),
                &missing[..missing.len().min(5)],
                &seen[..seen.len().min(5)]
            );
        }
    }
}

/// A free port of 127.0.0.1 (free when asked), for a broker whose config names its port.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Started as root, Mosquitto runs as its own user (its `user` option): it gets `dir`.
pub fn give_to_mosquitto(dir: &Path) {
    if unsafe { libc::geteuid() } == 0 {
        let given = Command::new("chown")
            .arg("-R")
            .arg("mosquitto:")
            .arg(dir)
            .status();
        assert!(
            given.is_ok_and(|s| s.success()),
            "chown to the mosquitto user"
        );
    }
}

/// Waits until something listens on 127.0.0.1:`port`.
#[track_caller]
pub fn wait_listening(what: &str, port: u16) {
    wait_for(what, Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .map(drop)
            .map_err(|e| e.to_string())
    });
}
