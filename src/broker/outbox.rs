//! edgemq's own publications: alerts, MQTT replies, last wills of clients that vanished, and
//! the retained messages restored at start-up. They reach subscribers through the router only;
//! what needs storing (a last will) is handed to ingest by whoever publishes it.

use bytes::Bytes;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{Packet, Publish, PublishProperties};
use rumqttd::Notification;
use std::future::Future;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

pub struct Outbox {
    link: Mutex<LinkTx>,
}

#[derive(Debug, thiserror::Error)]
#[error("the broker refused edgemq's publication: {0}")]
pub struct PublishError(pub String);

impl Outbox {
    pub fn new(link: LinkTx) -> Outbox {
        Outbox {
            link: Mutex::new(link),
        }
    }

    /// Publishes on behalf of edgemq (QoS 0, not retained).
    pub fn publish(&self, topic: &str, payload: impl Into<Bytes>) -> Result<(), PublishError> {
        let publish = Publish::new(Bytes::from(topic.to_string()), payload.into(), false);
        self.send(publish, None)
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

    /// Sets a retained message in the router (start-up restore).
    pub fn publish_retained(&self, topic: Bytes, payload: Bytes) -> Result<(), PublishError> {
        self.send(Publish::new(topic, payload, true), None)
    }

    /// Publishes a message as given (a client's last will).
    pub fn send(
        &self,
        publish: Publish,
        properties: Option<PublishProperties>,
    ) -> Result<(), PublishError> {
        let mut link = self.link.lock().unwrap_or_else(|e| e.into_inner());
        complete_now(link.send(Packet::Publish(publish, properties)))
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
