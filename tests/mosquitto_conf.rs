//! A Mosquitto user's own configuration: Debian's `/etc/mosquitto/mosquitto.conf` with a
//! `conf.d` file adding listeners, a password file and an ACL file. Mosquitto itself is started
//! on the files first (they are files Mosquitto accepts), then edgemq runs on them with `-c`.

mod common;

use common::*;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Debian's mosquitto.conf with its directories moved into `dir`, and `conf.d/edge.conf`.
fn write_config(dir: &Path, mqtt: u16, ws: u16) -> std::path::PathBuf {
    let debian = std::fs::read_to_string("/etc/mosquitto/mosquitto.conf")
        .expect("Debian's mosquitto package, installed by .ci/run");
    let d = dir.display();
    let main = debian
        .replace("/run/mosquitto", &format!("{d}/run"))
        .replace("/var/lib/mosquitto", &format!("{d}/lib"))
        .replace("/var/log/mosquitto", &format!("{d}/log"))
        .replace("/etc/mosquitto/conf.d", &format!("{d}/conf.d"));
    for sub in ["run", "lib", "log", "conf.d"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let edge = format!(
        "# edge box\n\
         listener {mqtt} 127.0.0.1\n\
         listener {ws} 127.0.0.1\n\
         protocol websockets\n\
         allow_anonymous false\n\
         password_file {d}/passwd\n\
         acl_file {d}/acl\n\
         max_queued_messages 5000\n\
         persistent_client_expiration 1d\n"
    );
    std::fs::write(dir.join("conf.d/edge.conf"), edge).unwrap();
    std::fs::write(
        dir.join("acl"),
        "user sensor\ntopic write plant/#\nuser app\ntopic read plant/#\n",
    )
    .unwrap();
    for (i, user) in ["sensor", "app"].into_iter().enumerate() {
        let mut args = vec!["-b", "passwd", user, "pw"];
        if i == 0 {
            args.insert(0, "-c");
        }
        let made = Command::new("mosquitto_passwd")
            .current_dir(dir)
            .args(&args)
            .status()
            .unwrap();
        assert!(made.success());
    }
    let path = dir.join("mosquitto.conf");
    std::fs::write(&path, main).unwrap();
    give_to_mosquitto(dir);
    path
}

#[test]
fn debians_mosquitto_conf_with_a_conf_d_file_runs_under_edgemq() {
    let dir = temp_dir();
    let (mqtt, ws) = (free_port(), free_port());
    let conf = write_config(dir.path(), mqtt, ws);
    let conf_arg = conf.to_str().unwrap();

    // Mosquitto accepts the files and listens where they say.
    let mut broker = Command::new("mosquitto")
        .args(["-c", conf_arg])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto");
    wait_listening("Mosquitto to listen", mqtt);
    let _ = broker.kill();
    let _ = broker.wait();
    wait_for(
        "Mosquitto's port to be free",
        Duration::from_secs(10),
        || {
            TcpListener::bind(("127.0.0.1", mqtt))
                .map(drop)
                .map_err(|e| e.to_string())
        },
    );

    // edgemq on the same files: the same port, users, ACL; its database where Mosquitto's
    // persistence goes, its log where Mosquitto's goes.
    let db = dir.path().join("lib/edgemq.db");
    let edgemq = Edgemq::start_as_configured(dir.path(), db, &["-c", conf_arg]);
    assert_eq!(edgemq.mqtt.port(), mqtt);
    assert_eq!(edgemq.mqtt_ws.port(), ws);
    let sensor = ["-u", "sensor", "-P", "pw", "-q", "1"];
    let mut app = Sub::start(
        &edgemq,
        &["-u", "app", "-P", "pw", "-q", "1", "-t", "plant/#"],
    );
    mosquitto_pub(&edgemq, "plant/t1", b"21.5", &sensor);
    assert_eq!(app.stream(1, Duration::from_secs(10)), ["plant/t1 21.5"]);
    let anonymous = mosquitto(&edgemq, "mosquitto_pub")
        .args(["-t", "plant/t1", "-m", "x"])
        .output()
        .unwrap();
    assert!(!anonymous.status.success(), "allow_anonymous false");
    let rows = rows_eventually(&edgemq.db, "SELECT topic, username FROM messages", 1);
    assert_eq!(rows, [["plant/t1", "sensor"]]);
    let logged = std::fs::read_dir(dir.path().join("log")).unwrap().count();
    assert!(logged > 0, "a log file where log_dest file says");
    assert!(edgemq.stop().success());
}

#[test]
fn an_option_edgemq_does_not_implement_stops_it_naming_the_line() {
    let dir = temp_dir();
    std::fs::write(
        dir.path().join("m.conf"),
        "listener 1883\nmount_point site1/\n",
    )
    .unwrap();
    let (status, stderr) = run_to_exit(dir.path(), &["-c", "m.conf", "--db", "x.db"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("m.conf:2: mount_point: not supported"),
        "{stderr}"
    );
}
