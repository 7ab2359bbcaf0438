//! Noticing that the router skipped copies. Each router filter keeps a bounded log
//! (`[router] max_segment_size * max_segment_count`); a session that reads its link more
//! slowly than copies arrive (a starved task, a small budget) finds its read cursor moved past
//! copies it never got. The router says so only in its own log, but every copy carries its
//! offset in its filter's log, consecutive for one filter. A copy does not say which filter it
//! came through: it is put down to a matching filter whose last offset it follows (or one with
//! none yet), and when it follows none of them, a filter jumped. The session then reads the
//! gap from the store, as a session that fell behind does. A wrong guess costs a needless read
//! of the store, never a copy; a jump goes unseen only when it lands exactly after another
//! matching filter's last offset. Shared subscriptions, whose members each see part of their
//! log, cannot be checked this way.

use super::catchup::Mode;
use super::{shared_filter, Outgoing};
use crate::topic;
use std::collections::VecDeque;

impl Outgoing {
    /// Notes the log offset of a live copy of message `id` on `topic`; true when the router
    /// skipped copies before it (the session then reads them from the store).
    pub(super) fn router_skipped(&mut self, topic: &str, offset: u64, id: i64) -> bool {
        let mut matching = Vec::new();
        for s in &self.granted {
            if topic::matches(shared_filter(&s.filter), topic) {
                if s.filter.starts_with("$share/") {
                    return false;
                }
                matching.push(s.filter.as_str());
            }
        }
        let last = |f: &&str| self.offsets.get(*f).copied();
        let follows = matching
            .iter()
            .find(|f| last(f) == Some(offset.wrapping_sub(1)));
        let first = || matching.iter().find(|f| last(f).is_none());
        // A jump: put down to the filter whose last offset is closest below.
        let jumped = || {
            let below = matching
                .iter()
                .filter(|f| last(f).is_some_and(|l| l < offset));
            below.max_by_key(|f| last(f))
        };
        let (filter, skipped) = match follows.or_else(first) {
            Some(filter) => (filter.to_string(), false),
            None => match jumped() {
                Some(filter) => (filter.to_string(), true),
                None => return false,
            },
        };
        self.offsets.insert(filter, offset);
        if skipped && id > 0 {
            self.read_gap_from_store(id);
        }
        skipped
    }

    /// Copies before message `id` may be missing: everything after the cursor up to it is read
    /// from the log, and the session rejoins live from `id` on.
    fn read_gap_from_store(&mut self, id: i64) {
        let gap_through = self.cursor.max(id - 1);
        if let Mode::Live = self.mode {
            self.mode = Mode::catch_up(self.cursor, Some(gap_through), VecDeque::new());
        } else {
            self.rejoin_no_earlier_than(gap_through);
        }
    }

    /// The session's link into the router is new (or a filter was subscribed again): offsets
    /// start over.
    pub(super) fn forget_offsets(&mut self, filter: Option<&str>) {
        match filter {
            Some(filter) => {
                self.offsets.remove(filter);
            }
            None => self.offsets.clear(),
        }
    }
}
