//! Rules: thresholds, anomalies and change watches per topic filter, and the presence watchdog
//! (OFFLINE after a silence, ONLINE with the next message). An alert is raised once when its
//! condition starts and cleared once when it ends; open alerts are reloaded at start-up, so a
//! restart neither loses nor duplicates one. Each raise and clear fires the rule's actions into
//! the same batch (`fire`). Runs on the ingest thread: no locks.

pub mod action;
mod anomaly;
mod changes;
mod config;
mod fire;
mod open;
mod presence;
mod reading;

pub use config::{default_rules, AnomalyRule, Rule};
pub use reading::{Effect, Reading};

use crate::clock::iso;
use crate::metrics::RuleStatus;
use crate::store::{Alert, AlertChange, Batch, RulesState, StateChange};
use crate::topic;
use anomaly::Window;
use changes::Changes;
use fire::{fire, status, Change};
use open::{clear, new_alert, OpenAlerts};
use presence::Presence;
use rustc_hash::FxHashMap;
use serde_json::{json, Value};
use std::sync::Arc;

/// Rule indices per topic are remembered, up to this many topics (then forgotten at once).
const TOPIC_CACHE_LIMIT: usize = 100_000;

pub struct Rules {
    rules: Vec<(Rule, String)>,
    open: OpenAlerts,
    windows: FxHashMap<(usize, String, String), Window>,
    /// Which rules apply to a topic.
    by_topic: FxHashMap<String, Vec<usize>>,
    presence: Presence,
    next_id: i64,
    /// Each rule's counts, for `/api/v1/rules` and `/metrics`.
    statuses: Vec<Arc<RuleStatus>>,
    changes: Changes,
}

impl Rules {
    /// `offline_after` tells, for a topic, how long a device on it may be silent.
    pub fn new(
        rules: Vec<Rule>,
        state: RulesState,
        offline_after: impl Fn(&str) -> Option<i64>,
    ) -> Rules {
        let mut open = OpenAlerts::default();
        for alert in state.open_alerts {
            open.insert(alert);
        }
        let rules: Vec<(Rule, String)> = rules
            .into_iter()
            .map(|r| (r.alert_type(), r))
            .map(|(t, r)| (r, t))
            .collect();
        let statuses = rules.iter().map(|(r, t)| Arc::new(status(r, t))).collect();
        Rules {
            changes: Changes::load(&rules, state.rule_values),
            rules,
            open,
            windows: FxHashMap::default(),
            by_topic: FxHashMap::default(),
            presence: Presence::load(state.devices, offline_after),
            next_id: state.next_alert_id,
            statuses,
        }
    }

    /// Each rule's counts, in the order of the rules.
    pub fn statuses(&self) -> Vec<Arc<RuleStatus>> {
        self.statuses.clone()
    }

    /// Applies one decoded message: presence, state, thresholds, anomalies.
    pub fn on_message(&mut self, reading: Reading, offline_after: Option<i64>, batch: &mut Batch) {
        let record = reading.record;
        let Some(device) = record.device_id.as_deref() else {
            return;
        };
        let now = record.received_at;
        let said_offline = matches!(reading.effect, Some(Effect::Presence { online: false, .. }));
        match self
            .presence
            .seen(device, now, offline_after, !said_offline, batch)
        {
            Some(presence::Transition::WentOffline { last_seen }) => {
                self.raise_offline(device, now, last_seen, batch)
            }
            Some(presence::Transition::CameBack { offline_since }) => {
                self.came_back(device, now, offline_since, batch)
            }
            None => {}
        }
        match reading.effect {
            Some(Effect::Presence {
                ip_address,
                firmware_version,
                uptime,
                ..
            }) => self
                .presence
                .info(device, ip_address, firmware_version, *uptime, batch),
            Some(Effect::State { name, value }) => batch.states.push(StateChange {
                device_id: device.to_string(),
                name: name.clone(),
                value: value.clone(),
                at: now,
            }),
            None => {}
        }
        if let Some(fields) = reading.fields {
            self.apply_rules(device, &record.topic, fields, now, batch);
        }
    }

    /// Raises OFFLINE for every device silent longer than its route allows.
    pub fn tick(&mut self, now: i64, batch: &mut Batch) {
        for (device, last_seen) in self.presence.expire(now, batch) {
            self.raise_offline(&device, now, last_seen, batch);
        }
    }

    fn rules_for(&mut self, topic: &str) -> Vec<usize> {
        if let Some(found) = self.by_topic.get(topic) {
            return found.clone();
        }
        if self.by_topic.len() >= TOPIC_CACHE_LIMIT {
            self.by_topic.clear();
        }
        let found: Vec<usize> = (0..self.rules.len())
            .filter(|&i| topic::matches(&self.rules[i].0.filter, topic))
            .collect();
        self.by_topic.insert(topic.to_string(), found.clone());
        found
    }

