//! `[store]`: where the database is, how the writer batches, and how long each kind is kept.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `[store]`: the SQLite database and its writer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    pub path: PathBuf,
    /// Most messages written in one transaction.
    pub batch_max: usize,
    /// Messages that may wait between the front door and ingest; when full, connections stop
    /// reading until there is room.
    pub queue_capacity: usize,
    /// SQLite `synchronous`: "normal" survives a process crash, "full" also a power loss.
    pub synchronous: Synchronous,
    /// How long messages of each kind are kept (`telemetry = "30d"`; `raw` is messages no
    /// route claims). Kinds not listed are kept forever.
    #[serde(with = "retention_map")]
    pub retention: BTreeMap<String, std::time::Duration>,
    /// At a stop, how long to wait for the store to commit what was received.
    #[serde(with = "humantime_serde")]
    pub stop_timeout: std::time::Duration,
}

mod retention_map {
    use serde::{Deserialize, Deserializer};
    use std::collections::BTreeMap;
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Duration>, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(d)?;
        raw.into_iter()
            .map(|(kind, text)| {
                humantime::parse_duration(&text)
                    .map(|duration| (kind.clone(), duration))
                    .map_err(|e| {
                        serde::de::Error::custom(format!("retention of `{kind}`: `{text}`: {e}"))
                    })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Normal,
    Full,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            path: PathBuf::from("edgemq.db"),
            batch_max: 8192,
            queue_capacity: 65536,
            synchronous: Synchronous::Normal,
            retention: BTreeMap::new(),
            stop_timeout: std::time::Duration::from_secs(10),
        }
    }
}

/// Kinds of message retention can name.
const KINDS: [&str; 9] = [
    "raw",
    "telemetry",
    "status",
    "device_status",
    "relay",
    "event",
    "temperature",
    "power",
    "fingerprint",
];

impl StoreSection {
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_max < 1 {
            return Err("store.batch_max: must be at least 1".into());
        }
        if self.queue_capacity < 1 {
            return Err("store.queue_capacity: must be at least 1".into());
        }
        if self.stop_timeout.is_zero() {
            return Err("store.stop_timeout: must be more than 0".into());
        }
        if self.path.as_os_str().is_empty() {
            return Err("store.path: must not be empty".into());
        }
        for kind in self.retention.keys() {
            if !KINDS.contains(&kind.as_str()) {
                return Err(format!(
                    "store.retention: unknown kind `{kind}` (one of {})",
                    KINDS.join(", ")
                ));
            }
        }
        Ok(())
    }
}
