//! Alerts as messages: each alert raised or cleared is also a message edgemq publishes itself
//! on `edgemq/alerts/<device_id>/<type>` (QoS 1, the alert as JSON with its `state`), numbered
//! and stored in the log like any other, so a persistent session gets it after a reconnect or a
//! restart and a session that fell behind catches up on it. An event raised and cleared at once
//! (ONLINE) is two messages, raised then cleared. The commands rule actions publish go out the
//! same way.

use super::Incoming;
use crate::broker::OUTBOX_CLIENT_ID;
use crate::store::{Alert, AlertChange, Command, Publisher};
use bytes::Bytes;
use std::sync::Arc;

/// The messages telling of one alert change, in order, from edgemq's own client id.
pub fn messages(change: &AlertChange, received_at: i64) -> Vec<Incoming> {
    let from: Arc<str> = Arc::from(OUTBOX_CLIENT_ID);
    let states: &[(&Alert, &str)] = match change {
        AlertChange::Raised(alert) if alert.cleared_at.is_some() => {
            &[(alert, "raised"), (alert, "cleared")]
        }
        AlertChange::Raised(alert) => &[(alert, "raised")],
        AlertChange::Cleared(alert) => &[(alert, "cleared")],
    };
    states
        .iter()
        .map(|(alert, state)| message(alert, state, received_at, &from))
        .collect()
}

/// A command a rule's action publishes, from edgemq's own client id.
pub fn command(command: Command, received_at: i64) -> Incoming {
    Incoming {
        publisher: Some(Publisher {
            client_id: Arc::from(OUTBOX_CLIENT_ID),
            username: None,
            qos: command.qos,
            retain: command.retain,
        }),
        ..Incoming::new(command.topic, command.payload, received_at)
    }
}

fn message(alert: &Alert, state: &str, received_at: i64, from: &Arc<str>) -> Incoming {
    let mut body = serde_json::to_value(alert).unwrap_or_default();
    body["state"] = state.into();
    let topic = topic(alert);
    Incoming {
        publisher: Some(Publisher {
            client_id: from.clone(),
            username: None,
            qos: 1,
            retain: false,
        }),
        ..Incoming::new(topic, Bytes::from(body.to_string()), received_at)
    }
}

/// `edgemq/alerts/<device_id>/<type>`, each made one safe topic level and cut so that the
/// topic stays within MQTT's 65,535 bytes.
fn topic(alert: &Alert) -> String {
    format!(
        "edgemq/alerts/{}/{}",
        topic_level(&alert.device_id),
        topic_level(&alert.alert_type)
    )
}

/// A name made safe as one topic level: no wildcards, no separators, not empty, at most
/// 16 KiB.
fn topic_level(name: &str) -> String {
    let mut safe = String::new();
    for c in name.chars() {
        if safe.len() + c.len_utf8() > 16 * 1024 {
            break;
        }
        safe.push(if matches!(c, '+' | '#' | '/' | '\0') {
            '_'
        } else {
            c
        });
    }
    if safe.is_empty() {
        "_".into()
    } else {
        safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(device_id: &str, cleared: bool) -> Alert {
        Alert {
            id: 7,
            device_id: device_id.into(),
            alert_type: "OVERHEAT".into(),
            metric: Some("temperature".into()),
            value: Some(45.0),
            threshold: Some(40.0),
            raised_at: 1,
            cleared_at: cleared.then_some(1),
            payload: serde_json::Value::Null,
        }
    }

    #[test]
    fn an_event_is_raised_then_cleared_on_a_safe_topic() {
        let change = AlertChange::Raised(alert("a/b+#", true));
        let sent = messages(&change, 5);
        let topics: Vec<_> = sent.iter().map(|m| m.topic.clone()).collect();
        assert_eq!(topics, ["edgemq/alerts/a_b__/OVERHEAT"; 2]);
        let states: Vec<String> = sent
            .iter()
            .map(|m| {
                let body: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                body["state"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(states, ["raised", "cleared"]);
        assert_eq!(sent[0].publisher.as_ref().map(|p| p.qos), Some(1));
    }

    #[test]
    fn a_huge_device_id_still_makes_a_valid_topic() {
        let change = AlertChange::Cleared(alert(&"é".repeat(40_000), true));
        let sent = messages(&change, 5);
        assert!(crate::topic::valid_name(&sent[0].topic));
    }
}
