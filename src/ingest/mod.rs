//! Ingest: turns what clients published (`Incoming`, from the front door) into what the store
//! writes. Runs on its own thread between the front door and the store writer: route by topic,
//! decode, validate (refusals become dead letters), apply the rules, publish alerts, hand
//! batches to the store.

pub mod decode;
mod live;
pub mod route;
pub mod time;
mod warnings;

pub use live::LiveEvent;
pub use warnings::WarningLimit;

use crate::broker::Outbox;
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::store::{
    AlertChange, Batch, DeadLetter, Publisher, Receipt, Record, RetainedChange, StoreOp,
};
use bytes::Bytes;
use decode::DecodeSettings;
use route::Routes;
use rumqttd::protocol::PublishProperties;
use serde::Deserialize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// `[ingest]`: limits and defaults for every route.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSection {
    /// Largest payload a route accepts; larger ones become dead letters.
    pub max_payload: usize,
    /// Zone of device times written without an offset (an IANA name such as "Asia/Kolkata").
    pub timezone: String,
    /// Device times further ahead than this are replaced by the arrival time (and counted).
    #[serde(with = "humantime_serde")]
    pub future_tolerance: Duration,
    /// Keep the built-in routes for the five seeds after the configured ones.
    pub default_routes: bool,
    /// Keep the built-in rules for the seeds beside the configured ones.
    pub default_rules: bool,
}

impl IngestSection {
    pub fn validate(&self) -> Result<(), String> {
        self.zone().map(drop)
    }

    /// The zone of device times written without an offset.
    pub fn zone(&self) -> Result<chrono_tz::Tz, String> {
        self.timezone.parse().map_err(|_| {
            format!(
                "ingest.timezone: `{}` is not a time zone name such as UTC or Europe/Berlin",
                self.timezone
            )
        })
    }
}

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            max_payload: 256 * 1024,
            timezone: "UTC".into(),
            future_tolerance: Duration::from_secs(24 * 3600),
            default_routes: true,
            default_rules: true,
        }
    }
}

/// One publish as a client sent it, with what is known of its sender.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub topic: Bytes,
    pub payload: Bytes,
    /// Unix milliseconds when edgemq received it.
    pub received_at: i64,
    /// MQTT 5 properties (response topic, correlation data, user properties...).
    pub properties: Option<Box<PublishProperties>>,
    /// The client, QoS and retain flag.
    pub publisher: Option<Publisher>,
    /// Released when the message is committed (the sender's PUBACK waits on it).
    pub receipt: Option<Receipt>,
}

impl Incoming {
    /// A message with nothing known of its sender (tests and benchmarks).
    pub fn new(topic: impl Into<Bytes>, payload: impl Into<Bytes>, received_at: i64) -> Incoming {
        Incoming {
            topic: topic.into(),
            payload: payload.into(),
            received_at,
            properties: None,
            publisher: None,
            receipt: None,
        }
    }
}

/// What flows into ingest.
pub enum Intake {
    Message(Incoming),
    /// Everything before it has been handed on; `done` fires once the store has committed it.
    Barrier(flume::Sender<()>),
    /// Once a second: time for the offline watchdog.
    Tick,
    /// Clear an open alert (a person acknowledged it): `found` says whether it was open,
    /// `committed` fires once the clearing is in the database.
    ClearAlert {
        id: i64,
        found: flume::Sender<bool>,
        committed: flume::Sender<()>,
    },
}

impl Incoming {
    /// The raw record of a message no route claims.
    pub fn into_record(self) -> Record {
        Record {
            received_at: self.received_at,
            topic: String::from_utf8_lossy(&self.topic).into_owned(),
            payload: self.payload,
            device_id: None,
            kind: None,
            device_time: self.received_at,
            publisher: self.publisher,
        }
    }
}

/// Devices reported to live views per batch, at most.
const LIVE_DEVICES_PER_BATCH: usize = 200;

