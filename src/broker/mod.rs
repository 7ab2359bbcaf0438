//! The embedded rumqttd router and edgemq's own links into it: the outbox, on which every copy
//! reaches the router (ingest's numbered, stamped copies of what clients publish, and edgemq's
//! replies), and the request link. Subscribers
//! reach the router through the front door, which makes one link per connection with
//! `RouterHandle`.

pub mod names;
mod outbox;
pub mod retained;
pub mod stamp;

pub use outbox::{Outbox, PublishError};

use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::Notification;
use serde::Deserialize;
use std::sync::Arc;

/// rumqttd's `[router]`: every field must be set or the router panics, so all have defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterSection {
    pub max_connections: usize,
    pub max_outgoing_packet_count: u64,
    /// Bytes (topic + payload) per in-memory segment of one subscription filter's log.
    pub max_segment_size: usize,
    /// Segments kept per subscription filter. The memory budget of one filter is
    /// `max_segment_size * max_segment_count`; the router skips copies for a session that
    /// reads further behind than that, and the session reads them from the store instead.
    pub max_segment_count: usize,
}

impl Default for RouterSection {
    fn default() -> Self {
        RouterSection {
            max_connections: 10010,
            max_outgoing_packet_count: 200,
            max_segment_size: 2 * 1024 * 1024,
            max_segment_count: 8,
        }
    }
}

impl RouterSection {
    /// Refuses what rumqttd would panic or misbehave on.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_segment_size < 1024 {
            return Err(format!(
                "router.max_segment_size: {} is below rumqttd's minimum of 1024 bytes",
                self.max_segment_size
            ));
        }
        if self.max_segment_count < 1 {
            return Err("router.max_segment_count: must be at least 1".into());
        }
        if self.max_connections < 1 || self.max_outgoing_packet_count < 1 {
            return Err(
                "router: max_connections and max_outgoing_packet_count must be at least 1".into(),
            );
        }
        Ok(())
    }

    /// rumqttd's router settings.
    pub fn router_config(&self) -> rumqttd::RouterConfig {
        rumqttd::RouterConfig {
            max_connections: self.max_connections,
            max_outgoing_packet_count: self.max_outgoing_packet_count,
            max_segment_size: self.max_segment_size,
            max_segment_count: self.max_segment_count,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        }
    }
}

/// The client id of the link edgemq publishes its own messages through (it only writes).
pub const OUTBOX_CLIENT_ID: &str = "edgemq-outbox";
/// The client id of the link MQTT requests arrive on.
pub const RPC_CLIENT_ID: &str = "edgemq-rpc";

/// Makes links into the router: `(client_id, clean_session)` → the link and the router's
/// CONNACK. (The router's channel type is private to rumqttd, so it lives in this closure.)
type Connect = dyn Fn(&str, bool) -> Result<(LinkTx, LinkRx, Notification), String> + Send + Sync;

/// A handle on the running router.
#[derive(Clone)]
pub struct RouterHandle(Arc<Connect>);

impl RouterHandle {
    /// A new link, as a client connecting with this id and clean-session flag. Blocks until
    /// the router answers: call it from a blocking context.
    pub fn link(
        &self,
        client_id: &str,
        clean_session: bool,
    ) -> Result<(LinkTx, LinkRx, Notification), String> {
        (self.0)(client_id, clean_session)
    }
}

/// A running router with edgemq's links.
pub struct Broker {
    pub router: RouterHandle,
    /// Publishes on edgemq's behalf.
    pub outbox: Arc<Outbox>,
    /// Retained messages, restored from the store.
    pub retained: Arc<retained::Retained>,
    /// The link MQTT requests arrive on (taken by `rpc`).
    pub rpc_link: Option<(LinkTx, LinkRx)>,
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the broker refused edgemq's own link: {0}")]
    Link(String),
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Starts the router and edgemq's links, and gives the router back the retained messages
/// kept from earlier runs.
pub fn start(
    id: usize,
    section: &RouterSection,
    retained: Vec<crate::store::StoredRetained>,
) -> Result<Broker, StartError> {
    let router_tx = rumqttd::Router::new(id, section.router_config()).spawn();
    let router = RouterHandle(Arc::new(move |client_id: &str, clean: bool| {
        LinkBuilder::new(client_id, router_tx.clone())
            .clean_session(clean)
            .build()
            .map_err(|e| e.to_string())
    }));
    let (outbox_tx, outbox_rx, _) = router
        .link(OUTBOX_CLIENT_ID, true)
        .map_err(StartError::Link)?;
    let outbox = Arc::new(Outbox::new(outbox_tx));
    std::thread::Builder::new()
        .name("outbox-link".into())
        .spawn(move || outbox::drain(outbox_rx))?;
    let (rpc_tx, rpc_rx, _) = router.link(RPC_CLIENT_ID, true).map_err(StartError::Link)?;
    let kept = Arc::new(retained::Retained::default());
    for r in retained {
        let kept_one = retained::Kept {
            payload: r.payload.into(),
            qos: r.qos,
            properties: r.properties,
            at: r.updated_at,
        };
        kept.set(&r.topic, kept_one);
    }
    if !kept.is_empty() {
        tracing::info!("{} retained messages restored", kept.len());
    }
    Ok(Broker {
        router,
        outbox,
        retained: kept,
        rpc_link: Some((rpc_tx, rpc_rx)),
    })
}

impl From<PublishError> for StartError {
    fn from(e: PublishError) -> Self {
        StartError::Link(e.0)
    }
}
