//! A rule's actions, fired when its alert is raised or cleared (or its event happens): a
//! command for ingest to publish, or a webhook call for the outbox, both in the alert's own
//! batch, so they are written in the transaction that records the alert change.

use super::action::{render, Action, Escape};
use super::Rule;
use crate::clock::iso;
use crate::metrics::{ActionStatus, RuleStatus};
use crate::store::{Alert, Batch, Command, WebhookCall};
use bytes::Bytes;
use serde_json::Value;
use std::sync::atomic::Ordering::Relaxed;

/// An alert change as its actions see it.
pub struct Change<'a> {
    pub alert: &'a Alert,
    pub raised: bool,
    /// The topic of the message that made it, when one did.
    pub topic: Option<&'a str>,
    /// For change events: the value before and now.
    pub old: Option<&'a str>,
    pub new: Option<&'a str>,
}

/// Counts the change and fires the rule's actions that want it.
pub fn fire(index: usize, rule: &Rule, status: &RuleStatus, change: &Change, batch: &mut Batch) {
    let counter = if change.raised {
        &status.raised
    } else {
        &status.cleared
    };
    counter.fetch_add(1, Relaxed);
    for (j, action) in rule.action.iter().enumerate() {
        if !action.on.fires_on(change.raised) {
            continue;
        }
        if let Some(counts) = status.actions.get(j) {
            counts.fired.fetch_add(1, Relaxed);
        }
        match &action.webhook {
            Some(url) => batch.webhooks.push(webhook(index, j, url, action, change)),
            None => batch.commands.extend(command(action, change)),
        }
    }
}

fn command(action: &Action, change: &Change) -> Option<Command> {
    let value = |name: &str| field(change, name);
    let topic = render(action.publish.as_deref()?, &value, Escape::TopicLevel);
    let payload = match &action.payload {
        Some(template) => {
            let json = template.trim_start().starts_with(['{', '[']);
            let escape = if json { Escape::Json } else { Escape::None };
            render(template, &value, escape)
        }
        None => alert_json(change),
    };
    Some(Command {
        topic,
        payload: Bytes::from(payload),
        qos: action.qos,
        retain: action.retain,
    })
}

fn webhook(
    rule: usize,
    action_index: usize,
    url: &str,
    action: &Action,
    change: &Change,
) -> WebhookCall {
    let now = crate::clock::now_ms();
    WebhookCall {
        rule,
        action: action_index,
        url: url.to_string(),
        headers: serde_json::to_string(&action.headers).unwrap_or_else(|_| "{}".into()),
        body: alert_json(change),
        created_at: now,
        give_up_at: now.saturating_add(action.give_up_after.as_millis() as i64),
        timeout_ms: action.timeout.as_millis() as i64,
        retry_max_ms: action.retry_max.as_millis() as i64,
    }
}

/// The alert as JSON with its `state`, as on `edgemq/alerts/...`.
fn alert_json(change: &Change) -> String {
    let mut body = serde_json::to_value(change.alert).unwrap_or_default();
    body["state"] = state(change).into();
    body.to_string()
}

fn state(change: &Change) -> &'static str {
    if change.raised {
        "raised"
    } else {
        "cleared"
    }
}

/// A template field's value for this change.
fn field(change: &Change, name: &str) -> Option<String> {
    let alert = change.alert;
    let number = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    Some(match name {
        "device_id" => alert.device_id.clone(),
        "type" => alert.alert_type.clone(),
        "metric" => alert.metric.clone().unwrap_or_default(),
        "value" => match change.new {
            Some(new) => new.to_string(),
            None => number(alert.value),
        },
        "threshold" => number(alert.threshold),
        "state" => state(change).to_string(),
        "topic" => change.topic.unwrap_or_default().to_string(),
        "time" => iso(match change.raised {
            true => alert.raised_at,
            false => alert.cleared_at.unwrap_or(alert.raised_at),
        }),
        "old" => change.old.unwrap_or_default().to_string(),
        "new" => change.new.unwrap_or_default().to_string(),
        _ => return None,
    })
}

/// A rule's counts, with its configuration as `/api/v1/rules` shows it.
pub fn status(rule: &Rule, alert_type: &str) -> RuleStatus {
    let actions = rule.action.iter().map(|a| ActionStatus {
        kind: a.kind(),
        ..Default::default()
    });
    let mut config = serde_json::to_value(rule).unwrap_or_default();
    // Header values (an Authorization header, say) are not shown.
    if let Some(actions) = config.get_mut("action").and_then(Value::as_array_mut) {
        for action in actions {
            if let Some(headers) = action.get_mut("headers").and_then(Value::as_object_mut) {
                headers.values_mut().for_each(|v| *v = "(hidden)".into());
            }
        }
    }
    RuleStatus {
        config,
        alert_type: alert_type.to_string(),
        actions: actions.collect(),
        ..Default::default()
    }
}
