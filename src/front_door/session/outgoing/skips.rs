//! Noticing that the router skipped copies. Each router filter keeps a bounded log
//! (`[router] max_segment_size * max_segment_count`); a session that reads its link more
//! slowly than copies arrive (a starved task, a small budget) finds its read cursor moved past
//! copies it never got. The router says so only in its own log, but every copy carries its
//! offset in its filter's log, consecutive for one filter: a copy whose topic only one of the
//! session's filters matches shows a jump. The session then reads the gap from the store, as a
//! session that fell behind does. (Copies that several filters match, and shared
//! subscriptions, whose members each see part of the log, cannot be told apart this way.)

use super::catchup::Mode;
use super::{shared_filter, Outgoing};
use crate::topic;
use std::collections::VecDeque;

impl Outgoing {
    /// Notes the log offset of a live copy of message `id` on `topic`; true when the router
    /// skipped copies before it (the session then reads them from the store).
    pub(super) fn router_skipped(&mut self, topic: &str, offset: u64, id: i64) -> bool {
        let mut only = None;
        for s in &self.granted {
            if topic::matches(shared_filter(&s.filter), topic) {
                if only.is_some() || s.filter.starts_with("$share/") {
                    return false;
                }
                only = Some(s.filter.as_str());
            }
        }
        let Some(filter) = only else {
            return false;
        };
        let previous = self.offsets.insert(filter.to_string(), offset);
        let skipped = previous.is_some_and(|p| offset > p + 1);
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
