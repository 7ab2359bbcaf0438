//! Access control with Mosquitto's `acl_file`, checked with mosquitto_pub/sub `-u -P`: on
//! publish, subscribe, every delivery (live and retained) and the will; and, with logins on and
//! no acl_file, request/response replies only their own client can read.

mod common;

use common::*;
use std::time::Duration;

const ACL: &str = "\
# Nothing for anonymous clients.
user alice
topic read public/#
topic readwrite home/#
topic deny home/secret

user bob
topic write public/#
topic write home/+/temp
pattern readwrite users/%u/#
";

fn start(dir: &std::path::Path) -> Edgemq {
    std::fs::write(dir.join("acl"), ACL).unwrap();
    let config = "[auth]\nacl_file = \"acl\"\n[auth.users]\nalice = \"a\"\nbob = \"b\"\n\
                  [http]\nmetrics_public = true\n";
    Edgemq::with_config(dir, config)
}

const BOB: [&str; 4] = ["-u", "bob", "-P", "b"];

/// mosquitto_pub as bob at QoS 1, MQTT 5, with `-d`: what it printed.
fn bob_publishes(edgemq: &Edgemq, topic: &str, payload: &str, extra: &[&str]) -> String {
    let out = mosquitto(edgemq, "mosquitto_pub")
        .args(BOB)
        .args(["-V", "mqttv5", "-q", "1", "-d", "-t", topic, "-m", payload])
        .args(extra)
        .output()
        .expect("mosquitto_pub");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_acl_file_governs_publish_subscribe_delivery_retained_and_will() {
    let dir = temp_dir();
    let edgemq = start(dir.path());
    // Retained: one alice may read, one only bob may.
    for topic in ["public/r", "users/bob/r"] {
        let out = bob_publishes(&edgemq, topic, "kept", &["-r"]);
        assert!(out.contains("RC:0"), "{topic} allowed: {out}");
    }
    let alice = ["-u", "alice", "-P", "a", "-V", "mqttv5", "-q", "1"];
    let mut everything = Sub::start(&edgemq, &[&alice[..], &["-t", "#"]].concat());

    // Publishing where bob may not: PUBACK 0x87 (135), not stored, not delivered.
    let out = bob_publishes(&edgemq, "home/secret", "forged", &[]);
    assert!(
        out.contains("RC:135"),
        "MQTT 5 is told Not authorized: {out}"
    );
    let v311 = mosquitto(&edgemq, "mosquitto_pub")
        .args(BOB)
        .args(["-q", "1", "-t", "home/secret", "-m", "forged"])
        .status()
        .unwrap();
    assert!(v311.success(), "3.1.1 is acknowledged as usual");
    // Allowed to bob but not readable by alice: stored, not delivered to her.
    bob_publishes(&edgemq, "users/bob/x", "private", &[]);
    bob_publishes(&edgemq, "home/k/temp", "21", &[]);
    assert_eq!(
        everything.stream(2, Duration::from_secs(10)),
        ["public/r kept", "home/k/temp 21"],
        "a `#` subscriber gets only what it may read, retained and live"
    );
    let stored = query(&edgemq.db, "SELECT topic FROM messages ORDER BY id");
    let stored: Vec<&str> = stored.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        stored,
        ["public/r", "users/bob/r", "users/bob/x", "home/k/temp"]
    );

    // Subscribing to what bob may never read: 0x80 on 3.1.1, 0x87 (135) on MQTT 5.
    let mut refused = Sub::start(&edgemq, &[&BOB[..], &["-t", "users/alice/#"]].concat());
    assert_eq!(refused.granted(), "128");
    let v5 = [&BOB[..], &["-V", "mqttv5", "-t", "home/+/temp"]].concat();
    assert_eq!(Sub::start(&edgemq, &v5).granted(), "135");

    // A will where its client may not publish is not sent.
    let will = ["--will-topic", "home/x", "--will-payload", "gone"];
    let mut with_will = Sub::start(&edgemq, &[&BOB[..], &will, &["-t", "users/bob/#"]].concat());
    with_will.kill();
    wait_for(
        "the will to be denied",
        Duration::from_secs(5),
        || match metric(&edgemq, "edgemq_denied_wills_total") {
            Ok(1) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    bob_publishes(&edgemq, "home/k/temp", "22", &[]);
    assert_eq!(
        everything.stream(1, Duration::from_secs(10)),
        ["home/k/temp 22"]
    );
    for (name, n) in [
        ("edgemq_denied_publishes_total", 2),
        ("edgemq_denied_subscriptions_total", 2),
        ("edgemq_denied_deliveries_total", 2),
    ] {
        assert_eq!(metric(&edgemq, name), Ok(n), "{name}");
    }
    let log = edgemq.log_text();
    assert!(
        log.contains("(user bob): publish to `home/secret` denied by the ACL"),
        "{log}"
    );
    assert!(edgemq.stop().success());
}

#[test]
fn a_bad_acl_file_stops_edgemq_naming_the_line() {
    let dir = temp_dir();
    std::fs::write(dir.path().join("acl"), "user alice\ntopic sometimes a/b\n").unwrap();
    std::fs::write(
        dir.path().join("edgemq.toml"),
        "[auth]\nacl_file = \"acl\"\n",
    )
    .unwrap();
    let args = [
        &["--config", "edgemq.toml", "--db", "x.db"][..],
        &EPHEMERAL[..],
    ]
    .concat();
    let (status, stderr) = run_to_exit(dir.path(), &args);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("auth.acl_file: acl:2: `sometimes`: not read, write, readwrite or deny"),
        "{stderr}"
    );
}

#[test]
fn with_logins_on_a_reply_is_read_only_by_its_own_client() {
    let dir = temp_dir();
    let config = "[auth.users]\nvictim = \"v\"\nspy = \"s\"\n";
    let edgemq = Edgemq::with_config(dir.path(), config);
    let spy = ["-u", "spy", "-P", "s", "-i", "spy"];
    // Asking for the victim's replies by name is refused; a wildcard gets everything else.
    let by_name = [&spy[..], &["-t", "home/datatemp/victim"]].concat();
    assert_eq!(Sub::start(&edgemq, &by_name).granted(), "128");
    let mut wide = Sub::start(&edgemq, &[&spy[..], &["-t", "home/+/+"]].concat());

    // The victim asks (seed 004's app: its client id is the topic's last level) and is answered.
    let out = mosquitto(&edgemq, "mosquitto_rr")
        .args(["-u", "victim", "-P", "v", "-i", "victim"])
        .args(["-t", "home/gettemp/victim", "-e", "home/datatemp/victim"])
        .args(["-m", r#"{"device_id":"t1","date":"2026-01-22"}"#, "-W", "5"])
        .output()
        .unwrap();
    assert!(out.status.success(), "the victim got its reply: {out:?}");
    let reply = String::from_utf8_lossy(&out.stdout);
    assert!(
        reply.contains("unknown device"),
        "an answer about device t1: {reply}"
    );

    // A forged reply from the spy is not delivered either.
    let forged = mosquitto(&edgemq, "mosquitto_pub")
        .args(["-u", "spy", "-P", "s", "-i", "spy-2"])
        .args(["-q", "1", "-t", "home/datatemp/victim", "-m", "forged"])
        .status()
        .unwrap();
    assert!(forged.success());
    mosquitto_pub(
        &edgemq,
        "home/marker/x",
        b"end",
        &["-u", "victim", "-P", "v", "-q", "1"],
    );
    // The spy saw the request and the marker, nothing of the reply or the forgery.
    let seen = wide.stream(2, Duration::from_secs(10));
    assert_eq!(seen[1], "home/marker/x end", "{seen:?}");
    assert!(seen[0].starts_with("home/gettemp/victim "), "{seen:?}");
    wide.nothing_more();
    assert!(edgemq.stop().success());
}
