//! `[[rule]]`: what a rule says (a threshold, an anomaly test or a change watch on a metric of
//! the topics its filter matches, and its actions), its validation, and the built-in rules for
//! the seeds.

use super::action::Action;
use crate::topic;
use serde::{Deserialize, Serialize};

/// `[[rule]]`: a threshold (`min` and/or `max`) or an anomaly test on a metric.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
    /// An event (raised and cleared at once) each time the metric's value changes, with the
    /// old and new value.
    #[serde(default)]
    pub on_change: bool,
    /// With `on_change`: only these raise an event, each named by the values of the filter's
    /// `+` levels joined by `/` (`ESP32_001/0` for `autocore/ESP32_001/relay/0/status` under
    /// `autocore/+/relay/+/status`); empty: all.
    #[serde(default)]
    pub critical: Vec<String>,
    /// What it does when its alert is raised or cleared.
    #[serde(default)]
    pub action: Vec<Action>,
}

/// A value more than `k` standard deviations from the moving average of the last `window`
/// values is an anomaly; tested once `min_samples` values are in.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
        for action in &self.action {
            action
                .validate()
                .map_err(|e| format!("{name}: action: {e}"))?;
        }
        if self.on_change {
            if self.anomaly.is_some() || self.min.is_some() || self.max.is_some() {
                return Err(format!("{name}: on_change takes no min, max or anomaly"));
            }
            if self.metric == "*" {
                return Err(format!("{name}: on_change watches one metric, not `*`"));
            }
            return Ok(());
        }
        if !self.critical.is_empty() {
            return Err(format!("{name}: `critical` is for on_change rules"));
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

    pub(super) fn alert_type(&self) -> String {
        if let Some(t) = &self.alert_type {
            return t.clone();
        }
        let metric = self.metric.to_uppercase();
        if self.on_change {
            return format!("{metric}_CHANGED");
        }
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
        on_change: false,
        critical: Vec::new(),
        action: Vec::new(),
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
