//! TLS for the listeners (MQTT, MQTT over WebSockets, HTTP), with rustls: a PEM certificate
//! chain and key, TLS 1.2 and 1.3 (`tls_version` names the lowest), and client certificates
//! checked against `cafile` (required with `require_certificate`), whose identity may be the
//! client's username (Mosquitto's `use_identity_as_username`, `use_subject_as_username`). The
//! files are read again on reload (SIGHUP); connections made before keep their session.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, version, RootCertStore, ServerConfig, SupportedProtocolVersion};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// `[tls]` (the MQTT listeners') and the certificate part of `[http]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// The server's certificate chain (PEM), leaf first.
    pub certfile: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub keyfile: Option<PathBuf>,
    /// Certificate authorities that sign client certificates (PEM).
    pub cafile: Option<PathBuf>,
    /// A directory of such certificates (PEM files), beside or instead of `cafile`.
    pub capath: Option<PathBuf>,
    /// Refuse clients without a valid certificate (Mosquitto's option).
    pub require_certificate: bool,
    /// The client certificate's common name is its username (no password asked).
    pub use_identity_as_username: bool,
    /// The client certificate's whole subject is its username.
    pub use_subject_as_username: bool,
    /// The lowest TLS version accepted: "tlsv1.2" (the default) or "tlsv1.3".
    pub tls_version: Option<String>,
}

impl TlsSection {
    /// Whether a certificate and key are given.
    pub fn is_set(&self) -> bool {
        self.certfile.is_some() || self.keyfile.is_some()
    }

    /// Checks the settings and reads every file once; `section` names it in errors.
    pub fn validate(&self, section: &str) -> Result<(), String> {
        if self.certfile.is_some() != self.keyfile.is_some() {
            return Err(format!("{section}: certfile and keyfile go together"));
        }
        if self.require_certificate && self.cafile.is_none() && self.capath.is_none() {
            return Err(format!(
                "{section}.require_certificate: needs a cafile or capath"
            ));
        }
        let identity = self.use_identity_as_username || self.use_subject_as_username;
        if identity && !self.require_certificate {
            return Err(format!(
                "{section}: use_identity_as_username and use_subject_as_username need require_certificate = true"
            ));
        }
        if let Some(v) = self.tls_version.as_deref() {
            if !matches!(v, "tlsv1.2" | "tlsv1.3") {
                return Err(format!(
                    "{section}.tls_version: `{v}`: tlsv1.2 or tlsv1.3 (rustls has no older ones)"
                ));
            }
        }
        if self.is_set() {
            self.server_config(false)
                .map_err(|e| format!("{section}: {e}"))?;
        }
        Ok(())
    }

    /// The rustls server settings these files make; `http`: offer HTTP/1.1 by ALPN (MQTT
    /// listeners negotiate nothing, so any client's ALPN is accepted).
    fn server_config(&self, http: bool) -> Result<ServerConfig, String> {
        let (Some(certfile), Some(keyfile)) = (&self.certfile, &self.keyfile) else {
            return Err("no certfile and keyfile".into());
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&SupportedProtocolVersion] = match self.tls_version.as_deref() {
            Some("tlsv1.3") => &[&version::TLS13],
            _ => &[&version::TLS12, &version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| e.to_string())?;
        let builder = match self.client_cas()? {
            Some(roots) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
                let verifier = match self.require_certificate {
                    true => verifier.build(),
                    false => verifier.allow_unauthenticated().build(),
                };
                builder.with_client_cert_verifier(verifier.map_err(|e| e.to_string())?)
            }
            None => builder.with_no_client_auth(),
        };
        let key = PrivateKeyDer::from_pem_file(keyfile)
            .map_err(|e| format!("{}: no private key: {e}", keyfile.display()))?;
        let mut config = builder
            .with_single_cert(certificates(certfile)?, key)
            .map_err(|e| format!("{}: {e}", certfile.display()))?;
        if http {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
        }
        Ok(config)
    }
}

impl TlsSection {
    /// The authorities of `cafile` and `capath` (every PEM file in it), if either is given.
    fn client_cas(&self) -> Result<Option<RootCertStore>, String> {
        let mut files: Vec<PathBuf> = self.cafile.iter().cloned().collect();
        if let Some(dir) = &self.capath {
            files.extend(files_in(dir)?);
        }
        if files.is_empty() {
            return Ok(None);
        }
        let mut roots = RootCertStore::empty();
        for file in &files {
            for cert in certificates(file)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
            }
        }
        Ok(Some(roots))
    }
}

/// The files in `dir` (a `capath`), in name order.
pub fn files_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let what = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| what(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| what(&e))?;
    if certs.is_empty() {
        return Err(what(&"no certificate in it"));
    }
    Ok(certs)
}

/// A listener's TLS: its settings and the acceptor made from them, replaced on reload.
pub struct Server {
    section: TlsSection,
    http: bool,
    acceptor: RwLock<TlsAcceptor>,
}

impl Server {
    /// For an MQTT listener, or (`http`) the HTTP one.
    pub fn new(section: &TlsSection, http: bool) -> Result<Server, String> {
        let config = section.server_config(http)?;
        Ok(Server {
            section: section.clone(),
            http,
            acceptor: RwLock::new(TlsAcceptor::from(Arc::new(config))),
        })
    }

    /// Reads the files again; on an error the old ones stay in use.
    pub fn reload(&self) -> Result<(), String> {
        let config = self.section.server_config(self.http)?;
        *self.acceptor.write().unwrap_or_else(|e| e.into_inner()) =
            TlsAcceptor::from(Arc::new(config));
        Ok(())
    }

    /// The TLS handshake on a new connection.
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        socket: S,
    ) -> std::io::Result<TlsStream<S>> {
        let acceptor = self
            .acceptor
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        acceptor.accept(socket).await
    }

    /// The username a client certificate gives, when the settings say to use it.
    pub fn username<S>(&self, stream: &TlsStream<S>) -> Option<String> {
        let section = &self.section;
        if !section.use_identity_as_username && !section.use_subject_as_username {
            return None;
        }
        let der = stream.get_ref().1.peer_certificates()?.first()?;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        match section.use_subject_as_username {
            true => Some(subject.to_string()),
            false => subject
                .iter_common_name()
                .next()?
                .as_str()
                .ok()
                .map(str::to_string),
        }
    }
}
