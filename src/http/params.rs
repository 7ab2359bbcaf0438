//! Query parameters, read by hand so that every mistake gets a `{"detail": ...}` that names the
//! parameter and says what is expected.

use super::error::ApiError;
use std::collections::HashMap;

pub struct Params(pub HashMap<String, String>);

impl Params {
    /// A parameter, `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::bad_request(format!("query parameter `{name}` is required")))
    }

    /// A whole number in 1..=max, `default` when absent.
    pub fn limit(&self, name: &str, default: u32, max: u32) -> Result<u32, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(format!(
                    "`{name}` must be a whole number from 1 to {max}, got `{v}`"
                ))),
            },
        }
    }

    /// A cursor from a previous page (a row id).
    pub fn cursor(&self) -> Result<Option<i64>, ApiError> {
        self.get("cursor")
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "`cursor` must be a value from `next_cursor`, got `{v}`"
                    ))
                })
            })
            .transpose()
    }

    /// A time: ISO 8601 (UTC when no offset) or unix milliseconds.
    pub fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                parse_time(v).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`{name}` must be an ISO 8601 time (e.g. 2024-01-01T00:00:00Z) or unix milliseconds, got `{v}`"
                    ))
                })
            })
            .transpose()
    }

    /// A duration such as `5m`, `1h`, `24h`, `7d`.
    pub fn duration_ms(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                humantime::parse_duration(v)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .map(|d| d.as_millis() as i64)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "`{name}` must be a duration such as 5m, 1h or 24h, got `{v}`"
                        ))
                    })
            })
            .transpose()
    }
}

pub use crate::clock::parse_time;
