//! TLS on every listener, with certificates made for the test (a CA, a server certificate for
//! 127.0.0.1, a client certificate): mosquitto_pub/sub with `--cafile` (and `--cert/--key`),
//! MQTT over WebSockets over TLS, curl against HTTPS; a wrong CA and plain MQTT are refused.

mod common;

use common::certs::certificates;
use common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn pub_to(addr: std::net::SocketAddr, dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new("mosquitto_pub")
        .current_dir(dir)
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string(), "-q", "1"])
        .args(extra)
        .output()
        .expect("mosquitto_pub")
}

#[test]
fn mqtt_and_https_over_tls_with_the_right_ca_only() {
    let dir = temp_dir();
    certificates(dir.path());
    let config = "[mqtt]\ntls_listen = \"127.0.0.1:0\"\n\
                  [tls]\ncertfile = \"server.pem\"\nkeyfile = \"server.key\"\n\
                  [http]\ncertfile = \"server.pem\"\nkeyfile = \"server.key\"\n";
    let edgemq = Edgemq::with_config(dir.path(), config);
    let mqtts = edgemq.listener("mqtts");
    let cafile = dir.path().join("ca.pem");
    let cafile = cafile.to_str().unwrap();
    let mut sub = Sub::start_on(mqtts, &["--cafile", cafile, "-q", "1", "-t", "tls/#"]);
    for version in ["mqttv311", "mqttv5"] {
        let out = pub_to(
            mqtts,
            dir.path(),
            &[
                "--cafile", "ca.pem", "-V", version, "-t", "tls/x", "-m", version,
            ],
        );
        assert!(out.status.success(), "{version}: {out:?}");
    }
    assert_eq!(
        sub.stream(2, Duration::from_secs(10)),
        ["tls/x mqttv311", "tls/x mqttv5"]
    );
    // Another CA's certificate does not vouch for this server; plain MQTT is not spoken here.
    let wrong = pub_to(
        mqtts,
        dir.path(),
        &["--cafile", "other-ca.pem", "-t", "tls/x", "-m", "no"],
    );
    assert!(!wrong.status.success(), "a wrong CA is refused: {wrong:?}");
    let plain = pub_to(mqtts, dir.path(), &["-t", "tls/x", "-m", "no"]);
    assert!(
        !plain.status.success(),
        "plain MQTT to the TLS port is refused"
    );
    sub.nothing_more();

    // HTTPS for the API; plain HTTP is not served there.
    let url = format!("https://127.0.0.1:{}/health", edgemq.http.port());
    let curl = |args: &[&str]| {
        Command::new("curl")
            .current_dir(dir.path())
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args)
            .output()
            .expect("curl is installed by .ci/run")
    };
    let ok = curl(&["--cacert", "ca.pem", &url]);
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "200", "{ok:?}");
    let wrong = curl(&["--cacert", "other-ca.pem", &url]);
    assert!(!wrong.status.success(), "curl refuses another CA's server");
    let plain = curl(&[&url.replace("https", "http")]);
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
    assert!(edgemq.stop().success());
}

#[test]
fn a_client_certificate_is_required_and_names_the_user() {
    // The client CA as a file, then as a directory of certificates (Mosquitto's capath).
    for authorities in ["cafile = \"ca.pem\"", "capath = \"cas\""] {
        client_certificates(authorities);
    }
}

