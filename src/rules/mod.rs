//! Rules: thresholds and anomalies per topic filter, and the presence watchdog (OFFLINE after
//! a silence, ONLINE with the next message). An alert is raised once when its condition starts
//! and cleared once when it ends; open alerts are reloaded at start-up, so a restart neither
//! loses nor duplicates one. Runs on the ingest thread: no locks.

mod anomaly;
mod presence;

use crate::ingest::decode::{Decoded, Effect};
use crate::store::{Alert, AlertChange, Batch, RulesState, StateChange};
use crate::topic;
use anomaly::Window;
pub use presence::Presence;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// `[[rule]]`: a threshold (`min` and/or `max`) or an anomaly test on a metric.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Topic filter the rule applies to.
    pub filter: String,
    /// Payload field; `*` (anomaly rules only) means every numeric field.
    pub metric: String,
    /// Alert type; defaults to HIGH_<METRIC>, LOW_<METRIC> or <METRIC>_OUT_OF_RANGE.
    #[serde(rename = "type", default)]
    pub alert_type: Option<String>,
    /// Below this the condition holds.
    pub min: Option<f64>,
    /// Above this the condition holds.
    pub max: Option<f64>,
    pub anomaly: Option<AnomalyRule>,
}

/// A value more than `k` standard deviations from the moving average of the last `window`
/// values is an anomaly; tested once `min_samples` values are in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyRule {
    #[serde(default = "default_window")]
    pub window: usize,
    #[serde(default = "default_k")]
    pub k: f64,
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
}

fn default_window() -> usize {
    30
}
fn default_k() -> f64 {
    3.0
}
fn default_min_samples() -> usize {
    10
}

impl Rule {
    pub fn validate(&self) -> Result<(), String> {
        let name = format!("rule `{}` on `{}`", self.metric, self.filter);
        if !topic::valid_filter(&self.filter) {
            return Err(format!("{name}: not a valid MQTT topic filter"));
        }
        match (&self.anomaly, self.min.is_some() || self.max.is_some()) {
            (Some(a), false) => {
                if a.window < 2 || a.min_samples < 2 || a.min_samples > a.window || a.k <= 0.0 {
                    return Err(format!(
                        "{name}: anomaly needs 2 <= min_samples <= window and k > 0"
                    ));
                }
            }
            (None, true) if self.metric != "*" => {}
            (None, true) => return Err(format!("{name}: `*` is only for anomaly rules")),
            _ => {
                return Err(format!(
                    "{name}: give `min` and/or `max`, or `anomaly`, not both"
                ))
            }
        }
        Ok(())
    }

    fn alert_type(&self) -> String {
        if let Some(t) = &self.alert_type {
            return t.clone();
        }
        let metric = self.metric.to_uppercase();
        match (self.anomaly.is_some(), self.min, self.max) {
            (true, ..) => "ANOMALY".into(),
            (false, Some(_), Some(_)) => format!("{metric}_OUT_OF_RANGE"),
            (false, None, _) => format!("HIGH_{metric}"),
            (false, Some(_), None) => format!("LOW_{metric}"),
        }
    }
}

fn threshold(
    filter: &str,
    metric: &str,
    min: Option<f64>,
    max: Option<f64>,
    alert_type: Option<&str>,
) -> Rule {
    Rule {
        filter: filter.into(),
        metric: metric.into(),
        alert_type: alert_type.map(str::to_string),
        min,
        max,
        anomaly: None,
    }
}

/// Seed 002's ranges, seed 003's HIGH_TEMP, seed 001's anomaly detection.
pub fn default_rules() -> Vec<Rule> {
    vec![
        threshold("sensors/+", "temperature", Some(0.0), Some(50.0), None),
        threshold("sensors/+", "humidity", Some(10.0), Some(90.0), None),
        threshold("sensors/+", "voltage", Some(200.0), Some(240.0), None),
        threshold("sensors/+", "current", Some(0.0), Some(10.0), None),
        threshold("sensors/+", "pressure", Some(900.0), Some(1100.0), None),
        threshold(
            "devices/+/telemetry",
            "temperature",
            None,
            Some(30.0),
            Some("HIGH_TEMP"),
        ),
        Rule {
            anomaly: Some(AnomalyRule {
                window: default_window(),
                k: default_k(),
                min_samples: default_min_samples(),
            }),
            ..threshold("autocore/+/telemetry", "*", None, None, Some("ANOMALY"))
        },
    ]
}

