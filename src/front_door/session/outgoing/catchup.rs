//! Catching up from the store, for a session whose queue is full or that resumes: the newest
//! live copies wait in a ring while pages of the log are read from the cursor, and the session
//! rejoins live once the pages pass what the ring let go of.
//!
//! A subscription that replays the past (`replay-from`) is the same path: the session rewinds
//! its reading to the replay's start, where each filter it had takes only what it had not been
//! given yet, and it rejoins live no earlier than the id the router had routed when it
//! subscribed the new filter, so the seam has no gap and no duplicate.

use super::{lower, qos_of, with_identifiers, Delivery, Outgoing};
use crate::broker::stamp::publisher_key;
use crate::query::log::Logged;
use bytes::Bytes;
use rumqttd::protocol::{Publish, QoS};
use std::collections::{HashMap, VecDeque};

/// Ids of the log read per page while catching up.
const PAGE_IDS: i64 = 2_000;
/// Live copies kept while catching up (the newest).
const RING: usize = 2_000;

/// Subscriptions replaying the log, until the session is live again.
#[derive(Debug, Clone)]
pub(super) struct Replays {
    /// Each replaying filter's floor: it takes logged messages after this id.
    floors: HashMap<String, i64>,
    /// The floor of every other filter: what it had been given when a replay rewound.
    pub others: i64,
    /// Replays whose router SUBACK has not come yet: no rejoining live before it.
    pending: usize,
    /// A page being read when a replay rewound is thrown away (it is read again).
    discard_page: bool,
}

impl Default for Replays {
    fn default() -> Self {
        Replays {
            floors: HashMap::new(),
            others: i64::MIN,
            pending: 0,
            discard_page: false,
        }
    }
}

impl Replays {
    pub fn floor(&self, filter: &str) -> Option<i64> {
        self.floors.get(filter).copied()
    }

    pub fn forget(&mut self, filter: &str) {
        self.floors.remove(filter);
    }
}

impl Mode {
    /// Reading the log after `after`, rejoining live no earlier than `evicted_through` (None:
    /// not before the first live copy or the committed head), `ring` holding live copies.
    pub(super) fn catch_up(
        after: i64,
        evicted_through: Option<i64>,
        ring: VecDeque<(i64, Delivery)>,
    ) -> Mode {
        Mode::CatchUp {
            after,
            ring,
            evicted_through,
            reading: false,
        }
    }
}

/// Whether the session takes live copies or reads the log.
#[derive(Debug, Clone)]
pub(super) enum Mode {
    Live,
    CatchUp {
        /// Every message up to this id has been read from the log.
        after: i64,
        /// The newest live copies, by id.
        ring: VecDeque<(i64, Delivery)>,
        /// Pages must pass this id before rejoining live: the highest id the ring let go of,
        /// or, for a resumed session, the id before the first live copy (`None` until one
        /// comes: what the router kept for the absent client may have gaps).
        evicted_through: Option<i64>,
        /// A page is being read.
        reading: bool,
    },
}

impl Outgoing {
    /// A resumed session: its new connection's window, and what was published while its client
    /// was away read from the log (the router's own queue for it is bounded), from the last
    /// message it took.
    /// Unless `queue_qos0`, what would reach the client at QoS 0 and was routed while it was away
    /// (through `away_through`) is left out, as Mosquitto does.
    pub fn resume(&mut self, window: usize, away_through: i64, queue_qos0: bool) {
        self.window = window.max(1);
        self.qos0_skipped_through = if queue_qos0 { 0 } else { away_through };
        // Its link into the router is new.
        self.router_subscribed = false;
        self.forget_offsets(None);
        if let Mode::Live = self.mode {
            self.mode = Mode::catch_up(self.cursor, None, VecDeque::with_capacity(RING));
        }
    }

    /// The queue is full at live copy `id`: from here the log is read from the cursor.
    pub(super) fn fall_behind(&mut self, id: i64, delivery: Delivery) {
        let mut ring = VecDeque::with_capacity(RING);
        ring.push_back((id, delivery));
        self.mode = Mode::catch_up(self.cursor, Some(self.cursor), ring);
    }

    /// While catching up, the session rejoins live no earlier than `id`.
    pub(super) fn rejoin_no_earlier_than(&mut self, id: i64) {
        if let Mode::CatchUp {
            evicted_through, ..
        } = &mut self.mode
        {
            *evicted_through = Some(evicted_through.map_or(id, |e| e.max(id)));
        }
    }

    /// A live copy while catching up: kept among the newest.
    pub(super) fn keep_in_ring(&mut self, id: i64, delivery: Delivery) {
        let Mode::CatchUp {
            ring,
            evicted_through,
            ..
        } = &mut self.mode
        else {
            return;
        };
        ring.push_back((id, delivery));
        let through = evicted_through.get_or_insert(id - 1);
        if ring.len() > RING {
            if let Some((old, _)) = ring.pop_front() {
                *through = (*through).max(old);
            }
        }
    }

    /// Whether the session is reading the log.
    pub fn catching_up(&self) -> bool {
        matches!(self.mode, Mode::CatchUp { .. })
    }

