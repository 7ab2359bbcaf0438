//! What subscribers receive: every message numbered once in the order it reaches the router,
//! and what an MQTT 5 publisher attached reaching MQTT 5 subscribers intact.

mod common;

use common::*;

#[test]
fn messages_and_dead_letters_are_numbered_in_one_sequence_across_restarts() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let good = br#"{"device_id":"t1","temperature":21.5}"#;
    mosquitto_pub(&edgemq, "home/temperature", good, &["-q", "1"]);
    mosquitto_pub(&edgemq, "home/temperature", b"not json", &["-q", "1"]);
    mosquitto_pub(&edgemq, "plain/topic", b"raw", &["-q", "1"]);
    assert!(edgemq.stop().success());
    let edgemq = Edgemq::start(dir.path(), &[]);
    mosquitto_pub(&edgemq, "plain/topic", b"after restart", &["-q", "1"]);
    let all = "SELECT id, topic, 'message' FROM messages
               UNION ALL SELECT id, topic, 'dead letter' FROM dead_letters ORDER BY id";
    let rows = rows_eventually(&edgemq.db, all, 4);
    let row = |id: &str, topic: &str, table: &str| vec![id.to_string(), topic.into(), table.into()];
    assert_eq!(
        rows,
        [
            row("1", "home/temperature", "message"),
            row("2", "home/temperature", "dead letter"),
            row("3", "plain/topic", "message"),
            row("4", "plain/topic", "message"),
        ]
    );
    assert!(edgemq.stop().success());
}

#[test]
fn a_v5_subscriber_gets_the_publishers_properties_and_nothing_more() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let format = "%t|%p|%D|%R|%C|%P";
    let mut v5 = Sub::start(&edgemq, &["-V", "mqttv5", "-t", "props/#", "-F", format]);
    let mut v311 = Sub::start(&edgemq, &["-t", "props/#"]);
    let properties = [
        ["-D", "publish", "correlation-data", "abc"],
        ["-D", "publish", "response-topic", "r/1"],
        ["-D", "publish", "content-type", "text/plain"],
    ];
    let mut args = vec!["-V", "mqttv5", "-q", "1"];
    args.extend(properties.iter().flatten());
    args.extend(["-D", "publish", "user-property", "k", "v"]);
    mosquitto_pub(&edgemq, "props/a", b"one", &args);
    mosquitto_pub(&edgemq, "props/b", b"two", &["-V", "mqttv5"]);
    assert_eq!(
        v5.messages(2),
        ["props/a|one|abc|r/1|text/plain|k:v", "props/b|two||||"]
    );
    assert_eq!(v311.messages(2), ["props/a one", "props/b two"]);
    assert!(edgemq.stop().success());
}

/// Each subscriber's lines ("topic qos") for publishes at QoS 0, 1 and 2, sorted.
fn received(sub: &mut Sub, n: usize) -> Vec<String> {
    let mut lines = sub.messages(n);
    lines.sort();
    lines
}

#[test]
fn delivery_qos_is_the_lower_of_published_and_granted_live_and_retained() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    for version in ["mqttv311", "mqttv5"] {
        // Retained first, for subscribers that come later.
        for qos in ["0", "1", "2"] {
            let topic = format!("qr/{version}/p{qos}");
            mosquitto_pub(&edgemq, &topic, b"kept", &["-V", version, "-q", qos, "-r"]);
        }
        let mut subs: Vec<Sub> = ["0", "1", "2"]
            .iter()
            .map(|granted| {
                let args = ["-V", version, "-q", granted, "-F", "%t %q"];
                let filters = ["-t", "qos/+/+", "-t", "qr/+/+"];
                Sub::start(&edgemq, &[&args[..], &filters[..]].concat())
            })
            .collect();
        for qos in ["0", "1", "2"] {
            let topic = format!("qos/{version}/p{qos}");
            mosquitto_pub(&edgemq, &topic, b"live", &["-V", version, "-q", qos]);
        }
        for (granted, sub) in subs.iter_mut().enumerate() {
            let lines = |prefix: &str| -> Vec<String> {
                (0..3)
                    .map(|published| {
                        format!("{prefix}/{version}/p{published} {}", published.min(granted))
                    })
                    .collect()
            };
            let expected = [lines("qos"), lines("qr")].concat();
            let mut expected_sorted = expected.clone();
            expected_sorted.sort();
            assert_eq!(
                received(sub, 6),
                expected_sorted,
                "{version} subscriber granted QoS {granted}"
            );
        }
        // Cleared, so the next version's subscribers see only their own.
        for qos in ["0", "1", "2"] {
            let topic = format!("qr/{version}/p{qos}");
            let cleared = mosquitto(&edgemq, "mosquitto_pub")
                .args(["-t", &topic, "-r", "-n"])
                .status()
                .unwrap();
            assert!(cleared.success(), "clearing {topic}");
        }
    }
    assert!(edgemq.stop().success());
}

