//! `[[rule]]`: what a rule says (a threshold or an anomaly test on a metric of the topics its
//! filter matches), its validation, and the built-in rules for the seeds.

use crate::topic;
use serde::Deserialize;

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

    pub(super) fn alert_type(&self) -> String {
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
