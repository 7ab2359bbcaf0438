//! What `on_change` rules watch: the last value of a metric per rule and key (the values of the
//! filter's wildcard levels), kept in `rule_values` so a change across a restart is seen.

use super::Rule;
use crate::store::{Batch, RuleValue};
use rustc_hash::FxHashMap;
use serde_json::Value;

#[derive(Default)]
pub struct Changes {
    /// (rule index, key) → the last value, as JSON.
    last: FxHashMap<(usize, String), String>,
    /// How `rule_values` names each rule (by index; on_change rules only).
    names: Vec<Option<String>>,
}

/// How `rule_values` names a rule.
fn rule_key(rule: &Rule, alert_type: &str) -> String {
    format!("{}|{}|{alert_type}", rule.filter, rule.metric)
}

impl Changes {
    /// The values kept in the store, for the rules (with their alert types) in force.
    pub fn load(rules: &[(Rule, String)], kept: Vec<(String, String, String)>) -> Changes {
        let names: Vec<Option<String>> = rules
            .iter()
            .map(|(rule, alert_type)| rule.on_change.then(|| rule_key(rule, alert_type)))
            .collect();
        let index: FxHashMap<&str, usize> = (names.iter().enumerate())
            .filter_map(|(i, name)| Some((name.as_deref()?, i)))
            .collect();
        let last = kept
            .into_iter()
            .filter_map(|(rule, key, value)| Some(((*index.get(rule.as_str())?, key), value)))
            .collect();
        Changes { last, names }
    }

    /// Records `value` for rule `i` and `key`; the value before it when it changed (none the
    /// first time a key is seen).
    pub fn update(
        &mut self,
        i: usize,
        key: &str,
        value: &Value,
        now: i64,
        batch: &mut Batch,
    ) -> Option<String> {
        let value = value.to_string();
        let slot = (i, key.to_string());
        if self.last.get(&slot) == Some(&value) {
            return None;
        }
        batch.rule_values.push(RuleValue {
            rule: self.names.get(i).cloned().flatten().unwrap_or_default(),
            key: key.to_string(),
            value: value.clone(),
            at: now,
        });
        self.last.insert(slot, value)
    }
}

/// The key of `topic` under `filter`: the values of its `+` levels (and what `#` matched)
/// joined by `/`; the device id when the filter has no wildcard.
pub fn key(filter: &str, topic: &str, device: &str) -> String {
    let mut levels = topic.split('/');
    let mut parts = Vec::new();
    for f in filter.split('/') {
        match f {
            "+" => parts.extend(levels.next()),
            "#" => {
                parts.extend(levels.by_ref());
                break;
            }
            _ => {
                levels.next();
            }
        }
    }
    if parts.is_empty() {
        device.to_string()
    } else {
        parts.join("/")
    }
}

/// A watched value as a template shows it: a string without its quotes, anything else as JSON.
pub fn shown(json: &str) -> String {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::String(s)) => s,
        _ => json.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_what_the_wildcards_matched() {
        let filter = "autocore/+/relay/+/status";
        assert_eq!(
            key(filter, "autocore/ESP32_001/relay/0/status", "d"),
            "ESP32_001/0"
        );
        assert_eq!(key("a/#", "a/b/c", "d"), "b/c");
        assert_eq!(key("a/b", "a/b", "dev"), "dev");
    }

    #[test]
    fn a_change_is_seen_once_and_the_first_value_is_not_one() {
        let mut changes = Changes::default();
        let mut batch = Batch::default();
        let mut update = |v: Value| changes.update(0, "k", &v, 1, &mut batch);
        assert_eq!(update(Value::Bool(true)), None);
        assert_eq!(update(Value::Bool(true)), None);
        assert_eq!(update(Value::Bool(false)), Some("true".into()));
        assert_eq!(batch.rule_values.len(), 2);
    }
}
