//! What a session sends its client. The router holds the client's filters at QoS 0 and
//! forwards one copy per matching filter; here each message is taken once (by its stamp's id),
//! at the lower of the QoS it was published with and the highest QoS granted to a matching
//! filter. QoS 1 and 2 deliveries get this session's packet ids and stay in flight until the
//! client acknowledges them, at most `window` at a time; the rest wait, in order.
//!
//! The queue is bounded. When it is full the session falls back on the store: it remembers
//! the last id it took (`cursor`), keeps only the newest live copies in a ring, and reads the
//! log from the cursor in pages as the client makes room; once the pages reach what the ring
//! holds without a gap, it rejoins live there. A slow client gets everything, in order, and
//! memory stays bounded however far behind it is (`catchup`).

use crate::broker::names;
use crate::broker::retained::Kept;
use crate::broker::stamp::unstamp;
use crate::topic;
use bytes::Bytes;
use rumqttd::protocol::{Packet, Publish, PublishProperties, QoS};
use rumqttd::Forward;
use std::collections::{BTreeMap, HashMap, VecDeque};

mod catchup;
mod shared;
mod skips;
mod subscription;
mod window;
use catchup::{Mode, Replays};
pub use subscription::Subscription;

/// Ids of messages whose other copies are still to come, remembered at most this long.
const COPIES_REMEMBERED: usize = 4096;

/// One message on its way to the client.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub publish: Publish,
    pub properties: Option<PublishProperties>,
    pub qos: QoS,
    /// Its id in the store's log; 0 when it is not there (retained, edgemq's own).
    pub id: i64,
    /// Sent before (to a connection that is gone): DUP is set.
    pub dup: bool,
    /// When its MQTT 5 Message Expiry Interval runs out (unix ms), if it has one.
    pub expires_at: Option<i64>,
}

/// When a message received at `received_at` (unix ms) with these properties expires.
fn expires_at(properties: Option<&PublishProperties>, received_at: i64) -> Option<i64> {
    let seconds = properties?.message_expiry_interval?;
    Some(received_at.saturating_add(i64::from(seconds) * 1000))
}

/// A delivery the client has not acknowledged yet; `released` once its PUBREC came (QoS 2).
#[derive(Debug, Clone)]
struct InFlight {
    delivery: Delivery,
    released: bool,
}

/// What became of a forwarded copy.
#[derive(Debug, PartialEq, Eq)]
pub enum Accepted {
    Queued,
    /// Another copy of a message already taken (overlapping filters).
    Duplicate,
    /// No filter of the session matches any more (an UNSUBSCRIBE crossed it).
    Unmatched,
    /// The queue was full and the message is not in the store (edgemq's own publications).
    Dropped,
    /// Past the configured `max_queued_messages` / `max_queued_bytes`: not for this client.
    OverLimit,
    /// A shared subscription's copy with no room here: for another member of its group
    /// (`handovers`).
    HandedOver,
}

/// The configured limits on what may wait for a client (Mosquitto's `max_queued_messages`
/// and `max_queued_bytes`); None: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueLimits {
    pub messages: Option<usize>,
    pub bytes: Option<usize>,
}

/// A packet to write, and for a PUBLISH the QoS and packet id it goes out with.
pub enum Sending {
    Publish(Delivery, u16, bool),
    Other(Packet),
}

/// What a message is to the session: the QoS it goes out at, the identifiers of the matching
/// subscriptions, how many copies the router sends, whether a subscription that is not
/// replaying matched (so it may have been sent before), and whether it keeps its retain flag.
struct Matched {
    qos: QoS,
    ids: Vec<usize>,
    copies: usize,
    before: bool,
    as_published: bool,
    /// Only shared subscriptions take it: the router chose this member of their groups.
    shared_only: bool,
}

