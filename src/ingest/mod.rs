//! Ingest: turns what clients published (`Incoming`, from the front door) into what the store
//! writes. Runs on its own thread between the front door and the store writer: route by topic,
//! decode, validate (refusals become dead letters), apply the rules, publish alerts, hand
//! batches to the store.

mod alerts;
pub mod decode;
mod fanout;
pub mod route;
pub mod time;

use crate::clock::now_ms;
use crate::logging::Throttle;
use crate::metrics::Metrics;
use crate::notify::{Notice, Notices};
use crate::rules::Rules;
use crate::shutdown::Stopping;
use crate::store::properties;
use crate::store::{
    AlertChange, Batch, DeadLetter, Publisher, Receipt, Record, RetainedChange, SessionChange,
    StoreOp,
};
use bytes::Bytes;
use decode::DecodeSettings;
pub use fanout::Fanout;
use route::Routes;
use rumqttd::protocol::PublishProperties;
use serde::Deserialize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
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

    /// What decoding needs of this section.
    pub fn decode_settings(&self) -> Result<DecodeSettings, String> {
        Ok(DecodeSettings {
            max_payload: self.max_payload,
            zone: self.zone()?,
            future_tolerance_ms: self.future_tolerance.as_millis() as i64,
        })
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
    /// A persistent session to save or end, in the next batch.
    Session(SessionChange),
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
            id: 0, // numbered by ingest
            received_at: self.received_at,
            topic: String::from_utf8_lossy(&self.topic).into_owned(),
            payload: self.payload,
            device_id: None,
            kind: None,
            device_time: self.received_at,
            publisher: self.publisher,
            properties: None,
        }
    }
}

/// The retained message `incoming` sets on `topic`, when it has the retain flag.
fn retained_change(
    incoming: &Incoming,
    topic: &str,
    properties: &Option<String>,
) -> Option<RetainedChange> {
    let p = incoming.publisher.as_ref().filter(|p| p.retain)?;
    Some(RetainedChange {
        topic: topic.to_string(),
        payload: incoming.payload.clone(),
        qos: p.qos,
        at: incoming.received_at,
        properties: properties.clone(),
    })
}

/// Devices reported to live views per batch, at most.
const LIVE_DEVICES_PER_BATCH: usize = 200;

/// The ingest stage and everything it owns.
pub struct Ingest {
    pub routes: Routes,
    pub settings: DecodeSettings,
    pub rules: Rules,
    /// Where alerts and live events go out (MQTT, the dashboard).
    pub notices: Notices,
    /// Numbers each message and hands its copy to the router.
    pub fanout: Fanout,
    pub metrics: Arc<Metrics>,
    pub batch_max: usize,
    /// Dead letters logged one by one per second; the rest are summed up (all are stored).
    pub warnings: Throttle,
}

/// Starts the ingest thread, fed by the returned queue of `capacity` messages, and its
/// once-a-second tick (until the stop). The thread ends when every sender of the queue is gone.
pub fn start(
    ingest: Ingest,
    capacity: usize,
    store: flume::Sender<StoreOp>,
    stopping: Stopping,
) -> std::io::Result<flume::Sender<Intake>> {
    let (intake, queue) = flume::bounded(capacity);
    let ticks = intake.clone();
    std::thread::Builder::new()
        .name("ingest-tick".into())
        .spawn(move || {
            while !stopping.is_stopping() && ticks.send(Intake::Tick).is_ok() {
                std::thread::sleep(Duration::from_secs(1));
            }
        })?;
    std::thread::Builder::new()
        .name("ingest".into())
        .spawn(move || ingest.run(queue, store))?;
    Ok(intake)
}

