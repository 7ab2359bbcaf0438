//! Each option of `mosquitto.conf`, as edgemq takes it.

use super::{boolean, expiration, number, Listener, Read};
use crate::config::Config;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Options that mean nothing to edgemq, accepted with this warning.
const IGNORED: &[(&str, &str)] = &[
    (
        "autosave_interval",
        "edgemq commits every message as it comes",
    ),
    (
        "autosave_on_changes",
        "edgemq commits every message as it comes",
    ),
    (
        "persistence_file",
        "the database is edgemq.db in persistence_location",
    ),
    (
        "pid_file",
        "edgemq writes no pid file (systemd knows its pid)",
    ),
    (
        "user",
        "edgemq does not switch users; run it as the user it should be (systemd User=)",
    ),
    (
        "log_timestamp",
        "edgemq's log lines always have a timestamp",
    ),
    (
        "log_timestamp_format",
        "edgemq's log lines have RFC 3339 timestamps",
    ),
    (
        "connection_messages",
        "connections are logged at debug level",
    ),
    ("set_tcp_nodelay", "edgemq always sets TCP_NODELAY"),
    (
        "websockets_log_level",
        "WebSocket errors are logged at info level",
    ),
    (
        "websockets_headers_size",
        "edgemq's WebSocket handshake takes any header size",
    ),
    (
        "check_retain_source",
        "ACLs are checked on every delivery anyway",
    ),
    (
        "memory_limit",
        "edgemq's memory stays bounded: backlogs are read from the store",
    ),
    (
        "max_inflight_bytes",
        "max_inflight_messages bounds what is in flight",
    ),
    (
        "upgrade_outgoing_qos",
        "deliveries go at the lower of the two QoS, as MQTT says",
    ),
    (
        "auto_id_prefix",
        "edgemq names clients without an id itself",
    ),
    ("ciphers", "rustls chooses its own cipher suites"),
    ("ciphers_tls1.3", "rustls chooses its own cipher suites"),
    ("dhparamfile", "rustls has no finite-field Diffie-Hellman"),
    ("ecdh_curve", "rustls chooses its own curves"),
    ("socket_domain", "the listener's address says IPv4 or IPv6"),
];

/// Options edgemq does not implement, refused with this reason.
const REFUSED: &[(&str, &str)] = &[
    ("crlfile", "certificate revocation lists are not supported"),
    ("psk_hint", "TLS pre-shared keys are not supported"),
    ("psk_file", "TLS pre-shared keys are not supported"),
    (
        "tls_engine",
        "OpenSSL engines are not supported (edgemq uses rustls)",
    ),
    (
        "tls_keyform",
        "OpenSSL engines are not supported (edgemq uses rustls)",
    ),
    (
        "tls_engine_kpass_sha1",
        "OpenSSL engines are not supported (edgemq uses rustls)",
    ),
    ("clientid_prefixes", "not supported"),
    ("mount_point", "not supported"),
    ("use_username_as_clientid", "not supported"),
    ("plugin", "plugins are not supported"),
    ("auth_plugin", "plugins are not supported"),
    ("global_plugin", "plugins are not supported"),
    (
        "http_dir",
        "edgemq serves its own dashboard on its HTTP port",
    ),
    ("max_qos", "not supported: every QoS is served"),
    (
        "accept_protocol_versions",
        "not supported: MQTT 3.1, 3.1.1 and 5 are all served",
    ),
];

