//! Bridging out to a real upstream broker (Mosquitto, started by the test): what devices publish
//! to edgemq arrives upstream under the remote prefix, in order per device, and nothing is lost
//! while the upstream is down or edgemq is killed.

mod common;

use common::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Mosquitto on a fixed free port with persistence in `dir`, keeping every queued message.
struct Upstream {
    child: Child,
    port: u16,
}

impl Upstream {
    fn start(dir: &Path, port: u16) -> Upstream {
        Upstream::start_with(dir, port, "")
    }

    /// The same with more configuration lines (for its listener).
    fn start_with(dir: &Path, port: u16, extra: &str) -> Upstream {
        let conf = dir.join("upstream.conf");
        let config = format!(
            "listener {port} 127.0.0.1\n{extra}allow_anonymous true\npersistence true\n\
             persistence_location {}/\nmax_queued_messages 0\n",
            dir.display()
        );
        std::fs::write(&conf, config).unwrap();
        give_to_mosquitto(dir);
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed by .ci/run");
        wait_listening("the upstream to listen", port);
        Upstream { child, port }
    }

    /// SIGTERM: Mosquitto saves its sessions and queued messages, then exits.
    fn stop(mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }

    fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An upstream on `port` with a persistent QoS 1 subscriber on `site1/#` (it keeps its queue
/// while the upstream restarts), and edgemq as `start` starts it, its bridge connected.
fn bridged(up_dir: &Path, port: u16, start: impl FnOnce() -> Edgemq) -> (Upstream, Sub, Edgemq) {
    let upstream = Upstream::start(up_dir, port);
    let sub_args = ["-c", "-i", "up-sub", "-q", "1", "-t", "site1/#"];
    let up_sub = Sub::start_on(upstream.addr(), &sub_args);
    let edgemq = start();
    wait_connected(&edgemq);
    (upstream, up_sub, edgemq)
}

/// Waits until edgemq's bridge is connected to its upstream.
fn wait_connected(edgemq: &Edgemq) {
    wait_for(
        "the bridge to connect",
        Duration::from_secs(10),
        || match metric(edgemq, "edgemq_bridges_connected") {
            Ok(1) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
}

/// Lines from `sub` until `n` distinct ones carry one of `tags`; each such line's first copy,
/// in the order they came (other lines, and copies sent again, are left out).
fn first_copies(sub: &mut Sub, tags: &[&str], n: usize) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut firsts = Vec::new();
    while firsts.len() < n {
        let line = sub.stream(1, Duration::from_secs(30)).remove(0);
        let tagged = line
            .split_once(' ')
            .is_some_and(|(_, p)| tags.iter().any(|t| p.starts_with(&format!("{t}-"))));
        if tagged && seen.insert(line.clone()) {
            firsts.push(line);
        }
    }
    firsts
}

fn bridge_config(port: u16) -> String {
    format!(
        "[[bridge]]\nname = \"cloud\"\naddresses = [\"127.0.0.1:{port}\"]\nrestart_timeout = \"200ms\"\n\
         topics = [{{ pattern = \"sensors/#\", direction = \"out\", qos = 1, remote_prefix = \"site1/\" }}]\n"
    )
}

#[test]
fn messages_reach_the_upstream_under_its_prefix_across_an_outage_of_it() {
    const N: usize = 20_000;
    let (dir, up_dir, port) = (temp_dir(), temp_dir(), free_port());
    // The bridge as a Mosquitto user already writes it.
    let conf = format!(
        "connection cloud\naddress 127.0.0.1:{port}\ntopic sensors/# out 1 \"\" site1/\nrestart_timeout 1\n"
    );
    std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
    let (upstream, mut up_sub, edgemq) = bridged(up_dir.path(), port, || {
        Edgemq::start(dir.path(), &["-c", "mosquitto.conf"])
    });
    // Two devices, and a topic the bridge does not forward.
    let a = publish_lines(&edgemq, "sensors/a", "a", N / 2);
    let b = publish_lines(&edgemq, "sensors/b", "b", N / 2);
    mosquitto_pub(&edgemq, "local/only", b"stays here", &["-q", "1"]);
    a.join().unwrap();
    b.join().unwrap();
    let got = up_sub.stream(N, Duration::from_secs(30));
    let got: Vec<String> = got
        .into_iter()
        .map(|l| l.replacen("site1/sensors/", "sensors/", 1))
        .collect();
    all_in_order(&got, &["a", "b"], N / 2);

    // The upstream goes away; devices keep publishing; it comes back: nothing is lost.
    upstream.stop();
    let a = publish_lines(&edgemq, "sensors/a", "c", N / 2);
    let b = publish_lines(&edgemq, "sensors/b", "d", N / 2);
    a.join().unwrap();
    b.join().unwrap();
    // /health says the bridge is down and behind.
    wait_for_health(&edgemq, "degraded, with a backlog", |h| {
        h["status"] == "degraded"
            && h["bridges"]["connected"] == 0
            && h["bridges"]["backlog"].as_u64() >= Some(N as u64)
    });
    let _upstream = Upstream::start(up_dir.path(), port);
    // QoS 1: the upstream may send the subscriber again what it had not seen acknowledged when
    // it stopped; the new messages are counted once each.
    let got = first_copies(&mut up_sub, &["c", "d"], N);
    all_in_order(&got, &["c", "d"], N / 2);
    wait_for_health(&edgemq, "healthy, caught up", |h| {
        h["status"] == "healthy" && h["bridges"]["backlog"] == 0
    });
    assert!(edgemq.stop().success());
}

/// Waits until edgemq's `/health` is as `check` wants it.
fn wait_for_health(edgemq: &Edgemq, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    wait_for(what, Duration::from_secs(15), || {
        let health = runtime.block_on(get_json(edgemq, "/health"));
        check(&health).then_some(()).ok_or(health.to_string())
    });
}

#[test]
fn kill_9_while_forwarding_a_backlog_loses_nothing() {
    const N: usize = 100_000;
    let (dir, up_dir, port) = (temp_dir(), temp_dir(), free_port());
    let config = bridge_config(port);
    let (upstream, mut up_sub, edgemq) = bridged(up_dir.path(), port, || {
        Edgemq::with_config(dir.path(), &config)
    });
    // A backlog builds while the upstream is down.
    upstream.stop();
    let a = publish_lines(&edgemq, "sensors/a", "a", N / 2);
    let b = publish_lines(&edgemq, "sensors/b", "b", N / 2);
    a.join().unwrap();
    b.join().unwrap();
    let _upstream = Upstream::start(up_dir.path(), port);
    // Killed while it forwards: after 10,000 have arrived upstream.
    let mut got = up_sub.stream(10_000, Duration::from_secs(30));
    edgemq.kill9();
    let edgemq = Edgemq::with_config(dir.path(), &config);
    let mut seen: std::collections::HashSet<String> = got.iter().cloned().collect();
    while seen.len() < N {
        let line = up_sub.stream(1, Duration::from_secs(30)).remove(0);
        seen.insert(line.clone());
        got.push(line);
    }
    let duplicates = got.len() - N;
    // Each device's messages, first copies only, are all there in order.
    let mut first = std::collections::HashSet::new();
    let firsts: Vec<String> = got
        .into_iter()
        .filter(|l| first.insert(l.clone()))
        .collect();
    all_in_order(&firsts, &["a", "b"], N / 2);
    println!("{duplicates} duplicates after kill -9");
    assert!(
        duplicates <= 5_000,
        "duplicates only from the last unacknowledged window: {duplicates}"
    );
    up_sub.nothing_more();
    assert!(edgemq.stop().success());
}

#[test]
fn a_command_published_upstream_reaches_a_device_and_does_not_come_back() {
    let (dir, up_dir, port) = (temp_dir(), temp_dir(), free_port());
    let config = format!(
        "[[bridge]]\nname = \"cloud\"\naddresses = [\"127.0.0.1:{port}\"]\nrestart_timeout = \"200ms\"\n\
         topics = [\n\
           {{ pattern = \"cmd/#\", direction = \"in\", qos = 1, remote_prefix = \"site1/\" }},\n\
           {{ pattern = \"#\", direction = \"out\", qos = 1, remote_prefix = \"site1/up/\" }},\n\
         ]\n"
    );
    let (upstream, mut up_sub, edgemq) = bridged(up_dir.path(), port, || {
        Edgemq::with_config(dir.path(), &config)
    });
    let mut device = Sub::start(&edgemq, &["-q", "1", "-t", "cmd/#"]);
    let sent = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", "site1/cmd/relay", "-m", "on"])
        .status()
        .unwrap();
    assert!(sent.success());
    assert_eq!(device.stream(1, Duration::from_secs(10)), ["cmd/relay on"]);
    // Stored like any message, with the bridge as its client.
    let rows = rows_eventually(&edgemq.db, "SELECT topic, client_id FROM messages", 1);
    assert_eq!(rows, [["cmd/relay", "edgemq-bridge-cloud"]]);
    // `#` goes out, but what came in is not sent back: the next upstream line is a device's.
    mosquitto_pub(&edgemq, "sensors/x", b"after", &["-q", "1"]);
    let next = up_sub.stream(2, Duration::from_secs(10));
    assert_eq!(next, ["site1/cmd/relay on", "site1/up/sensors/x after"]);
    up_sub.nothing_more();
    drop(upstream);
    assert!(edgemq.stop().success());
}

#[test]
fn a_bridge_reaches_its_upstream_over_tls_with_a_client_certificate() {
    let (dir, up_dir, port) = (temp_dir(), temp_dir(), free_port());
    common::certs::certificates(up_dir.path());
    let d = up_dir.path().display();
    let tls = format!(
        "certfile {d}/server.pem\nkeyfile {d}/server.key\ncafile {d}/ca.pem\nrequire_certificate true\n"
    );
    let upstream = Upstream::start_with(up_dir.path(), port, &tls);
    let client = |file: &str| format!("{d}/{file}");
    let (ca, cert, key) = (client("ca.pem"), client("client.pem"), client("client.key"));
    let sub_args = [
        "--cafile", &ca, "--cert", &cert, "--key", &key, "-q", "1", "-t", "site1/#",
    ];
    let mut up_sub = Sub::start_on(upstream.addr(), &sub_args);
    let config = format!(
        "{}bridge_cafile = \"{ca}\"\nbridge_certfile = \"{cert}\"\nbridge_keyfile = \"{key}\"\n",
        bridge_config(port)
    );
    let edgemq = Edgemq::with_config(dir.path(), &config);
    wait_connected(&edgemq);
    mosquitto_pub(&edgemq, "sensors/t", b"over tls", &["-q", "1"]);
    assert_eq!(
        up_sub.stream(1, Duration::from_secs(10)),
        ["site1/sensors/t over tls"]
    );
    assert!(edgemq.stop().success());
}

#[test]
fn two_edge_boxes_bridge_into_one_upstream_under_their_own_prefixes() {
    let (up_dir, port) = (temp_dir(), free_port());
    let upstream = Upstream::start(up_dir.path(), port);
    let mut up_sub = Sub::start_on(
        upstream.addr(),
        &["-q", "1", "-t", "site1/#", "-t", "site2/#"],
    );
    let boxes: Vec<(tempfile::TempDir, Edgemq)> = ["site1", "site2"]
        .into_iter()
        .map(|site| {
            let dir = temp_dir();
            // The same bridge name on both, with their own client ids upstream.
            let config = bridge_config(port)
                .replace("site1/", &format!("{site}/"))
                .replace(
                    "name = \"cloud\"",
                    &format!("name = \"cloud\"\nremote_clientid = \"{site}\""),
                );
            let edgemq = Edgemq::with_config(dir.path(), &config);
            wait_connected(&edgemq);
            (dir, edgemq)
        })
        .collect();
    let a = publish_lines(&boxes[0].1, "sensors/x", "one", 1000);
    let b = publish_lines(&boxes[1].1, "sensors/x", "two", 1000);
    a.join().unwrap();
    b.join().unwrap();
    let got = up_sub.stream(2000, Duration::from_secs(20));
    let from = |site: &str| {
        got.iter()
            .filter(|l| l.starts_with(&format!("{site}/sensors/x ")))
            .cloned()
            .collect::<Vec<_>>()
    };
    all_in_order(&from("site1"), &["one"], 1000);
    all_in_order(&from("site2"), &["two"], 1000);
    up_sub.nothing_more();
    for (_, edgemq) in boxes {
        assert!(edgemq.stop().success());
    }
    drop(upstream);
}
