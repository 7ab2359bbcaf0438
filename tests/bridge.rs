//! Bridging to a real upstream broker (Mosquitto or RabbitMQ, started by the test): what devices
//! publish to edgemq arrives upstream under the remote prefix, in order per device, and nothing
//! is lost while the upstream is down or edgemq is killed; commands come back in.

mod common;

use common::upstream::{Rabbit, Upstream};
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

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

/// Two devices publish `n` messages each at QoS 1: `tags[0]-i` on `sensors/a`, `tags[1]-i` on
/// `sensors/b`.
fn two_devices_publish(edgemq: &Edgemq, tags: [&str; 2], n: usize) {
    let a = publish_lines(edgemq, "sensors/a", tags[0], n);
    let b = publish_lines(edgemq, "sensors/b", tags[1], n);
    a.join().unwrap();
    b.join().unwrap();
}

/// The next `2 n` lines upstream are both devices' messages under `site1/`, each in order.
fn arrive_in_order(up_sub: &mut Sub, tags: [&str; 2], n: usize) {
    let got = up_sub.stream(2 * n, Duration::from_secs(30));
    let got: Vec<String> = got
        .into_iter()
        .map(|l| l.replacen("site1/sensors/", "sensors/", 1))
        .collect();
    all_in_order(&got, &tags, n);
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
    // A topic the bridge does not forward, and two devices.
    mosquitto_pub(&edgemq, "local/only", b"stays here", &["-q", "1"]);
    two_devices_publish(&edgemq, ["a", "b"], N / 2);
    arrive_in_order(&mut up_sub, ["a", "b"], N / 2);

    // The upstream goes away; devices keep publishing; it comes back: nothing is lost.
    upstream.stop();
    two_devices_publish(&edgemq, ["c", "d"], N / 2);
    // /health says the bridge is down and behind, and so do its own figures.
    wait_for_health(&edgemq, "degraded, with a backlog", |h| {
        h["status"] == "degraded"
            && h["bridges"]["connected"] == 0
            && h["bridges"]["backlog"].as_u64() >= Some(N as u64)
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let bridges = runtime.block_on(get_json(&edgemq, "/api/v1/bridges"));
    let cloud = &bridges["items"][0];
    assert_eq!(
        (&cloud["name"], &cloud["connected"], &cloud["forwarded"]),
        (&"cloud".into(), &false.into(), &N.into()),
        "{bridges}"
    );
    assert!(cloud["last_error"].is_string(), "{bridges}");
    assert_eq!(metric(&edgemq, "edgemq_bridge_up{bridge=\"cloud\"}"), Ok(0));
    let _upstream = Upstream::start(up_dir.path(), port);
    // QoS 1: the upstream may send the subscriber again what it had not seen acknowledged when
    // it stopped; the new messages are counted once each.
    let got = first_copies(&mut up_sub, &["c", "d"], N);
    all_in_order(&got, &["c", "d"], N / 2);
    wait_for_health(&edgemq, "healthy, caught up", |h| {
        h["status"] == "healthy" && h["bridges"]["backlog"] == 0
    });
    assert_eq!(metric(&edgemq, "edgemq_bridge_up{bridge=\"cloud\"}"), Ok(1));
    assert!(edgemq.stop().success());
}

#[test]
fn messages_reach_rabbitmq_across_an_outage_of_it() {
    const N: usize = 20_000;
    let (dir, up_dir) = (temp_dir(), temp_dir());
    let mut rabbit = Rabbit::start(up_dir.path());
    // A durable queue: it keeps what arrives while the subscriber is away.
    let sub_args = ["-c", "-i", "up-sub", "-q", "1", "-t", "site1/#"];
    let mut up_sub = Sub::start_on(rabbit.addr(), &sub_args);
    let edgemq = Edgemq::with_config(dir.path(), &bridge_config(rabbit.port));
    wait_connected(&edgemq);
    two_devices_publish(&edgemq, ["a", "b"], N / 2);
    arrive_in_order(&mut up_sub, ["a", "b"], N / 2);

    rabbit.stop();
    two_devices_publish(&edgemq, ["c", "d"], N / 2);
    wait_for_health(&edgemq, "degraded, with a backlog", |h| {
        h["status"] == "degraded" && h["bridges"]["backlog"].as_u64() >= Some(N as u64)
    });
    rabbit.run();
    let got = first_copies(&mut up_sub, &["c", "d"], N);
    all_in_order(&got, &["c", "d"], N / 2);
    wait_for_health(&edgemq, "healthy, caught up", |h| {
        h["status"] == "healthy" && h["bridges"]["backlog"] == 0
    });
    assert!(edgemq.stop().success());
}

#[test]
fn over_mqtt_5_a_topic_bridged_both_ways_under_one_name_does_not_echo() {
    let (dir, up_dir, port) = (temp_dir(), temp_dir(), free_port());
    let upstream = Upstream::start(up_dir.path(), port);
    let mut up_sub = Sub::start_on(upstream.addr(), &["-q", "1", "-t", "cmd/#"]);
    let config = format!(
        "[[bridge]]\nname = \"cloud\"\naddresses = [\"127.0.0.1:{port}\"]\n\
         bridge_protocol_version = \"mqttv50\"\n\
         topics = [{{ pattern = \"cmd/#\", direction = \"both\", qos = 1 }}]\n"
    );
    let edgemq = Edgemq::with_config(dir.path(), &config);
    wait_connected(&edgemq);
    let mut device = Sub::start(&edgemq, &["-q", "1", "-t", "cmd/#"]);
    // Out: it arrives upstream, and No Local keeps the upstream from sending it back.
    mosquitto_pub(&edgemq, "cmd/local", b"from the edge", &["-q", "1"]);
    assert_eq!(
        up_sub.stream(1, Duration::from_secs(10)),
        ["cmd/local from the edge"]
    );
    // In: a command from upstream reaches the device and is not sent back out.
    let sent = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", "cmd/remote", "-m", "from the cloud"])
        .status()
        .unwrap();
    assert!(sent.success());
    assert_eq!(
        device.stream(2, Duration::from_secs(10)),
        ["cmd/local from the edge", "cmd/remote from the cloud"]
    );
    assert_eq!(
        up_sub.stream(1, Duration::from_secs(10)),
        ["cmd/remote from the cloud"]
    );
    device.nothing_more();
    up_sub.nothing_more();
    let sql = "SELECT topic FROM messages ORDER BY id";
    let rows = rows_eventually(&edgemq.db, sql, 2);
    assert_eq!(rows, [["cmd/local"], ["cmd/remote"]], "each stored once");
    drop(upstream);
    assert!(edgemq.stop().success());
}

#[test]
fn the_bridge_state_is_retained_locally_and_upstream() {
    let (dir, up_dir, port) = (temp_dir(), temp_dir(), free_port());
    let upstream = Upstream::start(up_dir.path(), port);
    let state = ["-q", "1", "-t", "$SYS/broker/connection/#"];
    let mut up_state = Sub::start_on(upstream.addr(), &state);
    let config = bridge_config(port).replace(
        "name = \"cloud\"",
        "name = \"cloud\"\nremote_clientid = \"edge1\"",
    );
    let edgemq = Edgemq::with_config(dir.path(), &config);
    wait_connected(&edgemq);
    let connected = "$SYS/broker/connection/edge1/state 1";
    let gone = "$SYS/broker/connection/edge1/state 0";
    assert_eq!(up_state.stream(1, Duration::from_secs(10)), [connected]);
    let mut local = Sub::start(&edgemq, &state);
    assert_eq!(local.stream(1, Duration::from_secs(10)), [connected]);
    // Killed: the upstream publishes the bridge's will.
    edgemq.kill9();
    assert_eq!(up_state.stream(1, Duration::from_secs(10)), [gone]);
    // Back, then the upstream goes away: local subscribers are told at once.
    let edgemq = Edgemq::with_config(dir.path(), &config);
    wait_connected(&edgemq);
    assert_eq!(up_state.stream(1, Duration::from_secs(10)), [connected]);
    let mut local = Sub::start(&edgemq, &state);
    assert_eq!(local.stream(1, Duration::from_secs(10)), [connected]);
    upstream.stop();
    let told = local.stream(1, Duration::from_secs(5));
    assert_eq!(told, [gone], "the state changed within 5 s");
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
    two_devices_publish(&edgemq, ["a", "b"], N / 2);
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

#[test]
fn after_a_failover_the_bridge_goes_back_to_its_primary_address() {
    let (dir, primary_dir, backup_dir) = (temp_dir(), temp_dir(), temp_dir());
    let (primary_port, backup_port) = (free_port(), free_port());
    let backup = Upstream::start(backup_dir.path(), backup_port);
    let mut at_backup = Sub::start_on(backup.addr(), &["-q", "1", "-t", "site1/#"]);
    // Mosquitto's default (no round_robin): the first address is the primary one.
    let conf = format!(
        "connection cloud\naddress 127.0.0.1:{primary_port} 127.0.0.1:{backup_port}\n\
         topic sensors/# out 1 \"\" site1/\nrestart_timeout 1\n"
    );
    std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
    let edgemq = Edgemq::start(dir.path(), &["-c", "mosquitto.conf"]);
    wait_connected(&edgemq);
    mosquitto_pub(&edgemq, "sensors/x", b"to the backup", &["-q", "1"]);
    assert_eq!(
        at_backup.stream(1, Duration::from_secs(10)),
        ["site1/sensors/x to the backup"]
    );
    // The primary comes up: the bridge, checking it every 5 s, goes back to it.
    let primary = Upstream::start(primary_dir.path(), primary_port);
    let mut at_primary = Sub::start_on(primary.addr(), &["-q", "1", "-t", "site1/#"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let on_primary = format!("127.0.0.1:{primary_port}");
    wait_for(
        "the bridge on its primary address",
        Duration::from_secs(15),
        || {
            let bridges = runtime.block_on(get_json(&edgemq, "/api/v1/bridges"));
            let cloud = &bridges["items"][0];
            (cloud["address"] == on_primary.as_str() && cloud["connected"] == true)
                .then_some(())
                .ok_or(bridges.to_string())
        },
    );
    mosquitto_pub(&edgemq, "sensors/x", b"to the primary", &["-q", "1"]);
    assert_eq!(
        at_primary.stream(1, Duration::from_secs(10)),
        ["site1/sensors/x to the primary"]
    );
    at_backup.nothing_more();
    assert!(edgemq.stop().success());
}

#[test]
fn authorities_come_from_bridge_capath_and_bridge_insecure_skips_only_the_name_check() {
    let (dir, up_dir, port) = (temp_dir(), temp_dir(), free_port());
    common::certs::certificates(up_dir.path());
    let d = up_dir.path().display();
    // A directory of authorities: the upstream's CA and another.
    let capath = up_dir.path().join("cas");
    std::fs::create_dir(&capath).unwrap();
    for ca in ["ca.pem", "other-ca.pem"] {
        std::fs::copy(up_dir.path().join(ca), capath.join(ca)).unwrap();
    }
    // The upstream's certificate is signed by the CA but names another host.
    let tls = format!("certfile {d}/elsewhere.pem\nkeyfile {d}/elsewhere.key\n");
    let upstream = Upstream::start_with(up_dir.path(), port, &tls);
    let ca = format!("{d}/ca.pem");
    let sub_args = ["--cafile", &ca, "--insecure", "-q", "1", "-t", "site1/#"];
    let mut up_sub = Sub::start_on(upstream.addr(), &sub_args);
    let config = format!(
        "{}bridge_capath = \"{}\"\n",
        bridge_config(port),
        capath.display()
    );
    // Verified: refused, saying why.
    let edgemq = Edgemq::with_config(dir.path(), &config);
    wait_refused(&edgemq, "NotValidForName");
    assert!(edgemq.stop().success());
    // bridge_insecure: the chain is still checked (another CA only: refused), the name is not.
    let other = up_dir.path().join("other-cas");
    std::fs::create_dir(&other).unwrap();
    std::fs::copy(
        up_dir.path().join("other-ca.pem"),
        other.join("other-ca.pem"),
    )
    .unwrap();
    let untrusted = config.replace(&capath.display().to_string(), &other.display().to_string());
    let edgemq = Edgemq::with_config(dir.path(), &format!("{untrusted}bridge_insecure = true\n"));
    wait_refused(&edgemq, "UnknownIssuer");
    assert!(edgemq.stop().success());
    let config = format!("{config}bridge_insecure = true\n");
    let edgemq = Edgemq::with_config(dir.path(), &config);
    wait_connected(&edgemq);
    mosquitto_pub(&edgemq, "sensors/t", b"insecure", &["-q", "1"]);
    assert_eq!(
        up_sub.stream(1, Duration::from_secs(10)),
        ["site1/sensors/t insecure"]
    );
    assert!(edgemq.stop().success());
}

/// Waits until the bridge's last error says `why`.
fn wait_refused(edgemq: &Edgemq, why: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    wait_for(
        &format!("the bridge refused: {why}"),
        Duration::from_secs(10),
        || {
            let bridges = runtime.block_on(get_json(edgemq, "/api/v1/bridges"));
            let error = bridges["items"][0]["last_error"].as_str().unwrap_or("");
            error.contains(why).then_some(()).ok_or(bridges.to_string())
        },
    );
}
