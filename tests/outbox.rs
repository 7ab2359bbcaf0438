//! edgemq's own publications reach subscribers but are never stored as device data, and a
//! barrier fires only after everything routed before it.

mod common;

use edgemq::broker;
use edgemq::config::Config;
use edgemq::ingest::Intake;
use edgemq::metrics::Metrics;
use rumqttc::{Event, Packet, QoS};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_publications_are_delivered_but_not_taken_for_device_data() {
    let mut config = Config::default();
    for l in config.v4.values_mut().chain(config.v5.values_mut()) {
        l.listen = "127.0.0.1:0".parse().unwrap();
    }
    broker::claim_addresses(&mut config).unwrap();
    let metrics = Arc::new(Metrics::default());
    let (intake_tx, intake_rx) = flume::bounded(1000);
    let broker =
        tokio::task::block_in_place(|| broker::start(&config, None, intake_tx, metrics.clone()))
            .unwrap();
    let addr = broker.listeners[0].1;

    let (sub, mut sub_events) = common::mqtt_client(addr, "watcher");
    sub.subscribe("same/#", QoS::AtMostOnce).await.unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = sub_events.poll().await.unwrap() {
            break;
        }
    }

    // A device and edgemq publish the very same topic and payload, and edgemq a reply.
    common::publish_all_qos1(
        addr,
        "device".into(),
        vec![("same/topic".into(), b"same".to_vec())],
    )
    .await;
    broker.outbox.publish("same/topic", "same").unwrap();
    broker
        .outbox
        .publish("same/reply", "{\"count\":0}")
        .unwrap();
    let fired = broker.outbox.barrier().unwrap();

    let mut device_messages = Vec::new();
    loop {
        match intake_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("barrier reached ingest")
        {
            Intake::Message(m) => device_messages.push((m.topic, m.payload)),
            Intake::Barrier(done) => {
                done.send(()).unwrap();
                break;
            }
            Intake::Tick | Intake::ClearAlert { .. } => {}
        }
    }
    fired.recv_timeout(Duration::from_secs(1)).unwrap();
    assert_eq!(device_messages, vec![("same/topic".into(), "same".into())]);
    assert_eq!(
        metrics
            .internal_seen
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );

    // Subscribers see all three publications.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(5), sub_events.poll()).await;
        if let Event::Incoming(Packet::Publish(p)) = event.unwrap().unwrap() {
            seen.push(p.topic);
        }
    }
    assert_eq!(seen, ["same/topic", "same/topic", "same/reply"]);
}
