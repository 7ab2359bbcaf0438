//! What a SUBSCRIBE gets: shared subscriptions' groups (MQTT 5 section 4.8.2) and the reason
//! codes of a refused filter, for MQTT 5 and 3.1.1.

mod common;

use common::raw::*;
use common::*;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
use tokio::sync::mpsc;

/// An MQTT 5 member of group `g` on `work/#`, subscribed (SUBACK seen).
async fn member(edgemq: &Edgemq, id: &str, manual_acks: bool) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(id, "127.0.0.1", edgemq.mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_manual_acks(manual_acks);
    let (client, mut events) = AsyncClient::new(options, 100);
    client
        .subscribe("$share/g/work/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(suback)))) => {
                let code = format!("{:?}", suback.return_codes);
                assert!(code.contains("Success"), "{id}: SUBACK {code}");
                break;
            }
            Ok(Ok(_)) => {}
            other => panic!("{id}: no SUBACK: {other:?}"),
        }
    }
    (client, events)
}

/// Payloads a member receives, sent on `tx` as they come.
fn receive_into(mut events: EventLoop, tx: mpsc::UnboundedSender<String>) {
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let _ = tx.send(String::from_utf8_lossy(&p.payload).into_owned());
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_group_gets_each_message_once_and_a_member_that_leaves_loses_none() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    mosquitto_pub(&edgemq, "work/retained", b"retained", &["-q", "1", "-r"]);
    let (_b_client, b_events) = member(&edgemq, "member-b", false).await;
    let (b_tx, mut b_rx) = mpsc::unbounded_channel();
    receive_into(b_events, b_tx);
    // Member A never acknowledges: what it is given stays in flight until it leaves.
    let (a_client, mut a_events) = member(&edgemq, "member-a", true).await;
    let messages: Vec<(String, Vec<u8>)> = (0..100)
        .map(|i| (format!("work/{i}"), format!("m{i}").into_bytes()))
        .collect();
    publish_all_qos1(edgemq.mqtt, "work-publisher".into(), messages).await;

    let mut got: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while got.values().map(|(a, b)| a + b).sum::<u32>() < 100 {
        tokio::select! {
            event = a_events.poll() => match event {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    got.entry(String::from_utf8_lossy(&p.payload).into_owned()).or_default().0 += 1;
                }
                Ok(_) => {}
                Err(e) => panic!("member A lost its connection: {e}"),
            },
            Some(payload) = b_rx.recv() => got.entry(payload).or_default().1 += 1,
            _ = tokio::time::sleep_until(deadline) => panic!("the group got {} of 100: {got:?}", got.len()),
        }
    }
    let (to_a, to_b): (u32, u32) = got.values().fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
    assert_eq!(got.len(), 100, "each message once to the group: {got:?}");
    assert!(
        !got.contains_key("retained"),
        "no retained message for a shared subscription"
    );
    assert!(
        to_a > 0 && to_b > 0,
        "spread over the members: A {to_a}, B {to_b}"
    );

    // A leaves without acknowledging: B gets what A had, so the group has every message.
    drop(a_client);
    drop(a_events);
    let mut at_b: BTreeMap<String, u32> = got
        .iter()
        .filter(|(_, (_, b))| *b > 0)
        .map(|(p, (_, b))| (p.clone(), *b))
        .collect();
    while at_b.len() < 100 {
        match tokio::time::timeout(Duration::from_secs(10), b_rx.recv()).await {
            Ok(Some(payload)) => *at_b.entry(payload).or_default() += 1,
            other => panic!(
                "B got {} of the 100 after A left ({other:?}); A had {to_a}",
                at_b.len()
            ),
        }
    }
    assert!(
        at_b.values().all(|n| *n == 1),
        "each message once at B: {at_b:?}"
    );
    assert!(edgemq.stop().success());
}

/// A SUBSCRIBE packet: packet id, the MQTT 5 properties byte when `v5`, and each filter with
/// its options byte.
fn subscribe(pkid: u16, v5: bool, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    if v5 {
        body.push(0);
    }
    for (filter, options) in filters {
        body.extend(string(filter.as_bytes()));
        body.push(*options);
    }
    packet(0x82, &body)
}

/// The reason codes of the next SUBACK, with its packet id.
#[track_caller]
fn suback(stream: &mut std::net::TcpStream, v5: bool) -> (u16, Vec<u8>) {
    let (byte1, body) = next_packet(stream, "SUBACK");
    assert_eq!(byte1, 0x90, "a SUBACK, got {byte1:02x} {body:02x?}");
    let codes_at = if v5 { 3 } else { 2 };
    (
        u16::from_be_bytes([body[0], body[1]]),
        body[codes_at..].to_vec(),
    )
}

#[test]
fn a_refused_filter_gets_its_reason_code_in_both_versions() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let filters = [
        ("ok/#", 1),
        ("a/#/b", 0),
        ("$share/g", 0),
        ("$share/+/x", 0),
        ("$share//x", 0),
    ];
    for (v5, invalid) in [(true, 0x8F), (false, 0x80)] {
        let mut client = match v5 {
            true => connected_v5(&edgemq, 0x02, "codes-5", &[]).0,
            false => connected(&edgemq, 4, "codes-311"),
        };
        client.write_all(&subscribe(7, v5, &filters)).unwrap();
        let expected = [1, invalid, invalid, invalid, invalid];
        assert_eq!(suback(&mut client, v5), (7, expected.to_vec()), "v5: {v5}");
        // A second SUBSCRIBE with the id of one still waiting for its SUBACK [MQTT-2.2.1-3].
        let mut both = subscribe(9, v5, &[("x/1", 0)]);
        both.extend(subscribe(9, v5, &[("x/2", 0)]));
        client.write_all(&both).unwrap();
        let in_use = if v5 { 0x91 } else { 0x80 };
        let mut answers = vec![suback(&mut client, v5), suback(&mut client, v5)];
        answers.sort();
        assert_eq!(answers, [(9, vec![0]), (9, vec![in_use])], "v5: {v5}");
    }
    assert!(edgemq.stop().success());
}
