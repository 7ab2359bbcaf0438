//! Start-up: a bad config or a busy address is a one-line error and exit status 2.

mod common;

use common::*;

#[test]
fn unknown_key_exits_2_naming_file_line_and_key() {
    let dir = temp_dir();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[store]\nbatch_max = 100\nbatch_size = 5\n",
    )
    .unwrap();
    let (status, stderr) = run_to_exit(dir.path(), &["--config", "bad.toml"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("bad.toml:3:") && stderr.contains("batch_size"),
        "{stderr}"
    );
}

#[test]
fn wrong_type_and_bad_address_exit_2() {
    let dir = temp_dir();
    let cases = [
        ("[http]\nlisten = \"localhost:80:80\"\n", "listen"),
        (
            "[router]\nmax_segment_count = \"many\"\n",
            "max_segment_count",
        ),
        ("[mqtt]\nmax_packet_size = -1\n", "max_packet_size"),
        ("[mqtt]\nconnect_timeout = \"soon\"\n", "connect_timeout"),
    ];
    for (text, key) in cases {
        std::fs::write(dir.path().join("rumqttd.toml"), text).unwrap();
        // ./rumqttd.toml is read when no --config is given.
        let (status, stderr) = run_to_exit(dir.path(), &[]);
        assert_eq!(status.code(), Some(2), "{text}: {stderr}");
        assert!(
            stderr.contains("rumqttd.toml:") && stderr.contains(key),
            "{text}: {stderr}"
        );
    }
}

#[test]
fn occupied_port_exits_2_naming_the_address() {
    let dir = temp_dir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for flag in ["--mqtt", "--mqtt-ws", "--http"] {
        let mut args = EPHEMERAL.to_vec();
        let at = args.iter().position(|a| *a == flag).unwrap();
        args[at + 1] = &addr;
        args.extend(["--db", "x.db"]);
        let (status, stderr) = run_to_exit(dir.path(), &args);
        assert_eq!(status.code(), Some(2), "{flag}: {stderr}");
        assert!(
            stderr.contains(&addr) && stderr.contains("already in use"),
            "{flag}: {stderr}"
        );
    }
}

#[test]
fn help_lists_every_flag() {
    let dir = temp_dir();
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--db",
        "--mqtt ",
        "--mqtt-ws",
        "--http",
        "--log-level",
        "--log-file",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}

#[test]
fn log_file_receives_the_logs() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &["--log-file", "logs/edgemq.log"]);
    assert!(edgemq.stop().success());
    let logs: Vec<_> = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let text = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(
        text.contains("edgemq ready:") && text.contains("shutting down"),
        "{text}"
    );
}

#[test]
fn sighup_reopens_the_log_file_and_never_stops_edgemq() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &["--log-file", "logs/edgemq.log"]);
    let logs = dir.path().join("logs");
    let files = || -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    };
    // What logrotate does: move the file away, then SIGHUP.
    let current = files().remove(0);
    let rotated = current.with_extension("rotated");
    std::fs::rename(&current, &rotated).unwrap();
    edgemq.signal(libc::SIGHUP);
    let reopened = wait_for(
        "a new log file saying it was reopened",
        std::time::Duration::from_secs(10),
        || match std::fs::read_to_string(&current) {
            Ok(text) if text.contains("SIGHUP: log file reopened") => Ok(text),
            Ok(text) => Err(format!("{current:?} holds {text:?}")),
            Err(e) => Err(format!("{current:?}: {e}; files: {:?}", files())),
        },
    );
    assert!(reopened.contains("SIGHUP"));
    assert!(rotated.exists(), "the moved file is left alone");
    // Still serving, and a second SIGHUP is fine too.
    edgemq.signal(libc::SIGHUP);
    mosquitto_pub(&edgemq, "after/hup", b"1", &["-q", "1"]);
    rows_eventually(&edgemq.db, FROM_CLIENTS, 1);
    wait_for(
        "the second SIGHUP to be logged",
        std::time::Duration::from_secs(10),
        || match edgemq.log_text() {
            log if log.matches("SIGHUP: log file reopened").count() == 2 => Ok(()),
            log => Err(log),
        },
    );
    assert!(edgemq.stop().success());
}
