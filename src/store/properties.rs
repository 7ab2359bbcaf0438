//! How a message's MQTT 5 properties are kept: a small JSON object in the `properties` column
//! (readable with SQLite's json functions), so a message read back from the log (catch-up,
//! a resumed session, a retained message after a restart) reaches a v5 subscriber as it was
//! published. Topic aliases and subscription identifiers belong to one connection and are
//! never kept.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use rumqttd::protocol::PublishProperties;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Kept {
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_format_indicator: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_expiry_interval: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_topic: Option<String>,
    /// Base64: correlation data is binary.
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_data: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    user_properties: Vec<(String, String)>,
}

/// The column's value for a publish's properties; `None` when there is nothing to keep.
pub fn to_column(properties: Option<&PublishProperties>) -> Option<String> {
    let p = properties?;
    let kept = Kept {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        content_type: p.content_type.clone(),
        response_topic: p.response_topic.clone(),
        correlation_data: p.correlation_data.as_ref().map(|d| BASE64.encode(d)),
        user_properties: p.user_properties.clone(),
    };
    let empty = kept.payload_format_indicator.is_none()
        && kept.message_expiry_interval.is_none()
        && kept.content_type.is_none()
        && kept.response_topic.is_none()
        && kept.correlation_data.is_none()
        && kept.user_properties.is_empty();
    if empty {
        return None;
    }
    serde_json::to_string(&kept).ok()
}

/// The properties kept in a column's value; anything unreadable counts as none.
pub fn from_column(column: Option<&str>) -> Option<PublishProperties> {
    let kept: Kept = serde_json::from_str(column?).ok()?;
    Some(PublishProperties {
        payload_format_indicator: kept.payload_format_indicator,
        message_expiry_interval: kept.message_expiry_interval,
        topic_alias: None,
        response_topic: kept.response_topic,
        correlation_data: kept
            .correlation_data
            .and_then(|d| BASE64.decode(d).ok())
            .map(Bytes::from),
        user_properties: kept.user_properties,
        subscription_identifiers: Vec::new(),
        content_type: kept.content_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kept_property_comes_back_and_connection_ones_do_not() {
        let published = PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            topic_alias: Some(3),
            response_topic: Some("reply/here".into()),
            correlation_data: Some(Bytes::from_static(&[0, 255, 7])),
            user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
            subscription_identifiers: vec![9],
            content_type: Some("application/json".into()),
        };
        let column = to_column(Some(&published));
        let back = from_column(column.as_deref()).expect("properties come back");
        assert_eq!(
            back,
            PublishProperties {
                topic_alias: None,
                subscription_identifiers: Vec::new(),
                ..published
            }
        );
    }

    #[test]
    fn nothing_to_keep_is_null_and_garbage_reads_as_none() {
        assert_eq!(to_column(None), None);
        let only_connection = PublishProperties {
            topic_alias: Some(1),
            ..Default::default()
        };
        assert_eq!(to_column(Some(&only_connection)), None);
        assert_eq!(from_column(Some("not json")), None);
        assert_eq!(from_column(None), None);
    }
}
