//! Topic names and filters as the router sees them. rumqttd's matcher looks at the first byte of
//! every topic as a string (`topic[..1]`), which panics, and takes the router thread and all
//! live delivery with it, when a topic starts with a character of more than one byte (`é/x`,
//! `温度/室内`). So the first level of every topic and filter handed to the router is escaped
//! one-to-one: `%` and each byte of a non-ASCII character become `%XX`; everything else, and
//! every later level, stays as it is. Sessions and the RPC link turn what the router forwards
//! back with `topic_from_router`.

use bytes::Bytes;
use std::borrow::Cow;

fn escaped(byte: u8) -> bool {
    byte == b'%' || !byte.is_ascii()
}

/// The first level of `name` escaped, the rest as it is.
fn escape_first_level(name: &[u8]) -> Option<Vec<u8>> {
    let end = name.iter().position(|b| *b == b'/').unwrap_or(name.len());
    if !name[..end].iter().any(|b| escaped(*b)) {
        return None;
    }
    let mut out = Vec::with_capacity(name.len() + 2 * end);
    for &b in &name[..end] {
        if escaped(b) {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&name[end..]);
    Some(out)
}

/// A topic name as the router gets it.
pub fn topic_to_router(topic: &Bytes) -> Bytes {
    match escape_first_level(topic) {
        Some(escaped) => Bytes::from(escaped),
        None => topic.clone(),
    }
}

/// A topic filter as the router gets it (`$share/<group>/` is left as it is before the filter).
pub fn filter_to_router(filter: &str) -> Cow<'_, str> {
    let (share, rest) = match filter
        .strip_prefix("$share/")
        .and_then(|r| r.split_once('/'))
    {
        Some((group, rest)) => (Some(group), rest),
        None => (None, filter),
    };
    let Some(escaped) = escape_first_level(rest.as_bytes()) else {
        return Cow::Borrowed(filter);
    };
    // Only ASCII was added to valid UTF-8, around whole characters.
    let escaped = String::from_utf8_lossy(&escaped).into_owned();
    match share {
        Some(group) => Cow::Owned(format!("$share/{group}/{escaped}")),
        None => Cow::Owned(escaped),
    }
}

/// A topic the router forwarded, as it was published.
pub fn topic_from_router(topic: &Bytes) -> Bytes {
    let end = topic.iter().position(|b| *b == b'/').unwrap_or(topic.len());
    if !topic[..end].contains(&b'%') {
        return topic.clone();
    }
    let mut out = Vec::with_capacity(topic.len());
    let mut i = 0;
    while i < end {
        let hex = topic
            .get(i + 1..i + 3)
            .filter(|_| topic[i] == b'%' && i + 3 <= end)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(topic[i]);
                i += 1;
            }
        }
    }
    out.extend_from_slice(&topic[end..]);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_levels_are_escaped_one_to_one_and_come_back() {
        for topic in [
            "home/a",
            "温度/室内",
            "é",
            "%/x",
            "50%é/é/%",
            "",
            "/x",
            "a/温度",
        ] {
            let routed = topic_to_router(&Bytes::from(topic));
            assert!(routed.first().is_none_or(|b| b.is_ascii()), "{topic}");
            assert_eq!(topic_from_router(&routed), Bytes::from(topic), "{topic}");
        }
        assert_eq!(
            topic_to_router(&Bytes::from("a/温度")),
            "a/温度",
            "later levels stay"
        );
        assert_eq!(topic_to_router(&Bytes::from("%é/x")), "%25%C3%A9/x");
    }

    #[test]
    fn filters_match_the_escaped_topics_as_they_matched_the_topics() {
        let cases = [
            ("温度/#", "温度/室内", true),
            ("+/室内", "温度/室内", true),
            ("#", "é", true),
            ("%/x", "%/x", true),
            ("%25/x", "%/x", false),
            ("é/+", "e/x", false),
        ];
        for (filter, topic, matched) in cases {
            let routed = topic_to_router(&Bytes::from(topic));
            let routed = std::str::from_utf8(&routed).unwrap();
            let filter = filter_to_router(filter);
            assert_eq!(
                rumqttd::protocol::matches(routed, &filter),
                matched,
                "{filter} on {topic}"
            );
        }
        assert_eq!(filter_to_router("$share/g/é/#"), "$share/g/%C3%A9/#");
        assert_eq!(filter_to_router("$share/g/a/#"), "$share/g/a/#");
    }
}