#[test]
fn overlapping_filters_deliver_each_message_once() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let filters = ["-t", "a/#", "-t", "a/b", "-t", "a/+/c", "-t", "a/b/+"];
    let mut v5 = Sub::start(
        &edgemq,
        &[&["-V", "mqttv5", "-q", "2", "-F", "%t %q"][..], &filters].concat(),
    );
    let mut v311 = Sub::start(
        &edgemq,
        &[&["-q", "1", "-F", "%t %q"][..], &filters].concat(),
    );
    mosquitto_pub(&edgemq, "a/b/c", b"x", &["-q", "1"]);
    mosquitto_pub(&edgemq, "a/b", b"x", &["-q", "2"]);
    mosquitto_pub(&edgemq, "a/x", b"x", &["-q", "0"]);
    assert_eq!(v5.messages(3), ["a/b/c 1", "a/b 2", "a/x 0"]);
    assert_eq!(v311.messages(3), ["a/b/c 1", "a/b 1", "a/x 0"]);
    let later = std::time::Duration::from_millis(500);
    assert_eq!(v5.quiet_for(later), Vec::<String>::new(), "no second copy");
    assert_eq!(
        v311.quiet_for(later),
        Vec::<String>::new(),
        "no second copy"
    );
    assert!(edgemq.stop().success());
}

#[test]
fn an_unacknowledged_delivery_is_resent_with_dup_when_the_session_resumes() {
    use common::raw::*;
    use std::io::Write;
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    // MQTT 3.1.1, clean session off.
    let (mut first, present) = connected_with(&edgemq, 4, 0x00, "keeper");
    assert!(!present, "a new session");
    let mut subscribe = 1u16.to_be_bytes().to_vec();
    subscribe.extend(string(b"keep/#"));
    subscribe.push(1);
    first.write_all(&packet(0x82, &subscribe)).unwrap();
    assert_eq!(next_packet(&mut first, "SUBACK"), (0x90, vec![0, 1, 1]));
    mosquitto_pub(&edgemq, "keep/a", b"hello", &["-q", "1"]);
    let (byte1, body) = next_packet(&mut first, "the delivery");
    assert_eq!(byte1, 0x32, "QoS 1, not DUP: {body:02x?}");
    let topic_and_pkid = body[..10].to_vec(); // 00 06 "keep/a" + packet id
    assert_eq!(&body[10..], b"hello");
    drop(first); // gone without a PUBACK

    let (mut second, present) = connected_with(&edgemq, 4, 0x00, "keeper");
    assert!(present, "the session is resumed");
    let (byte1, body) = next_packet(&mut second, "the delivery again");
    assert_eq!(byte1, 0x3a, "QoS 1 with DUP: {body:02x?}");
    assert_eq!(
        (&body[..10], &body[10..]),
        (&topic_and_pkid[..], &b"hello"[..])
    );
    second.write_all(&packet(0x40, &body[8..10])).unwrap(); // PUBACK
                                                            // Acknowledged: a third connection gets nothing again.
    second.write_all(&[0xe0, 0]).unwrap(); // DISCONNECT
    assert_eq!(until_closed(&mut second, "after DISCONNECT"), b"");
    let (mut third, present) = connected_with(&edgemq, 4, 0x00, "keeper");
    assert!(present);
    third.write_all(&[0xc0, 0]).unwrap(); // PINGREQ: its PINGRESP comes after any resend
    assert_eq!(next_packet(&mut third, "PINGRESP"), (0xd0, vec![]));
    assert!(edgemq.stop().success());
}