/// Which alert a condition raises: one per device, type and metric.
type AlertKey = (String, String, Option<String>);

pub struct Rules {
    rules: Vec<(Rule, String)>,
    open: HashMap<AlertKey, Alert>,
    windows: HashMap<(usize, String, String), Window>,
    presence: Presence,
    next_id: i64,
}

impl Rules {
    /// `offline_after` tells, for a topic, how long a device on it may be silent.
    pub fn new(
        rules: Vec<Rule>,
        state: RulesState,
        offline_after: impl Fn(&str) -> Option<i64>,
    ) -> Rules {
        let open = state
            .open_alerts
            .into_iter()
            .map(|a| {
                (
                    (a.device_id.clone(), a.alert_type.clone(), a.metric.clone()),
                    a,
                )
            })
            .collect();
        Rules {
            rules: rules
                .into_iter()
                .map(|r| (r.alert_type(), r))
                .map(|(t, r)| (r, t))
                .collect(),
            open,
            windows: HashMap::new(),
            presence: Presence::load(state.devices, offline_after),
            next_id: state.next_alert_id,
        }
    }

    /// Alerts open now.
    pub fn open_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.open.values()
    }

    /// Applies one decoded message: presence, state, thresholds, anomalies.
    pub fn on_message(&mut self, decoded: &Decoded, offline_after: Option<i64>, batch: &mut Batch) {
        let record = &decoded.record;
        let Some(device) = record.device_id.clone() else {
            return;
        };
        let now = record.received_at;
        let said_offline = matches!(decoded.effect, Some(Effect::Presence { online: false, .. }));
        let transition = self
            .presence
            .seen(&device, now, offline_after, !said_offline, batch);
        match transition {
            Some(presence::Transition::WentOffline { last_seen }) => {
                self.raise_offline(&device, now, last_seen, batch)
            }
            Some(presence::Transition::CameBack { offline_since }) => {
                self.came_back(&device, now, offline_since, batch)
            }
            None => {}
        }
        match &decoded.effect {
            Some(Effect::Presence {
                ip_address,
                firmware_version,
                uptime,
                ..
            }) => self
                .presence
                .info(&device, ip_address, firmware_version, *uptime, batch),
            Some(Effect::State { name, value }) => batch.states.push(StateChange {
                device_id: device.clone(),
                name: name.clone(),
                value: value.clone(),
                at: now,
            }),
            None => {}
        }
        if let Some(fields) = &decoded.fields {
            self.apply_rules(&device, &record.topic, fields, now, batch);
        }
    }

    /// Raises OFFLINE for every device silent longer than its route allows.
    pub fn tick(&mut self, now: i64, batch: &mut Batch) {
        for (device, last_seen) in self.presence.expire(now, batch) {
            self.raise_offline(&device, now, last_seen, batch);
        }
    }

    fn apply_rules(
        &mut self,
        device: &str,
        topic: &str,
        fields: &serde_json::Map<String, Value>,
        now: i64,
        batch: &mut Batch,
    ) {
        for i in 0..self.rules.len() {
            let (rule, alert_type) = &self.rules[i];
            if !topic::matches(&rule.filter, topic) {
                continue;
            }
            let metrics: Vec<(String, f64)> = if rule.metric == "*" {
                fields
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
                    .collect()
            } else {
                match fields.get(&rule.metric).and_then(Value::as_f64) {
                    Some(v) => vec![(rule.metric.clone(), v)],
                    None => continue,
                }
            };
            let (rule, alert_type) = (rule.clone(), alert_type.clone());
            for (metric, value) in metrics {
                let breach = match &rule.anomaly {
                    None => threshold_breach(&rule, value),
                    Some(a) => {
                        let window = self
                            .windows
                            .entry((i, device.to_string(), metric.clone()))
                            .or_insert_with(|| Window::new(a.window));
                        let breach = window.anomaly(value, a.k, a.min_samples);
                        window.push(value);
                        batch.states.push(StateChange {
                            device_id: device.to_string(),
                            name: format!("avg/{metric}"),
                            value: format!("{:.4}", window.mean()),
                            at: now,
                        });
                        breach
                    }
                };
                let key = (device.to_string(), alert_type.clone(), Some(metric.clone()));
                match (breach, self.open.contains_key(&key)) {
                    (Some(limit), false) => {
                        let payload = json!({ metric.as_str(): value, "threshold": limit });
                        self.raise(key, Some(value), Some(limit), now, payload, batch);
                    }
                    (None, true) => self.clear(&key, now, batch),
                    _ => {}
                }
            }
        }
    }

    fn raise_offline(&mut self, device: &str, now: i64, last_seen: i64, batch: &mut Batch) {
        let key = (device.to_string(), "OFFLINE".to_string(), None);
        if !self.open.contains_key(&key) {
            let payload =
                json!({ "last_seen": iso(last_seen), "silent_seconds": (now - last_seen) / 1000 });
            self.raise(key, None, None, now, payload, batch);
        }
    }

    fn came_back(&mut self, device: &str, now: i64, offline_since: i64, batch: &mut Batch) {
        let key = (device.to_string(), "OFFLINE".to_string(), None);
        if self.open.contains_key(&key) {
            self.clear(&key, now, batch);
        }
        let payload = json!({ "offline_since": iso(offline_since), "offline_seconds": (now - offline_since) / 1000 });
        let event = (device.to_string(), "ONLINE".to_string(), None);
        self.raise(event.clone(), None, None, now, payload, batch);
        // ONLINE is an event: raised and over at once.
        self.clear(&event, now, batch);
    }

    fn raise(
        &mut self,
        key: AlertKey,
        value: Option<f64>,
        threshold: Option<f64>,
        now: i64,
        payload: Value,
        batch: &mut Batch,
    ) {
        let alert = Alert {
            id: self.next_id,
            device_id: key.0.clone(),
            alert_type: key.1.clone(),
            metric: key.2.clone(),
            value,
            threshold,
            raised_at: now,
            cleared_at: None,
            payload,
        };
        self.next_id += 1;
        batch.alerts.push(AlertChange::Raised(alert.clone()));
        self.open.insert(key, alert);
    }

    fn clear(&mut self, key: &AlertKey, now: i64, batch: &mut Batch) {
        if let Some(mut alert) = self.open.remove(key) {
            alert.cleared_at = Some(now);
            // A raise and its clear in the same batch become one row written once.
            if let Some(AlertChange::Raised(raised)) = batch.alerts.last_mut() {
                if raised.id == alert.id {
                    raised.cleared_at = Some(now);
                    return;
                }
            }
            batch.alerts.push(AlertChange::Cleared(alert));
        }
    }

    /// Clears an open alert by id (a person acknowledged it); false when none is open.
    pub fn clear_by_id(&mut self, id: i64, now: i64, batch: &mut Batch) -> bool {
        let key = self
            .open
            .iter()
            .find(|(_, a)| a.id == id)
            .map(|(k, _)| k.clone());
        match key {
            Some(key) => {
                self.clear(&key, now, batch);
                true
            }
            None => false,
        }
    }
}

/// The limit a value breaks, if any.
fn threshold_breach(rule: &Rule, value: f64) -> Option<f64> {
    match (rule.min, rule.max) {
        (Some(min), _) if value < min => Some(min),
        (_, Some(max)) if value > max => Some(max),
        _ => None,
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
