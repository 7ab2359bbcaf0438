//! The one configuration file: rumqttd's router (`[router]`) and edgemq's own sections
//! (`[mqtt]`, `[auth]`, `[store]`, `[http]`, `[log]`, ...). Every key has a default, unknown keys
//! are refused, and errors name the file, the line and what is wrong.

use crate::front_door::MqttSection;
use crate::http::HttpSection;
use crate::ingest::route::{Route, Routes};
use crate::ingest::IngestSection;
use crate::rpc::RpcRoute;
use crate::rules::Rule;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Everything edgemq runs with. `Config::default()` is the built-in product; the repo's
/// `rumqttd.toml` parses to exactly the same value.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// rumqttd's router id; one node, so 0.
    pub id: usize,
    pub router: RouterSection,
    /// The MQTT listener (every protocol version on one port).
    pub mqtt: MqttSection,
    pub store: StoreSection,
    pub http: HttpSection,
    pub log: LogSection,
    pub ingest: IngestSection,
    /// `[[route]]`: tried before the built-in routes.
    pub route: Vec<Route>,
    /// `[[rule]]`: applied beside the built-in rules.
    pub rule: Vec<Rule>,
    /// `[[rpc]]`: MQTT request topics, tried before the built-in ones.
    pub rpc: Vec<RpcRoute>,
    pub auth: AuthSection,
}

/// `[auth]`: client logins.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// A Mosquitto password file (`mosquitto_passwd`).
    pub password_file: Option<PathBuf>,
    /// `user = "password"` pairs, beside the password file.
    pub users: BTreeMap<String, String>,
    /// Whether clients may connect without a login; by default, only when no logins are set.
    pub allow_anonymous: Option<bool>,
}

impl AuthSection {
    /// Whether a client without a username is let in.
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous
            .unwrap_or(self.password_file.is_none() && self.users.is_empty())
    }
}

/// rumqttd's `[router]`: every field must be set or the router panics, so all have defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouterSection {
    pub max_connections: usize,
    pub max_outgoing_packet_count: u64,
    /// Bytes (topic + payload) per in-memory segment of one subscription filter's log.
    pub max_segment_size: usize,
    /// Segments kept per subscription filter. The memory budget of one filter is
    /// `max_segment_size * max_segment_count`; a subscriber that falls further behind than
    /// that skips messages (the store never does: it is fed by the front door).
    pub max_segment_count: usize,
}

/// `[store]`: the SQLite database and its writer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    pub path: PathBuf,
    /// Most messages written in one transaction.
    pub batch_max: usize,
    /// Messages that may wait between the front door and ingest; when full, connections stop
    /// reading until there is room.
    pub queue_capacity: usize,
    /// SQLite `synchronous`: "normal" survives a process crash, "full" also a power loss.
    pub synchronous: Synchronous,
    /// How long messages of each kind are kept (`telemetry = "30d"`; `raw` is messages no
    /// route claims). Kinds not listed are kept forever.
    #[serde(with = "retention_map")]
    pub retention: BTreeMap<String, std::time::Duration>,
}

mod retention_map {
    use serde::{Deserialize, Deserializer};
    use std::collections::BTreeMap;
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Duration>, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(d)?;
        raw.into_iter()
            .map(|(kind, text)| {
                humantime::parse_duration(&text)
                    .map(|duration| (kind.clone(), duration))
                    .map_err(|e| {
                        serde::de::Error::custom(format!("retention of `{kind}`: `{text}`: {e}"))
                    })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Normal,
    Full,
}

/// `[log]`: console logging always; `file` adds a daily-rotated log file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// A level (`info`) or a tracing filter (`info,edgemq=debug`).
    pub level: String,
    pub file: Option<PathBuf>,
}

impl Default for RouterSection {
    fn default() -> Self {
        RouterSection {
            max_connections: 10010,
            max_outgoing_packet_count: 200,
            max_segment_size: 2 * 1024 * 1024,
            max_segment_count: 8,
        }
    }
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            path: PathBuf::from("edgemq.db"),
            batch_max: 8192,
            queue_capacity: 65536,
            synchronous: Synchronous::Normal,
            retention: BTreeMap::new(),
        }
    }
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".to_string(),
            file: None,
        }
    }
}

