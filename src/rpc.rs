//! MQTT request/response (seed 004): a request `{"device_id", "date"}` on `home/gettemp/<client>`
//! is answered on `home/datatemp/<client>` with `{"device_id", "date", "count", "records"}`, or
//! on the MQTT 5 response topic with the correlation data echoed. Beyond the seed: `limit` and
//! `offset` with `next_offset`, `request_id` echoed, replies bounded in size, and every bad
//! request answered with `{"error": ...}`, never silence. Runs on its own link and thread.

use crate::broker::names;
use crate::broker::stamp::unstamp;
use crate::broker::Outbox;
use crate::metrics::{Dropped, Metrics};
use crate::query::rpc::{day_records, device_known, LogTable};
use crate::query::Db;
use crate::topic;
use bytes::Bytes;
use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::Notification;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// `[[rpc]]`: a request topic filter, where replies go, and which records it reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcRoute {
    /// Filter of request topics; the last level is the client id.
    pub request: String,
    /// Reply topic; `{client_id}` is replaced by the request topic's last level.
    pub reply: String,
    pub table: LogTable,
    /// Most records in one reply (a request's `limit` may ask for fewer).
    #[serde(default = "default_max_records")]
    pub max_records: u32,
    /// Largest reply payload; records past it are left for the next page.
    #[serde(default = "default_max_reply_bytes")]
    pub max_reply_bytes: usize,
}

fn default_max_records() -> u32 {
    1000
}
fn default_max_reply_bytes() -> usize {
    256 * 1024
}

impl RpcRoute {
    pub fn validate(&self) -> Result<(), String> {
        if !topic::valid_filter(&self.request) {
            return Err(format!(
                "rpc `{}`: not a valid MQTT topic filter",
                self.request
            ));
        }
        if self.reply.contains('+') || self.reply.contains('#') || self.reply.is_empty() {
            return Err(format!(
                "rpc `{}`: reply `{}` must be a topic without wildcards",
                self.request, self.reply
            ));
        }
        if self.max_records < 1 || self.max_reply_bytes < 1024 {
            return Err(format!(
                "rpc `{}`: max_records >= 1 and max_reply_bytes >= 1024",
                self.request
            ));
        }
        Ok(())
    }
}

fn route(request: &str, reply: &str, table: LogTable) -> RpcRoute {
    RpcRoute {
        request: request.into(),
        reply: reply.into(),
        table,
        max_records: default_max_records(),
        max_reply_bytes: default_max_reply_bytes(),
    }
}

/// Seed 004's three request topics.
pub fn default_routes() -> Vec<RpcRoute> {
    vec![
        route(
            "home/gettemp/+",
            "home/datatemp/{client_id}",
            LogTable::Temperature,
        ),
        route(
            "home/getpower/+",
            "home/datapower/{client_id}",
            LogTable::Power,
        ),
        route(
            "home/getfingerprint/+",
            "home/datafingerprint/{client_id}",
            LogTable::Fingerprint,
        ),
    ]
}

/// The request handler and what it needs.
pub struct Rpc {
    pub routes: Vec<RpcRoute>,
    pub db: Arc<Db>,
    pub outbox: Arc<Outbox>,
    pub metrics: Arc<Metrics>,
}

/// Starts the request thread on a link subscribed to every request filter.
pub fn spawn(rpc: Rpc, mut tx: LinkTx, rx: LinkRx) -> std::io::Result<()> {
    for r in &rpc.routes {
        if let Err(e) = tx.subscribe(names::filter_to_router(&r.request)) {
            tracing::error!("rpc: cannot subscribe to {}: {e}", r.request);
        }
    }
    std::thread::Builder::new()
        .name("rpc".into())
        .spawn(move || rpc.run(tx, rx))?;
    Ok(())
}

impl Rpc {
    fn run(self, _tx: LinkTx, mut rx: LinkRx) {
        loop {
            let forward = match rx.recv() {
                Ok(Some(Notification::Forward(f))) => f,
                Ok(Some(Notification::Unschedule)) => {
                    if rx.ready().is_err() {
                        return;
                    }
                    continue;
                }
                Ok(_) => continue,
                Err(e) => return tracing::error!("rpc: the broker closed the link: {e}"),
            };
            let topic = names::topic_from_router(&forward.publish.topic);
            let topic = String::from_utf8_lossy(&topic).into_owned();
            let Some(route) = self
                .routes
                .iter()
                .find(|r| topic::matches(&r.request, &topic))
            else {
                continue;
            };
            let props = unstamp(forward.properties).1.unwrap_or_default();
            let client_id = topic.rsplit('/').next().unwrap_or("");
            let route_reply = route.reply.replace("{client_id}", client_id);
            let (reply_topic, reply) = match props.response_topic {
                Some(t) if topic::valid_name(t.as_bytes()) => {
                    (t, self.answer(route, &forward.publish.payload))
                }
                // Answered where a request without a response topic is, saying why.
                Some(t) => (
                    route_reply,
                    error(
                        &format!("response topic `{}` is not a valid topic name", brief(&t)),
                        None,
                    ),
                ),
                None => (route_reply, self.answer(route, &forward.publish.payload)),
            };
            self.send(&reply_topic, reply, route, props.correlation_data);
        }
    }

