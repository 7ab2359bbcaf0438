//! Each rule in force and its actions, with how often they fired and failed: `/api/v1/rules`
//! and `/metrics` (labelled by the rule's place) read it; the rules engine and the webhook
//! sender count into it.

use super::bridges::escape;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// One rule.
#[derive(Default)]
pub struct RuleStatus {
    /// What the rule is, as `/api/v1/rules` shows it (its configuration).
    pub config: serde_json::Value,
    pub alert_type: String,
    pub raised: AtomicU64,
    pub cleared: AtomicU64,
    pub actions: Vec<ActionStatus>,
}

/// One action of a rule.
#[derive(Default)]
pub struct ActionStatus {
    pub kind: &'static str,
    /// Times it fired (a command published, a webhook call written to the outbox).
    pub fired: AtomicU64,
    /// Webhook calls answered 2xx.
    pub delivered: AtomicU64,
    /// Webhook tries that failed (an error, a timeout or a status other than 2xx).
    pub failed: AtomicU64,
    /// Webhook calls given up on (`give_up_after`).
    pub given_up: AtomicU64,
}

impl RuleStatus {
    /// What `/api/v1/rules` shows of rule `index`: its counts, its configuration, and each
    /// action's counts beside that action's configuration.
    pub fn view(&self, index: usize) -> serde_json::Value {
        let configs = self.config.get("action").and_then(|a| a.as_array());
        let actions: Vec<serde_json::Value> = (self.actions.iter().enumerate())
            .map(|(j, a)| {
                serde_json::json!({
                    "kind": a.kind,
                    "config": configs.and_then(|c| c.get(j)),
                    "fired": a.fired.load(Relaxed),
                    "delivered": a.delivered.load(Relaxed),
                    "failed": a.failed.load(Relaxed),
                    "given_up": a.given_up.load(Relaxed),
                })
            })
            .collect();
        serde_json::json!({
            "rule": index + 1,
            "type": self.alert_type,
            "raised": self.raised.load(Relaxed),
            "cleared": self.cleared.load(Relaxed),
            "config": self.config,
            "actions": actions,
        })
    }
}

/// The labelled per-rule and per-action series, in Prometheus text format.
pub fn render(rules: &[Arc<RuleStatus>], out: &mut String) {
    let name = "edgemq_rule_alerts_total";
    let _ = writeln!(
        out,
        "# HELP {name} Alerts a rule raised and cleared.\n# TYPE {name} counter"
    );
    for (i, r) in rules.iter().enumerate() {
        let labels = format!("rule=\"{}\",type=\"{}\"", i + 1, escape(&r.alert_type));
        let _ = writeln!(
            out,
            "{name}{{{labels},change=\"raised\"}} {}",
            r.raised.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "{name}{{{labels},change=\"cleared\"}} {}",
            r.cleared.load(Relaxed)
        );
    }
    type Read = fn(&ActionStatus) -> u64;
    let series: [(&str, &str, Read); 4] = [
        (
            "edgemq_rule_action_fired_total",
            "Times a rule's action fired.",
            |a| a.fired.load(Relaxed),
        ),
        (
            "edgemq_rule_action_delivered_total",
            "Webhook calls answered 2xx.",
            |a| a.delivered.load(Relaxed),
        ),
        (
            "edgemq_rule_action_failures_total",
            "Webhook tries that failed (error, timeout, not 2xx).",
            |a| a.failed.load(Relaxed),
        ),
        (
            "edgemq_rule_action_given_up_total",
            "Webhook calls given up on after give_up_after.",
            |a| a.given_up.load(Relaxed),
        ),
    ];
    for (name, help, read) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (i, r) in rules.iter().enumerate() {
            for (j, a) in r.actions.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}{{rule=\"{}\",action=\"{}\",kind=\"{}\"}} {}",
                    i + 1,
                    j + 1,
                    a.kind,
                    read(a)
                );
            }
        }
    }
}
