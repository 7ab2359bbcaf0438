//! `[[route]]`: how a topic becomes data. A topic filter, a kind, where the device id and the
//! device time come from, and which fields must be there. The built-in routes cover the five
//! seeds; routes from the config file are tried first.

use crate::topic;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use std::time::Duration;

/// What a message on a route means, and so how it is decoded and what it updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Numeric readings (seeds 001, 002, 003).
    Telemetry,
    /// Seed 000: `{"status": 0..6, "timestamp": ISO}`.
    Status,
    /// A device reporting itself online or offline, with ip, firmware, uptime (seed 001).
    DeviceStatus,
    /// A relay's state change (seed 001).
    Relay,
    /// Anything else a device reports (interactions, system messages); stored as sent.
    Event,
    /// Seed 004 `home/temperature`: temperature, humidity, status HIGH/LOW.
    Temperature,
    /// Seed 004 `home/power`: EB_ON, EB_OFF, DG_ON, DG_OFF.
    Power,
    /// Seed 004 `home/fingerprint`: user_id, authStatus PASS/FAIL.
    Fingerprint,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Telemetry => "telemetry",
            Kind::Status => "status",
            Kind::DeviceStatus => "device_status",
            Kind::Relay => "relay",
            Kind::Event => "event",
            Kind::Temperature => "temperature",
            Kind::Power => "power",
            Kind::Fingerprint => "fingerprint",
        }
    }
}

/// Where a value comes from: `payload:FIELD` or `topic:N` (0-based level).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Source {
    Payload(String),
    Topic(usize),
}

impl TryFrom<String> for Source {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("payload", field)) if !field.is_empty() => Ok(Source::Payload(field.to_string())),
            Some(("topic", n)) => n
                .parse()
                .map(Source::Topic)
                .map_err(|_| format!("`{s}`: topic level must be a number, as in `topic:1`")),
            _ => Err(format!("`{s}`: expected `payload:FIELD` or `topic:N`")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// MQTT topic filter, e.g. `devices/+/telemetry`.
    pub filter: String,
    pub kind: Kind,
    /// Where the device id comes from, first that is present wins.
    #[serde(default)]
    pub device_id: Vec<Source>,
    /// Where the device's own timestamp comes from; none means arrival time.
    #[serde(default)]
    pub time: Option<Source>,
    /// Payload fields that must be present.
    #[serde(default)]
    pub required: Vec<String>,
    /// Payload fields that must be numbers when present.
    #[serde(default)]
    pub numeric: Vec<String>,
    /// Raise OFFLINE for a device on this route silent this long (e.g. "10s").
    #[serde(default, with = "humantime_serde")]
    pub offline_after: Option<Duration>,
}

impl Route {
    pub fn validate(&self) -> Result<(), String> {
        if !topic::valid_filter(&self.filter) {
            return Err(format!(
                "route `{}`: not a valid MQTT topic filter",
                self.filter
            ));
        }
        Ok(())
    }
}

fn route(filter: &str, kind: Kind, device_id: &[&str], time: Option<&str>) -> Route {
    let source = |s: &str| Source::try_from(s.to_string()).expect("built-in source");
    Route {
        filter: filter.to_string(),
        kind,
        device_id: device_id.iter().map(|s| source(s)).collect(),
        time: time.map(source),
        required: Vec::new(),
        numeric: Vec::new(),
        offline_after: None,
    }
}

fn strings(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|s| s.to_string()).collect()
}

/// The routes for the five seeds.
pub fn default_routes() -> Vec<Route> {
    let autocore_id: &[&str] = &["payload:device_id", "topic:1"];
    let ts = Some("payload:timestamp");
    vec![
        // Seed 000: status monitor.
        Route {
            required: strings(&["status"]),
            ..route("status", Kind::Status, &[], ts)
        },
        Route {
            required: strings(&["status"]),
            ..route("status/+", Kind::Status, &["topic:1"], ts)
        },
        // Seed 001: AutoCore.
        Route {
            required: strings(&["status"]),
            ..route("autocore/+/status", Kind::DeviceStatus, autocore_id, ts)
        },
        Route {
            numeric: strings(&["temperature", "humidity", "voltage", "memory_free"]),
            ..route("autocore/+/telemetry", Kind::Telemetry, autocore_id, ts)
        },
        Route {
            required: strings(&["state"]),
            ..route("autocore/+/relay/+/status", Kind::Relay, autocore_id, ts)
        },
        route(
            "autocore/+/display/interaction",
            Kind::Event,
            autocore_id,
            ts,
        ),
        route("autocore/+/system/+", Kind::Event, autocore_id, ts),
        // Seed 002: IoT backend.
        Route {
            numeric: strings(&["temperature", "humidity", "voltage", "current", "pressure"]),
            ..route(
                "sensors/+",
                Kind::Telemetry,
                &["payload:device_id", "topic:1"],
                ts,
            )
        },
        // Seed 003: mini IoT telemetry.
        Route {
            required: strings(&["temperature", "humidity"]),
            numeric: strings(&["temperature", "humidity"]),
            offline_after: Some(Duration::from_secs(10)),
            ..route(
                "devices/+/telemetry",
                Kind::Telemetry,
                &["payload:deviceId", "topic:1"],
                Some("payload:ts"),
            )
        },
        // Seed 004: home devices.
        Route {
            required: strings(&["device_id", "temperature"]),
            numeric: strings(&["temperature", "humidity"]),
            ..route(
                "home/temperature",
                Kind::Temperature,
                &["payload:device_id"],
                ts,
            )
        },
        Route {
            required: strings(&["device_id", "status"]),
            ..route("home/power", Kind::Power, &["payload:device_id"], ts)
        },
        Route {
            required: strings(&["device_id", "user_id", "authStatus"]),
            ..route(
                "home/fingerprint",
                Kind::Fingerprint,
                &["payload:device_id"],
                ts,
            )
        },
    ]
}

/// Which route a topic takes is remembered, up to this many topics (then forgotten at once).
const TOPIC_CACHE_LIMIT: usize = 100_000;

/// The routes in force, tried in order; the first whose filter matches wins.
pub struct Routes {
    routes: Vec<Route>,
    by_topic: FxHashMap<String, Option<usize>>,
}

impl Routes {
    pub fn new(configured: &[Route], with_defaults: bool) -> Routes {
        let mut routes = configured.to_vec();
        if with_defaults {
            routes.extend(default_routes());
        }
        Routes {
            routes,
            by_topic: FxHashMap::default(),
        }
    }

    pub fn find(&self, topic: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| topic::matches(&r.filter, topic))
    }

    /// `find`, remembering the answer for the topic: devices publish on the same topics.
    pub fn find_cached(&mut self, topic: &str) -> Option<&Route> {
        let index = match self.by_topic.get(topic) {
            Some(index) => *index,
            None => {
                if self.by_topic.len() >= TOPIC_CACHE_LIMIT {
                    self.by_topic.clear();
                }
                let index = self
                    .routes
                    .iter()
                    .position(|r| topic::matches(&r.filter, topic));
                self.by_topic.insert(topic.to_string(), index);
                index
            }
        };
        index.map(|i| &self.routes[i])
    }
}