    /// Publishes a reply, never one past the route's size cap and never on an invalid topic.
    fn send(&self, topic: &str, reply: Value, route: &RpcRoute, correlation: Option<Bytes>) {
        if !topic::valid_name(topic.as_bytes()) {
            self.metrics.dropped(Dropped::ReplyNotPublished);
            tracing::warn!(
                "rpc: no reply: `{}` is not a valid topic name",
                brief(topic)
            );
            return;
        }
        let mut text = reply.to_string();
        if text.len() > route.max_reply_bytes {
            let request_id = reply.get("request_id").cloned();
            text = error("the reply would be larger than max_reply_bytes", request_id).to_string();
        }
        if let Err(e) = self.outbox.publish_reply(topic, text, correlation) {
            self.metrics.dropped(Dropped::ReplyNotPublished);
            tracing::error!("rpc: reply to {topic} not sent: {e}");
        }
    }

    /// The reply to one request: records, or `{"error": ...}`.
    fn answer(&self, route: &RpcRoute, payload: &[u8]) -> Value {
        let request: Map<String, Value> = match serde_json::from_slice(payload) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return error("the request must be a JSON object such as {\"device_id\": \"temp_sensor_01\", \"date\": \"2026-01-22\"}", None),
            Err(e) => return error(&format!("the request is not valid JSON: {e}"), None),
        };
        let request_id = request.get("request_id").cloned();
        if request_id
            .as_ref()
            .is_some_and(|id| id.to_string().len() > MAX_REQUEST_ID)
        {
            let why = format!("`request_id` must be at most {MAX_REQUEST_ID} bytes of JSON");
            return error(&why, None);
        }
        match self.records(route, &request) {
            Ok(mut reply) => {
                if let Some(id) = request_id {
                    reply["request_id"] = id;
                }
                reply
            }
            Err(message) => error(&message, request_id),
        }
    }

    fn records(&self, route: &RpcRoute, request: &Map<String, Value>) -> Result<Value, String> {
        let device_id = match request.get("device_id") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(other) => {
                return Err(format!(
                    "`device_id` must be a non-empty string, got {}",
                    brief(&other.to_string())
                ))
            }
            None => return Err("`device_id` is required".into()),
        };
        let date_text = request
            .get("date")
            .and_then(Value::as_str)
            .ok_or("`date` is required, as YYYY-MM-DD")?;
        let date = chrono::NaiveDate::parse_from_str(date_text, "%Y-%m-%d").map_err(|_| {
            format!(
                "`date` must be a date as YYYY-MM-DD, got `{}`",
                brief(date_text)
            )
        })?;
        let limit = match request.get("limit") {
            None => route.max_records,
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => (n.min(u64::from(route.max_records))) as u32,
                _ => {
                    return Err(format!(
                        "`limit` must be a whole number from 1 to {}",
                        route.max_records
                    ))
                }
            },
        };
        let offset = match request.get("offset") {
            None => 0,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("`offset` must be a whole number from 0")?,
        };
        let (known, (total, mut records)) = self
            .db
            .with(|c| {
                let known = device_known(c, &device_id)?;
                Ok((
                    known,
                    day_records(c, route.table, &device_id, date, offset, limit)?,
                ))
            })
            .map_err(|e| {
                tracing::error!("rpc: {e}");
                "the database could not answer; try again".to_string()
            })?;
        if !known {
            return Err(format!("unknown device `{}`", brief(&device_id)));
        }
        // Leave records for the next page until the reply fits.
        let mut reply = page(&device_id, date_text, &records, total, offset);
        while reply.to_string().len() > route.max_reply_bytes && records.len() > 1 {
            let keep = (records.len() * route.max_reply_bytes / reply.to_string().len())
                .clamp(1, records.len() - 1);
            records.truncate(keep);
            reply = page(&device_id, date_text, &records, total, offset);
        }
        Ok(reply)
    }
}

fn page(device_id: &str, date: &str, records: &[Value], total: u64, offset: u32) -> Value {
    let mut reply = json!({
        "device_id": device_id,
        "date": date,
        "count": records.len(),
        "records": records,
    });
    let shown = u64::from(offset) + records.len() as u64;
    if shown < total {
        reply["total"] = json!(total);
        reply["next_offset"] = json!(shown);
    }
    reply
}

/// Longest `request_id` echoed, as JSON text.
const MAX_REQUEST_ID: usize = 256;
/// Longest piece of a request quoted back in an error.
const MAX_QUOTED: usize = 64;

/// `text`, cut to `MAX_QUOTED` characters (with "…" when cut).
fn brief(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

fn error(message: &str, request_id: Option<Value>) -> Value {
    let mut reply = json!({ "error": message });
    if let Some(id) = request_id {
        reply["request_id"] = id;
    }
    reply
}