fn client_certificates(authorities: &str) {
    let dir = temp_dir();
    certificates(dir.path());
    std::fs::create_dir(dir.path().join("cas")).unwrap();
    std::fs::copy(dir.path().join("ca.pem"), dir.path().join("cas/ca.pem")).unwrap();
    let config = format!(
        "[mqtt]\ntls_listen = \"127.0.0.1:0\"\n\
         [auth.users]\nsomeone = \"pw\"\n\
         [tls]\ncertfile = \"server.pem\"\nkeyfile = \"server.key\"\n{authorities}\n\
         require_certificate = true\nuse_identity_as_username = true\n"
    );
    let edgemq = Edgemq::with_config(dir.path(), &config);
    let mqtts = edgemq.listener("mqtts");
    let with_cert = [
        "--cafile",
        "ca.pem",
        "--cert",
        "client.pem",
        "--key",
        "client.key",
    ];
    let out = pub_to(
        mqtts,
        dir.path(),
        &[&with_cert[..], &["-t", "certs/x", "-m", "hi"]].concat(),
    );
    assert!(out.status.success(), "{out:?}");
    let rows = rows_eventually(&edgemq.db, "SELECT username FROM messages", 1);
    assert_eq!(
        rows,
        [["device-7"]],
        "the certificate's name is the username"
    );
    // Even with a good login: no certificate, no connection.
    let login = ["--cafile", "ca.pem", "-u", "someone", "-P", "pw"];
    let without = pub_to(
        mqtts,
        dir.path(),
        &[&login[..], &["-t", "certs/x", "-m", "no"]].concat(),
    );
    assert!(!without.status.success(), "{without:?}");
    assert!(edgemq.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_over_websockets_over_tls() {
    use common::raw::{connect, packet, string};
    use futures_util::{SinkExt, StreamExt};
    use std::sync::Arc;
    use tokio_rustls::rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    use tokio_rustls::rustls::{crypto::ring, ClientConfig, RootCertStore};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let dir = temp_dir();
    certificates(dir.path());
    let config = "[mqtt]\nwebsocket_tls_listen = \"127.0.0.1:0\"\n\
                  [tls]\ncertfile = \"server.pem\"\nkeyfile = \"server.key\"\n";
    let edgemq = Edgemq::with_config(dir.path(), config);
    let wss = edgemq.listener("mqtt-wss");
    // A client that trusts the test's CA only.
    let mut roots = RootCertStore::empty();
    let ca = CertificateDer::from_pem_file(dir.path().join("ca.pem")).unwrap();
    roots.add(ca).unwrap();
    let client = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(wss).await.unwrap();
    let server = ServerName::IpAddress(wss.ip().into());
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(server, tcp)
        .await
        .expect("the TLS handshake with the test's CA");
    let mut request = format!("wss://{wss}/mqtt").into_client_request().unwrap();
    let protocol = "mqtt".parse().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol);
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    ws.send(Message::binary(connect(4, 0x02, "wss-client", &[])))
        .await
        .unwrap();
    let connack = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
    let Ok(Some(Ok(Message::Binary(connack)))) = connack else {
        panic!("no CONNACK over wss: {connack:?}");
    };
    assert_eq!(connack.to_vec(), [0x20, 2, 0, 0]);
    let mut publish = string(b"wss/x");
    publish.extend_from_slice(b"over wss");
    ws.send(Message::binary(packet(0x30, &publish)))
        .await
        .unwrap();
    let rows = rows_eventually(&edgemq.db, "SELECT topic, payload FROM messages", 1);
    assert_eq!(rows, [["wss/x", "over wss"]]);
    assert!(edgemq.stop().success());
}

#[test]
fn sighup_reloads_the_certificates_and_keeps_connections() {
    let dir = temp_dir();
    certificates(dir.path());
    let config = "[mqtt]\ntls_listen = \"127.0.0.1:0\"\n\
                  [tls]\ncertfile = \"server.pem\"\nkeyfile = \"server.key\"\n";
    let edgemq = Edgemq::with_config(dir.path(), config);
    let mqtts = edgemq.listener("mqtts");
    let old_ca = dir.path().join("ca.pem");
    let mut sub = Sub::start_on(mqtts, &["--cafile", old_ca.to_str().unwrap(), "-t", "re/#"]);
    // New certificates from a new CA, in place of the old files.
    let new = dir.path().join("new");
    std::fs::create_dir(&new).unwrap();
    certificates(&new);
    for file in ["server.pem", "server.key"] {
        std::fs::copy(new.join(file), dir.path().join(file)).unwrap();
    }
    edgemq.signal(libc::SIGHUP);
    wait_for("the reload", Duration::from_secs(10), || {
        let log = edgemq.log_text();
        log.contains("SIGHUP: reloaded").then_some(()).ok_or(log)
    });
    let with_new = pub_to(
        mqtts,
        dir.path(),
        &["--cafile", "new/ca.pem", "-t", "re/x", "-m", "new"],
    );
    assert!(with_new.status.success(), "{with_new:?}");
    let with_old = pub_to(
        mqtts,
        dir.path(),
        &["--cafile", "ca.pem", "-t", "re/x", "-m", "old"],
    );
    assert!(
        !with_old.status.success(),
        "the old CA no longer vouches for the server"
    );
    // The subscriber connected before the reload is still there.
    assert_eq!(sub.stream(1, Duration::from_secs(10)), ["re/x new"]);
    assert!(edgemq.stop().success());
}