impl Read {
    pub(super) fn option(
        &mut self,
        option: &str,
        value: &str,
        at: &str,
        config: &mut Config,
    ) -> Result<(), String> {
        if self.bridge_option(option, value, at)? {
            return Ok(());
        }
        let path = || PathBuf::from(value);
        let m = &mut config.mqtt;
        match option {
            "listener" => self.listener(value, at)?,
            "port" => self.default_listener(at).port = number(value)?,
            "bind_address" => self.bind_address = Some(address(value)?),
            "protocol" => {
                self.current(at).websockets = match value {
                    "mqtt" => false,
                    "websockets" => true,
                    other => return Err(format!("`{other}`: mqtt or websockets")),
                }
            }
            "certfile" => self.current(at).tls.certfile = Some(path()),
            "keyfile" => self.current(at).tls.keyfile = Some(path()),
            "cafile" => self.current(at).tls.cafile = Some(path()),
            "capath" => self.current(at).tls.capath = Some(path()),
            "require_certificate" => self.current(at).tls.require_certificate = boolean(value)?,
            "use_identity_as_username" => {
                self.current(at).tls.use_identity_as_username = boolean(value)?
            }
            "use_subject_as_username" => {
                self.current(at).tls.use_subject_as_username = boolean(value)?
            }
            "tls_version" => self.current(at).tls.tls_version = Some(value.to_string()),
            "per_listener_settings" => self.per_listener_settings = boolean(value)?,
            "allow_anonymous" | "password_file" | "acl_file" => {
                self.login_setting(option, value, at)?;
                match option {
                    "allow_anonymous" => config.auth.allow_anonymous = Some(boolean(value)?),
                    "password_file" => config.auth.password_file = Some(path()),
                    _ => config.auth.acl_file = Some(path()),
                }
            }
            "max_connections" => {
                m.max_connections = match number::<i64>(value)? {
                    -1 => None,
                    n if n > 0 => Some(n as usize),
                    _ => return Err(format!("`{value}`: -1 (no limit) or more than 0")),
                }
            }
            "max_packet_size" => match number::<usize>(value)? {
                0 => {}
                n => m.max_packet_size = n,
            },
            "message_size_limit" => match number::<usize>(value)? {
                0 => {}
                n => {
                    // A payload of n bytes with the longest topic and its header.
                    m.max_packet_size = n.saturating_add(65_540).min(268_435_455);
                    let why = format!("applied as max_packet_size {}", m.max_packet_size);
                    self.warn(at, option, &why);
                }
            },
            "max_keepalive" => m.max_keepalive = Some(number(value)?),
            "max_inflight_messages" => {
                m.max_inflight_messages = match number::<usize>(value)? {
                    0 => 65_535,
                    n => n,
                }
            }
            "max_queued_messages" => {
                m.max_queued_messages = Some(number(value)?).filter(|n| *n > 0)
            }
            "max_queued_bytes" => m.max_queued_bytes = Some(number(value)?).filter(|n| *n > 0),
            "queue_qos0_messages" => m.queue_qos0_messages = boolean(value)?,
            "persistent_client_expiration" => {
                m.persistent_client_expiration = Some(expiration(value)?)
            }
            "retain_available" if boolean(value)? => {}
            "retain_available" => {
                return Err("false is not supported: retained messages are always kept".into())
            }
            "allow_zero_length_clientid" if boolean(value)? => {}
            "allow_zero_length_clientid" => return Err("false is not supported".into()),
            "sys_interval" => match number::<u64>(value)? {
                0 => self.warn(at, option, "0: $SYS is still answered, refreshed every 10s"),
                n => m.sys_interval = Duration::from_secs(n),
            },
            "persistence" if boolean(value)? => {}
            "persistence" => self.warn(
                at,
                option,
                "false: edgemq always stores messages and sessions",
            ),
            "persistence_location" => config.store.path = path().join("edgemq.db"),
            "log_dest" => self.log_dest(value, at, config)?,
            "log_type" => self.log_types.push(value.to_string()),
            _ => return self.other(option, at),
        }
        Ok(())
    }

    fn listener(&mut self, value: &str, at: &str) -> Result<(), String> {
        let mut words = value.split_whitespace();
        let port = number(words.next().unwrap_or(""))?;
        let address = words.next().map(address).transpose()?;
        self.listeners.push(Listener {
            port,
            address,
            at: at.to_string(),
            ..Default::default()
        });
        Ok(())
    }

    /// With `per_listener_settings true`, a login setting must be the same everywhere: edgemq
    /// applies one set of logins and ACLs to every listener.
    fn login_setting(&mut self, option: &str, value: &str, at: &str) -> Result<(), String> {
        let earlier = self.auth.iter().find(|(o, v, _)| o == option && v != value);
        if let (true, Some((_, _, first))) = (self.per_listener_settings, earlier) {
            return Err(format!(
                "differs from {first}: edgemq applies one {option} to every listener"
            ));
        }
        self.auth.push((option.into(), value.into(), at.into()));
        Ok(())
    }

    fn log_dest(&mut self, value: &str, at: &str, config: &mut Config) -> Result<(), String> {
        match value.split_once(' ') {
            Some(("file", file)) => config.log.file = Some(PathBuf::from(file.trim())),
            None if matches!(value, "stdout" | "stderr") => {}
            None if matches!(value, "syslog" | "topic" | "dlt" | "none") => {
                let why = format!("{value}: edgemq logs to stderr (the journal under systemd) and to `log_dest file`");
                self.warn(at, "log_dest", &why);
            }
            _ => {
                return Err(format!(
                    "`{value}`: file PATH, stdout, stderr, syslog, topic or none"
                ))
            }
        }
        Ok(())
    }

    /// Options that mean nothing here (a warning), are not implemented, or are unknown.
    fn other(&mut self, option: &str, at: &str) -> Result<(), String> {
        if let Some((_, why)) = IGNORED.iter().find(|(o, _)| *o == option) {
            self.warn(at, option, &format!("ignored: {why}"));
            return Ok(());
        }
        if let Some((_, why)) = REFUSED.iter().find(|(o, _)| *o == option) {
            return Err(why.to_string());
        }
        if option.starts_with("plugin_opt_") || option.starts_with("auth_opt_") {
            return Err("plugins are not supported".into());
        }
        Err("unknown option".into())
    }
}

/// A listener's address: an IP address (Mosquitto also takes host names and unix sockets).
fn address(value: &str) -> Result<IpAddr, String> {
    value
        .parse()
        .map_err(|_| format!("`{value}`: edgemq listens on IP addresses"))
}
