//! Logins from a Mosquitto password file (made by mosquitto_passwd) or the config: the right
//! password gets in and is stored, a wrong one or none is refused with Mosquitto's words; the
//! anonymous switch; a bad file stops edgemq at start-up.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn a_mosquitto_password_file_admits_its_users_only() {
    let dir = temp_dir();
    let passwd = dir.path().join("passwd");
    let made = Command::new("mosquitto_passwd")
        .arg("-c")
        .arg("-b")
        .arg(&passwd)
        .args(["alice", "wonder land"])
        .status()
        .expect("mosquitto_passwd is installed by .ci/run");
    assert!(made.success());
    std::fs::write(
        dir.path().join("auth.toml"),
        "[auth]\npassword_file = \"passwd\"\n",
    )
    .unwrap();
    let edgemq = Edgemq::start(dir.path(), &["--config", "auth.toml"]);

    let publish = |extra: &[&str]| {
        let out = mosquitto(&edgemq, "mosquitto_pub")
            .args(["-t", "auth/test", "-m", &extra.join(" ")])
            .args(extra)
            .output()
            .unwrap();
        let refused =
            String::from_utf8_lossy(&out.stderr).contains("Connection Refused: not authorised.");
        assert!(out.status.success() || refused, "{out:?}");
        out.status.success()
    };
    assert!(
        publish(&["-u", "alice", "-P", "wonder land"]),
        "alice gets in"
    );
    assert!(
        !publish(&["-u", "alice", "-P", "wonderland"]),
        "a wrong password is refused"
    );
    assert!(
        !publish(&["-u", "mallory", "-P", "wonder land"]),
        "an unknown user is refused"
    );
    assert!(!publish(&[]), "no login is refused");
    let rows = rows_eventually(&edgemq.db, "SELECT payload, username FROM messages", 1);
    assert_eq!(rows, [["-u alice -P wonder land", "alice"]]);
    assert!(edgemq.stop().success());
}

#[test]
fn config_users_and_the_anonymous_switch() {
    let dir = temp_dir();
    std::fs::write(
        dir.path().join("auth.toml"),
        "[auth]\nusers = { sensor1 = \"s3cret\" }\nallow_anonymous = true\n\
         [http]\nmetrics_public = true\n",
    )
    .unwrap();
    let edgemq = Edgemq::start(dir.path(), &["--config", "auth.toml"]);
    let publish = |version: &str, extra: &[&str]| {
        mosquitto(&edgemq, "mosquitto_pub")
            .args(["-V", version, "-t", "auth/test", "-m", "x"])
            .args(extra)
            .output()
            .unwrap()
    };
    for v in ["mqttv31", "mqttv311", "mqttv5"] {
        assert!(publish(v, &["-u", "sensor1", "-P", "s3cret"])
            .status
            .success());
        assert!(publish(v, &[]).status.success(), "anonymous allowed");
    }
    // In mosquitto_sub's own words.
    let wrong = mosquitto(&edgemq, "mosquitto_sub")
        .args(["-t", "x", "-u", "sensor1", "-P", "guess", "-C", "1"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert_eq!(
        String::from_utf8_lossy(&wrong.stderr).trim(),
        "Connection error: Connection Refused: not authorised."
    );
    let wrong = publish("mqttv5", &["-u", "sensor1", "-P", "guess"]);
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("Bad User Name or Password"));
    rows_eventually(&edgemq.db, FROM_CLIENTS, 6);
    // Both refusals are counted.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    wait_for(
        "edgemq_connections_refused_total 2 in /metrics",
        Duration::from_secs(10),
        || {
            let metrics = runtime.block_on(get_text(&edgemq, "/metrics"));
            let line = metrics
                .lines()
                .find(|l| l.starts_with("edgemq_connections_refused_total "))
                .unwrap_or("no edgemq_connections_refused_total line");
            match line {
                "edgemq_connections_refused_total 2" => Ok(()),
                other => Err(other.to_string()),
            }
        },
    );
    assert!(edgemq.stop().success());
}

#[test]
fn a_bad_password_file_exits_2_naming_the_line() {
    let dir = temp_dir();
    std::fs::write(dir.path().join("passwd"), "alice:not-a-hash\n").unwrap();
    std::fs::write(
        dir.path().join("auth.toml"),
        "[auth]\npassword_file = \"passwd\"\n",
    )
    .unwrap();
    let (status, stderr) = run_to_exit(
        dir.path(),
        &[
            &["--config", "auth.toml", "--db", "x.db"][..],
            &EPHEMERAL[..],
        ]
        .concat(),
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("auth.password_file: passwd:1: not a mosquitto_passwd hash"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_takes_the_mqtt_logins_and_the_token() {
    let dir = temp_dir();
    let config = "[auth.users]\nann = \"pw\"\n[http]\ntoken = \"t0k\"\n";
    let edgemq = Edgemq::with_config(dir.path(), config);
    let client = reqwest::Client::new();
    let status = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.unwrap();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        (response.status().as_u16(), challenge)
    };
    for path in ["/api/v1/devices", "/", "/dashboard/app.js", "/metrics"] {
        let url = edgemq.url(path);
        let (code, challenge) = status(client.get(&url)).await;
        assert_eq!(code, 401, "{path} without a login");
        let challenge = challenge.unwrap_or_default();
        assert!(
            challenge.starts_with("Basic realm="),
            "a browser asks: {challenge}"
        );
        let wrong = status(client.get(&url).basic_auth("ann", Some("nope"))).await;
        assert_eq!(wrong.0, 401, "{path} with a wrong password");
        let right = status(client.get(&url).basic_auth("ann", Some("pw"))).await;
        assert_eq!(right.0, 200, "{path} with ann's login");
    }
    // The token still opens the API; the health checks stay open.
    let by_token = status(client.get(edgemq.url("/api/v1/devices")).bearer_auth("t0k")).await;
    assert_eq!(by_token.0, 200);
    assert_eq!(status(client.get(edgemq.url("/health"))).await.0, 200);
    assert!(edgemq.stop().success());

    // `metrics_public` opens /metrics for a scraper without a login.
    let dir = temp_dir();
    let config = "[auth.users]\nann = \"pw\"\n[http]\nmetrics_public = true\n";
    let edgemq = Edgemq::with_config(dir.path(), config);
    assert_eq!(status(client.get(edgemq.url("/metrics"))).await.0, 200);
    assert_eq!(
        status(client.get(edgemq.url("/api/v1/devices"))).await.0,
        401
    );
    assert!(edgemq.stop().success());
}