#[derive(Debug, Clone)]
pub struct Outgoing {
    granted: Vec<Subscription>,
    /// `publisher_key` of this session's client (No Local).
    own: u64,
    window: usize,
    in_flight: HashMap<u16, InFlight>,
    /// Packet ids in flight, in the order they were first sent.
    order: VecDeque<u16>,
    next_pkid: u16,
    waiting: VecDeque<Delivery>,
    /// Payload bytes in `waiting`.
    waiting_bytes: usize,
    limit: usize,
    limits: QueueLimits,
    /// Message id → copies still expected from the router.
    copies: BTreeMap<i64, usize>,
    /// The highest id of a stored message taken for the client.
    cursor: i64,
    /// Live copies up to this id are not taken: routed before the session subscribed, or
    /// already read from the log.
    skip_through: i64,
    /// QoS 0 deliveries up to this id were for a client that was away: not sent.
    qos0_skipped_through: i64,
    /// The highest id sent to the client (what comes again after a crash comes with DUP).
    sent_through: i64,
    /// The router holds the session's filters (false for a session restored from the store
    /// after a restart, until the session subscribes them again).
    pub router_subscribed: bool,
    mode: Mode,
    /// Subscriptions replaying the log (`catchup::Replays`).
    replays: Replays,
    /// Per filter, the log offset of the last live copy taken through it (`skips`).
    offsets: HashMap<String, u64>,
    /// Times the router was found to have skipped copies (read from the store instead).
    pub router_skips: u64,
    /// Shared subscriptions' deliveries for other members of their groups (`shared`).
    handing_over: Vec<Delivery>,
    /// Messages not delivered to this client, by reason.
    pub drops: BTreeMap<&'static str, u64>,
}

impl Outgoing {
    /// At most `window` QoS 1/2 deliveries unacknowledged, `limit` waiting behind them.
    pub fn new(window: usize, limit: usize) -> Outgoing {
        Outgoing {
            granted: Vec::new(),
            own: 0,
            window: window.max(1),
            in_flight: HashMap::new(),
            order: VecDeque::new(),
            next_pkid: 1,
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            limit,
            limits: QueueLimits::default(),
            copies: BTreeMap::new(),
            cursor: 0,
            skip_through: 0,
            qos0_skipped_through: 0,
            sent_through: 0,
            router_subscribed: true,
            mode: Mode::Live,
            replays: Replays::default(),
            offsets: HashMap::new(),
            router_skips: 0,
            handing_over: Vec::new(),
            drops: BTreeMap::new(),
        }
    }

    /// A session saved in the store: its filters, and the log read from `acked_through` when
    /// its client comes back (what was sent before, through `sent_through`, with DUP).
    pub fn restored(
        limit: usize,
        subscriptions: &[(String, u8, Option<usize>)],
        acked_through: i64,
        sent_through: i64,
    ) -> Outgoing {
        let mut restored = Outgoing::new(1, limit);
        for (filter, qos, id) in subscriptions {
            restored.grant(Subscription::restored(&(filter.clone(), *qos, *id)));
        }
        restored.cursor = acked_through;
        restored.skip_through = acked_through;
        restored.sent_through = sent_through;
        restored.router_subscribed = false;
        restored
    }

    /// The subscriptions, as saved.
    pub fn subscriptions(&self) -> Vec<(String, u8, Option<usize>)> {
        self.granted.iter().map(Subscription::saved).collect()
    }

    /// The subscriptions, as granted.
    pub fn granted(&self) -> &[Subscription] {
        &self.granted
    }

    /// Deliveries in flight, waiting, and the payload bytes waiting.
    pub fn load(&self) -> (usize, usize, usize) {
        (self.in_flight.len(), self.waiting.len(), self.waiting_bytes)
    }

    /// Whose session this is (for No Local).
    pub fn own(&mut self, client_id: &str) {
        self.own = crate::broker::stamp::publisher_key(client_id);
    }

    /// Every message up to this id was delivered and acknowledged (or was not for the client).
    pub fn acked_through(&self) -> i64 {
        let pending = self.in_flight.values().map(|f| f.delivery.id);
        let lowest = pending
            .chain(self.waiting.iter().map(|d| d.id))
            .filter(|id| *id > 0)
            .min();
        lowest.map_or(self.cursor, |id| (id - 1).min(self.cursor))
    }

    /// The highest id sent to the client.
    pub fn sent_through(&self) -> i64 {
        self.sent_through
    }

    /// Applies the configured limits on what may wait for the client.
    pub fn limit_queue(&mut self, limits: QueueLimits) {
        self.limits = limits;
    }

