//! Accepting connections, for every listener (MQTT, WebSockets, HTTP): when `accept` fails (the
//! process is out of file descriptors, usually) wait and try again rather than spin, and say so
//! at most once a second; and, at start-up, raise the open-files limit as far as allowed.

use crate::logging::Throttle;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// How long to wait after a failed accept before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A listener that backs off when accepting fails.
pub struct Acceptor {
    listener: TcpListener,
    label: &'static str,
    throttle: Throttle,
}

impl Acceptor {
    pub fn new(listener: TcpListener, label: &'static str) -> Acceptor {
        Acceptor {
            listener,
            label,
            throttle: Throttle::new(1),
        }
    }

    /// The next connection. Failures are logged (rate-limited) and waited out.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(accepted) => return accepted,
                Err(e) => {
                    let (allowed, held_back) = self.throttle.allow();
                    let label = self.label;
                    if let Some(n) = held_back {
                        tracing::warn!("{label}: {n} more failed accepts");
                    }
                    if allowed {
                        tracing::warn!("{label}: cannot accept a connection ({e}); retrying");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}

/// Raises the soft open-files limit to the hard one (each client is a file descriptor), and
/// says what it is now.
pub fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!("open files limit: {limit}"),
        Err(e) => tracing::warn!("cannot raise the open files limit: {e}"),
    }
}
