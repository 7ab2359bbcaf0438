//! Decoding and validation of a message on a route: size, UTF-8, JSON, required and numeric
//! fields, device id, device time, and what each kind means. A refusal is a sentence a person
//! understands; it becomes the dead letter's reason.

use super::route::{Kind, Route, Source};
use super::{time, Incoming};
use crate::rules::{Effect, Reading};
use crate::store::Record;
use chrono_tz::Tz;
use serde_json::{Map, Value};

/// Limits and defaults that apply to every route (`[ingest]`).
#[derive(Debug, Clone)]
pub struct DecodeSettings {
    pub max_payload: usize,
    /// Zone of ISO times without an offset.
    pub zone: Tz,
    /// Device times further ahead than this are replaced by the arrival time.
    pub future_tolerance_ms: i64,
}

/// A message that passed: the record to store, its JSON fields, and what it changes.
#[derive(Debug)]
pub struct Decoded {
    pub record: Record,
    pub fields: Option<Map<String, Value>>,
    pub effect: Option<Effect>,
    /// The device's time was too far in the future and was replaced by the arrival time.
    pub future_time: bool,
}

impl Decoded {
    /// What the rules see of it.
    pub fn reading(&self) -> Reading<'_> {
        Reading {
            record: &self.record,
            fields: self.fields.as_ref(),
            effect: self.effect.as_ref(),
        }
    }
}

/// Decodes `incoming` (whose topic, as text, is `topic`) as `route` says, or says why it cannot.
pub fn decode(
    incoming: &Incoming,
    topic: &str,
    route: &Route,
    settings: &DecodeSettings,
) -> Result<Decoded, String> {
    let size = incoming.payload.len();
    if size > settings.max_payload {
        return Err(format!(
            "payload of {size} bytes is larger than the limit of {} bytes ([ingest] max_payload)",
            settings.max_payload
        ));
    }
    let fields = match json_object(&incoming.payload) {
        Ok(fields) => Some(fields),
        Err(_) if route.kind == Kind::Event => None,
        Err(reason) => return Err(reason),
    };
    let empty = Map::new();
    let f = fields.as_ref().unwrap_or(&empty);
    for name in &route.required {
        if f.get(name).is_none_or(Value::is_null) {
            return Err(format!("missing field `{name}`"));
        }
    }
    for name in &route.numeric {
        match f.get(name) {
            None | Some(Value::Null) | Some(Value::Number(_)) => {}
            Some(other) => {
                return Err(format!(
                    "field `{name}` must be a number, got {}",
                    brief(other)
                ))
            }
        }
    }
    let device_id = device_id(&route.device_id, topic, f)?;
    let (device_time, future_time) =
        device_time(route.time.as_ref(), f, incoming.received_at, settings)?;
    let effect = kind_effect(route.kind, topic, f)?;
    Ok(Decoded {
        record: Record {
            id: 0, // numbered by ingest
            received_at: incoming.received_at,
            topic: topic.to_string(),
            payload: incoming.payload.clone(),
            device_id,
            kind: Some(route.kind.as_str()),
            device_time,
            publisher: incoming.publisher.clone(),
            properties: None, // kept by ingest
        },
        fields,
        effect,
        future_time,
    })
}

fn json_object(payload: &[u8]) -> Result<Map<String, Value>, String> {
    let text = std::str::from_utf8(payload).map_err(|e| {
        format!(
            "payload is not UTF-8 text (invalid byte at position {})",
            e.valid_up_to()
        )
    })?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "payload must be a JSON object, got {}",
            type_name(&other)
        )),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as it appears in a reason, cut short.
