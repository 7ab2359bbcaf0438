//! MQTT 5 request/response between two clients through edgemq, and a DISCONNECT carrying
//! properties: what the specification says each side must see.

mod common;

use common::*;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responder_gets_the_response_topic_and_correlation_data_intact() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    // The responder: answers each request on its response topic, with its correlation data.
    let mut options = MqttOptions::new("responder", "127.0.0.1", edgemq.mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    let (responder, mut events) = AsyncClient::new(options, 10);
    responder
        .subscribe("svc/echo", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("no SUBACK for the responder: {other:?}"),
        }
    }
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            let Event::Incoming(Packet::Publish(request)) = event else {
                continue;
            };
            let properties = request.properties.clone().unwrap_or_default();
            let _ = seen_tx.send(properties.clone());
            let Some(topic) = properties.response_topic else {
                continue;
            };
            let reply = PublishProperties {
                correlation_data: properties.correlation_data,
                ..Default::default()
            };
            let payload = [&b"re: "[..], &request.payload].concat();
            let _ = responder
                .publish_with_properties(topic, QoS::AtLeastOnce, false, payload, reply)
                .await;
        }
    });
    // The requester: mosquitto_rr subscribes to its response topic, publishes, prints the reply.
    let requester = tokio::task::spawn_blocking({
        let mut command = mosquitto(&edgemq, "mosquitto_rr");
        command.args(["-V", "mqttv5", "-t", "svc/echo", "-e", "replies/rr-1"]);
        command.args(["-D", "publish", "correlation-data", "c-42", "-m", "hello"]);
        command.args(["-W", "10"]);
        move || {
            command
                .output()
                .expect("mosquitto_rr is installed by .ci/run")
        }
    })
    .await
    .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), seen_rx.recv()).await;
    let seen = seen.ok().flatten().expect("the responder got the request");
    assert_eq!(seen.response_topic.as_deref(), Some("replies/rr-1"));
    assert_eq!(seen.correlation_data.as_deref(), Some(&b"c-42"[..]));
    assert_eq!(
        String::from_utf8_lossy(&requester.stdout).trim(),
        "re: hello",
        "mosquitto_rr's reply; stderr: {}",
        String::from_utf8_lossy(&requester.stderr)
    );
    assert!(edgemq.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_with_a_reason_string_and_user_properties_is_honoured() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    // Both connect with a one-minute session expiry; one sets it to 0 in its DISCONNECT,
    // which also carries a reason string and a user property [MQTT-3.14.2].
    let run = |id: &str, disconnect: &[&str]| {
        let mut command = mosquitto(&edgemq, "mosquitto_pub");
        command.args(["-V", "mqttv5", "-i", id, "-x", "60", "-q", "1"]);
        command.args(["-t", "bye/x", "-m", "x"]).args(disconnect);
        let status = command.status().expect("mosquitto_pub");
        assert!(status.success(), "{id}: {status:?}");
    };
    run("kept", &[]);
    run(
        "ended",
        &[
            "-D",
            "disconnect",
            "session-expiry-interval",
            "0",
            "-D",
            "disconnect",
            "reason-string",
            "done for today",
            "-D",
            "disconnect",
            "user-property",
            "why",
            "test",
        ],
    );
    let kept = wait_for_async(
        "`kept` to be away and `ended` gone",
        Duration::from_secs(5),
        || async {
            let kept = get_json(&edgemq, "/api/v1/sessions/kept").await;
            let ended = get_json(&edgemq, "/api/v1/sessions/ended").await;
            match (kept["connected"].as_bool(), ended.get("client_id")) {
                (Some(false), None) => Ok(kept),
                _ => Err(format!("kept: {kept}, ended: {ended}")),
            }
        },
    )
    .await;
    assert_eq!(kept["persistent"], true);
    assert!(edgemq.stop().success());
}
