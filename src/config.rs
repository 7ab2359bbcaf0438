//! The one configuration file: rumqttd's router (`[router]`) and edgemq's own sections
//! (`[mqtt]`, `[auth]`, `[store]`, `[http]`, `[log]`, ...). Every key has a default, unknown keys
//! are refused, and errors name the file, the line and what is wrong.

use crate::auth::AuthSection;
use crate::broker::RouterSection;
use crate::front_door::MqttSection;
use crate::http::HttpSection;
use crate::ingest::route::{Route, Routes};
use crate::ingest::IngestSection;
use crate::logging::LogSection;
use crate::rpc::RpcRoute;
use crate::rules::Rule;
use crate::store::StoreSection;
use serde::Deserialize;
use std::fmt;
use std::path::Path;

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
    /// Certificates for the MQTT listeners over TLS (`[mqtt] tls_listen`, `websocket_tls_listen`).
    pub tls: crate::tls::TlsSection,
    /// `[[bridge]]`: upstream brokers the store's messages are forwarded to.
    pub bridge: Vec<crate::bridge::BridgeSection>,
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

    /// Checks what the types alone cannot: each section its own keys.
    pub fn validate(&self) -> Result<(), String> {
        self.router.validate()?;
        self.mqtt.validate()?;
        self.http.validate()?;
        self.auth.validate()?;
        self.tls.validate("tls")?;
        let tls_listeners =
            self.mqtt.tls_listen.is_some() || self.mqtt.websocket_tls_listen.is_some();
        if tls_listeners && !self.tls.is_set() {
            return Err(
                "mqtt.tls_listen / websocket_tls_listen: need [tls] certfile and keyfile".into(),
            );
        }
        self.store.validate()?;
        self.ingest.validate()?;
        for route in &self.route {
            route.validate()?;
        }
        for rule in &self.rule {
            rule.validate()?;
        }
        for rpc in &self.rpc {
            rpc.validate()?;
        }
        for bridge in &self.bridge {
            bridge.validate()?;
        }
        self.log.validate()
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
