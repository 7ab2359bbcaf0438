//! MQTT topic names and filters: matching (`+` one level, `#` the rest) and segments.

/// Whether `topic` matches `filter`. As in MQTT, wildcards at the first level do not match
/// topics starting with `$`.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut levels = topic.split('/');
    for f in filter.split('/') {
        match (f, levels.next()) {
            ("#", _) => return true,
            ("+", Some(_)) => {}
            (f, Some(t)) if f == t => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

/// Level `n` (0-based) of a topic, if it has one and it is not empty.
pub fn level(topic: &str, n: usize) -> Option<&str> {
    topic.split('/').nth(n).filter(|s| !s.is_empty())
}

/// Whether `topic` may be published to: UTF-8, not empty, no wildcards, no U+0000, at most
/// 65,535 bytes ([MQTT-4.7.3-1], [MQTT-1.5.3-2], [MQTT-3.3.2-2]).
pub fn valid_name(topic: &[u8]) -> bool {
    !topic.is_empty()
        && topic.len() <= usize::from(u16::MAX)
        && !topic.iter().any(|b| matches!(b, b'+' | b'#' | 0))
        && std::str::from_utf8(topic).is_ok()
}

/// Whether `filter` is a well-formed MQTT filter (`#` only last, wildcards whole levels); a
/// shared one, `$share/{ShareName}/{filter}`, names its group without wildcards or `/` and
/// has a filter after it [MQTT-4.8.2-1, 4.8.2-2].
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    if let Some(shared) = filter.strip_prefix("$share/") {
        return match shared.split_once('/') {
            Some((group, filter)) => {
                !group.is_empty() && !group.contains(['+', '#']) && valid_filter(filter)
            }
            None => false,
        };
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| match *l {
        "#" => i == levels.len() - 1,
        "+" => true,
        l => !l.contains('+') && !l.contains('#'),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_filters_name_a_group_and_a_filter() {
        assert!(valid_filter("$share/g/a/+"));
        assert!(valid_filter("$share/g/#"));
        for bad in [
            "$share/g",
            "$share//a",
            "$share/+/a",
            "$share/g#/a",
            "$share/g/a#",
            "$share/g/",
        ] {
            assert!(!valid_filter(bad), "{bad}");
        }
    }

    #[test]
    fn wildcards_match_as_in_mqtt() {
        assert!(matches("devices/+/telemetry", "devices/d1/telemetry"));
        assert!(!matches("devices/+/telemetry", "devices/d1/x/telemetry"));
        assert!(!matches("devices/+/telemetry", "devices/d1"));
        assert!(matches("sensors/#", "sensors"));
        assert!(matches("sensors/#", "sensors/a/b"));
        assert!(matches("#", "anything/at/all"));
        assert!(!matches("#", "$SYS/broker"));
        assert!(matches("status", "status"));
        assert!(!matches("status", "status/x"));
        assert!(matches(
            "autocore/+/relay/+/status",
            "autocore/E/relay/0/status"
        ));
    }

    #[test]
    fn filters_are_checked() {
        assert!(valid_filter("a/+/b/#"));
        assert!(!valid_filter("a/#/b"));
        assert!(!valid_filter("a/b+"));
        assert!(!valid_filter(""));
    }
}