/// `n` QoS 1 messages on `topic`, payloads `{tag}-{i}`, from one `mosquitto_pub -l` client.
#[test]
fn a_frozen_subscriber_gets_everything_after_it_thaws_and_slows_nobody() {
    const EACH: usize = 30_000;
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let slow = Sub::start(&edgemq, &["-c", "-i", "slow", "-q", "1", "-t", "slow/#"]);
    let mut fast = Sub::start(&edgemq, &["-q", "1", "-t", "slow/#"]);
    slow.signal(libc::SIGSTOP);
    let publishers = [
        publish_lines(&edgemq, "slow/a", "a", EACH),
        publish_lines(&edgemq, "slow/b", "b", EACH),
    ];
    let gap = std::time::Duration::from_secs(10);
    let got = fast.stream(2 * EACH, gap);
    all_in_order(&got, &["a", "b"], EACH);
    for publisher in publishers {
        publisher.join().unwrap();
    }
    let mut slow = slow;
    slow.signal(libc::SIGCONT);
    let got = slow.stream(2 * EACH, gap);
    all_in_order(&got, &["a", "b"], EACH);
    slow.nothing_more();
    let from_store = metric(&edgemq, "edgemq_delivered_from_store_total").unwrap();
    assert!(
        from_store > 0,
        "the slow subscriber caught up from the store"
    );
    assert!(edgemq.stop().success());
}

/// Publishes `n` retained messages, `r/{i}` → `{i}`, at QoS 1, and waits for the last PUBACK.
async fn retain_many(edgemq: &Edgemq, n: usize) {
    let (client, mut eventloop) = mqtt_client(edgemq.mqtt, "retainer");
    let driver = tokio::spawn(async move {
        let mut acked = 0;
        while acked < n {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => panic!("retainer: {e}"),
            }
        }
    });
    for i in 0..n {
        let topic = format!("r/{i}");
        let qos = rumqttc::QoS::AtLeastOnce;
        client
            .publish(topic, qos, true, i.to_string())
            .await
            .unwrap();
    }
    tokio::time::timeout(std::time::Duration::from_secs(60), driver)
        .await
        .expect("every retained message acknowledged")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_subscriber_gets_every_retained_message_however_many() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    for n in [1_000, 100_000] {
        retain_many(&edgemq, n).await;
        let mut sub = Sub::start(&edgemq, &["-q", "1", "-t", "r/#"]);
        let got = tokio::task::block_in_place(|| sub.stream(n, std::time::Duration::from_secs(10)));
        let distinct: std::collections::HashSet<&String> = got.iter().collect();
        assert_eq!(distinct.len(), n, "{n} retained topics, each once");
        assert!(got.iter().all(|l| {
            let (topic, payload) = l.split_once(' ').unwrap();
            topic.strip_prefix("r/") == Some(payload)
        }));
        sub.nothing_more();
    }
    assert!(edgemq.stop().success());
}

#[test]
fn a_persistent_session_gets_everything_published_while_away_beyond_the_routers_budget() {
    const N: usize = 5_000;
    let dir = temp_dir();
    // 8 KiB per router filter: the router itself keeps about 50 of these for the absent client.
    let config = "[router]\nmax_segment_size = 4096\nmax_segment_count = 2\n";
    let edgemq = Edgemq::with_config(dir.path(), config);
    let args = ["-c", "-i", "away", "-q", "1", "-t", "away/#"];
    let mut first = Sub::start(&edgemq, &args);
    first.kill();
    publish_lines(&edgemq, "away/x", "m", N).join().unwrap();
    let mut again = Sub::start(&edgemq, &args);
    let got = again.stream(N, std::time::Duration::from_secs(10));
    all_in_order(&got, &["m"], N);
    again.nothing_more();
    assert!(edgemq.stop().success());
}

