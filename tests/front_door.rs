//! The front door speaks Mosquitto: MQTT 3.1, 3.1.1 and 5 on one port, QoS 0/1/2, retained
//! messages (across restarts), last wills, persistent sessions, keep-alive 0, any client id,
//! UNSUBACK always, `$SYS`, mosquitto_rr, all checked with Mosquitto's own clients.

mod common;

use common::*;
use rumqttc::{Event, Packet, QoS};
use std::time::Duration;

fn publish(edgemq: &Edgemq, args: &[&str]) {
    let status = mosquitto(edgemq, "mosquitto_pub")
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "mosquitto_pub {args:?}: {status:?}");
}

const VERSIONS: [&str; 3] = ["mqttv31", "mqttv311", "mqttv5"];

#[test]
fn mqtt_31_311_and_5_on_one_port_at_every_qos() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut subs: Vec<Sub> = VERSIONS
        .iter()
        .map(|v| Sub::start(&edgemq, &["-V", v, "-q", "2", "-t", "fd/#"]))
        .collect();
    let mut sent = Vec::new();
    for v in VERSIONS {
        for qos in ["0", "1", "2"] {
            let topic = format!("fd/{v}/{qos}");
            let payload = format!("from {v} at qos {qos}");
            publish(
                &edgemq,
                &["-V", v, "-q", qos, "-i", v, "-t", &topic, "-m", &payload],
            );
            sent.push(format!("{topic} {payload}"));
        }
    }
    // Each comes at its own QoS (the lower of 2 and the publish's), and a client may hand a
    // QoS 2 message over only once its PUBREL came: across QoS levels the order may differ.
    sent.sort();
    for (sub, v) in subs.iter_mut().zip(VERSIONS) {
        let mut got = sub.messages(9);
        got.sort();
        assert_eq!(got, sent, "the {v} subscriber");
    }
    let rows = rows_eventually(
        &edgemq.db,
        "SELECT topic, client_id, qos, retain FROM messages ORDER BY id",
        9,
    );
    assert_eq!(rows[0], ["fd/mqttv31/0", "mqttv31", "0", "0"]);
    assert_eq!(rows[4], ["fd/mqttv311/1", "mqttv311", "1", "0"]);
    assert_eq!(rows[8], ["fd/mqttv5/2", "mqttv5", "2", "0"]);
    drop(subs);
    assert!(edgemq.stop().success());
}

#[test]
fn retained_messages_survive_a_restart_and_can_be_cleared() {
    let dir = temp_dir();
    let first = Edgemq::start(dir.path(), &[]);
    publish(
        &first,
        &["-t", "plant/state", "-m", "running", "-r", "-q", "1"],
    );
    let mut sub = Sub::start(&first, &["-t", "plant/#"]);
    assert_eq!(sub.messages(1), ["plant/state running"]);
    drop(sub);
    assert!(first.stop().success());

    let second = Edgemq::start(dir.path(), &[]);
    for v in VERSIONS {
        let mut sub = Sub::start(&second, &["-V", v, "-t", "plant/#"]);
        assert_eq!(
            sub.messages(1),
            ["plant/state running"],
            "{v} after restart"
        );
    }
    // An empty retained message clears it, also for the next run.
    publish(&second, &["-t", "plant/state", "-n", "-r", "-q", "1"]);
    assert!(second.stop().success());
    let third = Edgemq::start(dir.path(), &[]);
    let mut sub = Sub::start(&third, &["-t", "plant/#"]);
    assert_eq!(
        sub.quiet_for(Duration::from_millis(700)),
        Vec::<String>::new()
    );
    let rows = query(&third.db, "SELECT retain FROM messages ORDER BY id");
    assert_eq!(rows, [["1"], ["1"]], "both retained publishes are stored");
    drop(sub);
    assert!(third.stop().success());
}

