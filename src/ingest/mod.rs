//! Ingest: turns what the broker delivered (`Incoming`) into what the store writes (`Record`).
//! Runs on its own thread between the broker tap and the store writer, batching as it goes.

use crate::store::{Record, StoreOp};
use bytes::Bytes;
use rumqttd::protocol::PublishProperties;
use std::thread::JoinHandle;

/// One publish as the broker delivered it, with what is known of its sender.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub topic: Bytes,
    pub payload: Bytes,
    /// Unix milliseconds when edgemq received it.
    pub received_at: i64,
    /// Retain flag, when the source knows it.
    pub retain: Option<bool>,
    /// MQTT 5 properties (response topic, correlation data, user properties...).
    pub properties: Option<Box<PublishProperties>>,
}

/// What flows from the tap into ingest.
pub enum Intake {
    Message(Incoming),
    /// Everything before it has been handed on; `done` fires once the store has committed it.
    Barrier(flume::Sender<()>),
}

impl Incoming {
    /// The raw record: topic and payload as received. Routing and decoding come later.
    pub fn into_record(self) -> Record {
        Record {
            received_at: self.received_at,
            topic: String::from_utf8_lossy(&self.topic).into_owned(),
            payload: self.payload,
            device_id: None,
            kind: None,
            device_time: None,
        }
    }
}

/// Starts the ingest thread: drains `intake`, converts, and hands batches of at most
/// `batch_max` records to the store. Ends when `intake` closes.
pub fn spawn(
    intake: flume::Receiver<Intake>,
    store: flume::Sender<StoreOp>,
    batch_max: usize,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ingest".into())
        .spawn(move || run(intake, store, batch_max))
}

fn run(intake: flume::Receiver<Intake>, store: flume::Sender<StoreOp>, batch_max: usize) {
    while let Ok(first) = intake.recv() {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(item) = next.take() {
            match item {
                Intake::Message(incoming) => batch.push(incoming.into_record()),
                Intake::Barrier(done) => {
                    if !batch.is_empty()
                        && store
                            .send(StoreOp::Records(std::mem::take(&mut batch)))
                            .is_err()
                    {
                        return;
                    }
                    if store.send(StoreOp::Barrier(done)).is_err() {
                        return;
                    }
                }
            }
            if batch.len() < batch_max {
                next = intake.try_recv().ok();
            }
        }
        if !batch.is_empty() && store.send(StoreOp::Records(batch)).is_err() {
            return;
        }
    }
}
