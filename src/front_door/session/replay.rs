//! Subscribing from the past: a filter written `$replay/<time>/<filter>` (any MQTT version), or
//! an MQTT 5 SUBSCRIBE with the user property `replay-from`, where the time is ISO 8601 or unix
//! milliseconds. Such a subscription first gets every stored message its filter matches since
//! that time, in order, then live ones (`outgoing::catchup` does the reading).

use super::Session;
use crate::clock::parse_time;
use crate::query::log::first_id_at;
use rumqttd::protocol::SubscribeProperties;

/// The MQTT 5 user property of a SUBSCRIBE that replays each of its filters.
pub const USER_PROPERTY: &str = "replay-from";

const PREFIX: &str = "$replay/";

/// The `replay-from` of a SUBSCRIBE: None when it has none, an error when it is not a time.
pub fn from_properties(properties: Option<&SubscribeProperties>) -> Result<Option<i64>, String> {
    let Some(value) = properties.and_then(|p| {
        p.user_properties
            .iter()
            .find(|(k, _)| k == USER_PROPERTY)
            .map(|(_, v)| v)
    }) else {
        return Ok(None);
    };
    parse_time(value)
        .map(Some)
        .ok_or_else(|| format!("{USER_PROPERTY} `{value}` is not ISO 8601 or unix milliseconds"))
}

/// A filter as subscribed: the filter it names and, for `$replay/<time>/...`, the time.
pub fn parse_filter(path: &str) -> Result<(&str, Option<i64>), String> {
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok((path, None));
    };
    let (time, filter) = rest
        .split_once('/')
        .ok_or_else(|| format!("`{path}` names no filter after the time"))?;
    let at = parse_time(time)
        .ok_or_else(|| format!("`{time}` in `{path}` is not ISO 8601 or unix milliseconds"))?;
    Ok((filter, Some(at)))
}

/// The filter an UNSUBSCRIBE names (`$replay/<time>/<filter>` names `<filter>`).
pub fn unsubscribed(path: &str) -> &str {
    match parse_filter(path) {
        Ok((filter, _)) => filter,
        Err(_) => path,
    }
}

impl Session {
    /// Where the log is read from to replay what arrived since `at` (unix ms). A few indexed
    /// lookups, done in place.
    pub(super) fn replay_start(&self, at: i64) -> Result<i64, String> {
        let log = &self.shared.log;
        tokio::task::block_in_place(|| log.with(|conn| first_id_at(conn, at)))
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_filters_and_the_user_property_are_read() {
        assert_eq!(parse_filter("a/#"), Ok(("a/#", None)));
        assert_eq!(
            parse_filter("$replay/1700000000000/a/+/b"),
            Ok(("a/+/b", Some(1_700_000_000_000)))
        );
        assert_eq!(
            parse_filter("$replay/2023-11-14T22:13:20Z/#"),
            Ok(("#", Some(1_700_000_000_000)))
        );
        assert!(parse_filter("$replay/yesterday/#").is_err());
        assert!(parse_filter("$replay/1700000000000").is_err());
        assert_eq!(unsubscribed("$replay/1700000000000/x"), "x");
        let with = |v: &str| SubscribeProperties {
            id: None,
            user_properties: vec![
                ("other".into(), "1".into()),
                (USER_PROPERTY.into(), v.into()),
            ],
        };
        assert_eq!(from_properties(None), Ok(None));
        assert_eq!(from_properties(Some(&with("5"))), Ok(Some(5)));
        assert!(from_properties(Some(&with("soon"))).is_err());
    }
}
