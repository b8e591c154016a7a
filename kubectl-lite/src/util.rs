//! Small helpers the commands share: durations as kubectl parses them, deadlines, times as
//! kubectl prints them, and reading fields of JSON objects.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::time::Instant;

/// `30s`, `5m`, `1h`, `1m30s`, or plain seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: use e.g. 30s, 5m, 1h");
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            0.001
        } else {
            match c {
                'h' => 3600.0,
                'm' => 60.0,
                's' => 1.0,
                _ => return Err(bad()),
            }
        };
        let n: f64 = num.parse().map_err(|_| bad())?;
        total += n * unit;
        num.clear();
    }
    if !num.is_empty() || s.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
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

/// A duration as Go prints it (`30s`, `1m0s`, `500ms`), for messages that quote a timeout.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
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
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(200)), "200ms");
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
