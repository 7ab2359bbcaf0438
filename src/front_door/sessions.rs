//! Sessions as the HTTP API and SIGHUP see them: listed, looked at, ended (a connected one is
//! disconnected, a kept one forgotten), and disconnected when their user is gone.

use super::{registry, Shared};
use crate::auth::Logins;
use crate::ingest::Intake;
use std::sync::Arc;

/// The sessions as the API sees and ends them.
#[derive(Clone)]
pub struct Sessions(pub(super) Arc<Shared>);

/// What ending a session did.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Its connection was asked to close; the session ends with it.
    Disconnected,
    /// It was kept for a client that is away: forgotten.
    Forgotten,
    NotFound,
}

impl Sessions {
    pub fn list(&self) -> Vec<registry::SessionView> {
        self.0.sessions.list()
    }

    pub fn get(&self, client_id: &str) -> Option<registry::SessionView> {
        self.0.sessions.get(client_id)
    }

    /// Disconnects every client that logged in as a user `logins` no longer has (not those
    /// named by a client certificate); their client ids.
    pub fn users_not_in(&self, logins: &Logins) -> Vec<String> {
        if !logins.any() {
            return Vec::new();
        }
        let gone: Vec<String> = self
            .list()
            .into_iter()
            .filter(|s| s.connected && !s.certified)
            .filter(|s| s.username.as_deref().is_some_and(|u| !logins.knows(u)))
            .map(|s| s.client_id)
            .collect();
        for client_id in &gone {
            self.0.sessions.kick(client_id);
        }
        gone
    }

    /// Ends the session of `client_id`: closes its connection, or forgets it (here and in the
    /// store) when its client is away.
    pub async fn end(&self, client_id: &str) -> Ended {
        let shared = &self.0;
        if shared.sessions.kick(client_id) {
            return Ended::Disconnected;
        }
        if !shared.parked.forget(client_id) {
            return Ended::NotFound;
        }
        shared.sessions.remove(client_id);
        let end = crate::store::SessionChange::End(client_id.to_string());
        let _ = shared.intake.send_async(Intake::Session(end)).await;
        Ended::Forgotten
    }
}