    /// Whether one more message would wait past a configured limit.
    fn over_limits(&self) -> bool {
        let QueueLimits { messages, bytes } = self.limits;
        messages.is_some_and(|max| self.waiting.len() >= max)
            || bytes.is_some_and(|max| self.waiting_bytes >= max)
    }

    /// Puts a delivery at the back of the queue.
    fn queue(&mut self, delivery: Delivery) {
        self.waiting_bytes += delivery.publish.payload.len();
        self.waiting.push_back(delivery);
    }

    /// Takes the delivery at the front of the queue.
    fn unqueue(&mut self) -> Option<Delivery> {
        let delivery = self.waiting.pop_front()?;
        self.waiting_bytes -= delivery.publish.payload.len();
        Some(delivery)
    }

    /// Messages up to `id` were routed before the session subscribed: not for it.
    pub fn start_after(&mut self, id: i64) {
        if self.cursor == 0 {
            self.cursor = id;
            self.skip_through = id;
        }
    }

    /// Adds a subscription, or replaces the one with its filter ([MQTT-3.8.4-3]); whether
    /// that filter was subscribed already.
    pub fn grant(&mut self, subscription: Subscription) -> bool {
        self.forget_offsets(Some(&subscription.filter));
        match self
            .granted
            .iter_mut()
            .find(|s| s.filter == subscription.filter)
        {
            Some(entry) => {
                *entry = subscription;
                true
            }
            None => {
                self.granted.push(subscription);
                false
            }
        }
    }

    /// Whether `filter` was subscribed.
    pub fn revoke(&mut self, filter: &str) -> bool {
        self.forget_offsets(Some(filter));
        self.replays.forget(filter);
        let before = self.granted.len();
        self.granted.retain(|s| s.filter != filter);
        self.granted.len() < before
    }

    /// What a message on `topic` from `publisher` (a `publisher_key`) is to the session: the
    /// highest QoS granted to a matching subscription, the identifiers of all of them; None
    /// when none takes it. `logged`: its id when read from the log, where a replay may leave out
    /// what a subscription already had, and shared subscriptions take nothing (the router gave
    /// the group's messages to its members). The router sends one copy per matching filter, No
    /// Local or not.
    fn matching(&self, topic: &str, publisher: u64, logged: Option<i64>) -> Option<Matched> {
        let mut found: Option<Matched> = None;
        let mut copies = 0;
        let own = publisher != 0 && publisher == self.own;
        for s in &self.granted {
            if !topic::matches(shared_filter(&s.filter), topic) {
                continue;
            }
            let shared = s.filter.starts_with("$share/");
            if shared && logged.is_some() {
                continue;
            }
            // A shared subscription's copy comes only to the member the router chose; a copy
            // cannot tell which filter it came through, so one that a non-shared filter also
            // matches is taken once.
            copies += 1;
            let replaying = self.replays.floor(&s.filter);
            if logged.is_some_and(|logged| logged <= replaying.unwrap_or(self.replays.others))
                || (s.no_local && own)
            {
                continue;
            }
            let m = found.get_or_insert(Matched {
                qos: s.qos,
                ids: Vec::new(),
                copies: 0,
                before: false,
                as_published: false,
                shared_only: true,
            });
            m.qos = higher(m.qos, s.qos);
            m.ids.extend(s.id);
            m.before |= replaying.is_none();
            m.as_published |= s.as_published;
            m.shared_only &= shared;
        }
        if let Some(m) = &mut found {
            m.copies = copies;
            m.ids.sort_unstable();
            m.ids.dedup();
        }
        found
    }