#[test]
fn an_mqtt_5_session_lasts_as_long_as_its_expiry_interval() {
    use common::raw::*;
    use std::io::Write;
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let two_seconds = [0x11, 0, 0, 0, 2];
    let normal_disconnect = [0xe0, 0];
    let (mut first, present) = connected_v5(&edgemq, 0x00, "expiring", &two_seconds);
    assert!(!present, "a new session");
    first.write_all(&normal_disconnect).unwrap();
    assert_eq!(until_closed(&mut first, "DISCONNECT"), b"");
    let (mut second, present) = connected_v5(&edgemq, 0x00, "expiring", &two_seconds);
    assert!(present, "back within 2 s: the session is there");
    second.write_all(&normal_disconnect).unwrap();
    assert_eq!(until_closed(&mut second, "DISCONNECT"), b"");
    // edgemq saves when the session expires: 2 s after the disconnect. Wait until then.
    let sql = "SELECT expires_at, updated_at FROM sessions
               WHERE client_id = 'expiring' AND expires_at IS NOT NULL";
    let row = rows_eventually(&edgemq.db, sql, 1).remove(0);
    let (expires_at, saved_at): (u128, u128) = (row[0].parse().unwrap(), row[1].parse().unwrap());
    assert!(
        (1_900..=2_100).contains(&(expires_at - saved_at)),
        "expires 2 s after: {row:?}"
    );
    // Once expired, the session is removed from the store without its client coming back.
    rows_eventually(
        &edgemq.db,
        "SELECT client_id FROM sessions WHERE client_id = 'expiring'",
        0,
    );
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    assert!(now.unwrap().as_millis() >= expires_at, "not removed early");
    let (_third, present) = connected_v5(&edgemq, 0x00, "expiring", &two_seconds);
    assert!(!present, "after its 2 s the session is gone");
    // Clean Start discards a kept session, and the new one is kept for its own expiry.
    let a_minute = [0x11, 0, 0, 0, 60];
    let (mut kept, _) = connected_v5(&edgemq, 0x00, "restarting", &a_minute);
    kept.write_all(&normal_disconnect).unwrap();
    assert_eq!(until_closed(&mut kept, "DISCONNECT"), b"");
    let (mut fresh, present) = connected_v5(&edgemq, 0x02, "restarting", &a_minute);
    assert!(!present, "Clean Start: no session present");
    fresh.write_all(&normal_disconnect).unwrap();
    assert_eq!(until_closed(&mut fresh, "DISCONNECT"), b"");
    let (_back, present) = connected_v5(&edgemq, 0x00, "restarting", &a_minute);
    assert!(present, "the clean-started session was kept for its expiry");
    assert!(edgemq.stop().success());
}

#[test]
fn qos_0_messages_wait_for_an_absent_session_only_with_queue_qos0_messages() {
    for (queue_qos0, expected) in [
        (false, vec!["q/x one"]),
        (true, vec!["q/x zero", "q/x one", "q/x zero again"]),
    ] {
        let dir = temp_dir();
        let config = format!("[mqtt]\nqueue_qos0_messages = {queue_qos0}\n");
        let edgemq = Edgemq::with_config(dir.path(), &config);
        let args = ["-c", "-i", "q0", "-q", "1", "-t", "q/#"];
        Sub::start(&edgemq, &args).kill();
        mosquitto_pub(&edgemq, "q/x", b"zero", &["-q", "0"]);
        mosquitto_pub(&edgemq, "q/x", b"one", &["-q", "1"]);
        mosquitto_pub(&edgemq, "q/x", b"zero again", &["-q", "0"]);
        let mut back = Sub::start(&edgemq, &args);
        assert_eq!(
            back.messages(expected.len()),
            expected,
            "queue_qos0_messages = {queue_qos0}"
        );
        back.nothing_more();
        assert!(edgemq.stop().success());
    }
}

#[test]
fn a_persistent_session_outlives_kill_9_with_everything_queued_for_it() {
    const N: usize = 10_000;
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let args = ["-c", "-i", "survivor", "-q", "1", "-t", "k/#"];
    Sub::start(&edgemq, &args).kill();
    rows_eventually(&edgemq.db, "SELECT client_id FROM sessions", 1);
    publish_lines(&edgemq, "k/x", "m", N).join().unwrap();
    edgemq.kill9();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut back = Sub::start(&edgemq, &args);
    let got = back.stream(N, std::time::Duration::from_secs(10));
    all_in_order(&got, &["m"], N);
    assert!(edgemq.stop().success());
}

