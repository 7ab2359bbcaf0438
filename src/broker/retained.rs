//! Retained messages, one per topic, kept by edgemq rather than the router: set by ingest as
//! each message is numbered, restored from the store at start-up, and sent by a session to each
//! new subscription they match, all of them however many. (The router sends a new subscription
//! only the first hundred or two.)

use bytes::Bytes;
use rumqttd::protocol::PublishProperties;
use std::collections::BTreeMap;
use std::sync::RwLock;

/// One retained message.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    pub payload: Bytes,
    /// The QoS it was published with.
    pub qos: u8,
    pub properties: Option<PublishProperties>,
    /// When it was published (unix ms): what its MQTT 5 message expiry counts from.
    pub at: i64,
}

#[derive(Default)]
pub struct Retained {
    topics: RwLock<BTreeMap<String, Kept>>,
}

impl Retained {
    /// Keeps `kept` for `topic`; an empty payload clears the topic (as in MQTT).
    pub fn set(&self, topic: &str, kept: Kept) {
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if kept.payload.is_empty() {
            topics.remove(topic);
        } else {
            topics.insert(topic.to_string(), kept);
        }
    }

    /// Every retained message whose topic `filter` matches.
    pub fn matching(&self, filter: &str) -> Vec<(String, Kept)> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics
            .iter()
            .filter(|(topic, _)| crate::topic::matches(filter, topic))
            .map(|(topic, kept)| (topic.clone(), kept.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.topics.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(payload: &'static str) -> Kept {
        Kept {
            at: 0,
            payload: Bytes::from_static(payload.as_bytes()),
            qos: 1,
            properties: None,
        }
    }

    #[test]
    fn set_replace_clear_and_match() {
        let retained = Retained::default();
        retained.set("r/1", kept("a"));
        retained.set("r/2", kept("b"));
        retained.set("r/1", kept("c"));
        retained.set("$SYS/x", kept("d"));
        let topics =
            |f: &str| -> Vec<String> { retained.matching(f).into_iter().map(|(t, _)| t).collect() };
        assert_eq!(topics("r/#"), ["r/1", "r/2"]);
        assert_eq!(topics("#"), ["r/1", "r/2"]);
        assert_eq!(retained.matching("r/1")[0].1, kept("c"));
        retained.set("r/1", kept(""));
        assert_eq!(topics("r/+"), ["r/2"]);
    }
}