/// The ingest stage and everything it owns.
pub struct Ingest {
    /// Live events; nothing is built while no one listens.
    pub live: tokio::sync::broadcast::Sender<LiveEvent>,
    pub routes: Routes,
    pub settings: DecodeSettings,
    pub rules: Rules,
    pub outbox: Arc<Outbox>,
    pub metrics: Arc<Metrics>,
    pub batch_max: usize,
    pub warnings: WarningLimit,
}

/// Starts the ingest thread and its once-a-second tick. Ends when `intake` closes.
pub fn spawn(
    ingest: Ingest,
    intake: flume::Receiver<Intake>,
    ticks: flume::Sender<Intake>,
    store: flume::Sender<StoreOp>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ingest-tick".into())
        .spawn(move || {
            while ticks.send(Intake::Tick).is_ok() {
                std::thread::sleep(Duration::from_secs(1));
            }
        })?;
    std::thread::Builder::new()
        .name("ingest".into())
        .spawn(move || ingest.run(intake, store))
}

impl Ingest {
    fn run(mut self, intake: flume::Receiver<Intake>, store: flume::Sender<StoreOp>) {
        while let Ok(first) = intake.recv() {
            let mut batch = Batch::default();
            let mut next = Some(first);
            while let Some(item) = next.take() {
                match item {
                    Intake::Message(incoming) => self.process(incoming, &mut batch),
                    Intake::Tick => {
                        self.warnings.roll();
                        self.rules.tick(now_ms(), &mut batch)
                    }
                    Intake::ClearAlert {
                        id,
                        found,
                        committed,
                    } => {
                        let cleared = self.rules.clear_by_id(id, now_ms(), &mut batch);
                        let _ = found.send(cleared);
                        if cleared
                            && (!self.hand_over(std::mem::take(&mut batch), &store)
                                || store.send(StoreOp::Barrier(committed)).is_err())
                        {
                            return;
                        }
                    }
                    Intake::Barrier(done) => {
                        if !self.hand_over(std::mem::take(&mut batch), &store)
                            || store.send(StoreOp::Barrier(done)).is_err()
                        {
                            return;
                        }
                    }
                }
                if batch.messages() < self.batch_max {
                    next = intake.try_recv().ok();
                }
            }
            self.metrics.queue_depth.store(intake.len() as u64, Relaxed);
            if !self.hand_over(batch, &store) {
                return;
            }
        }
    }

    fn process(&mut self, mut incoming: Incoming, batch: &mut Batch) {
        batch.receipts.extend(incoming.receipt.take());
        let topic = String::from_utf8_lossy(&incoming.topic);
        if let Some(p) = incoming.publisher.as_ref().filter(|p| p.retain) {
            batch.retained.push(RetainedChange {
                topic: topic.to_string(),
                payload: incoming.payload.clone(),
                qos: p.qos,
                at: incoming.received_at,
            });
        }
        let Some(route) = self.routes.find_cached(&topic) else {
            batch.records.push(incoming.into_record());
            return;
        };
        match decode::decode(&incoming, &topic, route, &self.settings) {
            Ok(decoded) => {
                if decoded.future_time {
                    self.metrics.future_times.fetch_add(1, Relaxed);
                }
                let offline_after = route.offline_after.map(|d| d.as_millis() as i64);
                self.rules
                    .on_message(decoded.reading(), offline_after, batch);
                if route.kind == route::Kind::Telemetry {
                    add_totals(&decoded, batch);
                }
                batch.records.push(decoded.record);
            }
            Err(reason) => {
                self.metrics.dead_letters.fetch_add(1, Relaxed);
                if self.warnings.allow() {
                    tracing::warn!("dead letter on `{topic}`: {reason}");
                }
                batch.dead_letters.push(DeadLetter {
                    received_at: incoming.received_at,
                    topic: topic.into_owned(),
                    payload: incoming.payload,
                    reason,
                });
            }
        }
    }

