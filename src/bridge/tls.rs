//! TLS to a bridge's upstream, as Mosquitto's bridge options say it: the authorities of
//! `bridge_cafile` and every file in `bridge_capath`, this side's `bridge_certfile` and
//! `bridge_keyfile` when the upstream asks for a certificate, and `bridge_insecure`, which keeps
//! verifying the upstream's certificate chain but not that it names the address connected to.
//! The client configuration is rumqttc's own rustls (0.22).

use super::BridgeSection;
use rumqttc::tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use rumqttc::tokio_rustls::rustls::client::WebPkiServerVerifier;
use rumqttc::tokio_rustls::rustls::pki_types::pem::PemObject;
use rumqttc::tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, ServerName, UnixTime,
};
use rumqttc::tokio_rustls::rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};
use rumqttc::TlsConfiguration;
use std::path::PathBuf;
use std::sync::Arc;

/// rumqttc's TLS settings for the upstream, when a CA file or path is given.
pub fn configuration(bridge: &BridgeSection) -> Result<Option<TlsConfiguration>, String> {
    let Some(ca) = authorities(bridge)? else {
        return Ok(None);
    };
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let client_auth = match (&bridge.bridge_certfile, &bridge.bridge_keyfile) {
        (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
        _ => None,
    };
    if !bridge.bridge_insecure {
        return Ok(Some(TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth,
        }));
    }
    let config = insecure(&ca, client_auth)?;
    Ok(Some(TlsConfiguration::Rustls(Arc::new(config))))
}

/// The PEM of `bridge_cafile` and of every file in `bridge_capath`, one after the other.
fn authorities(bridge: &BridgeSection) -> Result<Option<Vec<u8>>, String> {
    let mut files: Vec<PathBuf> = bridge.bridge_cafile.iter().cloned().collect();
    if let Some(dir) = &bridge.bridge_capath {
        files.extend(crate::tls::files_in(dir)?);
    }
    if files.is_empty() {
        return Ok(None);
    }
    let mut pem = Vec::new();
    for file in &files {
        let text = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        if CertificateDer::pem_slice_iter(&text).next().is_none() {
            return Err(format!("{}: no certificate in it", file.display()));
        }
        pem.extend(text);
        pem.push(b'\n');
    }
    Ok(Some(pem))
}

/// A client configuration whose verifier accepts a certificate for another name.
fn insecure(ca: &[u8], client_auth: Option<(Vec<u8>, Vec<u8>)>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca) {
        let cert = cert.map_err(|e| format!("bridge_cafile: {e}"))?;
        roots.add(cert).map_err(|e| format!("bridge_cafile: {e}"))?;
    }
    let verifier = WebPkiServerVerifier::builder(Arc::new(roots))
        .build()
        .map_err(|e| format!("bridge_cafile: {e}"))?;
    let builder = ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyName(verifier)));
    match client_auth {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let certs = CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("bridge_certfile: {e}"))?;
            let key =
                PrivateKeyDer::from_pem_slice(&key).map_err(|e| format!("bridge_keyfile: {e}"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("bridge_certfile: {e}"))
        }
    }
}

/// The web PKI's verification, except that a certificate for another name passes.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verified =
            self.0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match verified {
            Err(Error::InvalidCertificate(CertificateError::NotValidForName)) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
