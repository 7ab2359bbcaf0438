//! The HTTP API: every seed endpoint and `/api/v1`, with exact shapes, empty results, bad
//! parameters and SQL-looking strings. Bad input is a 4xx with `{"detail": ...}`, never a 500.

mod common;

use common::*;
use serde_json::{json, Value};

async fn get(edgemq: &Edgemq, path: &str) -> (u16, Value) {
    let response = reqwest::get(edgemq.url(path)).await.expect("HTTP request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

/// Asserts a 400 whose detail mentions `needle`.
async fn bad(edgemq: &Edgemq, path: &str, needle: &str) {
    let (status, body) = get(edgemq, path).await;
    assert_eq!(status, 400, "{path}: {body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(needle),
        "{path}: `{detail}` should mention `{needle}`"
    );
}

fn publish_all(edgemq: &Edgemq, messages: &[(&str, String)]) {
    for (topic, payload) in messages {
        mosquitto_pub(edgemq, topic, payload.as_bytes(), &[]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_000_status_count() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let range = "/status-count?start_time=2024-12-10T10:21:45Z&end_time=2024-12-10T11:21:45Z";
    let zeros = json!({"0": 0, "1": 0, "2": 0, "3": 0, "4": 0, "5": 0, "6": 0});
    assert_eq!(get(&edgemq, range).await, (200, zeros));

    let at = |status: u8, time: &str| {
        (
            "status",
            format!(r#"{{"status": {status}, "timestamp": "{time}"}}"#),
        )
    };
    publish_all(
        &edgemq,
        &[
            at(3, "2024-12-10T10:30:00Z"),
            at(3, "2024-12-10T10:31:00Z"),
            at(0, "2024-12-10T11:00:00+00:00"),
            at(6, "2024-12-10T11:21:45Z"),
            at(5, "2024-12-10T12:00:00Z"), // outside the range
        ],
    );
    rows_eventually(&edgemq.db, FROM_CLIENTS, 5);
    let expected = json!({"0": 1, "1": 0, "2": 0, "3": 2, "4": 0, "5": 0, "6": 1});
    assert_eq!(get(&edgemq, range).await, (200, expected));

    let exact = "Invalid datetime format. Use ISO format (e.g., 2024-01-01T00:00:00Z)";
    let (status, body) = get(
        &edgemq,
        "/status-count?start_time=yesterday&end_time=2024-12-10T11:21:45Z",
    )
    .await;
    assert_eq!((status, body), (400, json!({ "detail": exact })));
    bad(
        &edgemq,
        "/status-count?start_time=2024-12-10T12:00:00Z&end_time=2024-12-10T11:00:00Z",
        "start_time must not be after end_time",
    )
    .await;
    bad(
        &edgemq,
        "/status-count?end_time=2024-12-10T11:00:00Z",
        "`start_time` is required",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_001_and_002_endpoints() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let (status, monitor) = get(&edgemq, "/health/mqtt-monitor").await;
    assert_eq!(status, 200);
    assert_eq!(
        monitor,
        json!({"status": "healthy", "broker_connected": true, "last_message_time": null, "messages_processed": 0, "errors_count": 0})
    );
    assert_eq!(get(&edgemq, "/sensors/latest").await, (200, json!([])));
    assert_eq!(get(&edgemq, "/stats").await, (200, json!([])));
    assert_eq!(get(&edgemq, "/alerts").await, (200, json!([])));

    let reading = |t: f64| {
        (
            "sensors/device1",
            format!(
                r#"{{"device_id":"device_01","temperature":{t},"humidity":65.2,"voltage":229.1,"current":3.4,"pressure":1008.5}}"#
            ),
        )
    };
    publish_all(&edgemq, &[reading(28.4), reading(58.4), reading(20.0)]);
    mosquitto_pub(&edgemq, "sensors/device1", b"{broken", &[]);
    rows_eventually(&edgemq.db, FROM_CLIENTS, 3);
    rows_eventually(&edgemq.db, "SELECT id FROM dead_letters", 1);

    let (_, latest) = get(&edgemq, "/sensors/latest").await;
    assert_eq!(latest.as_array().unwrap().len(), 1);
    assert_eq!(latest[0]["device_id"], "device_01");
    assert_eq!(latest[0]["temperature"].as_f64(), Some(20.0));
    assert_eq!(latest[0]["pressure"], 1008.5);
    let (_, history) = get(&edgemq, "/sensors/history?device_id=device_01&limit=2").await;
    let temps: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["temperature"].as_f64())
        .collect();
    assert_eq!(temps, [Some(20.0), Some(58.4)], "newest first, limited");
    let (_, alerts) = get(&edgemq, "/alerts").await;
    assert_eq!(alerts[0]["type"], "TEMPERATURE_OUT_OF_RANGE");
    assert_eq!(alerts[0]["value"], 58.4);
    assert!(
        alerts[0]["cleared_at"].is_string(),
        "cleared by the 20.0 reading: {alerts}"
    );
    let (_, stats) = get(&edgemq, "/stats").await;
    let temperature = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["metric"] == "temperature")
        .unwrap();
    assert_eq!(
        temperature,
        &json!({"device_id": "device_01", "metric": "temperature", "count": 3, "min": 20.0, "max": 58.4, "avg": 35.6})
    );

    let (_, monitor) = get(&edgemq, "/health/mqtt-monitor").await;
    assert_eq!(
        (
            monitor["messages_processed"].as_u64(),
            monitor["errors_count"].as_u64()
        ),
        (Some(4), Some(1))
    );
    assert!(monitor["last_message_time"]
        .as_str()
        .unwrap()
        .ends_with('Z'));

    bad(&edgemq, "/sensors/history", "`device_id` is required").await;
    bad(
        &edgemq,
        "/sensors/history?device_id=device_01&limit=0",
        "`limit` must be a whole number from 1 to 1000",
    )
    .await;
    bad(
        &edgemq,
        "/sensors/history?device_id=device_01&limit=ten",
        "got `ten`",
    )
    .await;
    let sneaky = "/sensors/history?device_id=x'%20OR%20'1'='1";
    assert_eq!(get(&edgemq, sneaky).await, (200, json!([])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_003_endpoints_with_and_without_trailing_slash() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let now = chrono::Utc::now().timestamp_millis();
    let reading = |id: &str, t: f64, ts: i64| {
        (
            "devices/+/telemetry".replace('+', id),
            format!(r#"{{"deviceId":"{id}","ts":{ts},"temperature":{t},"humidity":50.0}}"#),
        )
    };
    let messages = [
        reading("device-001", 26.0, now - 2000),
        reading("device-001", 32.0, now - 1000),
        reading("device-002", 22.0, now),
    ];
    for (topic, payload) in &messages {
        mosquitto_pub(&edgemq, topic, payload.as_bytes(), &[]);
    }
    rows_eventually(&edgemq.db, FROM_CLIENTS, 3);

    for path in ["/api/health/", "/api/health"] {
        let (status, health) = get(&edgemq, path).await;
        assert_eq!(status, 200);
        assert_eq!(
            (
                health["status"].as_str(),
                health["database"].as_str(),
                health["mqtt"].as_str()
            ),
            (Some("healthy"), Some("connected"), Some("connected"))
        );
    }
    for path in ["/api/devices/", "/api/devices"] {
        let (_, devices) = get(&edgemq, path).await;
        assert_eq!(devices.as_array().unwrap().len(), 2);
        assert_eq!(devices[0]["device_id"], "device-001");
        assert_eq!(devices[0]["status"], "ONLINE");
        assert!(devices[0]["last_seen"].as_str().unwrap().ends_with('Z'));
    }
    let (_, telemetry) = get(&edgemq, "/api/telemetry/?deviceId=device-001&limit=100").await;
    assert_eq!(telemetry.as_array().unwrap().len(), 2);
    let first = &telemetry[0];
    assert!(first["id"].is_i64() && first["ts"].is_string());
    assert_eq!(
        (
            first["device_id"].as_str(),
            first["temperature"].as_f64(),
            first["humidity"].as_f64()
        ),
        (Some("device-001"), Some(32.0), Some(50.0))
    );
    let (_, avg) = get(&edgemq, "/api/stats/avg?deviceId=device-001&window=5m").await;
    assert_eq!(
        avg,
        json!({"device_id": "device-001", "window": "5m", "avg_temperature": 29.0, "avg_humidity": 50.0, "data_points": 2})
    );
    let (_, none) = get(&edgemq, "/api/stats/avg/?deviceId=nobody&window=1h").await;
    assert_eq!(none["data_points"], 0);
    assert_eq!(none["avg_temperature"], Value::Null);

    let (_, alerts) = get(
        &edgemq,
        "/api/alerts/?limit=50&deviceId=device-001&alert_type=HIGH_TEMP",
    )
    .await;
    assert_eq!(alerts.as_array().unwrap().len(), 1);
    assert_eq!(alerts[0]["alert_type"], "HIGH_TEMP");
    assert_eq!(
        alerts[0]["payload"],
        json!({"temperature": 32.0, "threshold": 30.0})
    );
    assert!(alerts[0]["id"].is_i64() && alerts[0]["ts"].is_string());
    assert_eq!(
        get(&edgemq, "/api/alerts/?alert_type=OFFLINE").await,
        (200, json!([]))
    );

    bad(&edgemq, "/api/telemetry/", "`deviceId` is required").await;
    bad(
        &edgemq,
        "/api/stats/avg/?deviceId=device-001",
        "`window` is required",
    )
    .await;
    bad(
        &edgemq,
        "/api/stats/avg/?deviceId=device-001&window=forever",
        "must be a duration",
    )
    .await;
    bad(&edgemq, "/api/alerts/?limit=-1", "`limit`").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_api_pages_series_messages_alerts_and_clearing() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let now = chrono::Utc::now().timestamp_millis();
    for (i, device) in ["a1", "a2", "a3"].iter().enumerate() {
        for k in 0..4i64 {
            let t = 20.0 + (i as f64) + k as f64;
            let ts = now - 60_000 * (3 - k);
            let payload =
                format!(r#"{{"deviceId":"{device}","ts":{ts},"temperature":{t},"humidity":40}}"#);
            mosquitto_pub(
                &edgemq,
                &format!("devices/{device}/telemetry"),
                payload.as_bytes(),
                &[],
            );
        }
    }
    mosquitto_pub(&edgemq, "plain/topic", b"hello", &[]);
    mosquitto_pub(
        &edgemq,
        "devices/a3/telemetry",
        br#"{"deviceId":"a3","temperature":"oops","humidity":40}"#,
        &[],
    );
    rows_eventually(&edgemq.db, FROM_CLIENTS, 13);

    // Devices, two per page.
    let (_, page1) = get(&edgemq, "/api/v1/devices?limit=2").await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap().to_string();
    let (_, page2) = get(&edgemq, &format!("/api/v1/devices?limit=2&cursor={cursor}")).await;
    assert_eq!(page2["items"][0]["device_id"], "a3");
    assert_eq!(page2["next_cursor"], Value::Null);
    let (_, a1) = get(&edgemq, "/api/v1/devices/a1").await;
    assert_eq!(a1["latest"]["temperature"], 23.0);
    assert_eq!(a1["metrics"], json!(["humidity", "temperature"]));
    assert_eq!(get(&edgemq, "/api/v1/devices/nope").await.0, 404);

    // A series over the last 5 minutes: 30 s buckets read the messages, exactly [from, to).
    let from = now - 5 * 60_000;
    let (_, series) = get(
        &edgemq,
        &format!("/api/v1/devices/a1/series?metric=temperature&from={from}&to={now}&bucket=30s"),
    )
    .await;
    let points = series["points"].as_array().unwrap();
    let counts: u64 = points.iter().map(|p| p["count"].as_u64().unwrap()).sum();
    assert_eq!(
        counts, 3,
        "the reading at `now` is outside [from, to): {series}"
    );
    assert!(points
        .iter()
        .all(|p| p["min"].as_f64() <= p["avg"].as_f64() && p["avg"].as_f64() <= p["max"].as_f64()));
    // Whole-minute buckets come from the per-minute rollups: minutes starting in [from, to).
    let (from_min, to_min) = ((now - 5 * 60_000) / 60_000 * 60_000, now / 60_000 * 60_000);
    let (_, rolled) = get(
        &edgemq,
        &format!(
            "/api/v1/devices/a1/series?metric=temperature&from={from_min}&to={to_min}&bucket=1m"
        ),
    )
    .await;
    let points = rolled["points"].as_array().unwrap();
    let temps: Vec<f64> = points.iter().map(|p| p["avg"].as_f64().unwrap()).collect();
    assert_eq!(temps, [20.0, 21.0, 22.0], "{rolled}");
    let (_, empty) = get(&edgemq, "/api/v1/devices/a1/series?metric=nothing_here").await;
    assert_eq!(empty["points"], json!([]));

    // Messages: a wildcard, an exact topic, a device, and paging.
    let (_, wild) = get(
        &edgemq,
        "/api/v1/messages?topic=devices/%2B/telemetry&limit=5",
    )
    .await;
    assert_eq!(wild["items"].as_array().unwrap().len(), 5);
    let next = wild["next_cursor"].as_str().unwrap();
    let (_, rest) = get(
        &edgemq,
        &format!("/api/v1/messages?topic=devices/%2B/telemetry&limit=100&cursor={next}"),
    )
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 7);
    let (_, exact) = get(&edgemq, "/api/v1/messages?topic=plain/topic").await;
    assert_eq!(exact["items"][0]["payload"], "hello");
    // Who sent it, and how (mosquitto_pub: QoS 0, not retained).
    let sender = &exact["items"][0];
    assert!(
        sender["client_id"].as_str().is_some_and(|c| !c.is_empty()),
        "{sender}"
    );
    assert_eq!(
        (&sender["qos"], &sender["retain"]),
        (&json!(0), &json!(false))
    );
    let (_, by_device) = get(&edgemq, "/api/v1/messages?device_id=a2&topic=devices/%23").await;
    assert_eq!(by_device["items"].as_array().unwrap().len(), 4);
    // An exact topic whose messages carry a device id (found through that device).
    let (_, routed) = get(&edgemq, "/api/v1/messages?topic=devices/a2/telemetry").await;
    let routed = routed["items"].as_array().unwrap();
    assert_eq!(routed.len(), 4);
    assert!(routed.iter().all(|m| m["topic"] == "devices/a2/telemetry"));

    // Every reading so far is below 30 °C; one above raises HIGH_TEMP. (Filters name the type:
    // on a slow machine the devices may also have gone OFFLINE by now.)
    mosquitto_pub(
        &edgemq,
        "devices/a1/telemetry",
        br#"{"deviceId":"a1","temperature":35,"humidity":40}"#,
        &[],
    );
    let open = rows_eventually(
        &edgemq.db,
        "SELECT id FROM alerts WHERE cleared_at IS NULL AND type = 'HIGH_TEMP'",
        1,
    );
    let id = &open[0][0];
    let (_, listed) = get(
        &edgemq,
        "/api/v1/alerts?state=open&device_id=a1&type=HIGH_TEMP",
    )
    .await;
    assert_eq!(listed["items"][0]["id"].to_string(), *id);
    let client = reqwest::Client::new();
    let cleared = client
        .post(edgemq.url(&format!("/api/v1/alerts/{id}/clear")))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status().as_u16(), 200);
    let cleared: Value = cleared.json().await.unwrap();
    assert_eq!(
        (cleared["open"].as_bool(), cleared["cleared_at"].is_string()),
        (Some(false), true)
    );
    let again = client
        .post(edgemq.url(&format!("/api/v1/alerts/{id}/clear")))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 409);
    let missing = client
        .post(edgemq.url("/api/v1/alerts/999999/clear"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let (_, now_open) = get(&edgemq, "/api/v1/alerts?state=open&type=HIGH_TEMP").await;
    assert_eq!(now_open["items"], json!([]));

    let (_, letters) = get(&edgemq, "/api/v1/dead-letters").await;
    assert!(letters["items"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("must be a number"));

    bad(&edgemq, "/api/v1/devices/a1/series", "`metric` is required").await;
    bad(
        &edgemq,
        "/api/v1/devices/a1/series?metric=temp'erature",
        "`metric` must be a payload field name",
    )
    .await;
    bad(
        &edgemq,
        "/api/v1/devices/a1/series?metric=t&from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z",
        "`from` must be before `to`",
    )
    .await;
    bad(
        &edgemq,
        "/api/v1/devices/a1/series?metric=t&from=2020-01-01T00:00:00Z&bucket=1s",
        "more than 10000 buckets",
    )
    .await;
    bad(
        &edgemq,
        "/api/v1/messages?topic=a/%23/b",
        "`topic` must be an MQTT topic or filter",
    )
    .await;
    bad(
        &edgemq,
        "/api/v1/messages?from=noon",
        "`from` must be an ISO 8601 time",
    )
    .await;
    bad(
        &edgemq,
        "/api/v1/alerts?state=maybe",
        "`state` must be open, cleared or all",
    )
    .await;
    bad(&edgemq, "/api/v1/alerts?cursor=abc", "`cursor`").await;
    bad(&edgemq, "/api/v1/alerts/abc", "alert id must be a number").await;
    let (_, sneaky) = get(
        &edgemq,
        "/api/v1/messages?topic=a';%20DROP%20TABLE%20messages;--",
    )
    .await;
    assert_eq!(sneaky["items"], json!([]));
    assert_eq!(count(&edgemq.db), 14);
    assert_eq!(
        get(&edgemq, "/no/such/thing").await,
        (404, json!({"detail": "no endpoint GET /no/such/thing"}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_guards_everything_but_health_and_cors_answers_browsers() {
    let dir = temp_dir();
    std::fs::write(
        dir.path().join("token.toml"),
        "[http]\ntoken = \"s3cret+&=\"\ncors_origins = [\"http://localhost:5173\"]\n",
    )
    .unwrap();
    let edgemq = Edgemq::start(dir.path(), &["--config", "token.toml"]);
    let client = reqwest::Client::new();
    let denied = client
        .get(edgemq.url("/api/v1/devices"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status().as_u16(), 401);
    let body: Value = denied.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("Bearer"));
    let wrong = client
        .get(edgemq.url("/api/devices/"))
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let allowed = client
        .get(edgemq.url("/api/devices/"))
        .bearer_auth("s3cret+&=")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status().as_u16(), 200);
    // The live stream takes the token in the query too (a browser's EventSource sets no
    // headers), percent-encoded like any query value.
    let events = client
        .get(edgemq.url("/api/v1/events?access_token=s3cret%2B%26%3D"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status().as_u16(), 200);
    let raw = client
        .get(edgemq.url("/api/v1/events?access_token=s3cret+&="))
        .send()
        .await
        .unwrap();
    assert_eq!(
        raw.status().as_u16(),
        401,
        "unencoded, + is a space and & ends the value"
    );
    // `/metrics` needs the token too (unless `[http] metrics_public = true`).
    let metrics = client.get(edgemq.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status().as_u16(), 401);
    let metrics = client
        .get(edgemq.url("/metrics"))
        .bearer_auth("s3cret+&=")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status().as_u16(), 200);
    for open in ["/health", "/health/mqtt-monitor", "/api/health/"] {
        assert_eq!(
            client
                .get(edgemq.url(open))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            200,
            "{open}"
        );
    }
    let cors = client
        .get(edgemq.url("/health"))
        .header("Origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    let allow = cors
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(allow.as_deref(), Some("http://localhost:5173"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_what_is_served() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let (status, doc) = get(&edgemq, "/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    let client = reqwest::Client::new();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let url = edgemq.url(&path.replace("{id}", "1"));
            if path == "/api/v1/events" {
                // A stream that does not end: its headers say enough.
                let response = client.get(url).send().await.unwrap();
                assert_eq!(response.status().as_u16(), 200);
                assert_eq!(response.headers()["content-type"], "text/event-stream");
                continue;
            }
            let response = match method.as_str() {
                "get" => client.get(url).send().await.unwrap(),
                "post" => client.post(url).send().await.unwrap(),
                "delete" => client.delete(url).send().await.unwrap(),
                other => panic!("{path}: unexpected method {other}"),
            };
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            assert!(
                !text.contains("no endpoint"),
                "{method} {path} is documented but not served"
            );
            assert!(
                status < 500 || path == "/health",
                "{method} {path}: {status} {text}"
            );
        }
    }
    // And everything served is documented.
    let served = [
        "/health",
        "/metrics",
        "/health/mqtt-monitor",
        "/api/health/",
        "/status-count",
        "/sensors/latest",
        "/sensors/history",
        "/alerts",
        "/stats",
        "/api/devices/",
        "/api/telemetry/",
        "/api/stats/avg/",
        "/api/alerts/",
        "/api/v1/devices",
        "/api/v1/devices/{id}",
        "/api/v1/devices/{id}/series",
        "/api/v1/messages",
        "/api/v1/alerts",
        "/api/v1/alerts/{id}",
        "/api/v1/alerts/{id}/clear",
        "/api/v1/dead-letters",
        "/api/v1/bridges",
        "/api/v1/rules",
        "/api/v1/sessions",
        "/api/v1/sessions/{id}",
        "/api/v1/events",
        "/api/v1/openapi.json",
    ];
    let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
    documented.sort_unstable();
    let mut served = served.to_vec();
    served.sort_unstable();
    assert_eq!(documented, served);
}

/// Follows `next_cursor` from `path` (pages of 2) and returns one field of every item.
async fn all_pages(edgemq: &Edgemq, path: &str, field: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let url = match &cursor {
            None => format!("{path}&limit=2"),
            Some(c) => format!("{path}&limit=2&cursor={c}"),
        };
        let (status, page) = get(edgemq, &url).await;
        assert_eq!(status, 200, "{url}: {page}");
        out.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m[field].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("more pages than expected: {out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_pages_follow_the_cursor_of_their_query() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    // A device whose own times arrive out of order, and a topic without devices.
    for i in [2, 0, 4, 1, 3] {
        let body = format!(
            r#"{{"deviceId":"pg1","ts":{},"temperature":{i},"humidity":40}}"#,
            1_795_400_000_000i64 + i * 1000
        );
        mosquitto_pub(
            &edgemq,
            "devices/pg1/telemetry",
            body.as_bytes(),
            &["-q", "1"],
        );
    }
    for i in 0..3 {
        mosquitto_pub(&edgemq, "raw/pg", format!("r{i}").as_bytes(), &["-q", "1"]);
    }
    rows_eventually(&edgemq.db, FROM_CLIENTS, 8);

    // A device, and an exact topic only it publishes on: newest by the device's time.
    let by_device = all_pages(&edgemq, "/api/v1/messages?device_id=pg1", "payload").await;
    let temps: Vec<_> = by_device.iter().map(|p| p["temperature"].clone()).collect();
    assert_eq!(temps, [4, 3, 2, 1, 0].map(|t| json!(t)));
    let by_topic = all_pages(
        &edgemq,
        "/api/v1/messages?topic=devices/pg1/telemetry",
        "payload",
    )
    .await;
    assert_eq!(by_topic, by_device);
    // A topic without devices: newest by arrival.
    let raw = all_pages(&edgemq, "/api/v1/messages?topic=raw/pg", "payload").await;
    assert_eq!(raw, [json!("r2"), json!("r1"), json!("r0")]);
    // Everything, by id.
    let every = all_pages(&edgemq, "/api/v1/messages?topic=%23", "topic").await;
    assert_eq!(every.len(), 8);

    bad(
        &edgemq,
        "/api/v1/messages?device_id=pg1&cursor=abc",
        "next_cursor",
    )
    .await;
    bad(
        &edgemq,
        "/api/v1/messages?device_id=pg1&cursor=123",
        "start again",
    )
    .await;
    assert!(edgemq.stop().success());
}