/// A configuration that cannot be used, said in one line: `file:line: key: what is wrong`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        Config::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let message = e.message().replace('\n', " ");
            match e.span() {
                Some(span) => {
                    let line = text[..span.start].matches('\n').count() + 1;
                    let source = text.lines().nth(line - 1).unwrap_or("").trim();
                    ConfigError(format!("{origin}:{line}: `{source}`: {message}"))
                }
                None => ConfigError(format!("{origin}: {message}")),
            }
        })?;
        config
            .validate()
            .map_err(|e| ConfigError(format!("{origin}: {e}")))?;
        Ok(config)
    }

    /// Checks what the types alone cannot; rumqttd panics or misbehaves on these.
    pub fn validate(&self) -> Result<(), String> {
        let r = &self.router;
        if r.max_segment_size < 1024 {
            return Err(format!(
                "router.max_segment_size: {} is below rumqttd's minimum of 1024 bytes",
                r.max_segment_size
            ));
        }
        if r.max_segment_count < 1 {
            return Err("router.max_segment_count: must be at least 1".into());
        }
        if r.max_connections < 1 || r.max_outgoing_packet_count < 1 {
            return Err(
                "router: max_connections and max_outgoing_packet_count must be at least 1".into(),
            );
        }
        self.mqtt.validate()?;
        if let Some(path) = &self.auth.password_file {
            if path.as_os_str().is_empty() {
                return Err("auth.password_file: must not be empty".into());
            }
        }
        if self.store.batch_max < 1 {
            return Err("store.batch_max: must be at least 1".into());
        }
        if self.store.queue_capacity < 1 {
            return Err("store.queue_capacity: must be at least 1".into());
        }
        if self.store.path.as_os_str().is_empty() {
            return Err("store.path: must not be empty".into());
        }
        for route in &self.route {
            route.validate()?;
        }
        for rule in &self.rule {
            rule.validate()?;
        }
        for rpc in &self.rpc {
            rpc.validate()?;
        }
        self.ingest.timezone.parse::<chrono_tz::Tz>().map_err(|_| {
            format!(
                "ingest.timezone: `{}` is not a time zone name such as UTC or Europe/Berlin",
                self.ingest.timezone
            )
        })?;
        for kind in self.store.retention.keys() {
            let known = [
                "raw",
                "telemetry",
                "status",
                "device_status",
                "relay",
                "event",
                "temperature",
                "power",
                "fingerprint",
            ];
            if !known.contains(&kind.as_str()) {
                return Err(format!(
                    "store.retention: unknown kind `{kind}` (one of {})",
                    known.join(", ")
                ));
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| format!("log.level: `{}` is not a log level: {e}", self.log.level))?;
        Ok(())
    }

    /// The routes in force: configured first, then (unless turned off) the built-in ones.
    pub fn routes(&self) -> Routes {
        Routes::new(&self.route, self.ingest.default_routes)
    }

    /// The rules in force: built-in (unless turned off) and configured.
    pub fn rules(&self) -> Vec<Rule> {
        let mut rules = if self.ingest.default_rules {
            crate::rules::default_rules()
        } else {
            Vec::new()
        };
        rules.extend(self.rule.iter().cloned());
        rules
    }

    /// The request topics in force: configured first, then (unless turned off) seed 004's.
    pub fn rpc_routes(&self) -> Vec<RpcRoute> {
        let mut routes = self.rpc.clone();
        if self.ingest.default_routes {
            routes.extend(crate::rpc::default_routes());
        }
        routes
    }

    /// rumqttd's router settings.
    pub fn router_config(&self) -> rumqttd::RouterConfig {
        rumqttd::RouterConfig {
            max_connections: self.router.max_connections,
            max_outgoing_packet_count: self.router.max_outgoing_packet_count,
            max_segment_size: self.router.max_segment_size,
            max_segment_count: self.router.max_segment_count,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_file_is_the_built_in_default() {
        let text = include_str!("../rumqttd.toml");
        assert_eq!(
            Config::from_toml(text, "rumqttd.toml").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn empty_file_is_the_built_in_default() {
        assert_eq!(Config::from_toml("", "x.toml").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let err = Config::from_toml("[store]\nbatch_max = 10\nbatchmax = 3\n", "a.toml")
            .unwrap_err()
            .0;
        assert!(err.starts_with("a.toml:3: `batchmax = 3`"), "{err}");
        assert!(err.contains("unknown field `batchmax`"), "{err}");
    }

    #[test]
    fn wrong_type_and_bad_address_are_refused() {
        let err = Config::from_toml("[store]\nbatch_max = \"ten\"\n", "a.toml")
            .unwrap_err()
            .0;
        assert!(
            err.starts_with("a.toml:2:") && err.contains("invalid type"),
            "{err}"
        );
        let err = Config::from_toml("[http]\nlisten = \"localhost\"\n", "a.toml")
            .unwrap_err()
            .0;
        assert!(
            err.starts_with("a.toml:2:") && err.contains("socket address"),
            "{err}"
        );
    }

    #[test]
    fn values_rumqttd_would_panic_on_are_refused() {
        let err = Config::from_toml("[router]\nmax_segment_size = 10\n", "a.toml")
            .unwrap_err()
            .0;
        assert!(err.contains("router.max_segment_size"), "{err}");
        let err = Config::from_toml("[log]\nlevel = \"loud[\"\n", "a.toml")
            .unwrap_err()
            .0;
        assert!(err.contains("log.level"), "{err}");
    }
}
