//! The `in` direction of one bridge: it subscribes upstream to each `in` topic (the remote
//! prefix and the pattern) and publishes what comes locally under the local prefix, stored
//! like any message (its client is the bridge's local name), and acknowledged upstream only
//! once it is committed. What came in is never sent back out (the `out` direction leaves out
//! the bridge's own messages), so `both` cannot loop.

use super::upstream::{Client, Received};
use super::{BridgeSection, BridgeTopic, Context};
use crate::ingest::{Incoming, Intake};
use crate::metrics::BridgeStatus;
use crate::store::{Publisher, Receipts};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Messages from upstream handed to ingest and waiting for their commit to be acknowledged.
pub struct Inbound {
    receipts: Arc<Receipts>,
    last_seq: u64,
    waiting: VecDeque<(u64, Received)>,
    /// The bridge's own name as a local client.
    local: Arc<str>,
    status: Arc<BridgeStatus>,
}

impl Inbound {
    pub fn new(bridge: &BridgeSection, status: Arc<BridgeStatus>) -> Inbound {
        Inbound {
            receipts: Arc::new(Receipts::default()),
            last_seq: 0,
            waiting: VecDeque::new(),
            local: Arc::from(bridge.local_client_id()),
            status,
        }
    }

    /// Subscribes upstream to every `in` topic.
    pub fn subscribe(bridge: &BridgeSection, client: &Client) {
        let filters = bridge.topics.iter().filter(|t| t.comes_in());
        client.subscribe(filters.map(|t| (t.remote_filter(), t.qos)).collect());
    }

    /// Whether some acknowledgement waits for a commit.
    pub fn waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    pub async fn changed(&self) {
        self.receipts.changed().await
    }

    /// A message from upstream: stored and routed locally, acknowledged once committed.
    pub async fn take(&mut self, bridge: &BridgeSection, publish: Received, context: &Context) {
        let topic = publish.topic();
        let Some(local) = bridge
            .topics
            .iter()
            .filter(|t| t.comes_in())
            .find_map(|t| local_topic(t, &topic))
        else {
            // Not one of ours: nothing to store; acknowledged in its turn.
            self.waiting.push_back((self.last_seq, publish));
            return;
        };
        self.last_seq += 1;
        let (qos, retain) = publish.qos_retain();
        let mut incoming = incoming(local, publish.payload(), &self.local, (qos, retain));
        incoming.receipt = Some(self.receipts.receipt(self.last_seq));
        context.metrics.received.fetch_add(1, Relaxed);
        if context
            .intake
            .send_async(Intake::Message(incoming))
            .await
            .is_ok()
        {
            self.waiting.push_back((self.last_seq, publish));
        }
    }

    /// Acknowledges upstream what is committed.
    pub fn acknowledge(&mut self, client: &Client) {
        let committed = self.receipts.committed();
        while self
            .waiting
            .front()
            .is_some_and(|(seq, _)| *seq <= committed)
        {
            if let Some((_, publish)) = self.waiting.pop_front() {
                client.ack(&publish);
                self.status.brought_in.fetch_add(1, Relaxed);
            }
        }
    }
}

/// The local topic for upstream `topic`, if `t` brings it in.
fn local_topic(t: &BridgeTopic, topic: &str) -> Option<String> {
    if !crate::topic::matches(&t.remote_filter(), topic) {
        return None;
    }
    let rest = topic.strip_prefix(&t.remote_prefix).unwrap_or(topic);
    Some(format!("{}{rest}", t.local_prefix))
}

/// A message from the bridge's local client `local`: (QoS, retain) as given.
fn incoming(
    topic: String,
    payload: Bytes,
    local: &Arc<str>,
    (qos, retain): (u8, bool),
) -> Incoming {
    Incoming {
        topic: Bytes::from(topic),
        payload,
        received_at: crate::clock::now_ms(),
        properties: None,
        publisher: Some(Publisher {
            client_id: local.clone(),
            username: None,
            qos,
            retain,
        }),
        receipt: None,
    }
}

/// Publishes `payload` retained on `topic` locally, from the bridge's local client (its
/// notification on a `notification_topic` of the user's).
pub async fn publish_retained(topic: &str, payload: &str, local: &str, context: &Context) {
    let message = incoming(
        topic.to_string(),
        Bytes::from(payload.to_string()),
        &Arc::from(local),
        (1, true),
    );
    context.metrics.received.fetch_add(1, Relaxed);
    let _ = context.intake.send_async(Intake::Message(message)).await;
}
