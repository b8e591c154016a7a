//! Go's `time.Duration` as Kubernetes writes and reads it: [`parse`] is `time.ParseDuration`
//! (flags such as `--timeout=1m30s`), [`format`] is `Duration.String()` (`1m30s`, `1.5s`,
//! `300ms`, `0s`) for messages that quote a duration. One home for the rule, used by every
//! crate.

use std::time::Duration;

/// `300ms`, `1.5h`, `1h30m`, `2us`, `0`: a sequence of decimal numbers, each with a unit (`ns`,
/// `us`/`µs`, `ms`, `s`, `m`, `h`); `0` alone needs none. Negative durations are refused (a
/// `std::time::Duration` cannot hold them).
pub fn parse(s: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("time: invalid duration {s:?}{why}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return Err(bad(": negative durations are not allowed"));
    }
    if rest.is_empty() {
        return Err(bad(""));
    }
    let mut total_ns: u128 = 0;
    let mut chars = rest.char_indices().peekable();
    while chars.peek().is_some() {
        // The number: digits, at most one dot, digits.
        let start = chars.peek().map(|(i, _)| *i).unwrap_or(0);
        let mut end = start;
        while let Some((i, c)) = chars.peek().copied() {
            if c.is_ascii_digit() || c == '.' {
                end = i + c.len_utf8();
                chars.next();
            } else {
                break;
            }
        }
        let number = rest.get(start..end).unwrap_or("");
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(bad(""));
        }
        // The unit: letters (and µ).
        let ustart = end;
        let mut uend = ustart;
        while let Some((i, c)) = chars.peek().copied() {
            if c.is_ascii_digit() || c == '.' {
                break;
            }
            uend = i + c.len_utf8();
            chars.next();
        }
        let unit_ns: u128 = match rest.get(ustart..uend).unwrap_or("") {
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            u => return Err(format!("time: unknown unit {u:?} in duration {s:?}")),
        };
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad(""))?
        };
        let mut ns = int.checked_mul(unit_ns).ok_or_else(|| bad(": too large"))?;
        // The fraction, digit by digit (exact for any unit).
        let mut scale = unit_ns;
        for d in frac.chars() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            ns += u128::from(d.to_digit(10).unwrap_or(0)) * scale;
        }
        total_ns = total_ns.checked_add(ns).ok_or_else(|| bad(": too large"))?;
    }
    let secs = u64::try_from(total_ns / 1_000_000_000).map_err(|_| bad(": too large"))?;
    Ok(Duration::new(secs, (total_ns % 1_000_000_000) as u32))
}

/// `d` as Go prints it: `0s`, `1.5µs`, `300ms`, `1.5s`, `1m0s`, `1h2m3.5s`.
pub fn format(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    // A fraction with its trailing zeros dropped: `.5`, or nothing.
    let frac = |value: u128, digits: u32| -> String {
        let s = format!("{value:0width$}", width = digits as usize);
        let s = s.trim_end_matches('0');
        if s.is_empty() {
            String::new()
        } else {
            format!(".{s}")
        }
    };
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}{}µs", ns / 1_000, frac(ns % 1_000, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}{}ms", ns / 1_000_000, frac(ns % 1_000_000, 6));
    }
    let secs = ns / 1_000_000_000;
    let s = format!("{}{}s", secs % 60, frac(ns % 1_000_000_000, 9));
    let (m, h) = ((secs / 60) % 60, secs / 3600);
    if h > 0 {
        format!("{h}h{m}m{s}")
    } else if m > 0 {
        format!("{m}m{s}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_go_does() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        assert_eq!(parse("5m"), Ok(s(300)));
        assert_eq!(parse("1h30m"), Ok(s(5400)));
        assert_eq!(parse("300ms"), Ok(ms(300)));
        assert_eq!(parse("1.5h"), Ok(s(5400)));
        assert_eq!(parse(".5s"), Ok(ms(500)));
        assert_eq!(parse("2us"), Ok(Duration::from_micros(2)));
        assert_eq!(parse("2µs"), Ok(Duration::from_micros(2)));
        assert_eq!(parse("1ns"), Ok(Duration::from_nanos(1)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("+3s"), Ok(s(3)));
        for bad in [
            "", "5", "5x", "s", ".s", "1.2.3s", "-1s", "1m-1s", "ms5", "1é",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse("5").unwrap_err(),
            "time: missing unit in duration \"5\""
        );
    }

    #[test]
    fn formats_as_go_does() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_nanos(7)), "7ns");
        assert_eq!(format(Duration::from_nanos(1500)), "1.5µs");
        assert_eq!(format(ms(300)), "300ms");
        assert_eq!(format(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(format(ms(1500)), "1.5s");
        assert_eq!(format(s(10)), "10s");
        assert_eq!(format(s(60)), "1m0s");
        assert_eq!(format(s(80)), "1m20s");
        assert_eq!(format(s(300)), "5m0s");
        assert_eq!(format(s(3600)), "1h0m0s");
        assert_eq!(format(s(3700)), "1h1m40s");
        assert_eq!(format(ms(3_723_500)), "1h2m3.5s");
        // What it prints, it reads back.
        for d in [ms(1), ms(1500), s(3700), Duration::from_nanos(123_456_789)] {
            assert_eq!(parse(&format(d)), Ok(d));
        }
    }
}