fn brief(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

fn device_id(
    sources: &[Source],
    topic: &str,
    f: &Map<String, Value>,
) -> Result<Option<String>, String> {
    for source in sources {
        let found = match source {
            Source::Topic(n) => crate::topic::level(topic, *n).map(str::to_string),
            Source::Payload(name) => match f.get(name) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.trim().is_empty() => {
                    return Err(format!("field `{name}` (the device id) is empty"))
                }
                Some(Value::String(s)) => Some(s.trim().to_string()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(other) => {
                    return Err(format!(
                        "field `{name}` (the device id) must be a string, got {}",
                        brief(other)
                    ))
                }
            },
        };
        if let Some(id) = found {
            if id.chars().count() > 256 {
                return Err("the device id is longer than 256 characters".into());
            }
            return Ok(Some(id));
        }
    }
    Ok(None)
}

fn device_time(
    source: Option<&Source>,
    f: &Map<String, Value>,
    received_at: i64,
    settings: &DecodeSettings,
) -> Result<(i64, bool), String> {
    let Some(Source::Payload(name)) = source else {
        return Ok((received_at, false));
    };
    let t = match f.get(name) {
        None | Some(Value::Null) => return Ok((received_at, false)),
        Some(v) => time::parse(v, settings.zone).map_err(|e| format!("field `{name}`: {e}"))?,
    };
    if t > received_at + settings.future_tolerance_ms {
        return Ok((received_at, true));
    }
    Ok((t, false))
}

fn kind_effect(kind: Kind, topic: &str, f: &Map<String, Value>) -> Result<Option<Effect>, String> {
    let text = |name: &str| f.get(name).and_then(Value::as_str).map(str::to_string);
    match kind {
        Kind::Status => match f.get("status").and_then(Value::as_i64) {
            Some(0..=6) => Ok(None),
            _ => Err(format!(
                "`status` must be an integer from 0 to 6, got {}",
                f.get("status").map(brief).unwrap_or_default()
            )),
        },
        Kind::DeviceStatus => {
            let online = match f
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
            {
                Some(s) if s == "online" => true,
                Some(s) if s == "offline" => false,
                _ => {
                    return Err(format!(
                        "`status` must be \"online\" or \"offline\", got {}",
                        f.get("status").map(brief).unwrap_or_default()
                    ))
                }
            };
            Ok(Some(Effect::Presence {
                online,
                ip_address: text("ip_address"),
                firmware_version: text("firmware_version"),
                uptime: f.get("uptime").and_then(Value::as_i64),
            }))
        }
        Kind::Relay => {
            let index = match f.get("relay_index") {
                Some(Value::Number(n)) if n.is_u64() => n.to_string(),
                Some(other) => {
                    return Err(format!(
                        "`relay_index` must be a whole number, got {}",
                        brief(other)
                    ))
                }
                None => crate::topic::level(topic, 3)
                    .ok_or("no `relay_index` and no relay number in the topic")?
                    .to_string(),
            };
            let state = match f.get("state") {
                Some(Value::Bool(b)) => *b,
                Some(Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => {
                    n.as_u64() == Some(1)
                }
                Some(Value::String(s)) if s.eq_ignore_ascii_case("on") => true,
                Some(Value::String(s)) if s.eq_ignore_ascii_case("off") => false,
                other => {
                    return Err(format!(
                        "`state` must be true or false, got {}",
                        other.map(brief).unwrap_or_default()
                    ))
                }
            };
            Ok(Some(Effect::State {
                name: format!("relay/{index}"),
                value: state.to_string(),
            }))
        }
        Kind::Power => {
            let status = text("status").unwrap_or_default();
            let (name, value) = match status.as_str() {
                "EB_ON" => ("eb", "ON"),
                "EB_OFF" => ("eb", "OFF"),
                "DG_ON" => ("dg", "ON"),
                "DG_OFF" => ("dg", "OFF"),
                _ => {
                    return Err(format!(
                        "`status` must be EB_ON, EB_OFF, DG_ON or DG_OFF, got {}",
                        f.get("status").map(brief).unwrap_or_default()
                    ))
                }
            };
            Ok(Some(Effect::State {
                name: name.into(),
                value: value.into(),
            }))
        }
        Kind::Fingerprint => match f.get("authStatus") {
            Some(Value::String(_)) => Ok(None),
            other => Err(format!(
                "`authStatus` must be a string (PASS or FAIL), got {}",
                other.map(brief).unwrap_or_default()
            )),
        },
        Kind::Temperature => match f.get("status") {
            None | Some(Value::Null) | Some(Value::String(_)) => Ok(None),
            Some(other) => Err(format!(
                "`status` must be a string (HIGH or LOW), got {}",
                brief(other)
            )),
        },
        Kind::Telemetry | Kind::Event => Ok(None),
    }
}
