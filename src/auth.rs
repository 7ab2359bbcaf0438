//! Mosquitto password files, as `mosquitto_passwd` writes them: one `user:hash` a line, the hash
//! `$7$<iterations>$<salt>$<hash>` (PBKDF2-HMAC-SHA512, Mosquitto 2) or `$6$<salt>$<hash>`
//! (SHA-512 of password and salt, Mosquitto 1.x), salt and hash in base64. `Logins` adds the
//! config's own users and the anonymous switch: who the front door lets in.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha512};
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

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
    /// A Mosquitto `acl_file`: who may publish to and read which topics (`acl`).
    pub acl_file: Option<PathBuf>,
}

impl AuthSection {
    /// Whether a client without a username is let in.
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous
            .unwrap_or(self.password_file.is_none() && self.users.is_empty())
    }
}

impl AuthSection {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(path) = &self.password_file {
            if path.as_os_str().is_empty() {
                return Err("auth.password_file: must not be empty".into());
            }
        }
        Ok(())
    }
}

enum Hash {
    Pbkdf2 {
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Sha512 {
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

/// The users of a password file and their hashes.
pub struct PasswordFile {
    users: HashMap<String, Hash>,
}

impl PasswordFile {
    /// Reads a password file; an error names the file and line.
    pub fn load(path: &Path) -> Result<PasswordFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |what: &str| format!("{}:{}: {what}", path.display(), n + 1);
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| at("expected `user:hash`"))?;
            users.insert(user.to_string(), parse_hash(hash).map_err(|e| at(&e))?);
        }
        Ok(PasswordFile { users })
    }

    /// Whether `password` is `user`'s.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let computed = match hash {
            Hash::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len()];
                pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, *iterations, &mut out);
                out
            }
            Hash::Sha512 { salt, .. } => {
                let mut digest = Sha512::new();
                digest.update(password.as_bytes());
                digest.update(salt);
                digest.finalize().to_vec()
            }
        };
        let expected = match hash {
            Hash::Pbkdf2 { hash, .. } | Hash::Sha512 { hash, .. } => hash,
        };
        same_bytes(&computed, expected)
    }
}

/// Why a CONNECT was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No username, and anonymous access is off.
    NoLogin,
    /// Unknown user or wrong password.
    BadLogin,
}

/// Who may connect: `[auth] users`, a password file, and whether anonymous clients may.
pub struct Logins {
    users: std::collections::BTreeMap<String, String>,
    file: Option<PasswordFile>,
    anonymous: bool,
}

impl Logins {
    /// The logins `[auth]` describes; an unreadable or bad password file is an error.
    pub fn from_config(auth: &AuthSection) -> Result<Logins, String> {
        let file = match &auth.password_file {
            Some(path) => Some(PasswordFile::load(path)?),
            None => None,
        };
        Ok(Logins {
            users: auth.users.clone(),
            file,
            anonymous: auth.anonymous_allowed(),
        })
    }

    /// Whether any login is configured (then replies are private without an `acl_file`).
    pub fn any(&self) -> bool {
        !self.users.is_empty() || self.file.is_some()
    }

    /// Whether `user` is one of the users (its password aside).
    pub fn knows(&self, user: &str) -> bool {
        self.users.contains_key(user)
            || self
                .file
                .as_ref()
                .is_some_and(|f| f.users.contains_key(user))
    }

    /// Anyone may connect, with any login or none.
    pub fn open() -> Logins {
        Logins {
            users: Default::default(),
            file: None,
            anonymous: true,
        }
    }

    /// Whether a client with this username and password (or none) may connect. With no users
    /// configured at all, any login is accepted, as Mosquitto does.
    pub fn check(&self, login: Option<(&str, &str)>) -> Result<(), Refusal> {
        let Some((user, password)) = login else {
            return if self.anonymous {
                Ok(())
            } else {
                Err(Refusal::NoLogin)
            };
        };
        if self.users.is_empty() && self.file.is_none() {
            return Ok(());
        }
        let in_config = self
            .users
            .get(user)
            .is_some_and(|expected| same_bytes(expected.as_bytes(), password.as_bytes()));
        let in_file = || self.file.as_ref().is_some_and(|f| f.verify(user, password));
        if in_config || in_file() {
            Ok(())
        } else {
            Err(Refusal::BadLogin)
        }
    }
}

/// Compares every byte, so the time taken does not tell how much matched.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_hash(text: &str) -> Result<Hash, String> {
    let b64 = |s: &str| BASE64.decode(s).map_err(|_| format!("`{s}` is not base64"));
    let parts: Vec<&str> = text.split('$').collect();
    match parts.as_slice() {
        ["", "7", iterations, salt, hash] => Ok(Hash::Pbkdf2 {
            iterations: iterations.parse().map_err(|_| format!("`{iterations}` is not an iteration count"))?,
            salt: b64(salt)?,
            hash: b64(hash)?,
        }),
        ["", "6", salt, hash] => Ok(Hash::Sha512 {
            salt: b64(salt)?,
            hash: b64(hash)?,
        }),
        _ => Err("not a mosquitto_passwd hash ($7$ or $6$); a plain-text password file must be hashed with `mosquitto_passwd -U FILE`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_hashes_written_by_mosquitto_passwd() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        // Written by `mosquitto_passwd -b passwd alice 'wonder land'` (Mosquitto 2, Debian 12).
        std::fs::write(
            &path,
            "alice:$7$101$HRSD3Q1HPqOdhLcX$DY+mKvuBffVW/hFjxyDJeC8jYZDFNLaTmdPnC5c0EM4O1zdlgtHslLSdnStZm3HsM1vRcWhA5GxQBpG4UZhUag==\n",
        )
        .unwrap();
        let file = PasswordFile::load(&path).unwrap();
        assert!(file.verify("alice", "wonder land"));
        assert!(!file.verify("alice", "wonder lan"));
        assert!(!file.verify("bob", "wonder land"));
    }

    #[test]
    fn logins_follow_the_anonymous_switch() {
        let mut auth = AuthSection::default();
        assert_eq!(Logins::from_config(&auth).unwrap().check(None), Ok(()));
        auth.users.insert("ann".into(), "pw".into());
        let logins = Logins::from_config(&auth).unwrap();
        assert_eq!(logins.check(None), Err(Refusal::NoLogin));
        assert_eq!(logins.check(Some(("ann", "pw"))), Ok(()));
        assert_eq!(logins.check(Some(("ann", "px"))), Err(Refusal::BadLogin));
        auth.allow_anonymous = Some(true);
        let logins = Logins::from_config(&auth).unwrap();
        assert_eq!(logins.check(None), Ok(()));
        assert_eq!(logins.check(Some(("bob", "pw"))), Err(Refusal::BadLogin));
    }

    #[test]
    fn a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        std::fs::write(&path, "# users\nalice:plain\n").unwrap();
        let err = PasswordFile::load(&path).err().unwrap();
        assert!(err.ends_with("passwd:2: not a mosquitto_passwd hash ($7$ or $6$); a plain-text password file must be hashed with `mosquitto_passwd -U FILE`"), "{err}");
    }
}