    /// Publishes the batch's alerts and gives the batch to the store; false once the store is gone.
    fn hand_over(&self, batch: Batch, store: &flume::Sender<StoreOp>) -> bool {
        if batch.is_empty() {
            return true;
        }
        for change in &batch.alerts {
            self.publish_alert(change);
        }
        if self.live.receiver_count() > 0 {
            self.tell_live_views(&batch);
        }
        store.send(StoreOp::Batch(batch)).is_ok()
    }

    /// Each device's latest message in the batch, its presence changes and its alerts.
    fn tell_live_views(&self, batch: &Batch) {
        let mut seen = rustc_hash::FxHashSet::default();
        for record in batch.records.iter().rev() {
            let Some(device) = &record.device_id else {
                continue;
            };
            if seen.len() >= LIVE_DEVICES_PER_BATCH || !seen.insert(device.as_str()) {
                continue;
            }
            let values = match crate::query::payload_json(&record.payload) {
                serde_json::Value::Object(fields) => {
                    fields.into_iter().filter(|(_, v)| v.is_number()).collect()
                }
                _ => serde_json::Map::new(),
            };
            let _ = self.live.send(LiveEvent::Message {
                device_id: device.clone(),
                topic: record.topic.clone(),
                kind: record.kind,
                received_at: crate::clock::iso_ms(record.received_at),
                values,
            });
        }
        for change in batch.devices.iter().filter(|d| d.online.is_some()) {
            let _ = self.live.send(LiveEvent::Device {
                device_id: change.device_id.clone(),
                online: change.online.unwrap_or(true),
            });
        }
        for change in &batch.alerts {
            let (alert, state) = match change {
                AlertChange::Raised(a) => (a, "raised"),
                AlertChange::Cleared(a) => (a, "cleared"),
            };
            let _ = self.live.send(LiveEvent::Alert {
                alert: alert.clone(),
                state,
            });
        }
    }

    /// Alerts go out on `edgemq/alerts/<device_id>/<type>` with `state` raised or cleared;
    /// one raised and cleared within a batch (an ONLINE event) goes out as both.
    fn publish_alert(&self, change: &AlertChange) {
        match change {
            AlertChange::Raised(alert) => {
                self.metrics.alerts_raised.fetch_add(1, Relaxed);
                self.publish_alert_state(alert, "raised");
                if alert.cleared_at.is_some() {
                    self.metrics.alerts_cleared.fetch_add(1, Relaxed);
                    self.publish_alert_state(alert, "cleared");
                }
            }
            AlertChange::Cleared(alert) => {
                self.metrics.alerts_cleared.fetch_add(1, Relaxed);
                self.publish_alert_state(alert, "cleared");
            }
        }
    }

    fn publish_alert_state(&self, alert: &crate::store::Alert, state: &str) {
        let mut body = serde_json::to_value(alert).unwrap_or_default();
        body["state"] = state.into();
        let topic = format!(
            "edgemq/alerts/{}/{}",
            topic_level(&alert.device_id),
            topic_level(&alert.alert_type)
        );
        if let Err(e) = self.outbox.publish(&topic, body.to_string()) {
            tracing::error!("alert {} not published: {e}", alert.id);
        }
    }
}

/// Adds a telemetry message's numeric fields to the batch's per-device, per-minute totals.
fn add_totals(decoded: &decode::Decoded, batch: &mut Batch) {
    let (Some(device), Some(fields)) = (&decoded.record.device_id, &decoded.fields) else {
        return;
    };
    let minute = decoded.record.device_time.div_euclid(60_000);
    for (metric, value) in fields {
        let Some(v) = value.as_f64() else { continue };
        // Timestamps are numbers too, but not metrics anyone charts.
        if !matches!(metric.as_str(), "ts" | "timestamp" | "t") {
            batch.add_reading(device, metric, minute, v);
        }
    }
}

/// A name made safe as one topic level: no wildcards, no separators.
fn topic_level(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if matches!(c, '+' | '#' | '/' | '\0') {
                '_'
            } else {
                c
            }
        })
        .collect();
    if safe.is_empty() {
        "_".into()
    } else {
        safe
    }
}
