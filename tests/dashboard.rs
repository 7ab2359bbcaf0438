//! The dashboard in a real browser (Debian's chromium, driven through chromedriver): it loads
//! with no console errors, a device that publishes appears with its value without a reload, its
//! chart draws points, a threshold breach shows an alert, clearing it works, and it fits a phone.

mod common;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// chromedriver on a free port; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed by .ci/run");
        wait_for(
            "chromedriver to accept connections",
            Duration::from_secs(20),
            || {
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
        );
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver's browser console log (`goog:loggingPrefs` must ask for it).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    browser_with(driver, profile, &[]).await
}

/// A browser with more command-line arguments.
async fn browser_with(driver: &Driver, profile: &std::path::Path, extra: &[String]) -> Client {
    let mut args = vec![
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1200,1400",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.extend_from_slice(extra);
    let capabilities = json!({
        "browserName": "chrome",
        "goog:loggingPrefs": { "browser": "ALL" },
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": args,
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a chromium session")
}

/// Waits until the page's JavaScript `expression` is true.
async fn until(client: &Client, what: &str, expression: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let value = client
            .execute(&format!("return !!({expression});"), vec![])
            .await
            .unwrap();
        if value == Value::Bool(true) {
            return;
        }
        if Instant::now() > deadline {
            let body = client
                .execute("return document.body.innerText;", vec![])
                .await
                .unwrap();
            panic!(
                "the page never showed {what}; it shows:\n{}",
                body.as_str().unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn row_text(selector: &str) -> String {
    format!("(document.querySelector({selector:?}) || {{innerText: ''}}).innerText")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_devices_charts_and_alerts_live() {
    let (dir, up_dir, up_port) = (temp_dir(), temp_dir(), free_port());
    // A bridge to an upstream that is not there yet.
    let bridge = format!(
        "[[bridge]]\nname = \"cloud\"\naddresses = [\"127.0.0.1:{up_port}\"]\n\
         restart_timeout = \"200ms\"\ntopics = [{{ pattern = \"#\" }}]\n"
    );
    let edgemq = Edgemq::with_config(dir.path(), &bridge);
    // A device with history, so the chart has points from the start.
    let now = chrono::Utc::now().timestamp_millis();
    for k in 0..5 {
        let payload = format!(
            r#"{{"deviceId":"lab-1","ts":{},"temperature":{},"humidity":40}}"#,
            now - 60_000 * (5 - k),
            21 + k
        );
        mosquitto_pub(&edgemq, "devices/lab-1/telemetry", payload.as_bytes(), &[]);
    }
    rows_eventually(&edgemq.db, FROM_CLIENTS, 5);

    let driver = Driver::start();
    let profile = temp_dir();
    let client = browser(&driver, profile.path()).await;
    client.goto(&edgemq.url("/")).await.unwrap();
    until(
        &client,
        "the live connection",
        "document.getElementById('h-live').innerText === 'live'",
    )
    .await;
    until(
        &client,
        "lab-1",
        &format!("{}.includes('lab-1')", row_text("tr[data-device='lab-1']")),
    )
    .await;

    // A new device publishes: it appears with its value, without a reload.
    mosquitto_pub(
        &edgemq,
        "devices/live-7/telemetry",
        br#"{"deviceId":"live-7","temperature":24.5,"humidity":41}"#,
        &[],
    );
    until(
        &client,
        "live-7 with 24.50",
        &format!(
            "{}.includes('temperature 24.50')",
            row_text("tr[data-device='live-7']")
        ),
    )
    .await;
    until(
        &client,
        "live-7 written ONLINE",
        &format!(
            "{}.includes('ONLINE')",
            row_text("tr[data-device='live-7']")
        ),
    )
    .await;

    // Its view draws a chart with points.
    client
        .find(Locator::Css("tr[data-device='lab-1']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &client,
        "the device view",
        "!document.getElementById('device-view').hidden",
    )
    .await;
    until(
        &client,
        "chart points",
        "Number(document.getElementById('chart').dataset.points) > 0",
    )
    .await;

    // A threshold breach shows an alert; clearing it works.
    mosquitto_pub(
        &edgemq,
        "devices/live-7/telemetry",
        br#"{"deviceId":"live-7","temperature":36.0,"humidity":41}"#,
        &[],
    );
    let alert_row = "[...document.querySelectorAll('#alerts tbody tr')].find(r => r.innerText.includes('HIGH_TEMP'))";
    until(
        &client,
        "the HIGH_TEMP alert, open",
        &format!("({alert_row} || {{innerText: ''}}).innerText.includes('OPEN')"),
    )
    .await;
    client
        .find(Locator::Css("#alerts tbody tr button.clear"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(
        &client,
        "the alert cleared",
        &format!("({alert_row} || {{innerText: ''}}).innerText.includes('CLEARED')"),
    )
    .await;
    let cleared = query(
        &edgemq.db,
        "SELECT cleared_at IS NOT NULL FROM alerts WHERE type = 'HIGH_TEMP'",
    );
    assert_eq!(cleared, [["1"]]);
    // The rules panel counts the HIGH_TEMP rule's raise and its clear.
    until(
        &client,
        "the HIGH_TEMP rule raised once and cleared once",
        "[...document.querySelectorAll('#rules tbody tr')].some(r => r.cells[1].innerText === 'HIGH_TEMP' \
         && r.cells[4].innerText === '1' && r.cells[5].innerText === '1')",
    )
    .await;

    // The sessions panel lists MQTT clients, with their subscriptions.
    let _watcher = Sub::start(
        &edgemq,
        &["-i", "panel-watcher", "-q", "1", "-t", "panel/#"],
    );
    until(
        &client,
        "the watcher's session",
        &format!(
            "{}.includes('panel/# (QoS 1)')",
            row_text("tr[data-client='panel-watcher']")
        ),
    )
    .await;

    // The bridges panel shows the bridge down and why, then connected once its upstream is.
    let bridge_row = row_text("tr[data-bridge='cloud']");
    until(
        &client,
        "the bridge down",
        &format!("{bridge_row}.includes('down: cannot connect')"),
    )
    .await;
    let _upstream = common::upstream::Upstream::start(up_dir.path(), up_port);
    until(
        &client,
        "the bridge connected",
        &format!("{bridge_row}.includes('connected')"),
    )
    .await;

    // The header shows the broker's health.
    until(
        &client,
        "stored count",
        "Number(document.getElementById('h-stored').innerText) >= 7",
    )
    .await;

    let screenshot = client.screenshot().await.unwrap();
    assert!(screenshot.starts_with(b"\x89PNG"), "a PNG screenshot");
    if let Ok(path) = std::env::var("EDGEMQ_SCREENSHOT") {
        std::fs::write(path, &screenshot).unwrap();
    }

    // At phone width nothing overflows the page sideways.
    client.set_window_size(390, 844).await.unwrap();
    until(
        &client,
        "no sideways overflow",
        "document.documentElement.scrollWidth <= window.innerWidth + 1",
    )
    .await;

    let log = client.issue_cmd(BrowserLog).await.unwrap();
    let errors: Vec<&Value> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    // The log does catch errors: a probe shows up in it.
    client
        .execute("console.error('edgemq-probe');", vec![])
        .await
        .unwrap();
    let log = client.issue_cmd(BrowserLog).await.unwrap();
    assert!(
        log.to_string().contains("edgemq-probe"),
        "the browser log is read: {log}"
    );
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_over_https() {
    use base64::Engine;
    use sha2::Digest;
    let dir = temp_dir();
    let server_key = common::certs::certificates(dir.path());
    let config = "[http]\ncertfile = \"server.pem\"\nkeyfile = \"server.key\"\n";
    let edgemq = Edgemq::with_config(dir.path(), config);
    mosquitto_pub(
        &edgemq,
        "devices/tls-1/telemetry",
        br#"{"deviceId":"tls-1","temperature":20.5,"humidity":40}"#,
        &["-q", "1"],
    );
    rows_eventually(&edgemq.db, FROM_CLIENTS, 1);
    // Chromium trusts exactly this server's key (the test's CA is not in its store).
    let pin = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&server_key));
    let driver = Driver::start();
    let profile = temp_dir();
    let pinned = [format!("--ignore-certificate-errors-spki-list={pin}")];
    let client = browser_with(&driver, profile.path(), &pinned).await;
    let url = format!("https://127.0.0.1:{}/", edgemq.http.port());
    client.goto(&url).await.unwrap();
    until(
        &client,
        "the live connection over https",
        "location.protocol === 'https:' && document.getElementById('h-live').innerText === 'live'",
    )
    .await;
    until(
        &client,
        "tls-1",
        &format!("{}.includes('tls-1')", row_text("tr[data-device='tls-1']")),
    )
    .await;
    client.close().await.unwrap();
    assert!(edgemq.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_logins_the_dashboard_works_with_one() {
    let dir = temp_dir();
    let edgemq = Edgemq::with_config(dir.path(), "[auth.users]\nann = \"pw\"\n");
    let driver = Driver::start();
    let profile = temp_dir();
    let client = browser(&driver, profile.path()).await;
    // Without a login the page answers 401 with a Basic challenge, so a browser asks for one
    // (tests/auth.rs checks the answer). With ann's login the dashboard and its live stream
    // work: the browser sends the login it was given with every request to the page's origin.
    let with_login = edgemq.url("/").replace("http://", "http://ann:pw@");
    client.goto(&with_login).await.unwrap();
    until(
        &client,
        "the live connection with the login",
        "document.getElementById('h-live') && document.getElementById('h-live').innerText === 'live'",
    )
    .await;
    client.close().await.unwrap();
    assert!(edgemq.stop().success());
}