#[test]
fn an_unacknowledged_delivery_comes_again_with_dup_after_kill_9() {
    use common::raw::*;
    use std::io::Write;
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let (mut client, _) = connected_with(&edgemq, 4, 0x00, "crashed");
    let mut subscribe = 1u16.to_be_bytes().to_vec();
    subscribe.extend(string(b"c/#"));
    subscribe.push(1);
    client.write_all(&packet(0x82, &subscribe)).unwrap();
    assert_eq!(next_packet(&mut client, "SUBACK"), (0x90, vec![0, 1, 1]));
    mosquitto_pub(&edgemq, "c/a", b"hello", &["-q", "1"]);
    let (byte1, body) = next_packet(&mut client, "the delivery");
    assert_eq!((byte1, &body[7..]), (0x32, &b"hello"[..]), "{body:02x?}");
    // Not acknowledged; edgemq saves that it was sent within about a second.
    rows_eventually(
        &edgemq.db,
        "SELECT client_id FROM sessions WHERE sent_through >= 1",
        1,
    );
    edgemq.kill9();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let (mut again, present) = connected_with(&edgemq, 4, 0x00, "crashed");
    assert!(present, "the session survived the crash");
    let (byte1, body) = next_packet(&mut again, "the delivery after the crash");
    assert_eq!(byte1, 0x3a, "QoS 1 with DUP: {body:02x?}");
    assert_eq!(
        (&body[..5], &body[7..]),
        (&b"\x00\x03c/a"[..], &b"hello"[..])
    );
    assert!(edgemq.stop().success());
}

#[test]
fn deliveries_carry_the_subscription_identifier_live_and_retained() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    mosquitto_pub(&edgemq, "sid/kept", b"r", &["-r", "-q", "1"]);
    let with_id = [
        "-V",
        "mqttv5",
        "-D",
        "subscribe",
        "subscription-identifier",
        "7",
    ];
    let mut sub = Sub::start(
        &edgemq,
        &[&with_id[..], &["-t", "sid/#", "-F", "%t %S"]].concat(),
    );
    let mut without = Sub::start(&edgemq, &["-V", "mqttv5", "-t", "sid/#", "-F", "%t [%S]"]);
    mosquitto_pub(&edgemq, "sid/live", b"l", &["-q", "1"]);
    assert_eq!(sub.messages(2), ["sid/kept 7", "sid/live 7"]);
    assert_eq!(without.messages(2), ["sid/kept []", "sid/live []"]);
    assert!(edgemq.stop().success());
}

#[test]
fn what_a_session_gets_from_the_store_keeps_its_properties_and_qos() {
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let format = ["-F", "%t|%p|%q|%D|%R|%C|%P"];
    let session = ["-V", "mqttv5", "-c", "-i", "kept", "-q", "2"];
    let filters = ["-t", "kp/#", "-t", "home/temperature"];
    Sub::start(&edgemq, &[&session[..], &filters, &format].concat()).kill();
    rows_eventually(&edgemq.db, "SELECT client_id FROM sessions", 1);
    let mut properties = vec!["-V", "mqttv5", "-q", "1"];
    properties.extend(["-D", "publish", "correlation-data", "abc"]);
    properties.extend(["-D", "publish", "response-topic", "r/1"]);
    properties.extend(["-D", "publish", "content-type", "text/plain"]);
    properties.extend(["-D", "publish", "user-property", "k", "v"]);
    mosquitto_pub(&edgemq, "kp/a", b"one", &properties);
    mosquitto_pub(
        &edgemq,
        "kr/x",
        b"kept",
        &[&properties[..], &["-r"]].concat(),
    );
    // Not JSON on a built-in route: a dead letter, still delivered, at the QoS it came with.
    mosquitto_pub(&edgemq, "home/temperature", b"not json", &["-q", "2"]);
    rows_eventually(&edgemq.db, "SELECT id FROM dead_letters", 1);
    assert!(edgemq.stop().success());

    let edgemq = Edgemq::start(dir.path(), &[]);
    let mut back = Sub::start(&edgemq, &[&session[..], &filters, &format].concat());
    assert_eq!(
        back.messages(2),
        [
            "kp/a|one|1|abc|r/1|text/plain|k:v",
            "home/temperature|not json|2||||"
        ]
    );
    let mut retained = Sub::start(
        &edgemq,
        &[&["-V", "mqttv5", "-t", "kr/#"], &format[..]].concat(),
    );
    assert_eq!(retained.messages(1), ["kr/x|kept|0|abc|r/1|text/plain|k:v"]);
    assert!(edgemq.stop().success());
}