    /// Ids of the log still to read, up to `committed`, while catching up.
    pub fn behind(&self, committed: i64) -> i64 {
        match &self.mode {
            Mode::CatchUp { after, .. } => (committed - after).max(0),
            Mode::Live => 0,
        }
    }

    /// The page of the log to read next, `(after, through]`, when there is room for it and
    /// something committed to read; the caller reads it and hands it to `page`.
    pub fn next_page(&mut self, committed: i64) -> Option<(i64, i64)> {
        let room = self.waiting.len() + PAGE_IDS as usize <= self.limit;
        match &mut self.mode {
            Mode::CatchUp { after, reading, .. } if !*reading && room && *after < committed => {
                *reading = true;
                Some((*after, committed.min(*after + PAGE_IDS)))
            }
            Mode::CatchUp { after, reading, .. } if !*reading && *after >= committed => {
                let after = *after;
                self.rejoin(after, true);
                None
            }
            _ => None,
        }
    }

    /// `filter`, just granted, replays the log from id `from`: the session reads the log again
    /// from there (its other filters only past what they were given), until the router has
    /// subscribed the filter (`replay_subscribed`) and the pages have caught up.
    pub fn replay(&mut self, filter: &str, from: i64) {
        let read_through = match &self.mode {
            Mode::Live => self.cursor,
            Mode::CatchUp { after, .. } => *after,
        };
        // Every filter had what the log holds through `read_through`.
        self.replays.others = self.replays.others.max(read_through);
        for floor in self.replays.floors.values_mut() {
            *floor = (*floor).max(read_through);
        }
        self.replays.floors.insert(filter.to_string(), from - 1);
        self.replays.pending += 1;
        match &mut self.mode {
            Mode::Live => {
                let after = (from - 1).min(read_through);
                self.mode = Mode::catch_up(after, Some(read_through), VecDeque::with_capacity(RING))
            }
            Mode::CatchUp { after, reading, .. } => {
                self.replays.discard_page |= *reading;
                *after = (*after).min(from - 1);
            }
        }
    }

    /// The router subscribed a replaying filter when it had routed through `routed`: the
    /// session goes live no earlier than that.
    pub fn replay_subscribed(&mut self, routed: i64) {
        self.replays.pending = self.replays.pending.saturating_sub(1);
        self.rejoin_no_earlier_than(routed);
    }

    /// A page of the log, `(after, through]`: what the client's filters match goes to the
    /// queue; once the pages have passed what the ring let go of, the session is live again.
    pub fn page(&mut self, rows: Vec<Logged>, through: i64) -> usize {
        if std::mem::take(&mut self.replays.discard_page) {
            if let Mode::CatchUp { reading, .. } = &mut self.mode {
                *reading = false;
            }
            return 0;
        }
        let before = self.waiting.len();
        for row in rows {
            let publisher = row.client_id.as_deref().map_or(0, publisher_key);
            let Some(m) = self.matching(&row.topic, publisher, Some(row.id)) else {
                continue;
            };
            let qos = lower(qos_of(row.qos), m.qos);
            if qos == QoS::AtMostOnce && row.id <= self.qos0_skipped_through {
                continue;
            }
            let retain = m.as_published && row.retain;
            let publish = Publish::new(Bytes::from(row.topic), Bytes::from(row.payload), retain);
            self.queue(Delivery {
                expires_at: super::expires_at(row.properties.as_ref(), row.received_at),
                publish,
                properties: with_identifiers(row.properties, m.ids),
                qos,
                id: row.id,
                dup: m.before && row.id <= self.sent_through,
            });
        }
        self.cursor = self.cursor.max(through);
        let taken = self.waiting.len() - before;
        let Mode::CatchUp { after, reading, .. } = &mut self.mode else {
            return taken;
        };
        *after = through;
        *reading = false;
        self.rejoin(through, false);
        taken
    }

    /// Goes live again once the log has been read through `through`, if the ring holds every
    /// live copy after it and the queue has room for them. While no live copy has come (a
    /// resumed session), only the committed head (`at_head`) is such a point.
    fn rejoin(&mut self, through: i64, at_head: bool) {
        let Mode::CatchUp {
            ring,
            evicted_through,
            ..
        } = &mut self.mode
        else {
            return;
        };
        let gap_until = match evicted_through {
            _ if self.replays.pending > 0 => return,
            Some(id) => *id,
            None if at_head => i64::MIN,
            None => return,
        };
        if through < gap_until || self.waiting.len() + ring.len() > self.limit {
            return;
        }
        let ring = std::mem::take(ring);
        self.mode = Mode::Live;
        self.replays = Replays::default();
        self.skip_through = through;
        for (id, delivery) in ring {
            let away = delivery.qos == QoS::AtMostOnce && id <= self.qos0_skipped_through;
            if id > through && !away {
                self.cursor = self.cursor.max(id);
                self.queue(delivery);
            }
        }
    }

    /// A page could not be read: it is asked for again.
    pub fn page_failed(&mut self) {
        self.replays.discard_page = false;
        if let Mode::CatchUp { reading, .. } = &mut self.mode {
            *reading = false;
        }
    }
}
