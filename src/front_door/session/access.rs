//! What this client may publish and read (`crate::acl`), each topic's answer remembered until
//! the rules are reloaded. Every denial is counted; one a second is logged with the client
//! id, user and topic.

use super::Session;
use crate::acl::{Access, Acl, Who};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Answers remembered per access, at most this many before they are forgotten.
const REMEMBERED: usize = 4096;

/// The rules this session last saw, and its answers under them.
pub(super) struct Permissions {
    acl: Arc<Acl>,
    generation: u64,
    reads: HashMap<Box<str>, bool>,
    writes: HashMap<Box<str>, bool>,
    warnings: crate::logging::Throttle,
}

impl Permissions {
    pub fn new(current: &crate::reload::Live<Acl>) -> Permissions {
        Permissions {
            generation: current.generation(),
            acl: current.get(),
            reads: HashMap::new(),
            writes: HashMap::new(),
            warnings: crate::logging::Throttle::new(1),
        }
    }
}

impl Session {
    fn who(&self) -> Who<'_> {
        Who {
            client_id: &self.client.client_id,
            username: self.client.username.as_deref(),
        }
    }

    /// Rules reloaded since this session last looked: its answers start over.
    fn refresh_permissions(&mut self) {
        if self.permissions.generation != self.shared.acl.generation() {
            self.permissions = Permissions::new(&self.shared.acl);
        }
    }

    /// Whether the client may `access` `topic`.
    pub(super) fn may(&mut self, topic: &str, access: Access) -> bool {
        self.refresh_permissions();
        if self.permissions.acl.is_open() {
            return true;
        }
        let known = match access {
            Access::Read => self.permissions.reads.get(topic),
            Access::Write => self.permissions.writes.get(topic),
        };
        if let Some(&answer) = known {
            return answer;
        }
        let answer = self.permissions.acl.allows(self.who(), topic, access);
        let answers = match access {
            Access::Read => &mut self.permissions.reads,
            Access::Write => &mut self.permissions.writes,
        };
        if answers.len() >= REMEMBERED {
            answers.clear();
        }
        answers.insert(topic.into(), answer);
        answer
    }

    /// Whether a message on `topic` may be sent to the client; a denial is counted.
    pub(super) fn may_receive(&mut self, topic: &[u8]) -> bool {
        self.refresh_permissions();
        if self.permissions.acl.is_open() {
            return true;
        }
        let topic = String::from_utf8_lossy(topic);
        let allowed = self.may(&topic, Access::Read);
        if !allowed {
            self.denied(|m| &m.denied_deliveries, "delivery of", &topic);
        }
        allowed
    }

    /// Drops the client's last will if the ACL does not let it publish there (as Mosquitto
    /// checks it when it is sent); the denial is counted.
    pub(super) fn check_will(&mut self) {
        let Some(will) = self.client.will.as_ref() else {
            return;
        };
        let topic = String::from_utf8_lossy(&will.publish.topic).into_owned();
        if !self.may(&topic, Access::Write) {
            self.denied(|m| &m.denied_wills, "last will on", &topic);
            self.client.will = None;
        }
    }

    /// Whether the client may read anything `filter` matches.
    pub(super) fn may_ever_read(&mut self, filter: &str) -> bool {
        self.refresh_permissions();
        let acl = self.permissions.acl.clone();
        acl.may_ever_read(self.who(), filter)
    }

    /// Counts a denial in `counter` and logs it (at most once a second).
    pub(super) fn denied(
        &mut self,
        counter: fn(&crate::metrics::Metrics) -> &AtomicU64,
        what: &str,
        topic: &str,
    ) {
        counter(&self.shared.metrics).fetch_add(1, Relaxed);
        if self.permissions.warnings.allow().0 {
            let user = self.client.username.as_deref().unwrap_or("(none)");
            tracing::warn!(
                "client {} (user {user}): {what} `{topic}` denied by the ACL",
                self.client.client_id
            );
        }
    }
}
