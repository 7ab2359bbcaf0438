//! A Mosquitto configuration file, read unchanged as edgemq's MQTT settings (`edgemq -c
//! /etc/mosquitto/mosquitto.conf`, or `[mqtt] mosquitto_conf`): listeners, logins and ACLs,
//! TLS, limits, persistence and logging, with `include_dir`. edgemq's own settings (HTTP,
//! routes, rules, RPC) stay in its TOML; flags still override. As Mosquitto does, an option
//! edgemq does not know or implement stops it with `file:line: option: reason`; one that means
//! nothing here is accepted with one warning.

use crate::config::Config;
use crate::tls::TlsSection;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod bridges;
mod options;

/// One `listener` (or the default one of `port` / `bind_address`).
#[derive(Debug, Default)]
struct Listener {
    port: u16,
    address: Option<IpAddr>,
    websockets: bool,
    tls: TlsSection,
    /// Where it was declared, for errors.
    at: String,
}

/// What the file says, before it becomes edgemq settings.
#[derive(Default)]
struct Read {
    /// The default listener: options before any `listener` line, `port`, `bind_address`.
    default: Option<Listener>,
    listeners: Vec<Listener>,
    bind_address: Option<IpAddr>,
    per_listener_settings: bool,
    /// Each login setting with where it was set (with per_listener_settings they must agree).
    auth: Vec<(String, String, String)>,
    log_types: Vec<String>,
    /// `connection` blocks.
    bridges: Vec<crate::bridge::BridgeSection>,
    warnings: Vec<String>,
}

/// Applies the Mosquitto file at `path` to `config`; the warnings to log once logging is up.
pub fn apply(path: &Path, config: &mut Config) -> Result<Vec<String>, String> {
    let mut read = Read::default();
    read.file(path, config, 0)?;
    let warnings = std::mem::take(&mut read.warnings);
    read.finish(config)?;
    Ok(warnings)
}

impl Read {
    fn file(&mut self, path: &Path, config: &mut Config, depth: usize) -> Result<(), String> {
        if depth > 8 {
            return Err(format!("{}: include_dir nested too deep", path.display()));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (option, value) = line.split_once([' ', '\t']).unwrap_or((line, ""));
            let at = format!("{}:{}", path.display(), n + 1);
            let value = value.trim();
            if option == "include_dir" {
                self.include_dir(Path::new(value), config, depth)
                    .map_err(|e| format!("{at}: include_dir: {e}"))?;
                continue;
            }
            self.option(option, value, &at, config)
                .map_err(|e| format!("{at}: {option}: {e}"))?;
        }
        Ok(())
    }

    /// Every `*.conf` file of `dir`, in ASCII order, as Mosquitto reads them.
    fn include_dir(&mut self, dir: &Path, config: &mut Config, depth: usize) -> Result<(), String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "conf") && p.is_file())
            .collect();
        files.sort();
        for file in files {
            self.file(&file, config, depth + 1)?;
        }
        Ok(())
    }

    /// The listener that options like `protocol` and `certfile` apply to: the last
    /// `listener`, or before any, the default one (port 1883 unless `port` says).
    fn current(&mut self, at: &str) -> &mut Listener {
        if self.listeners.is_empty() {
            return self.default_listener(at);
        }
        let last = self.listeners.len() - 1;
        &mut self.listeners[last]
    }

    fn default_listener(&mut self, at: &str) -> &mut Listener {
        self.default.get_or_insert_with(|| Listener {
            port: 1883,
            at: at.to_string(),
            ..Default::default()
        })
    }

    fn warn(&mut self, at: &str, option: &str, why: &str) {
        self.warnings.push(format!("{at}: {option}: {why}"));
    }

    /// Turns what was read into settings.
    fn finish(self, config: &mut Config) -> Result<(), String> {
        let m = &mut config.mqtt;
        let mut listeners = self.listeners;
        if let Some(default) = self.default {
            listeners.insert(0, default);
        }
        if listeners.is_empty() {
            // Mosquitto 2 with no listener: local only, port 1883, anonymous clients allowed.
            m.listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1883);
            m.websocket = false;
            config.auth.allow_anonymous.get_or_insert(true);
        } else {
            // Mosquitto 2 refuses anonymous clients once a listener is set, unless told.
            config.auth.allow_anonymous.get_or_insert(false);
            let (mut plain, mut websocket) = (None, None);
            let mut tls: Option<TlsSection> = None;
            for l in &listeners {
                let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
                let addr = SocketAddr::new(l.address.or(self.bind_address).unwrap_or(any), l.port);
                let secured = l.tls.is_set();
                let slot = match (l.websockets, secured) {
                    (false, false) => &mut plain,
                    (true, false) => &mut websocket,
                    (false, true) => &mut m.tls_listen,
                    (true, true) => &mut m.websocket_tls_listen,
                };
                if slot.replace(addr).is_some() {
                    return Err(format!(
                        "{}: listener: edgemq serves one listener of each kind (MQTT, WebSockets, each with or without TLS)",
                        l.at
                    ));
                }
                if secured {
                    if tls.as_ref().is_some_and(|t| *t != l.tls) {
                        return Err(format!(
                            "{}: listener: the TLS listeners must share their certificates and options",
                            l.at
                        ));
                    }
                    tls = Some(l.tls.clone());
                }
            }
            m.websocket = websocket.is_some();
            if let Some(addr) = websocket {
                m.websocket_listen = addr;
            }
            match plain {
                Some(addr) => m.listen = addr,
                None => {
                    return Err("listener: edgemq needs a plain MQTT listener (without TLS)".into())
                }
            }
            if let Some(tls) = tls {
                config.tls = tls;
            }
        }
        config.bridge.extend(self.bridges);
        if !self.log_types.is_empty() {
            let debug = self.log_types.iter().any(|t| t == "debug" || t == "all");
            config.log.level = if debug { "debug" } else { "info" }.to_string();
        }
        Ok(())
    }
}

fn boolean(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("`{other}`: true or false")),
    }
}

fn number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("`{value}`: not a number in range"))
}

/// Mosquitto's `persistent_client_expiration`: a number and h, d, w, m (month) or y.
fn expiration(value: &str) -> Result<Duration, String> {
    let (n, unit) = value.split_at(value.len().saturating_sub(1));
    let n: u64 = number(n)?;
    let hours = match unit {
        "h" => 1,
        "d" => 24,
        "w" => 24 * 7,
        "m" => 24 * 30,
        "y" => 24 * 365,
        _ => return Err(format!("`{value}`: a number and h, d, w, m or y")),
    };
    Ok(Duration::from_secs(n * hours * 3600))
}

#[cfg(test)]
mod tests;
