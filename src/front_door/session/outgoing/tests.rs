//! The session's delivery rules, without a socket: QoS, overlaps, the window, limits, replay.

use super::*;
use crate::broker::stamp::{stamp, Stamp};

thread_local! {
    /// Each topic's copies come with consecutive log offsets, as from a router that skips none.
    static OFFSETS: std::cell::RefCell<HashMap<String, u64>> = Default::default();
}

fn forward(topic: &str, id: i64, qos: u8) -> Forward {
    let offset = OFFSETS.with(|o| {
        let mut o = o.borrow_mut();
        let next = o.entry(topic.to_string()).or_insert(0);
        *next += 1;
        *next
    });
    Forward {
        cursor: Some((0, offset)),
        size: 0,
        publish: Publish::new(topic.to_string(), "x".to_string(), false),
        properties: Some(stamp(
            None,
            Stamp {
                id,
                qos,
                received_at: 0,
                retain: false,
                publisher: 0,
            },
        )),
    }
}

fn sent_qos(out: &mut Outgoing) -> Vec<(QoS, u16)> {
    std::iter::from_fn(|| out.next_to_send())
        .map(|send| match send {
            Sending::Publish(d, pkid, _) => (d.qos, pkid),
            Sending::Other(p) => panic!("{p:?}"),
        })
        .collect()
}

#[test]
fn qos_is_the_lower_of_published_and_granted_and_overlaps_give_one_copy() {
    let mut out = Outgoing::new(10, 100);
    out.grant(Subscription::new("a/#", QoS::AtMostOnce, None));
    out.grant(Subscription::new("a/b", QoS::ExactlyOnce, None));
    out.grant(Subscription::new("$share/g/a/+", QoS::AtLeastOnce, None));
    // Three filters match a/b: one copy is taken, two are duplicates.
    assert_eq!(out.accept(forward("a/b", 1, 2)), Accepted::Queued);
    assert_eq!(out.accept(forward("a/b", 1, 2)), Accepted::Duplicate);
    assert_eq!(out.accept(forward("a/b", 2, 0)), Accepted::Queued);
    assert_eq!(out.accept(forward("a/b", 1, 2)), Accepted::Duplicate);
    assert_eq!(out.accept(forward("a/c", 3, 2)), Accepted::Queued);
    assert_eq!(out.accept(forward("x", 4, 2)), Accepted::Unmatched);
    assert_eq!(
        sent_qos(&mut out),
        [
            (QoS::ExactlyOnce, 1),
            (QoS::AtMostOnce, 0),
            (QoS::AtLeastOnce, 2)
        ]
    );
}

#[test]
fn the_window_holds_the_rest_until_acknowledged() {
    let mut out = Outgoing::new(2, 100);
    out.grant(Subscription::new("#", QoS::AtLeastOnce, None));
    for id in 1..=4 {
        out.accept(forward("t", id, 1));
    }
    assert_eq!(sent_qos(&mut out).len(), 2);
    assert!(out.completed(1));
    assert!(!out.completed(1));
    assert_eq!(sent_qos(&mut out), [(QoS::AtLeastOnce, 3)]);
    let resent: Vec<(u16, bool)> = out
        .resend()
        .into_iter()
        .map(|s| match s {
            Sending::Publish(_, pkid, dup) => (pkid, dup),
            Sending::Other(_) => (0, false),
        })
        .collect();
    assert_eq!(resent, [(2, true), (3, true)]);
}

#[test]
fn past_the_byte_limit_newer_messages_are_not_for_the_client_until_it_drains() {
    let mut out = Outgoing::new(1, 100);
    out.grant(Subscription::new("#", QoS::AtLeastOnce, None));
    out.limit_queue(QueueLimits {
        messages: None,
        bytes: Some(2),
    });
    assert_eq!(out.accept(forward("t", 1, 1)), Accepted::Queued);
    assert_eq!(out.accept(forward("t", 2, 1)), Accepted::Queued);
    assert_eq!(out.accept(forward("t", 3, 1)), Accepted::OverLimit);
    // One goes in flight: there is room for one more.
    assert_eq!(sent_qos(&mut out).len(), 1);
    assert_eq!(out.accept(forward("t", 4, 1)), Accepted::Queued);
    assert_eq!(out.accept(forward("t", 5, 1)), Accepted::OverLimit);
    assert!(out.completed(1));
    let ids: Vec<i64> = std::iter::from_fn(|| match out.next_to_send()? {
        Sending::Publish(d, pkid, _) => {
            out.completed(pkid);
            Some(d.id)
        }
        Sending::Other(_) => None,
    })
    .collect();
    assert_eq!(ids, [2, 4]);
    assert_eq!(out.acked_through(), 5, "what was not for it is passed");
}

fn logged(id: i64, topic: &str) -> crate::query::log::Logged {
    crate::query::log::Logged {
        id,
        topic: topic.into(),
        payload: b"x".to_vec(),
        qos: 1,
        properties: None,
        received_at: 0,
        client_id: None,
        retain: false,
    }
}

