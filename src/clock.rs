//! Time, once for everyone: the clock (unix milliseconds), ISO 8601 as edgemq writes it, and
//! the one ISO 8601 reader that device times and HTTP parameters both go through.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone};
use chrono_tz::Tz;

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Unix milliseconds as ISO 8601 UTC with seconds, as the seeds print times.
pub fn iso(ms: i64) -> String {
    format(ms, SecondsFormat::Secs)
}

/// Unix milliseconds as ISO 8601 UTC with milliseconds.
pub fn iso_ms(ms: i64) -> String {
    format(ms, SecondsFormat::Millis)
}

fn format(ms: i64, precision: SecondsFormat) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(precision, true))
        .unwrap_or_default()
}

/// `at` (unix ms) plus `duration`, saturating at the end of time.
pub fn later(at: i64, duration: std::time::Duration) -> i64 {
    at.saturating_add(duration.as_millis().min(i64::MAX as u128) as i64)
}

/// ISO 8601 with or without offset (UTC), a date, or unix milliseconds.
pub fn parse_time(v: &str) -> Option<i64> {
    parse_iso(v, chrono_tz::UTC)
        .ok()
        .or_else(|| v.parse::<i64>().ok().filter(|n| *n >= 0))
}

/// An ISO 8601 time in unix milliseconds: with an offset (`Z`, `+02:00`, `+0200`), or without
/// one in `zone`; `T` or a space between date and time; a date alone is its midnight.
pub fn parse_iso(s: &str, zone: Tz) -> Result<i64, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, format) {
            return Ok(t.timestamp_millis());
        }
    }
    let naive = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(s, format).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    });
    match naive {
        Some(naive) => zone
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.timestamp_millis())
            .ok_or_else(|| format!("`{s}` does not exist in {zone}")),
        None => Err(format!("`{s}` is not an ISO 8601 time")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UTC: Tz = chrono_tz::UTC;

    #[test]
    fn every_iso_form() {
        let t = 1714041600000; // 2024-04-25T10:40:00Z
        assert_eq!(parse_iso("2024-04-25T10:40:00Z", UTC), Ok(t));
        assert_eq!(parse_iso("2024-04-25T12:40:00+02:00", UTC), Ok(t));
        assert_eq!(parse_iso("2024-04-25T12:40:00+0200", UTC), Ok(t));
        assert_eq!(parse_iso("2024-04-25T10:40:00", UTC), Ok(t));
        assert_eq!(parse_iso("2024-04-25 10:40:00.000", UTC), Ok(t));
        assert_eq!(parse_iso("2024-04-25T10:40", UTC), Ok(t));
        assert_eq!(parse_iso("2024-04-25", UTC), Ok(t - 38_400_000));
        let kolkata = chrono_tz::Asia::Kolkata;
        assert_eq!(parse_iso("2024-04-25T16:10:00", kolkata), Ok(t));
        assert!(parse_iso("yesterday", UTC).is_err());
        assert_eq!(iso(t), "2024-04-25T10:40:00Z");
        assert_eq!(iso_ms(t), "2024-04-25T10:40:00.000Z");
    }
}
