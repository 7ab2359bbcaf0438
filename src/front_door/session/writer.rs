//! The socket's write half, in a task of its own: while a slow client's socket is full, its
//! session keeps reading the router and the client (it never waits on a write).

use crate::metrics::Metrics;
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Chunks handed over and not yet written, at most.
const CHUNKS_QUEUED: usize = 8;
/// How long the last chunks may take to be written when the session ends.
const FINISH_WITHIN: Duration = Duration::from_secs(2);

/// The running writer.
pub struct Written {
    task: Option<JoinHandle<String>>,
}

/// Starts writing what is sent on the returned channel to `socket`, in order.
pub fn spawn<W>(mut socket: W, metrics: Arc<Metrics>) -> (mpsc::Sender<Bytes>, Written)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Bytes>(CHUNKS_QUEUED);
    let task = tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            if let Err(e) = socket.write_all(&chunk).await {
                return e.to_string();
            }
            metrics.bytes_sent.fetch_add(chunk.len() as u64, Relaxed);
        }
        let _ = socket.shutdown().await;
        "closed".to_string()
    });
    (tx, Written { task: Some(task) })
}

impl Written {
    /// Why the writer stopped early (the socket failed).
    pub async fn why(&mut self) -> String {
        match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|e| e.to_string()),
            None => "the connection closed".to_string(),
        }
    }

    /// Waits a little for everything handed over to be written (the sender must be dropped
    /// first); a client that reads nothing is not waited for.
    pub async fn finish(mut self) {
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(FINISH_WITHIN, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}
