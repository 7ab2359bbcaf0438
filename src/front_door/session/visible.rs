//! What `/api/v1/sessions` shows of a session: built from its state when it connects, about
//! once a second while connected, and when it leaves.

use super::outgoing::Subscription;
use super::Session;
use crate::front_door::codec::Version;
use crate::front_door::registry::{SessionView, SubscriptionView};
use crate::store::SavedSession;

fn subscription_view(s: &Subscription) -> SubscriptionView {
    SubscriptionView {
        filter: s.filter.clone(),
        qos: s.qos as u8,
        no_local: s.no_local,
        retain_as_published: s.as_published,
        subscription_identifier: s.id,
    }
}

impl Session {
    /// The session now; `left_at`: its client has gone (unix ms).
    pub(super) fn view(&self, left_at: Option<i64>) -> SessionView {
        let (in_flight, queued_messages, queued_bytes) = self.outgoing.load();
        let committed = *self.shared.committed.borrow();
        let expires_at = left_at.and_then(|at| Some(crate::clock::later(at, self.client.expiry?)));
        SessionView {
            client_id: self.client.client_id.to_string(),
            username: self.client.username.as_deref().map(str::to_string),
            protocol: Some(match self.client.version {
                Version::V31 => "3.1",
                Version::V311 => "3.1.1",
                Version::V5 => "5",
            }),
            connected: left_at.is_none(),
            persistent: !self.client.clean,
            disconnected_at: left_at,
            expires_at,
            subscriptions: self
                .outgoing
                .granted()
                .iter()
                .map(subscription_view)
                .collect(),
            in_flight,
            queued_messages,
            queued_bytes,
            catching_up: self.outgoing.catching_up(),
            behind: self.outgoing.behind(committed),
            dropped: self.outgoing.drops.clone(),
            certified: self.client.certified,
        }
    }
}

/// A session restored from the store, its client away.
pub fn restored_view(saved: &SavedSession) -> SessionView {
    SessionView {
        client_id: saved.client_id.clone(),
        username: None,
        protocol: None,
        connected: false,
        persistent: true,
        disconnected_at: None,
        expires_at: saved.expires_at,
        subscriptions: saved
            .subscriptions
            .iter()
            .map(|s| subscription_view(&Subscription::restored(s)))
            .collect(),
        in_flight: 0,
        queued_messages: 0,
        queued_bytes: 0,
        catching_up: false,
        behind: 0,
        dropped: Default::default(),
        certified: false,
    }
}