#[test]
fn a_client_that_vanishes_has_its_last_will_published_and_stored() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut watcher = Sub::start(&edgemq, &["-t", "autocore/#"]);
    for v in ["mqttv311", "mqttv5"] {
        let will = format!("{{\"status\":\"offline\",\"by\":\"{v}\"}}");
        let mut device = Sub::start(
            &edgemq,
            &[
                "-V",
                v,
                "-i",
                v,
                "-t",
                "nothing/here",
                "--will-topic",
                "autocore/ac-1/status",
                "--will-payload",
                &will,
            ],
        );
        // Gone without DISCONNECT.
        device.kill();
        assert_eq!(
            watcher.messages(1),
            [format!("autocore/ac-1/status {will}")]
        );
    }
    // A clean disconnect (mosquitto_sub -C 1, after its one message) publishes no will.
    let mut quiet = Sub::start(
        &edgemq,
        &[
            "-t",
            "x",
            "-C",
            "1",
            "--will-topic",
            "autocore/ac-2/status",
            "--will-payload",
            "x",
        ],
    );
    publish(&edgemq, &["-t", "x", "-m", "bye"]);
    assert!(
        quiet.wait_exit().success(),
        "mosquitto_sub -C 1 exits after its message"
    );
    assert_eq!(
        watcher.quiet_for(Duration::from_millis(500)),
        Vec::<String>::new()
    );
    let rows = rows_eventually(
        &edgemq.db,
        "SELECT client_id FROM messages WHERE topic = 'autocore/ac-1/status' ORDER BY id",
        2,
    );
    assert_eq!(rows, [["mqttv311"], ["mqttv5"]]);
    // Seed 001: a last will saying offline marks the device offline.
    rows_eventually(
        &edgemq.db,
        "SELECT 1 FROM devices WHERE device_id = 'ac-1' AND is_online = 0",
        1,
    );
    drop(watcher);
    assert!(edgemq.stop().success());
}

#[test]
fn a_persistent_session_receives_what_was_published_while_it_was_away() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    for v in ["mqttv311", "mqttv5"] {
        let id = format!("away-{v}");
        let topic = format!("away/{v}");
        let args = ["-V", v, "-c", "-i", &id, "-q", "1", "-t", &topic];
        drop(Sub::start(&edgemq, &args));
        publish(&edgemq, &["-t", &topic, "-m", "while away", "-q", "1"]);
        let mut back = Sub::start(&edgemq, &args);
        assert_eq!(back.messages(1), [format!("{topic} while away")], "{v}");
    }
    assert!(edgemq.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_0_and_client_ids_with_slashes_and_wildcards() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut options =
        rumqttc::MqttOptions::new("plant/line-1#a+b", "127.0.0.1", edgemq.mqtt.port());
    options.set_keep_alive(Duration::ZERO);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 10);
    match eventloop.poll().await.unwrap() {
        Event::Incoming(Packet::ConnAck(ack)) => {
            assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success)
        }
        other => panic!("{other:?}"),
    }
    // Silent for a while: with keep-alive 0 nobody hangs up.
    let idle = tokio::time::timeout(Duration::from_secs(3), eventloop.poll()).await;
    assert!(idle.is_err(), "nothing happens while idle: {idle:?}");
    client
        .publish("ka/zero", QoS::AtLeastOnce, false, "still here")
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await.unwrap() {
            break;
        }
    }
    let rows = rows_eventually(&edgemq.db, "SELECT client_id, payload FROM messages", 1);
    assert_eq!(rows, [["plant/line-1#a+b", "still here"]]);
    assert!(edgemq.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribing_from_a_filter_never_subscribed_is_answered() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let (client, mut eventloop) = mqtt_client(edgemq.mqtt, "unsub");
    client
        .subscribe("was/subscribed", QoS::AtMostOnce)
        .await
        .unwrap();
    client.unsubscribe("never/subscribed").await.unwrap();
    client.unsubscribe("was/subscribed").await.unwrap();
    let mut unsubacks = 0;
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        while unsubacks < 2 {
            if let Event::Incoming(Packet::UnsubAck(_)) = eventloop.poll().await.unwrap() {
                unsubacks += 1;
            }
        }
    })
    .await;
    assert!(answered.is_ok(), "{unsubacks} UNSUBACKs of 2");
    assert!(edgemq.stop().success());
}

#[test]
fn sys_statistics_are_published_without_disconnecting_their_subscribers() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut sub = Sub::start(
        &edgemq,
        &[
            "-t",
            "$SYS/broker/clients/connected",
            "-t",
            "$SYS/broker/uptime",
            "-t",
            "after/sys",
        ],
    );
    let mut sys = sub.messages(2);
    sys.sort();
    assert_eq!(sys[0], "$SYS/broker/clients/connected 1");
    assert!(
        sys[1].starts_with("$SYS/broker/uptime ") && sys[1].ends_with(" seconds"),
        "{sys:?}"
    );
    // Still connected and still served.
    publish(&edgemq, &["-t", "after/sys", "-m", "yes"]);
    assert_eq!(sub.messages(1), ["after/sys yes"]);
    // `#` does not match `$SYS` topics.
    let mut all = Sub::start(&edgemq, &["-t", "#"]);
    assert_eq!(
        all.quiet_for(Duration::from_millis(500)),
        Vec::<String>::new()
    );
    drop((sub, all));
    assert!(edgemq.stop().success());
}

