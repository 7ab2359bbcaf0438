//! MQTT request/response: seed 004's exchanges in the seed's own shapes, paging, request ids,
//! error replies, and the MQTT 5 response topic with its correlation data.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn seed_004_data(edgemq: &Edgemq) {
    let messages: [(&str, &str); 5] = [
        (
            "home/temperature",
            r#"{"device_id":"temp_sensor_01","temperature":22.5,"humidity":45.3,"status":"HIGH","timestamp":"2026-01-22T14:30:00"}"#,
        ),
        (
            "home/temperature",
            r#"{"device_id":"temp_sensor_01","temperature":19.0,"humidity":50.0,"status":"LOW","timestamp":"2026-01-23T08:00:00"}"#,
        ),
        (
            "home/power",
            r#"{"device_id":"power_switch_01","status":"EB_ON","timestamp":"2026-01-22T09:15:00"}"#,
        ),
        (
            "home/power",
            r#"{"device_id":"power_switch_01","status":"DG_OFF","timestamp":"2026-01-22T10:00:00"}"#,
        ),
        (
            "home/fingerprint",
            r#"{"device_id":"fingerprint_01","user_id":"user_123","authStatus":"PASS","timestamp":"2026-01-22T14:40:22"}"#,
        ),
    ];
    for (topic, payload) in messages {
        mosquitto_pub(edgemq, topic, payload.as_bytes(), &[]);
    }
    rows_eventually(&edgemq.db, FROM_CLIENTS, 5);
}

/// Sends each (topic, request) and returns the replies, in order, from the reply topics
/// (`home/getX/<client>` is answered on `home/dataX/<client>`).
fn exchange(edgemq: &Edgemq, requests: &[(&str, &str)]) -> Vec<(String, Value)> {
    let mut reply_topics: Vec<String> = requests
        .iter()
        .map(|(t, _)| t.replace("home/get", "home/data"))
        .collect();
    reply_topics.dedup();
    let mut args = Vec::new();
    for topic in &reply_topics {
        args.extend(["-t", topic.as_str()]);
    }
    let mut sub = Sub::start(edgemq, &args);
    for (topic, request) in requests {
        mosquitto_pub(edgemq, topic, request.as_bytes(), &[]);
    }
    let replies: Vec<(String, Value)> = sub
        .messages(requests.len())
        .iter()
        .map(|l| {
            let (topic, body) = l.split_once(' ').unwrap_or((l, ""));
            let body = serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("a JSON reply on {topic}, got `{body}`: {e}"));
            (topic.to_string(), body)
        })
        .collect();
    replies
}

#[test]
fn seed_004_exchanges_in_the_seeds_shapes() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    seed_004_data(&edgemq);
    let replies = exchange(
        &edgemq,
        &[
            (
                "home/gettemp/app1",
                r#"{"device_id": "temp_sensor_01", "date": "2026-01-22"}"#,
            ),
            (
                "home/getpower/app1",
                r#"{"device_id": "power_switch_01", "date": "2026-01-22"}"#,
            ),
            (
                "home/getfingerprint/app1",
                r#"{"device_id": "fingerprint_01", "date": "2026-01-22"}"#,
            ),
        ],
    );
    assert_eq!(replies.len(), 3, "{replies:#?}");
    assert_eq!(
        replies[0],
        (
            "home/datatemp/app1".to_string(),
            json!({"device_id": "temp_sensor_01", "date": "2026-01-22", "count": 1, "records": [
                {"temperature": 22.5, "humidity": 45.3, "status": "HIGH", "timestamp": "2026-01-22T14:30:00"}
            ]})
        )
    );
    assert_eq!(
        replies[1],
        (
            "home/datapower/app1".to_string(),
            json!({"device_id": "power_switch_01", "date": "2026-01-22", "count": 2, "records": [
                {"ebstatus": "ON", "dgstatus": "", "timestamp": "2026-01-22T09:15:00"},
                {"ebstatus": "", "dgstatus": "OFF", "timestamp": "2026-01-22T10:00:00"}
            ]})
        )
    );
    assert_eq!(
        replies[2],
        (
            "home/datafingerprint/app1".to_string(),
            json!({"device_id": "fingerprint_01", "date": "2026-01-22", "count": 1, "records": [
                {"user_id": "user_123", "authStatus": "PASS", "timestamp": "2026-01-22T14:40:22"}
            ]})
        )
    );
    // Replies are not device data; the requests are kept like any message.
    assert_eq!(
        query(
            &edgemq.db,
            "SELECT count(*) FROM messages WHERE topic LIKE 'home/data%'"
        ),
        [["0"]]
    );
}