    fn apply_rules(
        &mut self,
        device: &str,
        topic: &str,
        fields: &serde_json::Map<String, Value>,
        now: i64,
        batch: &mut Batch,
    ) {
        for i in self.rules_for(topic) {
            let (rule, alert_type) = &self.rules[i];
            if rule.on_change {
                self.watch_change(i, (device, topic), fields, now, batch);
                continue;
            }
            let single;
            let metrics: Vec<(&str, f64)> = if rule.metric == "*" {
                fields
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str(), v.as_f64()?)))
                    .collect()
            } else {
                match fields.get(&rule.metric).and_then(Value::as_f64) {
                    Some(v) => {
                        single = [(rule.metric.as_str(), v)];
                        single.to_vec()
                    }
                    None => continue,
                }
            };
            for (metric, value) in metrics {
                let breach = match &rule.anomaly {
                    None => threshold_breach(rule, value),
                    Some(a) => {
                        let window = self
                            .windows
                            .entry((i, device.to_string(), metric.to_string()))
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
                let is_open = self.open.contains(device, alert_type, Some(metric));
                match (breach, is_open) {
                    (Some(limit), false) => {
                        let payload = json!({ metric: value, "threshold": limit });
                        let alert = new_alert(
                            &mut self.next_id,
                            device,
                            alert_type,
                            Some(metric),
                            now,
                            payload,
                        );
                        let alert = Alert {
                            value: Some(value),
                            threshold: Some(limit),
                            ..alert
                        };
                        batch.alerts.push(AlertChange::Raised(alert.clone()));
                        let change = Change {
                            alert: &alert,
                            raised: true,
                            topic: Some(topic),
                            old: None,
                            new: None,
                        };
                        fire(i, rule, &self.statuses[i], &change, batch);
                        self.open.insert(alert);
                    }
                    (None, true) => {
                        let cleared =
                            clear(&mut self.open, device, alert_type, Some(metric), now, batch);
                        if let Some(alert) = cleared {
                            let change = Change {
                                alert: &alert,
                                raised: false,
                                topic: Some(topic),
                                old: None,
                                new: None,
                            };
                            fire(i, rule, &self.statuses[i], &change, batch);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// An `on_change` rule: an event when the watched value of a key changes (and the key is
    /// critical, when the rule names critical ones).
    fn watch_change(
        &mut self,
        i: usize,
        (device, topic): (&str, &str),
        fields: &serde_json::Map<String, Value>,
        now: i64,
        batch: &mut Batch,
    ) {
        let (rule, alert_type) = &self.rules[i];
        let Some(value) = fields.get(&rule.metric) else {
            return;
        };
        let key = changes::key(&rule.filter, topic, device);
        let Some(old) = self.changes.update(i, &key, value, now, batch) else {
            return;
        };
        if !rule.critical.is_empty() && !rule.critical.contains(&key) {
            return;
        }
        let old_value: Value = serde_json::from_str(&old).unwrap_or(Value::Null);
        let payload = json!({ "key": key, "old": old_value, "new": value, "topic": topic });
        let metric = Some(rule.metric.as_str());
        let mut event = new_alert(&mut self.next_id, device, alert_type, metric, now, payload);
        event.value = value.as_f64();
        // An event: raised and over at once.
        event.cleared_at = Some(now);
        batch.alerts.push(AlertChange::Raised(event.clone()));
        let (old, new) = (changes::shown(&old), changes::shown(&value.to_string()));
        let change = Change {
            alert: &event,
            raised: true,
            topic: Some(topic),
            old: Some(&old),
            new: Some(&new),
        };
        fire(i, rule, &self.statuses[i], &change, batch);
    }

    fn raise_offline(&mut self, device: &str, now: i64, last_seen: i64, batch: &mut Batch) {
        if !self.open.contains(device, "OFFLINE", None) {
            let payload =
                json!({ "last_seen": iso(last_seen), "silent_seconds": (now - last_seen) / 1000 });
            self.raise(device, "OFFLINE", now, payload, batch);
        }
    }

    fn came_back(&mut self, device: &str, now: i64, offline_since: i64, batch: &mut Batch) {
        clear(&mut self.open, device, "OFFLINE", None, now, batch);
        let payload = json!({ "offline_since": iso(offline_since), "offline_seconds": (now - offline_since) / 1000 });
        // ONLINE is an event: raised and over at once.
        let mut event = new_alert(&mut self.next_id, device, "ONLINE", None, now, payload);
        event.cleared_at = Some(now);
        batch.alerts.push(AlertChange::Raised(event));
    }

    fn raise(
        &mut self,
        device: &str,
        alert_type: &str,
        now: i64,
        payload: Value,
        batch: &mut Batch,
    ) {
        let alert = new_alert(&mut self.next_id, device, alert_type, None, now, payload);
        batch.alerts.push(AlertChange::Raised(alert.clone()));
        self.open.insert(alert);
    }

    /// Clears an open alert by id (a person acknowledged it); false when none is open.
    pub fn clear_by_id(&mut self, id: i64, now: i64, batch: &mut Batch) -> bool {
        let Some(alert) = self.open.iter().find(|a| a.id == id).cloned() else {
            return false;
        };
        let cleared = clear(
            &mut self.open,
            &alert.device_id,
            &alert.alert_type,
            alert.metric.as_deref(),
            now,
            batch,
        );
        if let (Some(alert), Some(i)) = (cleared, self.rule_of(&alert)) {
            let change = Change {
                alert: &alert,
                raised: false,
                topic: None,
                old: None,
                new: None,
            };
            fire(i, &self.rules[i].0, &self.statuses[i], &change, batch);
        }
        true
    }

    /// The rule that raises alerts like `alert`: its type, and its metric or `*`.
    fn rule_of(&self, alert: &Alert) -> Option<usize> {
        self.rules.iter().position(|(rule, alert_type)| {
            *alert_type == alert.alert_type
                && (rule.metric == "*" || alert.metric.as_deref() == Some(rule.metric.as_str()))
        })
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
