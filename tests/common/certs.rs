//! Certificates made for a test with rcgen: a CA, a server certificate for 127.0.0.1 and
//! localhost, a client certificate, and a CA that signed neither.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};
use std::path::Path;

/// A certificate authority: its certificate and key.
struct Ca(Certificate, KeyPair);

fn ca(dir: &Path, name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    Ca(cert, key)
}

/// A certificate signed by `ca`, written as `<file>.pem` and `<file>.key`; its public key. A
/// server's names it `names`; without them it is a client's.
fn signed(
    dir: &Path,
    ca: &Ca,
    file: &str,
    common_name: &str,
    names: Option<Vec<SanType>>,
) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    match names {
        Some(names) => params.subject_alt_names = names,
        None => params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth],
    }
    let cert = params.signed_by(&key, &ca.0, &ca.1).unwrap();
    std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    key.public_key_der()
}

/// A CA, a server certificate and a client certificate (CN `device-7`), a server certificate
/// for another host (`upstream.example` only), and a CA that signed none of them.
/// Writes `ca.pem`, `server.pem`/`.key`, `client.pem`/`.key`, `elsewhere.pem`/`.key` and
/// `other-ca.pem` in `dir`; returns the server key's SubjectPublicKeyInfo (DER), for pinning it
/// in a browser.
pub fn certificates(dir: &Path) -> Vec<u8> {
    let authority = ca(dir, "ca");
    let here = vec![
        SanType::IpAddress("127.0.0.1".parse().unwrap()),
        SanType::DnsName("localhost".try_into().unwrap()),
    ];
    let server = signed(dir, &authority, "server", "edgemq", Some(here));
    signed(dir, &authority, "client", "device-7", None);
    let elsewhere = vec![SanType::DnsName("upstream.example".try_into().unwrap())];
    signed(dir, &authority, "elsewhere", "upstream", Some(elsewhere));
    ca(dir, "other-ca");
    server
}