impl Ingest {
    fn run(mut self, intake: flume::Receiver<Intake>, store: flume::Sender<StoreOp>) {
        while let Ok(first) = intake.recv() {
            let mut batch = Batch::default();
            let mut next = Some(first);
            while let Some(item) = next.take() {
                match item {
                    Intake::Message(incoming) => self.process(incoming, &mut batch),
                    Intake::Session(change) => batch.sessions.push(change),
                    Intake::Tick => {
                        if let Some(n) = self.warnings.roll() {
                            held_back_warning(n);
                        }
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
        let id = self.fanout.number(&incoming);
        let topic = String::from_utf8_lossy(&incoming.topic);
        let properties = properties::to_column(incoming.properties.as_deref());
        batch
            .retained
            .extend(retained_change(&incoming, &topic, &properties));
        let Some(route) = self.routes.find_cached(&topic) else {
            let mut record = incoming.into_record();
            record.id = id;
            record.properties = properties;
            batch.records.push(record);
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
                batch.records.push(Record {
                    id,
                    properties,
                    ..decoded.record
                });
            }
            Err(reason) => {
                let (allowed, held_back) = self.warnings.allow();
                if let Some(n) = held_back {
                    held_back_warning(n);
                }
                if allowed {
                    tracing::warn!("dead letter on `{topic}`: {reason}");
                }
                batch.dead_letters.push(DeadLetter {
                    id,
                    received_at: incoming.received_at,
                    topic: topic.into_owned(),
                    publisher: incoming.publisher,
                    payload: incoming.payload,
                    reason,
                    properties,
                });
            }
        }
    }

    /// Tells the notifier what the batch changed and gives the batch to the store; false once
    /// the store is gone.
    fn hand_over(&mut self, mut batch: Batch, store: &flume::Sender<StoreOp>) -> bool {
        self.publish_alerts(&mut batch);
        self.fanout.hand_over(&self.metrics);
        if batch.is_empty() {
            return true;
        }
        self.count_alerts(&batch.alerts);
        self.notices.send(self.notice(&batch));
        store.send(StoreOp::Batch(Box::new(batch))).is_ok()
    }

    /// Numbers and stores the batch's alert changes as messages, after everything else in it,
    /// then the commands rule actions publish (not run through routes and rules again, so
    /// rules cannot loop).
    fn publish_alerts(&mut self, batch: &mut Batch) {
        let now = now_ms();
        let alerts = batch.alerts.iter().flat_map(|c| alerts::messages(c, now));
        let commands = batch.commands.drain(..).map(|c| alerts::command(c, now));
        let messages: Vec<Incoming> = alerts.chain(commands).collect();
        for incoming in messages {
            let id = self.fanout.number(&incoming);
            let topic = String::from_utf8_lossy(&incoming.topic);
            let retained = retained_change(&incoming, &topic, &None);
            batch.retained.extend(retained);
            let mut record = incoming.into_record();
            record.id = id;
            batch.records.push(record);
        }
    }

    fn count_alerts(&self, alerts: &[AlertChange]) {
        for change in alerts {
            let (raised, cleared) = match change {
                AlertChange::Raised(alert) => (1, u64::from(alert.cleared_at.is_some())),
                AlertChange::Cleared(_) => (0, 1),
            };
            self.metrics.alerts_raised.fetch_add(raised, Relaxed);
            self.metrics.alerts_cleared.fetch_add(cleared, Relaxed);
        }
    }

    /// The batch's alerts and presence changes, and, while a live view listens, each device's
    /// latest message.
    fn notice(&self, batch: &Batch) -> Notice {
        let mut latest = Vec::new();
        if self.notices.listening() {
            let mut seen = rustc_hash::FxHashSet::default();
            for record in batch.records.iter().rev() {
                let Some(device) = &record.device_id else {
                    continue;
                };
                if seen.len() < LIVE_DEVICES_PER_BATCH && seen.insert(device.as_str()) {
                    latest.push(record.clone());
                }
            }
        }
        Notice {
            alerts: batch.alerts.clone(),
            presence: batch
                .devices
                .iter()
                .filter_map(|d| Some((d.device_id.clone(), d.online?)))
                .collect(),
            latest,
        }
    }
}

fn held_back_warning(n: u64) {
    tracing::warn!(
        "{n} more dead letters were not logged one by one (they are in the dead_letters table)"
    );
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
