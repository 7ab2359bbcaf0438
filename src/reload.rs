//! What SIGHUP reloads, as Mosquitto does: the password file, the ACL file and the TLS
//! certificates are read again, and the log file is reopened (for logrotate), without dropping
//! a connection. A file that fails to load keeps the old settings, and the log says why.
//! Clients whose user is gone from the logins are disconnected; ACL changes apply to every
//! client from its next publish, subscription or delivery. The configuration file itself is
//! not read again.

use crate::acl::Acl;
use crate::auth::{AuthSection, Logins};
use crate::logging::LogFile;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

/// A value replaced whole when reloaded; `generation` tells holders of an older `Arc` that it
/// is old.
pub struct Live<T> {
    value: RwLock<Arc<T>>,
    generation: AtomicU64,
}

impl<T> Live<T> {
    pub fn new(value: T) -> Live<T> {
        Live {
            value: RwLock::new(Arc::new(value)),
            generation: AtomicU64::new(0),
        }
    }

    pub fn get(&self) -> Arc<T> {
        self.value.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    pub fn replace(&self, value: T) {
        *self.value.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(value);
        self.generation.fetch_add(1, Relaxed);
    }
}

/// Everything SIGHUP reloads.
pub struct Reloadable {
    pub auth: AuthSection,
    /// `[[rpc]]` reply templates (the built-in private-replies rule).
    pub replies: Vec<String>,
    pub logins: Arc<Live<Logins>>,
    pub acl: Arc<Live<Acl>>,
    pub tls: Vec<Arc<crate::tls::Server>>,
    pub log_file: LogFile,
    /// Sessions, to disconnect the clients whose user is gone.
    pub sessions: crate::front_door::Sessions,
}

impl Reloadable {
    /// Reloads on every SIGHUP until the process ends.
    pub async fn on_hangups(self, mut hangups: tokio::signal::unix::Signal) {
        while hangups.recv().await.is_some() {
            self.reload();
        }
    }

    fn reload(&self) {
        if self.log_file.reopen() {
            tracing::info!("SIGHUP: log file reopened");
        }
        match Logins::from_config(&self.auth) {
            Ok(logins) => {
                let gone = self.sessions.users_not_in(&logins);
                self.logins.replace(logins);
                for client_id in gone {
                    tracing::info!("SIGHUP: client {client_id}'s user is gone: disconnected");
                }
            }
            Err(e) => tracing::error!("SIGHUP: password file not reloaded, the old one stays: {e}"),
        }
        let replies: Vec<&str> = self.replies.iter().map(String::as_str).collect();
        let logins_on = self.logins.get().any();
        match Acl::new(self.auth.acl_file.as_deref(), logins_on, &replies) {
            Ok(acl) => self.acl.replace(acl),
            Err(e) => tracing::error!("SIGHUP: acl_file not reloaded, the old one stays: {e}"),
        }
        for server in &self.tls {
            if let Err(e) = server.reload() {
                tracing::error!("SIGHUP: TLS certificates not reloaded, the old ones stay: {e}");
            }
        }
        tracing::info!("SIGHUP: reloaded the password file, the ACL and the TLS certificates");
    }
}
