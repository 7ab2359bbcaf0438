//! Sessions you can see: a view of every session, connected or kept for a client that is away,
//! for `/api/v1/sessions`. Each connected session refreshes its own entry about once a second
//! (in flight, waiting, how far behind), and on connecting and leaving; a kept session's entry
//! stays until it expires or is ended. Ending one through the API: a connected session is told
//! to close (`kick`), a kept one is forgotten here, in `Parked` and in the store.
//!
//! Connected sessions also take deliveries from other members of their shared subscriptions'
//! groups here (`hand_over`), the member with the least waiting first.

use super::session::Delivery;
use crate::metrics::Metrics;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Notify;

/// One subscription as shown.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SubscriptionView {
    pub filter: String,
    pub qos: u8,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub subscription_identifier: Option<usize>,
}

/// One session as shown.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionView {
    pub client_id: String,
    pub username: Option<String>,
    /// "3.1", "3.1.1" or "5"; None for a session restored from the store.
    pub protocol: Option<&'static str>,
    pub connected: bool,
    /// Kept when its client leaves (clean session off, or an MQTT 5 session expiry).
    pub persistent: bool,
    /// Unix ms its client left, while it is away.
    pub disconnected_at: Option<i64>,
    /// Unix ms it will be removed, once its client is away; None: never (or connected).
    pub expires_at: Option<i64>,
    pub subscriptions: Vec<SubscriptionView>,
    /// QoS 1/2 deliveries sent and not yet acknowledged.
    pub in_flight: usize,
    /// Deliveries waiting behind them, and their payload bytes.
    pub queued_messages: usize,
    pub queued_bytes: usize,
    /// Reading what it missed from the store, and how many ids of the log are still to read.
    pub catching_up: bool,
    pub behind: i64,
    /// Messages not delivered to it, by reason (`edgemq_dropped_total`'s reasons).
    pub dropped: BTreeMap<&'static str, u64>,
    /// Its username came from its client certificate.
    #[serde(skip)]
    pub certified: bool,
}

struct Entry {
    view: SessionView,
    /// The connection serving it (0: none).
    connection: u64,
    kick: Arc<Notify>,
    /// Where other members of its groups hand it deliveries (None: its client is away).
    handed: Option<UnboundedSender<Delivery>>,
    /// Deliveries handed to it since its last refresh.
    handed_lately: usize,
}

/// What a connected session listens to: being ended through the API, and deliveries handed
/// over by other members of its groups.
pub struct Attached {
    pub kick: Arc<Notify>,
    pub handed: UnboundedReceiver<Delivery>,
}

#[derive(Default)]
pub struct Registry {
    entries: Mutex<HashMap<String, Entry>>,
    /// Where the totals go (`edgemq_sessions_away`, `edgemq_sessions_queued`).
    metrics: Arc<Metrics>,
}

