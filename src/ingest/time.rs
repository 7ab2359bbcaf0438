//! Device timestamps: unix seconds or unix milliseconds, as numbers or digit strings, or ISO
//! 8601 (read by `clock`; without an offset, in the configured zone).

use chrono_tz::Tz;
use serde_json::Value;

/// Numbers at or above this are milliseconds (1e11 s is the year 5138).
const MILLIS_FROM: f64 = 1e11;

/// The device's time in unix milliseconds, or why it cannot be read.
pub fn parse(value: &Value, zone: Tz) -> Result<i64, String> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .map(from_number)
            .ok_or_else(|| format!("{n} is not a time")),
        Value::String(s) => parse_text(s.trim(), zone),
        other => Err(format!("{other} is not a time")),
    }
}

fn from_number(n: f64) -> i64 {
    if n.abs() >= MILLIS_FROM {
        n as i64
    } else {
        (n * 1000.0) as i64
    }
}

fn parse_text(s: &str, zone: Tz) -> Result<i64, String> {
    if let Ok(n) = s.parse::<f64>() {
        if n.is_finite() {
            return Ok(from_number(n));
        }
    }
    crate::clock::parse_iso(s, zone).map_err(|e| format!("{e} or a unix timestamp"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const UTC: Tz = chrono_tz::UTC;

    #[test]
    fn every_accepted_form() {
        let t = 1714041600000; // 2024-04-25T10:40:00Z
        assert_eq!(parse(&json!(1714041600000i64), UTC), Ok(t));
        assert_eq!(parse(&json!(1714041600), UTC), Ok(t));
        assert_eq!(parse(&json!(1714041600.5), UTC), Ok(t + 500));
        assert_eq!(parse(&json!("1714041600000"), UTC), Ok(t));
        assert_eq!(parse(&json!("2024-04-25T10:40:00Z"), UTC), Ok(t));
        assert_eq!(parse(&json!("2024-04-25T12:40:00+02:00"), UTC), Ok(t));
        assert_eq!(parse(&json!("2024-04-25T12:40:00+0200"), UTC), Ok(t));
        assert_eq!(parse(&json!("2024-04-25T10:40:00"), UTC), Ok(t));
        assert_eq!(parse(&json!("2024-04-25 10:40:00.000"), UTC), Ok(t));
        assert_eq!(
            parse(&json!("2024-04-25T16:10:00"), chrono_tz::Asia::Kolkata),
            Ok(t)
        );
    }

    #[test]
    fn what_is_not_a_time() {
        assert!(parse(&json!("yesterday"), UTC).is_err());
        assert!(parse(&json!(true), UTC).is_err());
        assert!(parse(&json!("NaN"), UTC).is_err());
    }
}
