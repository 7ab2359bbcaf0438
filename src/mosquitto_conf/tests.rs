//! Mosquitto configuration files as edgemq reads them.

use super::*;
use crate::bridge::ProtocolVersion;

fn read(text: &str) -> Result<(Config, Vec<String>), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mosquitto.conf");
    std::fs::write(&path, text).unwrap();
    let mut config = Config::default();
    let warnings = apply(&path, &mut config)
        .map_err(|e| e.replace(&dir.path().display().to_string(), "DIR"))?;
    Ok((config, warnings))
}

#[test]
fn listeners_logins_tls_and_limits() {
    let (config, warnings) = read(
        "per_listener_settings false\n\
         listener 1884\n\
         listener 8883 127.0.0.1\n\
         certfile /etc/x/server.pem\n\
         keyfile /etc/x/server.key\n\
         listener 9001\n\
         protocol websockets\n\
         password_file /etc/mosquitto/passwd\n\
         acl_file /etc/mosquitto/acl\n\
         max_queued_messages 500\n\
         persistent_client_expiration 2d\n\
         max_inflight_messages 0\n\
         persistence_location /var/lib/mosquitto/\n\
         autosave_interval 1800\n\
         log_dest file /var/log/mosquitto/mosquitto.log\n\
         log_type all\n",
    )
    .unwrap();
    let m = &config.mqtt;
    assert_eq!(m.listen.to_string(), "0.0.0.0:1884");
    assert_eq!(
        m.tls_listen.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:8883")
    );
    assert_eq!(m.websocket_listen.to_string(), "0.0.0.0:9001");
    assert!(m.websocket);
    assert_eq!(
        config.tls.certfile.as_deref(),
        Some(Path::new("/etc/x/server.pem"))
    );
    assert_eq!(
        config.auth.allow_anonymous,
        Some(false),
        "Mosquitto 2's default"
    );
    assert_eq!(m.max_queued_messages, Some(500));
    assert_eq!(
        m.persistent_client_expiration,
        Some(Duration::from_secs(2 * 86_400))
    );
    assert_eq!(m.max_inflight_messages, 65_535);
    assert_eq!(config.store.path, Path::new("/var/lib/mosquitto/edgemq.db"));
    assert_eq!(config.log.level, "debug");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0]
        .ends_with(":14: autosave_interval: ignored: edgemq commits every message as it comes"));
}

#[test]
fn no_listener_is_local_only_and_anonymous() {
    let (config, _) = read("persistence true\n").unwrap();
    assert_eq!(config.mqtt.listen.to_string(), "127.0.0.1:1883");
    assert!(!config.mqtt.websocket);
    assert_eq!(config.auth.allow_anonymous, Some(true));
}

#[test]
fn what_edgemq_does_not_do_is_refused_naming_the_line() {
    let refused = |text: &str| read(text).err().unwrap();
    assert_eq!(
        refused("listener 1883\nfrobnicate 1\n"),
        "DIR/mosquitto.conf:2: frobnicate: unknown option"
    );
    assert_eq!(
        refused("connection cloud\naddress 10.0.0.1\ntopic cmd/# sideways 1\n"),
        "DIR/mosquitto.conf:3: topic: `sideways`: out, in or both"
    );
    assert_eq!(
        refused("connection c\naddress 10.0.0.1\nbridge_protocol_version mqttv6\n"),
        "DIR/mosquitto.conf:3: bridge_protocol_version: `mqttv6`: mqttv31, mqttv311 or mqttv50"
    );
    assert_eq!(
        refused("address 10.0.0.1\n"),
        "DIR/mosquitto.conf:1: address: a bridge option before any `connection` line"
    );
    assert_eq!(
        refused("listener 1883\nretain_available false\n"),
        "DIR/mosquitto.conf:2: retain_available: false is not supported: retained messages are always kept"
    );
    assert!(refused("listener 1883\nlistener 1884\n")
        .contains(":2: listener: edgemq serves one listener of each kind"));
    assert!(refused("per_listener_settings true\nlistener 1883\npassword_file a\nlistener 1884\nprotocol websockets\npassword_file b\n")
        .contains(":6: password_file: differs from DIR/mosquitto.conf:3"));
}

#[test]
fn bridges_are_read_as_mosquitto_writes_them() {
    let (config, warnings) = read(
        "listener 1883\n\
         connection cloud\n\
         address broker.example.com:8883 backup.example.com\n\
         topic sensors/# out 1 \"\" site1/\n\
         topic alerts/# out\n\
         remote_clientid edge-1\n\
         remote_username site1\n\
         remote_password secret\n\
         cleansession false\n\
         restart_timeout 10 30\n\
         try_private true\n\
         connection other\n\
         address 10.0.0.2\n\
         topic cmd/# both 1\n\
         bridge_protocol_version mqttv50\n\
         notifications false\n\
         notification_topic edge/state\n\
         round_robin true\n",
    )
    .unwrap();
    let other = &config.bridge[1];
    assert_eq!(other.bridge_protocol_version, ProtocolVersion::Mqttv50);
    assert!(!other.notifications);
    assert_eq!(other.notification_topic.as_deref(), Some("edge/state"));
    assert!(other.round_robin);
    let (tls, _) = read(
        "connection t\naddress 10.0.0.3\ntopic a/# out\nbridge_capath /etc/ssl/certs\n\
         bridge_insecure true\n",
    )
    .unwrap();
    let t = &tls.bridge[0];
    assert_eq!(
        t.bridge_capath.as_deref(),
        Some(Path::new("/etc/ssl/certs"))
    );
    assert!(t.bridge_insecure);
    let bridge = &config.bridge[0];
    assert_eq!(bridge.bridge_protocol_version, ProtocolVersion::Mqttv311);
    // Mosquitto's defaults: notifications on, the first address the primary one.
    assert!(bridge.notifications && !bridge.notifications_local_only && !bridge.round_robin);
    assert_eq!(bridge.name, "cloud");
    assert_eq!(
        bridge.addresses,
        ["broker.example.com:8883", "backup.example.com:1883"]
    );
    assert_eq!(bridge.topics[0].remote_prefix, "site1/");
    assert_eq!((bridge.topics[0].qos, bridge.topics[1].qos), (1, 0));
    assert_eq!(bridge.remote_clientid.as_deref(), Some("edge-1"));
    assert_eq!(bridge.restart_timeout, Duration::from_secs(10));
    assert!(warnings.iter().any(|w| w.contains("try_private: ignored")));
    assert_eq!(config.validate(), Ok(()));
}