fn sent_ids(out: &mut Outgoing) -> Vec<i64> {
    std::iter::from_fn(|| match out.next_to_send()? {
        Sending::Publish(d, pkid, _) => {
            out.completed(pkid);
            Some(d.id)
        }
        Sending::Other(_) => None,
    })
    .collect()
}

#[test]
fn a_replay_gives_the_new_filter_its_past_and_no_filter_a_message_twice() {
    let mut out = Outgoing::new(10, 10_000);
    out.grant(Subscription::new("a/#", QoS::AtLeastOnce, None));
    out.accept(forward("a/x", 1, 1));
    out.accept(forward("a/x", 3, 1));
    assert_eq!(sent_ids(&mut out), [1, 3]);
    // b/# replays from id 1; the log holds 1..=4, b's 2 and 4 among them.
    out.grant(Subscription::new("b/#", QoS::AtLeastOnce, None));
    out.replay("b/#", 1);
    assert_eq!(out.next_page(4), Some((0, 4)));
    let rows = [(1, "a/x"), (2, "b/x"), (3, "a/x"), (4, "b/x")];
    out.page(rows.iter().map(|(id, t)| logged(*id, t)).collect(), 4);
    assert_eq!(sent_ids(&mut out), [2, 4], "a/# had 1 and 3 already");
    // At the committed head, but the router has not subscribed b/# yet: not live.
    assert_eq!(out.next_page(4), None);
    assert!(out.catching_up());
    // Copies routed meanwhile wait in the ring; the router had routed through 5.
    out.accept(forward("b/x", 5, 1));
    out.replay_subscribed(5);
    assert_eq!(out.next_page(5), Some((4, 5)));
    out.page(vec![logged(5, "b/x")], 5);
    out.accept(forward("b/x", 6, 1));
    assert!(!out.catching_up());
    assert_eq!(sent_ids(&mut out), [5, 6], "each once, in order");
}

/// A QoS 1 copy of message `id` at `offset` in its filter's log.
fn at(topic: &str, id: i64, offset: u64) -> Forward {
    Forward {
        cursor: Some((0, offset)),
        ..forward(topic, id, 1)
    }
}

#[test]
fn a_jump_in_a_filters_log_offsets_reads_the_gap_from_the_store() {
    let mut out = Outgoing::new(10, 10_000);
    out.grant(Subscription::new("a/#", QoS::AtLeastOnce, None));
    out.accept(at("a/x", 1, 7));
    out.accept(at("a/x", 2, 8));
    assert!(!out.catching_up());
    // Offsets 9 and 10 (ids 3 and 4) never came: the router skipped them.
    out.accept(at("a/x", 5, 11));
    assert!(out.catching_up());
    assert_eq!(out.router_skips, 1);
    assert_eq!(out.next_page(5), Some((2, 5)));
    out.page(
        vec![logged(3, "a/x"), logged(4, "a/x"), logged(5, "a/x")],
        5,
    );
    assert!(!out.catching_up(), "live again after the gap");
    assert_eq!(sent_ids(&mut out), [1, 2, 3, 4, 5]);
}

#[test]
fn a_jump_is_seen_on_topics_several_filters_match() {
    let mut out = Outgoing::new(10, 10_000);
    out.grant(Subscription::new("a/#", QoS::AtLeastOnce, None));
    out.grant(Subscription::new("a/b", QoS::AtLeastOnce, None));
    // `a/#` also has a/c, so its offsets run ahead of `a/b`'s; each a/b comes twice, one
    // filter's batch after the other's.
    for (topic, id, offset) in [("a/c", 1, 1), ("a/b", 2, 2), ("a/b", 3, 3)] {
        out.accept(at(topic, id, offset));
    }
    for (id, offset) in [(2, 1), (3, 2)] {
        assert_eq!(out.accept(at("a/b", id, offset)), Accepted::Duplicate);
    }
    assert_eq!(out.router_skips, 0, "no skip in consecutive offsets");
    // `a/b`'s log jumps from 2 to 5 (ids 4 and 5 skipped), then `a/#` sends all three. Which
    // filter jumped is a guess: a wrong one costs a second read of the store, nothing more.
    out.accept(at("a/b", 6, 5));
    assert!(out.router_skips >= 1 && out.catching_up());
    for (id, offset) in [(4, 4), (5, 5), (6, 6)] {
        out.accept(at("a/b", id, offset));
    }
    while let Some((after, through)) = out.next_page(6) {
        let rows = (after + 1..=through).map(|id| logged(id, "a/b")).collect();
        out.page(rows, through);
    }
    assert!(!out.catching_up());
    assert_eq!(
        sent_ids(&mut out),
        [1, 2, 3, 4, 5, 6],
        "each once, in order"
    );
}
