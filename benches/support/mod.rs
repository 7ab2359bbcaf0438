//! What the benchmarks share: the real edgemq binary on ephemeral ports in a temp dir.
//! `EDGEMQ_BIN=/path/to/edgemq` runs another build instead (to compare two versions side by
//! side), with `EDGEMQ_ARGS` as its extra flags (this build's `--mqtt-ws 127.0.0.1:0` is left
//! out then: older builds do not know it).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// A running edgemq; SIGTERM on drop.
pub struct Edgemq {
    pub child: Child,
    pub db: PathBuf,
    pub mqtt: SocketAddr,
    pub http: SocketAddr,
    /// Its ready line, with every listener's address.
    pub ready: String,
}

impl Edgemq {
    pub fn start(dir: &Path) -> Edgemq {
        Edgemq::start_with(dir, "")
    }

    /// Starts edgemq with `config` (TOML; empty: the defaults).
    pub fn start_with(dir: &Path, config: &str) -> Edgemq {
        let db = dir.join("bench.db");
        let conf = dir.join("bench.toml");
        std::fs::write(&conf, config).expect("write bench.toml");
        let (bin, extra) = match std::env::var("EDGEMQ_BIN") {
            Ok(bin) => (bin, std::env::var("EDGEMQ_ARGS").unwrap_or_default()),
            Err(_) => (
                env!("CARGO_BIN_EXE_edgemq").to_string(),
                "--mqtt-ws 127.0.0.1:0".to_string(),
            ),
        };
        let mut child = Command::new(bin)
            .current_dir(dir)
            .args(extra.split_whitespace())
            .args(["--db", db.to_str().unwrap(), "--log-level", "info"])
            .arg("--config")
            .arg(&conf)
            .args(["--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("start edgemq");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("edgemq ready:"))
            .expect("edgemq ready");
        std::thread::spawn(move || lines.for_each(drop));
        let field = |key: &str| -> SocketAddr {
            let rest = &ready[ready.find(&format!(" {key}=")).unwrap() + key.len() + 2..];
            rest[..rest.find(' ').unwrap()].parse().unwrap()
        };
        Edgemq {
            mqtt: field("mqtt"),
            http: field("http"),
            child,
            db,
            ready,
        }
    }

    /// The address of the listener labelled `label` in the ready line.
    pub fn listener(&self, label: &str) -> SocketAddr {
        let key = format!(" {label}=");
        let rest = &self.ready[self.ready.find(&key).expect("the listener") + key.len()..];
        rest[..rest.find(' ').unwrap_or(rest.len())]
            .parse()
            .unwrap()
    }

    pub fn peak_rss_mib(&self) -> f64 {
        peak_rss_mib(self.child.id())
    }
}

/// A process's peak resident memory (VmHWM) in MiB; 0 when it cannot be read.
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    kib as f64 / 1024.0
}

/// Mosquitto from Debian's package on a free port of 127.0.0.1, with `extra` configuration
/// lines; None when it is not installed.
pub fn start_mosquitto(extra: &str) -> Option<(Child, SocketAddr)> {
    start_mosquitto_on(free_port()?, extra)
}

/// A free port of 127.0.0.1 (free when asked).
pub fn free_port() -> Option<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
    Some(listener.local_addr().ok()?.port())
}

/// [`start_mosquitto`] on `port`.
pub fn start_mosquitto_on(port: u16, extra: &str) -> Option<(Child, SocketAddr)> {
    let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let dir = tempfile::tempdir().ok()?;
    let conf = dir.path().join("mosquitto.conf");
    let config = format!("listener {port} 127.0.0.1\nallow_anonymous true\n{extra}");
    std::fs::write(&conf, config).ok()?;
    let broker = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Some((broker, addr))
}

impl Drop for Edgemq {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// The value at fraction `p` of sorted samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Polls a publisher's event loop until `count` PUBACKs came.
pub async fn acknowledged(events: &mut rumqttc::EventLoop, count: usize, publisher: usize) {
    let mut acked = 0;
    while acked < count {
        match events.poll().await {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => acked += 1,
            Ok(_) => {}
            Err(e) => panic!("publisher {publisher}: {e}"),
        }
    }
}

/// Counts arriving publishes until `n`, or until none came for 10 s: (how many, when the last
/// came).
pub async fn count_arrivals(
    events: &mut rumqttc::EventLoop,
    n: usize,
) -> (usize, std::time::Instant) {
    use rumqttc::{Event, Packet};
    let (mut got, mut last) = (0, std::time::Instant::now());
    while got < n {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), events.poll()).await;
        match next {
            Ok(Ok(Event::Incoming(Packet::Publish(_)))) => {
                got += 1;
                last = std::time::Instant::now();
            }
            Ok(Ok(_)) => {}
            _ => break,
        }
    }
    (got, last)
}

/// The value after `--name` on the command line.
pub fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).cloned()
}
