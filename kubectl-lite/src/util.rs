//! Small helpers the commands share: durations as kubectl parses them, deadlines, times as
//! kubectl prints them, and reading fields of JSON objects.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::time::Instant;

/// A duration flag: Go's syntax (`30s`, `5m`, `1m30s`; [`api::duration::parse`]), or plain
/// seconds (`90`) as a convenience kubectl does not offer.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    api::duration::parse(s)
}

/// The deadline of a `--timeout` (0: a week, kubectl's "forever").
pub fn deadline(timeout: Duration) -> Instant {
    let t = if timeout.is_zero() {
        Duration::from_secs(7 * 24 * 3600)
    } else {
        timeout
    };
    Instant::now() + t
}

/// An RFC 3339 timestamp field, parsed.
pub fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Go's `time.RFC1123Z` (`Mon, 02 Jan 2006 15:04:05 -0700`), as `describe` prints times.
pub fn rfc1123z(v: &Value) -> String {
    match time(v) {
        Some(t) => t.format("%a, %d %b %Y %H:%M:%S %z").to_string(),
        None => "<unset>".to_string(),
    }
}

/// How long ago, as `get` and `describe` print ages (`5m3s`, `2d`); `<unknown>` when unset.
pub fn age(v: &Value, now: DateTime<Utc>) -> String {
    match time(v) {
        Some(t) => api::table::human_duration(now - t),
        None => "<unknown>".to_string(),
    }
}

/// A string field, `""` when absent.
pub fn str_of<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// An integer field, 0 when absent.
pub fn int_of(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// `metadata.name`.
pub fn name_of(v: &Value) -> &str {
    str_of(v, "/metadata/name")
}

/// `metadata.namespace`.
pub fn namespace_of(v: &Value) -> &str {
    str_of(v, "/metadata/namespace")
}

/// The value of `key` in a string map (labels, annotations, data), if it is there.
pub fn map_get<'a>(v: &'a Value, pointer: &str, key: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5").is_ok());
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn times_as_describe_prints_them() {
        assert_eq!(
            rfc1123z(&json!("2024-05-01T12:00:00Z")),
            "Wed, 01 May 2024 12:00:00 +0000"
        );
        assert_eq!(rfc1123z(&Value::Null), "<unset>");
        let now = time(&json!("2024-05-01T12:05:03Z")).unwrap();
        assert_eq!(age(&json!("2024-05-01T12:00:00Z"), now), "5m3s");
    }
}