#[test]
fn paging_request_ids_and_errors_are_answered() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    seed_004_data(&edgemq);
    let requests: &[(&str, &str)] = &[
        (
            "home/getpower/p",
            r#"{"device_id":"power_switch_01","date":"2026-01-22","limit":1,"request_id":"r-1"}"#,
        ),
        (
            "home/getpower/p",
            r#"{"device_id":"power_switch_01","date":"2026-01-22","limit":1,"offset":1}"#,
        ),
        (
            "home/getpower/p",
            r#"{"device_id":"power_switch_01","date":"2026-01-21"}"#,
        ),
        (
            "home/getpower/p",
            r#"{"device_id":"nobody","date":"2026-01-22","request_id":9}"#,
        ),
        (
            "home/getpower/p",
            r#"{"device_id":"power_switch_01","date":"22/01/2026"}"#,
        ),
        ("home/getpower/p", r#"{"date":"2026-01-22"}"#),
        ("home/getpower/p", "not json"),
        (
            "home/getpower/p",
            r#"{"device_id":"x' OR '1'='1","date":"2026-01-22"}"#,
        ),
    ];
    let replies = exchange(&edgemq, requests);
    let bodies: Vec<&Value> = replies
        .iter()
        .map(|(topic, body)| {
            assert_eq!(topic, "home/datapower/p");
            body
        })
        .collect();
    assert_eq!(bodies.len(), requests.len(), "{bodies:#?}");
    assert_eq!(bodies[0]["count"], 1);
    assert_eq!(
        (
            bodies[0]["next_offset"].as_u64(),
            bodies[0]["total"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(bodies[0]["request_id"], "r-1");
    assert_eq!(bodies[0]["records"][0]["ebstatus"], "ON");
    assert_eq!(bodies[1]["records"][0]["dgstatus"], "OFF");
    assert!(
        bodies[1].get("next_offset").is_none(),
        "last page: {}",
        bodies[1]
    );
    assert_eq!(
        bodies[2],
        &json!({"device_id": "power_switch_01", "date": "2026-01-21", "count": 0, "records": []})
    );
    assert_eq!(
        bodies[3],
        &json!({"error": "unknown device `nobody`", "request_id": 9})
    );
    assert!(bodies[4]["error"].as_str().unwrap().contains("YYYY-MM-DD"));
    assert!(bodies[5]["error"]
        .as_str()
        .unwrap()
        .contains("`device_id` is required"));
    assert!(bodies[6]["error"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));
    assert!(bodies[7]["error"]
        .as_str()
        .unwrap()
        .contains("unknown device"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_response_topic_and_correlation_data_round_trip() {
    use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};

    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    seed_004_data(&edgemq);
    let mut options = MqttOptions::new("mobile-v5", "127.0.0.1", edgemq.mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(options, 10);
    client
        .subscribe("replies/mobile-v5", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = events.poll().await.unwrap() {
            break;
        }
    }
    let properties = PublishProperties {
        response_topic: Some("replies/mobile-v5".into()),
        correlation_data: Some(bytes::Bytes::from_static(b"req-42")),
        ..Default::default()
    };
    let request = r#"{"device_id": "fingerprint_01", "date": "2026-01-22"}"#;
    client
        .publish_with_properties(
            "home/getfingerprint/mobile-v5",
            QoS::AtLeastOnce,
            false,
            request,
            properties,
        )
        .await
        .unwrap();
    let reply = loop {
        match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => break p,
            Ok(Ok(_)) => {}
            other => panic!("no reply: {other:?}"),
        }
    };
    assert_eq!(reply.topic, "replies/mobile-v5");
    let correlation = reply.properties.and_then(|p| p.correlation_data);
    assert_eq!(correlation.as_deref(), Some(&b"req-42"[..]));
    let body: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(body["count"], 1);
    assert_eq!(body["records"][0]["authStatus"], "PASS");
}

#[test]
fn what_a_request_echoes_is_bounded_and_every_reply_stays_under_the_cap() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let huge = "x".repeat(1024 * 1024);
    let requests = [
        format!(
            r#"{{"device_id": "temp_sensor_01", "date": "2026-01-22", "request_id": "{huge}"}}"#
        ),
        format!(r#"{{"device_id": "{huge}", "date": "2026-01-22"}}"#),
        format!(r#"{{"device_id": "temp_sensor_01", "date": "{huge}"}}"#),
    ];
    let mut replies = Sub::start(&edgemq, &["-t", "home/datatemp/big"]);
    for request in &requests {
        mosquitto_pub(&edgemq, "home/gettemp/big", request.as_bytes(), &[]);
        let reply = replies.messages(1).remove(0);
        assert!(
            reply.len() < 1024,
            "a short error reply, got {} bytes",
            reply.len()
        );
        let body: Value = serde_json::from_str(reply.trim_start_matches("home/datatemp/big "))
            .expect("a JSON reply");
        assert!(body["error"].is_string(), "{body}");
    }
    assert!(edgemq.stop().success());
}