#[test]
fn mosquitto_rr_gets_seed_004_replies() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    publish(
        &edgemq,
        &[
            "-t",
            "home/temperature",
            "-q",
            "1",
            "-m",
            r#"{"device_id":"esp32-1","temperature":24.5,"humidity":40,"status":"LOW","timestamp":"2026-01-22T14:30:00"}"#,
        ],
    );
    rows_eventually(&edgemq.db, FROM_CLIENTS, 1);
    let out = mosquitto(&edgemq, "mosquitto_rr")
        .args([
            "-V",
            "mqttv5",
            "-t",
            "home/gettemp/app-1",
            "-e",
            "home/datatemp/app-1",
        ])
        .args([
            "-m",
            r#"{"device_id":"esp32-1","date":"2026-01-22"}"#,
            "-W",
            "5",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["records"][0]["temperature"], 24.5, "{reply}");
    assert!(edgemq.stop().success());
}

/// An MQTT 3.1.1 packet as bytes, encoded by rumqttd's own codec.
fn encode(packet: rumqttd::protocol::Packet) -> Vec<u8> {
    use rumqttd::protocol::Protocol;
    let mut out = bytes::BytesMut::new();
    rumqttd::protocol::v4::V4.write(packet, &mut out).unwrap();
    out.to_vec()
}

/// The next MQTT packet from a WebSocket, decoded by rumqttd's own codec.
async fn next_packet<S>(ws: &mut S) -> rumqttd::protocol::Packet
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    use rumqttd::protocol::Protocol;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a packet in time")
            .expect("the WebSocket is open")
            .expect("a frame");
        if let tokio_tungstenite::tungstenite::Message::Binary(data) = message {
            let mut buf = bytes::BytesMut::from(&data[..]);
            return rumqttd::protocol::v4::V4
                .read_mut(&mut buf, 1 << 20)
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_over_websockets_meets_tcp_clients_and_the_store() {
    use futures_util::SinkExt;
    use rumqttd::protocol::{Connect, Filter, Packet as P, RetainForwardRule, Subscribe};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut request = format!("ws://{}/mqtt", edgemq.mqtt_ws)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
    let (mut ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "mqtt");

    let connect = Connect {
        keep_alive: 30,
        client_id: "browser-1".into(),
        clean_session: true,
    };
    ws.send(Message::binary(encode(P::Connect(
        connect, None, None, None, None,
    ))))
    .await
    .unwrap();
    match next_packet(&mut ws).await {
        P::ConnAck(ack, _) => assert_eq!(ack.code, rumqttd::protocol::ConnectReturnCode::Success),
        other => panic!("{other:?}"),
    }
    let filter = Filter {
        path: "tcp/#".into(),
        qos: rumqttd::protocol::QoS::AtMostOnce,
        nolocal: false,
        preserve_retain: false,
        retain_forward_rule: RetainForwardRule::OnEverySubscribe,
    };
    let subscribe = Subscribe {
        pkid: 1,
        filters: vec![filter],
    };
    ws.send(Message::binary(encode(P::Subscribe(subscribe, None))))
        .await
        .unwrap();
    assert!(matches!(next_packet(&mut ws).await, P::SubAck(..)));

    // Browser → a TCP subscriber and the store, at QoS 1: PUBLISH ws/hello, packet id 7.
    let mut tcp_sub = Sub::start(&edgemq, &["-t", "ws/#"]);
    let mut frame = vec![0x32, 0, 0, 8];
    frame.extend(b"ws/hello");
    frame.extend([0, 7]);
    frame.extend(b"from the browser");
    frame[1] = (frame.len() - 2) as u8;
    ws.send(Message::binary(frame)).await.unwrap();
    match next_packet(&mut ws).await {
        P::PubAck(ack, _) => assert_eq!(ack.pkid, 7),
        other => panic!("{other:?}"),
    }
    // Acknowledged means committed.
    let rows = query(
        &edgemq.db,
        "SELECT topic, payload, client_id, qos FROM messages",
    );
    assert_eq!(rows, [["ws/hello", "from the browser", "browser-1", "1"]]);
    assert_eq!(tcp_sub.messages(1), ["ws/hello from the browser"]);

    // A TCP client → the browser.
    publish(&edgemq, &["-t", "tcp/news", "-m", "to the browser"]);
    match next_packet(&mut ws).await {
        P::Publish(p, _) => {
            assert_eq!(
                (&p.topic[..], &p.payload[..]),
                (&b"tcp/news"[..], &b"to the browser"[..])
            )
        }
        other => panic!("{other:?}"),
    }
    drop(tcp_sub);
    assert!(edgemq.stop().success());
}