impl Registry {
    pub fn new(metrics: Arc<Metrics>) -> Registry {
        Registry {
            entries: Mutex::default(),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the totals from what `old` counted to what `new` does.
    fn account(&self, old: Option<&SessionView>, new: Option<&SessionView>) {
        let away = |v: Option<&SessionView>| u64::from(v.is_some_and(|v| !v.connected));
        let queued =
            |v: Option<&SessionView>| v.map_or(0, |v| (v.queued_messages + v.in_flight) as u64);
        let m = &self.metrics;
        m.sessions_away.fetch_add(away(new), Relaxed);
        m.sessions_away.fetch_sub(away(old), Relaxed);
        m.sessions_queued.fetch_add(queued(new), Relaxed);
        m.sessions_queued.fetch_sub(queued(old), Relaxed);
    }

    /// Puts `entry` in, accounting for it and for the one it replaces.
    fn put(&self, entries: &mut HashMap<String, Entry>, entry: Entry) {
        self.account(None, Some(&entry.view));
        let old = entries.insert(entry.view.client_id.clone(), entry);
        self.account(old.as_ref().map(|o| &o.view), None);
    }

    fn take(&self, entries: &mut HashMap<String, Entry>, client_id: &str) {
        let old = entries.remove(client_id);
        self.account(old.as_ref().map(|o| &o.view), None);
    }

    /// A connection now serves the session: its view.
    pub fn connected(&self, view: SessionView, connection: u64) -> Attached {
        let kick = Arc::new(Notify::new());
        let (tx, handed) = unbounded_channel();
        let entry = Entry {
            view,
            connection,
            kick: kick.clone(),
            handed: Some(tx),
            handed_lately: 0,
        };
        self.put(&mut self.lock(), entry);
        Attached { kick, handed }
    }

    /// Gives each delivery to a connected session other than `from` that holds its shared
    /// filter, the one with the least in flight and waiting first; how many found none.
    pub fn hand_over(&self, from: &str, deliveries: Vec<(String, Delivery)>) -> usize {
        let mut entries = self.lock();
        let mut unplaced = 0;
        for (filter, delivery) in deliveries {
            let member = entries
                .values_mut()
                .filter(|e| e.view.client_id != from && e.handed.is_some())
                .filter(|e| e.view.subscriptions.iter().any(|s| s.filter == filter))
                .min_by_key(|e| e.view.in_flight + e.view.queued_messages + e.handed_lately);
            let sent = member.is_some_and(|m| {
                let sent = m
                    .handed
                    .as_ref()
                    .is_some_and(|tx| tx.send(delivery).is_ok());
                m.handed_lately += usize::from(sent);
                sent
            });
            unplaced += usize::from(!sent);
        }
        unplaced
    }

    /// The session served by `connection` has this view now.
    pub fn refresh(&self, view: SessionView, connection: u64) {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(&view.client_id) {
            if entry.connection == connection {
                self.account(Some(&entry.view), Some(&view));
                entry.view = view;
                entry.handed_lately = 0;
            }
        }
    }

    /// The connection left: a kept session stays (away since now), a clean one goes.
    pub fn left(&self, client_id: &str, connection: u64, kept: Option<SessionView>) {
        let mut entries = self.lock();
        if entries
            .get(client_id)
            .is_some_and(|e| e.connection != connection)
        {
            return; // taken over: the new connection's entry stays
        }
        match kept {
            Some(view) => self.away_in(&mut entries, view),
            None => self.take(&mut entries, client_id),
        }
    }

    /// A kept session whose client is away (restored from the store at start-up).
    pub fn away(&self, view: SessionView) {
        self.away_in(&mut self.lock(), view);
    }

    fn away_in(&self, entries: &mut HashMap<String, Entry>, view: SessionView) {
        let entry = Entry {
            view,
            connection: 0,
            kick: Arc::new(Notify::new()),
            handed: None,
            handed_lately: 0,
        };
        self.put(entries, entry);
    }

    pub fn remove(&self, client_id: &str) {
        self.take(&mut self.lock(), client_id);
    }

    /// Every session, the furthest behind first.
    pub fn list(&self) -> Vec<SessionView> {
        let mut views: Vec<SessionView> = self.lock().values().map(|e| e.view.clone()).collect();
        views.sort_by(|a, b| {
            let backlog = |v: &SessionView| v.behind.max(0) as usize + v.queued_messages;
            backlog(b)
                .cmp(&backlog(a))
                .then_with(|| a.client_id.cmp(&b.client_id))
        });
        views
    }

    pub fn get(&self, client_id: &str) -> Option<SessionView> {
        self.lock().get(client_id).map(|e| e.view.clone())
    }

    /// Asks the connection serving `client_id` to close, ending its session; false when none
    /// does.
    pub fn kick(&self, client_id: &str) -> bool {
        match self.lock().get(client_id) {
            Some(entry) if entry.connection != 0 => {
                entry.kick.notify_one();
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, behind: i64) -> SessionView {
        SessionView {
            client_id: id.into(),
            username: None,
            protocol: Some("5"),
            connected: true,
            persistent: true,
            disconnected_at: None,
            expires_at: None,
            subscriptions: Vec::new(),
            in_flight: 0,
            queued_messages: 0,
            queued_bytes: 0,
            catching_up: behind > 0,
            behind,
            dropped: BTreeMap::new(),
            certified: false,
        }
    }

    #[test]
    fn a_takeover_keeps_the_new_connection_and_the_slowest_come_first() {
        let metrics = Arc::new(Metrics::default());
        let registry = Registry::new(metrics.clone());
        registry.connected(view("a", 0), 1);
        registry.connected(view("a", 5), 2); // taken over
        registry.left("a", 1, None); // the old connection ends
        assert_eq!(registry.get("a").map(|v| v.behind), Some(5));
        registry.connected(view("b", 50), 3);
        let order: Vec<String> = registry.list().into_iter().map(|v| v.client_id).collect();
        assert_eq!(order, ["b", "a"]);
        assert!(registry.kick("b"));
        registry.left("b", 3, None);
        assert!(!registry.kick("b"));
        assert_eq!(registry.get("b"), None);
        // Totals follow: `a` goes away with 7 queued, then is removed.
        let mut a = view("a", 0);
        a.queued_messages = 7;
        registry.refresh(a.clone(), 2);
        assert_eq!(metrics.sessions_queued.load(Relaxed), 7);
        let gone = SessionView {
            connected: false,
            ..a
        };
        registry.left("a", 2, Some(gone));
        assert_eq!(metrics.sessions_away.load(Relaxed), 1);
        registry.remove("a");
        assert_eq!(metrics.sessions_away.load(Relaxed), 0);
        assert_eq!(metrics.sessions_queued.load(Relaxed), 0);
    }
}
