//! SIGHUP reloads the password file, the ACL file and the TLS certificates without dropping a
//! connection (as Mosquitto does); a file that fails to load keeps the old settings.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn passwd(dir: &Path, args: &[&str]) {
    let status = Command::new("mosquitto_passwd")
        .current_dir(dir)
        .args(args)
        .status()
        .expect("mosquitto_passwd is installed by .ci/run");
    assert!(status.success(), "mosquitto_passwd {args:?}");
}

/// Sends SIGHUP and waits for the `n`th reload to be logged.
fn hang_up(edgemq: &Edgemq, n: usize) {
    edgemq.signal(libc::SIGHUP);
    wait_for("the reload", Duration::from_secs(10), || {
        let log = edgemq.log_text();
        match log.matches("SIGHUP: reloaded").count() >= n {
            true => Ok(()),
            false => Err(log),
        }
    });
}

fn publish_as(edgemq: &Edgemq, user: &str, topic: &str, payload: &str) -> bool {
    let out = mosquitto(edgemq, "mosquitto_pub")
        .args([
            "-u", user, "-P", "pw", "-q", "1", "-t", topic, "-m", payload,
        ])
        .output()
        .unwrap();
    out.status.success()
}

#[test]
fn sighup_reloads_logins_and_acl_while_clients_stay_connected() {
    let dir = temp_dir();
    passwd(dir.path(), &["-c", "-b", "passwd", "alice", "pw"]);
    std::fs::write(
        dir.path().join("acl"),
        "user alice\ntopic readwrite r/#\ntopic readwrite other/#\n",
    )
    .unwrap();
    let config = "[auth]\npassword_file = \"passwd\"\nacl_file = \"acl\"\n";
    let edgemq = Edgemq::with_config(dir.path(), config);
    let mut alice = Sub::start(&edgemq, &["-u", "alice", "-P", "pw", "-q", "1", "-t", "#"]);
    assert!(
        !publish_as(&edgemq, "bob", "r/x", "too early"),
        "bob is not a user yet"
    );

    // A new user and their access, then SIGHUP: bob gets in; alice never left.
    passwd(dir.path(), &["-b", "passwd", "bob", "pw"]);
    let acl =
        "user alice\ntopic readwrite r/#\ntopic readwrite other/#\nuser bob\ntopic readwrite r/#\n";
    std::fs::write(dir.path().join("acl"), acl).unwrap();
    hang_up(&edgemq, 1);
    assert!(publish_as(&edgemq, "bob", "r/x", "from bob"));
    assert_eq!(alice.stream(1, Duration::from_secs(10)), ["r/x from bob"]);

    // A bad ACL file: the old rules stay, and the log says why.
    std::fs::write(dir.path().join("acl"), "user bob\ntopic sometimes r/#\n").unwrap();
    hang_up(&edgemq, 2);
    assert!(edgemq
        .log_text()
        .contains("acl_file not reloaded, the old one stays"));
    assert!(publish_as(&edgemq, "bob", "r/y", "still allowed"));
    assert_eq!(
        alice.stream(1, Duration::from_secs(10)),
        ["r/y still allowed"]
    );

    // Alice loses r/#: what is published there no longer reaches her existing subscription.
    let acl = "user alice\ntopic readwrite other/#\nuser bob\ntopic readwrite r/#\n";
    std::fs::write(dir.path().join("acl"), acl).unwrap();
    hang_up(&edgemq, 3);
    assert!(publish_as(&edgemq, "bob", "r/z", "not for alice"));
    assert!(publish_as(&edgemq, "alice", "other/m", "marker"));
    assert_eq!(alice.stream(1, Duration::from_secs(10)), ["other/m marker"]);

    // A user removed from the password file is disconnected.
    let mut bob = Sub::start(
        &edgemq,
        &["-u", "bob", "-P", "pw", "-i", "bob-sub", "-t", "r/#"],
    );
    passwd(dir.path(), &["-D", "passwd", "bob"]);
    hang_up(&edgemq, 4);
    assert!(edgemq
        .log_text()
        .contains("SIGHUP: client bob-sub's user is gone: disconnected"));
    assert!(!publish_as(&edgemq, "bob", "r/x", "gone"));
    bob.kill();
    alice.nothing_more();
    assert!(edgemq.stop().success());
}