#[test]
fn a_session_connected_when_edgemq_is_killed_still_expires() {
    use common::raw::*;
    let dir = temp_dir();
    let edgemq = Edgemq::start(dir.path(), &[]);
    let two_seconds = [0x11, 0, 0, 0, 2];
    let (_connected, _) = connected_v5(&edgemq, 0x00, "was-here", &two_seconds);
    let (_forever, _) = connected_with(&edgemq, 4, 0x00, "stays");
    rows_eventually(&edgemq.db, "SELECT client_id FROM sessions", 2);
    edgemq.kill9();
    let edgemq = Edgemq::start(dir.path(), &[]);
    // It was saved while connected; it expires 2 s after that save.
    let left = rows_eventually(&edgemq.db, "SELECT client_id FROM sessions", 1);
    assert_eq!(left, [["stays"]], "the 3.1.1 session is kept for ever");
    let (_back, present) = connected_v5(&edgemq, 0x00, "was-here", &two_seconds);
    assert!(!present, "the expired session is gone");
    assert!(edgemq.stop().success());
}

#[test]
fn past_max_queued_messages_a_frozen_client_misses_the_newest_and_they_are_counted() {
    let dir = temp_dir();
    let config = "[mqtt]\nmax_inflight_messages = 10\nmax_queued_messages = 100\n";
    let edgemq = Edgemq::with_config(dir.path(), config);
    let mut slow = Sub::start(&edgemq, &["-q", "1", "-t", "limited/#"]);
    slow.signal(libc::SIGSTOP);
    publish_lines(&edgemq, "limited/x", "m", 1_000)
        .join()
        .unwrap();
    // 10 in flight and 100 waiting; the other 890 are not for it.
    wait_for(
        "890 messages dropped for the frozen client",
        std::time::Duration::from_secs(20),
        || match metric(&edgemq, r#"edgemq_dropped_total{reason="queue_limit"}"#) {
            Ok(890) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let sys = ["-t", "$SYS/broker/publish/messages/dropped", "-C", "1"];
    let mut dropped = Sub::start(&edgemq, &sys);
    assert_eq!(
        dropped.messages(1),
        ["$SYS/broker/publish/messages/dropped 890"]
    );
    slow.signal(libc::SIGCONT);
    let got = slow.stream(110, std::time::Duration::from_secs(10));
    all_in_order(&got, &["m"], 110);
    slow.nothing_more();
    assert!(edgemq
        .log_text()
        .contains("max_queued_messages or max_queued_bytes reached"));
    assert!(edgemq.stop().success());
}

#[test]
fn copies_the_router_skips_are_read_from_the_store() {
    // A router log of 1 KiB per filter: publishers outrun each session's reads, so the router
    // moves its read cursor past copies (rumqttd logs "Read cursor start jumped").
    const N: usize = 20_000;
    let dir = temp_dir();
    let config = "[router]\nmax_segment_size = 1024\nmax_segment_count = 1\n";
    let edgemq = Edgemq::with_config(dir.path(), config);
    let mut sub = Sub::start(&edgemq, &["-q", "1", "-t", "skip/#"]);
    // Two of its filters match every topic: each copy comes twice, from two logs.
    let mut overlapping = Sub::start(&edgemq, &["-q", "1", "-t", "skip/#", "-t", "skip/+"]);
    publish_lines(&edgemq, "skip/x", "m", N).join().unwrap();
    for sub in [&mut sub, &mut overlapping] {
        let got = sub.stream(N, std::time::Duration::from_secs(10));
        all_in_order(&got, &["m"], N);
        sub.nothing_more();
    }
    let skips = metric(&edgemq, "edgemq_router_skips_total").unwrap();
    assert!(skips > 0, "the router did skip, and the session noticed");
    assert!(edgemq.stop().success());
}
