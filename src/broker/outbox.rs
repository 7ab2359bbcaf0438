//! edgemq's own publications. Everything edgemq publishes goes through the `Outbox`, which
//! remembers it until the store tap sees it come back, so the tap never takes it for device
//! data. The check costs one atomic load while nothing is pending.

use bytes::Bytes;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{Packet, Publish, PublishProperties};
use rumqttd::Notification;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// What the tap should do with a publication it recognises as edgemq's own.
pub enum Internal {
    /// A reply, alert or other publication: not device data, drop it.
    Publication,
    /// A barrier: everything the tap received before it is upstream of `done`.
    Barrier(flume::Sender<()>),
}

pub struct Outbox {
    link: Mutex<LinkTx>,
    pending_count: AtomicUsize,
    pending: Mutex<HashMap<(Bytes, Bytes), Vec<Pending>>>,
    barrier_seq: AtomicUsize,
}

enum Pending {
    Publication,
    Barrier(flume::Sender<()>),
}

#[derive(Debug, thiserror::Error)]
#[error("the broker refused edgemq's publication: {0}")]
pub struct PublishError(String);

impl Outbox {
    pub fn new(link: LinkTx) -> Outbox {
        Outbox {
            link: Mutex::new(link),
            pending_count: AtomicUsize::new(0),
            pending: Mutex::new(HashMap::new()),
            barrier_seq: AtomicUsize::new(0),
        }
    }

    /// Publishes on behalf of edgemq (QoS 0, not retained).
    pub fn publish(&self, topic: &str, payload: impl Into<Bytes>) -> Result<(), PublishError> {
        self.send(
            topic.to_string().into(),
            payload.into(),
            Pending::Publication,
            None,
        )
    }

    /// Publishes a reply, with the request's MQTT 5 correlation data when it had some.
    pub fn publish_reply(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        correlation: Option<Bytes>,
    ) -> Result<(), PublishError> {
        let properties = crate::rpc::reply_properties(correlation);
        self.send(
            topic.to_string().into(),
            payload.into(),
            Pending::Publication,
            properties,
        )
    }

    /// Publishes a barrier; the returned receiver fires once the store has committed every
    /// message the broker routed before it.
    pub fn barrier(&self) -> Result<flume::Receiver<()>, PublishError> {
        let seq = self.barrier_seq.fetch_add(1, Ordering::Relaxed);
        let (done, fired) = flume::bounded(1);
        let topic = format!("edgemq/internal/barrier/{}/{seq}", std::process::id());
        self.send(topic.into(), Bytes::new(), Pending::Barrier(done), None)?;
        Ok(fired)
    }

    fn send(
        &self,
        topic: Bytes,
        payload: Bytes,
        what: Pending,
        properties: Option<PublishProperties>,
    ) -> Result<(), PublishError> {
        let key = (topic.clone(), payload.clone());
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .push(what);
        self.pending_count.fetch_add(1, Ordering::Release);
        let mut link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        let sent = match properties {
            None => link.publish(topic, payload).map(drop),
            Some(props) => {
                let packet = Packet::Publish(Publish::new(topic, payload, false), Some(props));
                complete_now(link.send(packet)).map(drop)
            }
        };
        drop(link);
        if let Err(e) = sent {
            self.take(&key.0, &key.1);
            return Err(PublishError(e.to_string()));
        }
        Ok(())
    }

    /// Called by the tap for every publication: `Some` when it is edgemq's own.
    pub fn take(&self, topic: &Bytes, payload: &Bytes) -> Option<Internal> {
        if self.pending_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let key = (topic.clone(), payload.clone());
        let waiting = pending.get_mut(&key)?;
        let what = waiting.remove(0);
        if waiting.is_empty() {
            pending.remove(&key);
        }
        self.pending_count.fetch_sub(1, Ordering::Release);
        Some(match what {
            Pending::Publication => Internal::Publication,
            Pending::Barrier(done) => Internal::Barrier(done),
        })
    }
}

/// Runs a future that completes without waiting. `LinkTx::send` is `async` but only does a
/// blocking channel send inside, so its first poll finishes it.
fn complete_now<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            return output;
        }
        std::thread::yield_now();
    }
}

/// Reads the outbox link's side of the router (nothing is expected but pauses) until it closes.
pub fn drain(mut rx: LinkRx) {
    loop {
        match rx.recv() {
            Ok(Some(Notification::Unschedule)) => {
                if rx.ready().is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}
