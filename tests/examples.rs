//! The examples, run as a newcomer would run them, against a real edgemq.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;

/// An example's binary: cargo builds them next to the tests (target/<profile>/examples).
fn example(name: &str) -> Command {
    let test_exe = std::env::current_exe().unwrap();
    let profile_dir: PathBuf = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .to_path_buf();
    Command::new(profile_dir.join("examples").join(name))
}

fn run(mut command: Command) -> String {
    let out = command.output().expect("the example runs");
    assert!(
        out.status.success(),
        "{:?}: {}",
        command,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn simulators_status_client_and_mobile_app_work_against_edgemq() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let port = edgemq.mqtt.port().to_string();
    let mut sim = example("simulator");
    sim.args([
        "--port",
        &port,
        "--devices",
        "2",
        "--interval",
        "20ms",
        "--count",
        "30",
    ]);
    let out = run(sim);
    assert!(
        out.contains("Published: {\"deviceId\":\"device-001-2\""),
        "{out}"
    );
    let mut status = example("status_client");
    status.args(["--port", &port, "--interval", "20ms", "--count", "4"]);
    run(status);
    let mut home = example("simulator");
    home.args([
        "--port",
        &port,
        "--profile",
        "home",
        "--device-id",
        "home_01",
        "--interval",
        "20ms",
        "--count",
        "6",
    ]);
    run(home);

    // 1 in 30 telemetry messages is dropped on purpose, so about 60 of them arrive.
    let kinds = rows_eventually(
        &edgemq.db,
        "SELECT kind, count(*) > 0 FROM messages WHERE kind IS NOT NULL GROUP BY kind ORDER BY kind",
        5,
    );
    let names: Vec<&str> = kinds.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        ["fingerprint", "power", "status", "telemetry", "temperature"]
    );

    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let mut app = example("mobile_app");
    app.args([
        "--port",
        &port,
        "--device-id",
        "home_01",
        "--date",
        &today,
        "--kind",
        "temp",
    ]);
    let reply = run(app);
    assert!(
        reply.contains("\"count\": 2") && reply.contains("\"records\""),
        "{reply}"
    );
    let mut app5 = example("mobile_app");
    app5.args([
        "--port",
        &edgemq.mqtt.port().to_string(),
        "--v5",
        "--device-id",
        "home_01",
        "--date",
        &today,
        "--kind",
        "power",
    ]);
    let reply = run(app5);
    assert!(
        reply.contains("(correlation req-") && reply.contains("\"ebstatus\""),
        "{reply}"
    );
}
