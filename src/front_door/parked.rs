//! What a persistent session keeps while its client is away: its filters and the QoS granted
//! to each, how far it has read the log, and the deliveries not yet acknowledged (the router
//! keeps nothing; the session reads what it missed from the store when it resumes). A session
//! that ends parks them; the next connection with the client id takes them, waiting a moment
//! for a session that is still ending (a takeover). Sessions whose expiry passes are removed,
//! here and from the store (`expire_sessions`).

use super::session::Outgoing;
use crate::store::SavedSession;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How long a new connection waits for the session it takes over to hand its state on.
const TAKEOVER_WAIT: Duration = Duration::from_secs(3);

enum Slot {
    /// A connection serves the session; its number.
    Live(u64),
    /// Kept for its client until the deadline (None: for ever).
    Parked(Box<Outgoing>, Option<Instant>),
}

#[derive(Default)]
pub struct Parked {
    slots: Mutex<HashMap<Arc<str>, Slot>>,
    changed: Notify,
    connections: AtomicU64,
}

impl Parked {
    /// Marks `client_id` as served by a new connection, and gives it the session's state when
    /// it resumes one (`resume`: not a clean start, and the router kept the session).
    pub async fn claim(&self, client_id: &Arc<str>, resume: bool) -> (u64, Option<Outgoing>) {
        let connection = self.connections.fetch_add(1, Relaxed) + 1;
        let deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
        loop {
            let changed = self.changed.notified();
            {
                let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                let live = matches!(slots.get(client_id), Some(Slot::Live(_)));
                if !live || !resume || tokio::time::Instant::now() >= deadline {
                    let previous = slots.insert(client_id.clone(), Slot::Live(connection));
                    let state = match previous {
                        Some(Slot::Parked(state, deadline)) if resume && !passed(deadline) => {
                            Some(*state)
                        }
                        _ => None,
                    };
                    return (connection, state);
                }
            }
            let _ = tokio::time::timeout_at(deadline, changed).await;
        }
    }

    /// Sessions saved in the store by an earlier run, parked until their clients come back.
    pub fn restore(&self, sessions: Vec<SavedSession>, limit: usize) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let now = crate::clock::now_ms();
        for s in sessions {
            let state =
                Outgoing::restored(limit, &s.subscriptions, s.acked_through, s.sent_through);
            let left = s
                .expires_at
                .map(|at| Duration::from_millis((at - now).max(0) as u64));
            let deadline = left.map(|d| Instant::now() + d);
            slots.insert(
                Arc::from(s.client_id),
                Slot::Parked(Box::new(state), deadline),
            );
        }
    }

    /// The session served by `connection` ended: its state is kept for the next connection
    /// for `expiry` (None: for ever; `state` None: a clean session, forgotten), unless another
    /// connection took over already.
    pub fn park(
        &self,
        client_id: &Arc<str>,
        connection: u64,
        state: Option<Outgoing>,
        expiry: Option<Duration>,
    ) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(slots.get(client_id), Some(Slot::Live(c)) if *c == connection) {
            return;
        }
        match state {
            Some(state) => {
                let deadline = expiry.map(|e| Instant::now() + e);
                slots.insert(client_id.clone(), Slot::Parked(Box::new(state), deadline))
            }
            None => slots.remove(client_id),
        };
        drop(slots);
        self.changed.notify_waiters();
    }
}

impl Parked {
    /// Forgets the session kept for `client_id` while it is away; false when none is.
    pub fn forget(&self, client_id: &str) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(slots.get(client_id), Some(Slot::Parked(..))) {
            return false;
        }
        slots.remove(client_id);
        true
    }

    /// Forgets every parked session whose expiry has passed; their client ids.
    pub fn take_expired(&self) -> Vec<Arc<str>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut expired = Vec::new();
        slots.retain(|client_id, slot| match slot {
            Slot::Parked(_, deadline) if passed(*deadline) => {
                expired.push(client_id.clone());
                false
            }
            _ => true,
        });
        expired
    }
}

fn passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}
