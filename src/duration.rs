//! The one duration syntax of the project, for the BM-SC configuration and the command line:
//! `"90s"`, `"10m"`, `"1h"`, `"2h30m"`, `"500ms"`, `"1d"`.

use std::time::Duration;

/// Duration units, largest first: a duration names each at most once, in this order.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a duration such as `"90s"`, `"10m"`, `"1h"`, `"2h30m"`, `"500ms"`, `"1d"`.
///
/// Grammar: one or more `digits unit`, units among `d h m s ms`, each at most once and largest
/// first, no spaces or signs. `"0s"` parses (to zero): whether zero is allowed is the caller's
/// rule.
///
/// # Errors
/// A short description of the problem.
pub fn parse(text: &str) -> Result<Duration, String> {
    const SYNTAX: &str = "must be a duration such as \"90s\", \"10m\", \"2h30m\" or \"500ms\"";
    if text.is_empty() {
        return Err(format!("{SYNTAX}, got an empty string"));
    }
    let mut rest = text;
    let mut total_ms: u64 = 0;
    let mut next_unit = 0usize;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("{SYNTAX}, got {text:?}"));
        }
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = tail.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("{SYNTAX}: {text:?} lacks a unit"));
        }
        let Some(pos) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(format!(
                "{SYNTAX}: unknown unit {unit:?} (units: d, h, m, s, ms)"
            ));
        };
        if pos < next_unit {
            return Err(format!(
                "{SYNTAX}: units must appear once each, largest first, in {text:?}"
            ));
        }
        next_unit = pos + 1;
        let scale = UNITS.get(pos).map_or(1, |(_, s)| *s);
        let value: u64 = number
            .parse()
            .map_err(|_| format!("{text:?} is too large"))?;
        total_ms = value
            .checked_mul(scale)
            .and_then(|v| total_ms.checked_add(v))
            .ok_or_else(|| format!("{text:?} is too large"))?;
        rest = tail;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way [`parse`] reads it (`"2h30m"`, `"500ms"`, `"0s"`).
#[must_use]
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, scale) in UNITS {
        let scale = u128::from(scale);
        let n = ms / scale;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
            ms %= scale;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{format, parse};
    use std::time::Duration;

    #[test]
    fn durations_round_trip_through_format() {
        for text in ["0s", "500ms", "90s", "10m", "2h30m", "1d", "1d2h3m4s5ms"] {
            let d = parse(text);
            assert!(d.is_ok(), "{text}");
            let d = d.unwrap_or_default();
            assert_eq!(parse(&format(d)), Ok(d));
        }
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "1", "s", "1x", "1s1h", "1s1s", "-1s", "1 s"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
