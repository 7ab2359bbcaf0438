//! The one link every copy reaches the router on: ingest's numbered copies of what clients
//! publish (last wills and alerts included), and MQTT replies to requests, which are not
//! stored. Every copy is stamped.

use super::names;
use super::stamp::{stamp, Stamp};
use bytes::Bytes;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{Packet, Publish, PublishProperties};
use rumqttd::Notification;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

pub struct Outbox {
    link: Mutex<LinkTx>,
    /// The id of the last numbered message handed to the router.
    last_routed: AtomicI64,
}

#[derive(Debug, thiserror::Error)]
#[error("the broker refused edgemq's publication: {0}")]
pub struct PublishError(pub String);

impl Outbox {
    pub fn new(link: LinkTx) -> Outbox {
        Outbox {
            link: Mutex::new(link),
            last_routed: AtomicI64::new(0),
        }
    }

    /// The id of the last numbered message handed to the router: a new subscription gets what
    /// comes after it.
    pub fn last_routed(&self) -> i64 {
        self.last_routed.load(Relaxed)
    }

    /// Ingest says how far it has numbered and handed over.
    pub fn routed_through(&self, id: i64) {
        self.last_routed.fetch_max(id, Relaxed);
    }

    /// Publishes a reply, with the request's MQTT 5 correlation data when it had some.
    pub fn publish_reply(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        correlation: Option<Bytes>,
    ) -> Result<(), PublishError> {
        let publish = Publish::new(Bytes::from(topic.to_string()), payload.into(), false);
        self.send(publish, reply_properties(correlation))
    }

    /// edgemq's own publication (not stored): stamped with id 0 and QoS 1.
    fn send(
        &self,
        publish: Publish,
        properties: Option<PublishProperties>,
    ) -> Result<(), PublishError> {
        let received_at = crate::clock::now_ms();
        let properties = stamp(
            properties,
            Stamp {
                id: 0,
                qos: 1,
                received_at,
                retain: false,
                publisher: 0,
            },
        );
        self.send_all(vec![(publish, properties)])
    }

    /// Hands stamped copies to the router in order, with one wake-up.
    pub fn send_all(&self, copies: Vec<(Publish, PublishProperties)>) -> Result<(), PublishError> {
        let mut packets: Vec<Packet> = copies
            .into_iter()
            .map(|(mut publish, properties)| {
                publish.topic = names::topic_to_router(&publish.topic);
                Packet::Publish(publish, Some(properties))
            })
            .collect();
        let Some(last) = packets.pop() else {
            return Ok(());
        };
        let mut link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        // One wake-up for the lot: `send` pushes the last behind the others.
        link.buffer().extend(packets);
        complete_now(link.send(last))
            .map(drop)
            .map_err(|e| PublishError(e.to_string()))
    }
}

/// Properties for a reply: the correlation data, and nothing else.
fn reply_properties(correlation: Option<Bytes>) -> Option<PublishProperties> {
    correlation.map(|data| PublishProperties {
        correlation_data: Some(data),
        ..Default::default()
    })
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
