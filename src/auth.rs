//! Mosquitto password files, as `mosquitto_passwd` writes them: one `user:hash` a line, the hash
//! `$7$<iterations>$<salt>$<hash>` (PBKDF2-HMAC-SHA512, Mosquitto 2) or `$6$<salt>$<hash>`
//! (SHA-512 of password and salt, Mosquitto 1.x), salt and hash in base64.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use std::path::Path;

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
        // Compare every byte, so the time taken does not tell how much matched.
        computed.len() == expected.len()
            && computed
                .iter()
                .zip(expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
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
    fn a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        std::fs::write(&path, "# users\nalice:plain\n").unwrap();
        let err = PasswordFile::load(&path).err().unwrap();
        assert!(err.ends_with("passwd:2: not a mosquitto_passwd hash ($7$ or $6$); a plain-text password file must be hashed with `mosquitto_passwd -U FILE`"), "{err}");
    }
}