    /// Takes a copy the router forwarded: once per message, at the QoS the client gets.
    pub fn accept(&mut self, mut forward: Forward) -> Accepted {
        let (stamp, properties) = unstamp(forward.properties);
        forward.publish.topic = names::topic_from_router(&forward.publish.topic);
        let topic = String::from_utf8_lossy(&forward.publish.topic).into_owned();
        if let (Some((_, offset)), Some(stamp)) = (forward.cursor, stamp) {
            if self.router_skipped(&topic, offset, stamp.id) {
                self.router_skips += 1;
            }
        }
        let publisher = stamp.map_or(0, |s| s.publisher);
        let Some(matched) = self.matching(&topic, publisher, None) else {
            return Accepted::Unmatched;
        };
        let Matched {
            qos: granted,
            ids,
            copies,
            as_published,
            shared_only,
            ..
        } = matched;
        // [MQTT-3.3.1-12/13] Live copies go out with retain 0 unless Retain As Published.
        forward.publish.retain = as_published && stamp.is_some_and(|s| s.retain);
        // A retained message sent for a new subscription comes once (no cursor).
        if let (Some(stamp), Some(_)) = (stamp, forward.cursor) {
            if self.another_copy(stamp.id, copies) {
                return Accepted::Duplicate;
            }
        }
        let published = stamp.map_or(QoS::AtMostOnce, |s| qos_of(s.qos));
        // A retained message sent for a new subscription is not part of the live log.
        let id = match forward.cursor {
            Some(_) => stamp.map_or(0, |s| s.id),
            None => 0,
        };
        let received_at = stamp.map_or(0, |s| s.received_at);
        let delivery = Delivery {
            expires_at: expires_at(properties.as_ref(), received_at),
            publish: forward.publish,
            properties: with_identifiers(properties, ids),
            qos: lower(published, granted),
            id: id.max(0),
            dup: false,
        };
        if shared_only && id > 0 {
            return self.take_shared(delivery);
        }
        self.take(id, delivery)
    }

    /// A retained message for a new subscription granted `granted` (with identifier `id`):
    /// sent whatever waits.
    pub fn retained(&mut self, topic: String, kept: Kept, granted: QoS, id: Option<usize>) {
        self.queue(Delivery {
            expires_at: expires_at(kept.properties.as_ref(), kept.at),
            publish: Publish::new(Bytes::from(topic), kept.payload, true),
            properties: with_identifiers(kept.properties, id.into_iter().collect()),
            qos: lower(qos_of(kept.qos), granted),
            id: 0,
            dup: false,
        });
    }

    /// A live copy of message `id` (0 or less: not to be read from the log).
    fn take(&mut self, id: i64, delivery: Delivery) -> Accepted {
        let full = self.waiting.len() >= self.limit;
        if id <= 0 {
            if full {
                return Accepted::Dropped;
            }
            if self.over_limits() {
                return Accepted::OverLimit;
            }
            self.queue(delivery);
            return Accepted::Queued;
        }
        if self.catching_up() {
            self.keep_in_ring(id, delivery);
        } else if id <= self.skip_through {
            return Accepted::Duplicate;
        } else if self.over_limits() {
            self.cursor = self.cursor.max(id);
            return Accepted::OverLimit;
        } else if full {
            self.fall_behind(id, delivery);
        } else {
            self.cursor = self.cursor.max(id);
            self.queue(delivery);
        }
        Accepted::Queued
    }

    /// Whether message `id` was already taken from another of its `copies` copies.
    fn another_copy(&mut self, id: i64, copies: usize) -> bool {
        if let Some(left) = self.copies.get_mut(&id) {
            *left -= 1;
            if *left == 0 {
                self.copies.remove(&id);
            }
            return true;
        }
        if copies > 1 {
            self.copies.insert(id, copies - 1);
            while self.copies.len() > COPIES_REMEMBERED {
                self.copies.pop_first();
            }
        }
        false
    }
}

/// The filter a `$share/group/filter` subscription matches with.
pub(super) fn shared_filter(filter: &str) -> &str {
    match filter.strip_prefix("$share/") {
        Some(rest) => rest.split_once('/').map_or(rest, |(_, f)| f),
        None => filter,
    }
}

fn qos_of(n: u8) -> QoS {
    rumqttd::protocol::qos(n).unwrap_or(QoS::AtMostOnce)
}

fn higher(a: QoS, b: QoS) -> QoS {
    if a >= b {
        a
    } else {
        b
    }
}

/// The properties a delivery goes out with: the publisher's, with the subscription
/// identifiers of the client's matching filters (none, when none was given).
fn with_identifiers(
    properties: Option<PublishProperties>,
    ids: Vec<usize>,
) -> Option<PublishProperties> {
    let mut properties = properties.unwrap_or_default();
    properties.subscription_identifiers = ids;
    (properties != PublishProperties::default()).then_some(properties)
}

fn lower(a: QoS, b: QoS) -> QoS {
    if a <= b {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests;
