//! Mosquitto's bridge options: `connection NAME` starts a bridge, and the options after it
//! (`address`, `topic`, `remote_clientid`, ...) are its own, as `[[bridge]]` in the TOML.

use super::{boolean, number, Read};
use crate::bridge::{BridgeSection, BridgeTopic, Direction, ProtocolVersion};
use std::time::Duration;

/// Bridge options edgemq does not build yet.
const NOT_YET: &[(&str, &str)] = &[
    ("bridge_identity", "TLS-PSK is not built"),
    ("bridge_psk", "TLS-PSK is not built"),
    ("bridge_alpn", "ALPN to the upstream is not built"),
];

/// Bridge options that mean nothing here, accepted with a warning.
const IGNORED: &[(&str, &str)] = &[
    ("try_private", "edgemq connects as a plain client"),
    (
        "local_clientid",
        "the bridge reads the store, not a local connection",
    ),
    (
        "local_username",
        "the bridge reads the store, not a local connection",
    ),
    (
        "local_password",
        "the bridge reads the store, not a local connection",
    ),
    (
        "idle_timeout",
        "the bridge connects at start-up (start_type automatic)",
    ),
    (
        "threshold",
        "the bridge connects at start-up (start_type automatic)",
    ),
    (
        "bridge_attempt_unsubscribe",
        "the bridge never subscribes upstream to `out` topics, so has nothing to unsubscribe",
    ),
    (
        "bridge_outgoing_retain",
        "retain flags are forwarded as published",
    ),
];

impl Read {
    /// Handles `option` if it is a bridge option (Ok(true)).
    pub(super) fn bridge_option(
        &mut self,
        option: &str,
        value: &str,
        at: &str,
    ) -> Result<bool, String> {
        if option == "connection" {
            if value.is_empty() {
                return Err("a name".into());
            }
            self.bridges.push(BridgeSection::named(value));
            return Ok(true);
        }
        let known = matches!(
            option,
            "address"
                | "addresses"
                | "topic"
                | "remote_clientid"
                | "clientid"
                | "remote_username"
                | "remote_password"
                | "cleansession"
                | "keepalive_interval"
                | "restart_timeout"
                | "start_type"
                | "bridge_cafile"
                | "bridge_certfile"
                | "bridge_keyfile"
                | "bridge_capath"
                | "bridge_insecure"
                | "bridge_protocol_version"
                | "notifications"
                | "notification_topic"
                | "notifications_local_only"
                | "round_robin"
                | "max_rate"
        );
        let not_yet = NOT_YET.iter().find(|(o, _)| *o == option);
        let ignored = IGNORED.iter().find(|(o, _)| *o == option);
        if !known && not_yet.is_none() && ignored.is_none() {
            return Ok(false);
        }
        let Some(bridge) = self.bridges.last_mut() else {
            return Err("a bridge option before any `connection` line".into());
        };
        if let Some((_, why)) = not_yet {
            return Err(why.to_string());
        }
        if let Some((_, why)) = ignored {
            self.warn(at, option, &format!("ignored: {why}"));
            return Ok(true);
        }
        match option {
            "address" | "addresses" => {
                for address in value.split_whitespace() {
                    let with_port = match address.rsplit_once(':') {
                        Some((_, port)) if port.parse::<u16>().is_ok() => address.to_string(),
                        _ => format!("{address}:1883"),
                    };
                    bridge.addresses.push(with_port);
                }
            }
            "topic" => bridge.topics.push(topic(value)?),
            "remote_clientid" | "clientid" => bridge.remote_clientid = Some(value.to_string()),
            "bridge_cafile" => bridge.bridge_cafile = Some(value.into()),
            "bridge_certfile" => bridge.bridge_certfile = Some(value.into()),
            "bridge_keyfile" => bridge.bridge_keyfile = Some(value.into()),
            "bridge_capath" => bridge.bridge_capath = Some(value.into()),
            "bridge_insecure" => bridge.bridge_insecure = boolean(value)?,
            "remote_username" => bridge.remote_username = Some(value.to_string()),
            "remote_password" => bridge.remote_password = Some(value.to_string()),
            "cleansession" => bridge.cleansession = boolean(value)?,
            "keepalive_interval" => bridge.keepalive_interval = Duration::from_secs(number(value)?),
            "restart_timeout" => {
                // `restart_timeout BASE CAP` (backoff): the base is the wait here.
                let base = value.split_whitespace().next().unwrap_or("");
                bridge.restart_timeout = Duration::from_secs(number(base)?);
            }
            "start_type" if value == "automatic" => {}
            "start_type" => return Err(format!("`{value}`: only automatic is built")),
            "bridge_protocol_version" => {
                bridge.bridge_protocol_version = match value {
                    "mqttv311" | "mqttv31" => ProtocolVersion::Mqttv311,
                    "mqttv50" => ProtocolVersion::Mqttv50,
                    _ => return Err(format!("`{value}`: mqttv31, mqttv311 or mqttv50")),
                }
            }
            "notifications" => bridge.notifications = boolean(value)?,
            "notification_topic" => bridge.notification_topic = Some(value.to_string()),
            "notifications_local_only" => bridge.notifications_local_only = boolean(value)?,
            "round_robin" => bridge.round_robin = boolean(value)?,
            _ => bridge.max_rate = number(value)?,
        }
        Ok(true)
    }
}

/// `topic PATTERN [out|in|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]`; `""` is an empty prefix.
fn topic(value: &str) -> Result<BridgeTopic, String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let unquote = |w: &str| {
        if w == "\"\"" {
            String::new()
        } else {
            w.to_string()
        }
    };
    let direction = match words.get(1).copied() {
        None | Some("out") => Direction::Out,
        Some("in") => Direction::In,
        Some("both") => Direction::Both,
        Some(other) => return Err(format!("`{other}`: out, in or both")),
    };
    let pattern = words.first().map(|w| unquote(w)).unwrap_or_default();
    Ok(BridgeTopic {
        pattern,
        direction,
        qos: words.get(2).map(|q| number(q)).transpose()?.unwrap_or(0),
        local_prefix: words.get(3).map(|w| unquote(w)).unwrap_or_default(),
        remote_prefix: words.get(4).map(|w| unquote(w)).unwrap_or_default(),
    })
}
