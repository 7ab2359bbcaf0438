//! Stopping cleanly, as one small piece that every long-running task holds (after mini-redis'
//! `shutdown.rs`). `Shutdown::begin` tells every `Stopping` holder to stop taking new work; a
//! `Tracker` learns when every `Guard` it handed out is gone, which is how `app` waits for a
//! phase of the stop (nothing read any more, every acknowledgement sent) before the next.

use std::future::Future;
use tokio::sync::{mpsc, watch};

/// Tells every task that edgemq is stopping. Dropping it says so too.
pub struct Shutdown(watch::Sender<bool>);

/// A task's view of the stop: check it, or wait for it.
#[derive(Clone)]
pub struct Stopping(watch::Receiver<bool>);

impl Shutdown {
    pub fn new() -> (Shutdown, Stopping) {
        let (tx, rx) = watch::channel(false);
        (Shutdown(tx), Stopping(rx))
    }

    pub fn begin(&self) {
        self.0.send_replace(true);
    }
}

impl Stopping {
    pub fn is_stopping(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the stop has begun (at once if it already has).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }
}

/// Learns when every `Guard` it handed out has been dropped.
pub struct Tracker {
    tx: Option<mpsc::Sender<()>>,
    rx: mpsc::Receiver<()>,
}

/// Held while a piece of work is under way; dropping it says it is done.
#[derive(Clone)]
pub struct Guard {
    _held: mpsc::Sender<()>,
}

impl Default for Tracker {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(1);
        Tracker { tx: Some(tx), rx }
    }
}

impl Tracker {
    /// A new guard; one taken after `all_done` began is not waited for.
    pub fn guard(&self) -> Guard {
        let held = self.tx.clone().unwrap_or_else(|| mpsc::channel(1).0);
        Guard { _held: held }
    }

    /// Resolves once every guard is gone; hands out no more.
    pub async fn all_done(&mut self) {
        self.tx = None;
        while self.rx.recv().await.is_some() {}
    }
}

/// Resolves with the name of the first SIGINT or SIGTERM received after this call.
pub fn signal() -> std::io::Result<impl Future<Output = &'static str>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    })
}
