//! `[[rule.action]]`: what a rule does when its alert is raised or cleared: publish a command
//! (a topic and payload made from templates) or call a webhook (a POST of the alert as JSON,
//! written to an outbox in the alert's own transaction and sent until it gets a 2xx).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// When an action fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum On {
    #[default]
    Raise,
    Clear,
    Both,
}

impl On {
    pub fn fires_on(self, raised: bool) -> bool {
        matches!(
            (self, raised),
            (On::Both, _) | (On::Raise, true) | (On::Clear, false)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    #[serde(default)]
    pub on: On,
    /// Topic template of the command to publish.
    pub publish: Option<String>,
    /// Payload template of the command (default: the alert as JSON).
    pub payload: Option<String>,
    #[serde(default)]
    pub qos: u8,
    #[serde(default)]
    pub retain: bool,
    /// URL the alert is POSTed to.
    pub webhook: Option<String>,
    /// Extra request headers (an Authorization header, say).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How long one call may take.
    #[serde(default = "timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The longest wait between two tries (the wait doubles from one second up to it).
    #[serde(default = "retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// A call still failing this long after its alert is given up on (counted and logged).
    #[serde(default = "give_up_after", with = "humantime_serde")]
    pub give_up_after: Duration,
}

fn timeout() -> Duration {
    Duration::from_secs(5)
}

fn retry_max() -> Duration {
    Duration::from_secs(60)
}

fn give_up_after() -> Duration {
    Duration::from_secs(24 * 3600)
}

/// The names a template may use.
pub const FIELDS: &[&str] = &[
    "device_id",
    "type",
    "metric",
    "value",
    "threshold",
    "state",
    "topic",
    "time",
    "old",
    "new",
];

impl Action {
    /// What it does, for `/api/v1/rules` and the metrics' labels.
    pub fn kind(&self) -> &'static str {
        if self.webhook.is_some() {
            "webhook"
        } else {
            "publish"
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        match (&self.publish, &self.webhook) {
            (Some(topic), None) => {
                check_fields(topic)?;
                if let Some(payload) = &self.payload {
                    check_fields(payload)?;
                }
                let sample = render(topic, &|_| Some("x".into()), Escape::TopicLevel);
                if !crate::topic::valid_name(sample.as_bytes()) {
                    return Err(format!("publish `{topic}` does not make a valid topic"));
                }
                if self.qos > 2 {
                    return Err(format!("publish `{topic}`: qos 0, 1 or 2"));
                }
            }
            (None, Some(url)) => {
                let ok = url.starts_with("http://") || url.starts_with("https://");
                if !ok || reqwest::Url::parse(url).is_err() {
                    return Err(format!("webhook `{url}` is not an http(s) URL"));
                }
                for (name, value) in &self.headers {
                    let valid = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
                        && reqwest::header::HeaderValue::from_str(value).is_ok();
                    if !valid {
                        return Err(format!("webhook `{url}`: header `{name}` is not valid"));
                    }
                }
                if self.payload.is_some() || self.retain || self.qos != 0 {
                    return Err(format!(
                        "webhook `{url}`: payload, qos and retain are for publish"
                    ));
                }
            }
            _ => return Err("an action has `publish` or `webhook`, one of them".into()),
        }
        Ok(())
    }
}

/// Every `{name}` in `template` is one of `FIELDS`.
fn check_fields(template: &str) -> Result<(), String> {
    let unknown = std::cell::RefCell::new(None);
    render(
        template,
        &|name| {
            if !FIELDS.contains(&name) {
                unknown.borrow_mut().get_or_insert_with(|| name.to_string());
            }
            Some(String::new())
        },
        Escape::None,
    );
    match unknown.into_inner() {
        Some(name) => Err(format!(
            "`{template}`: unknown {{{name}}} (known: {})",
            FIELDS.join(", ")
        )),
        None => Ok(()),
    }
}

/// How a value is written into a template.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Escape {
    None,
    /// One topic level: `/`, `+`, `#` and NUL become `_`.
    TopicLevel,
    /// Inside a JSON string.
    Json,
}

/// `template` with each `{name}` (lower-case letters and `_`) replaced by `value(name)`;
/// other braces, and names `value` does not know, are left as they are.
pub fn render(template: &str, value: &dyn Fn(&str) -> Option<String>, escape: Escape) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        let closed = after[name_len..].starts_with('}');
        match (closed && !name.is_empty()).then(|| value(name)).flatten() {
            Some(v) => {
                out.push_str(&escaped(&v, escape));
                rest = &after[name_len + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn escaped(value: &str, escape: Escape) -> String {
    match escape {
        Escape::None => value.to_string(),
        Escape::TopicLevel => value.replace(['/', '+', '#', '\0'], "_"),
        Escape::Json => {
            let quoted = serde_json::Value::from(value).to_string();
            quoted[1..quoted.len() - 1].to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(name: &str) -> Option<String> {
        match name {
            "device_id" => Some("ESP32/\"1\"".into()),
            "type" => Some("OVERHEAT".into()),
            "value" => Some("45.5".into()),
            _ => None,
        }
    }

    #[test]
    fn templates_fill_in_fields_and_leave_json_braces_alone() {
        let topic = render(
            "autocore/{device_id}/relay/0/set",
            &fields,
            Escape::TopicLevel,
        );
        assert_eq!(topic, "autocore/ESP32_\"1\"/relay/0/set");
        let payload = r#"{"state": true, "reason": "{type} {value}", "d": "{device_id}"}"#;
        let body = render(payload, &fields, Escape::Json);
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["reason"], "OVERHEAT 45.5");
        assert_eq!(parsed["d"], "ESP32/\"1\"");
        assert_eq!(render("{nope} {", &fields, Escape::None), "{nope} {");
    }

    #[test]
    fn a_bad_template_is_refused_at_start() {
        let publish = |topic: &str| Action {
            publish: Some(topic.into()),
            ..serde_json::from_str::<Action>("{}").unwrap()
        };
        assert!(publish("a/{device_id}/set").validate().is_ok());
        assert!(publish("a/+/set")
            .validate()
            .unwrap_err()
            .contains("valid topic"));
        assert!(publish("a/{devcie}/set")
            .validate()
            .unwrap_err()
            .contains("unknown {devcie}"));
        let neither = serde_json::from_str::<Action>("{}").unwrap();
        assert!(neither.validate().is_err());
    }
}
