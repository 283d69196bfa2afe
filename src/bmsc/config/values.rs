//! The value syntaxes of the configuration: RFC 3339 times, FQDNs, IMPI patterns (durations:
//! [`crate::duration`]).
//!
//! Each parser is strict and returns the problem as text; the caller adds the key.

use std::fmt;
use std::time::{Duration, SystemTime};

fn two_digits(s: &str, at: usize) -> Option<u32> {
    let d = s.get(at..at + 2)?;
    if d.bytes().all(|b| b.is_ascii_digit()) {
        d.parse().ok()
    } else {
        None
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        _ => 28,
    }
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of a day count from 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// `t` as an RFC 3339 UTC time with milliseconds, such as `2030-01-01T00:00:00.000Z`; times
/// before 1970 are written as 1970-01-01T00:00:00.000Z.
#[must_use]
pub fn format_rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX / 2);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Parses an RFC 3339 date-time (§5.6) such as `2030-01-01T00:00:00Z` or
/// `2026-06-30T23:59:59.5+02:00`.
///
/// Strict: four-digit year, two-digit fields, `T` (or `t`, or a space, RFC 3339 §5.6 NOTE)
/// between date and time, an optional fraction of 1 to 9 digits, and a `Z`/`z` or `±HH:MM`
/// offset, which is required. Leap seconds (`:60`) are refused: `SystemTime` has none.
///
/// # Errors
/// A short description of the problem.
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    const SYNTAX: &str = "must be an RFC 3339 time such as \"2030-01-01T00:00:00Z\"";
    let bad = || format!("{SYNTAX}, got {text:?}");
    let b = text.as_bytes();
    if b.len() < 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return Err(bad());
    }
    let year_text = text.get(0..4).ok_or_else(bad)?;
    if !year_text.bytes().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let year: i64 = year_text.parse().map_err(|_| bad())?;
    let month = two_digits(text, 5).ok_or_else(bad)?;
    let day = two_digits(text, 8).ok_or_else(bad)?;
    let hour = two_digits(text, 11).ok_or_else(bad)?;
    let minute = two_digits(text, 14).ok_or_else(bad)?;
    let second = two_digits(text, 17).ok_or_else(bad)?;
    if !(1..=12).contains(&month) {
        return Err(format!(
            "{SYNTAX}: month {month:02} out of range in {text:?}"
        ));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(format!(
            "{SYNTAX}: day {day:02} out of range for {year:04}-{month:02} in {text:?}"
        ));
    }
    if hour > 23 || minute > 59 {
        return Err(format!("{SYNTAX}: time of day out of range in {text:?}"));
    }
    if second == 60 {
        return Err(format!("leap second in {text:?} is not supported"));
    }
    if second > 59 {
        return Err(format!("{SYNTAX}: second out of range in {text:?}"));
    }
    let mut rest = text.get(19..).ok_or_else(bad)?;
    let mut nanos: u32 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 9 {
            return Err(format!(
                "{SYNTAX}: the fraction of a second takes 1 to 9 digits in {text:?}"
            ));
        }
        let (digits, tail) = frac.split_at(n);
        let padded = format!("{digits:0<9}");
        nanos = padded.parse().map_err(|_| bad())?;
        rest = tail;
    }
    let offset_secs: i64 = match rest {
        "Z" | "z" => 0,
        "" => return Err(format!("{SYNTAX}: {text:?} lacks a UTC offset")),
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return Err(bad()),
            };
            if rest.len() != 6 || rest.as_bytes().get(3) != Some(&b':') {
                return Err(bad());
            }
            let oh = two_digits(rest, 1).ok_or_else(bad)?;
            let om = two_digits(rest, 4).ok_or_else(bad)?;
            if oh > 23 || om > 59 {
                return Err(format!("{SYNTAX}: UTC offset out of range in {text:?}"));
            }
            sign * (i64::from(oh) * 3600 + i64::from(om) * 60)
        }
    };
    let local = days_from_civil(year, month, day) * 86_400
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second);
    let utc = local - offset_secs;
    let time = if utc >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(Duration::new(utc.unsigned_abs(), nanos))
    } else {
        SystemTime::UNIX_EPOCH
            .checked_sub(Duration::from_secs(utc.unsigned_abs()))
            .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
    };
    time.ok_or_else(|| format!("{text:?} is out of the supported range"))
}

/// Checks a fully qualified domain name as the BM-SC's NAF FQDN: at least two labels of
/// 1–63 letters, digits or hyphens (not first or last), 253 octets at most, no trailing dot
/// (the FQDN octets enter the NAF_Id as written).
///
/// # Errors
/// A short description of the problem.
pub fn check_fqdn(fqdn: &str) -> Result<(), String> {
    if fqdn.is_empty() {
        return Err("must be a fully qualified domain name, got an empty string".to_owned());
    }
    if fqdn.len() > 253 {
        return Err(format!(
            "must be at most 253 octets, got {} octets",
            fqdn.len()
        ));
    }
    if fqdn.ends_with('.') {
        return Err("must not end with a dot: it enters the NAF_Id as written".to_owned());
    }
    let labels: Vec<&str> = fqdn.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "must be a fully qualified domain name (at least two labels), got {fqdn:?}"
        ));
    }
    for label in labels {
        let ok_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if label.is_empty()
            || label.len() > 63
            || !ok_chars
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(format!(
                "invalid DNS label {label:?}: labels are 1 to 63 letters, digits or inner hyphens"
            ));
        }
    }
    Ok(())
}

/// An IMPI pattern of a service's `authorized` list: `*` matches any run of characters
/// (also none), every other character only itself (case-sensitive).
#[derive(Clone, PartialEq, Eq)]
pub struct ImpiPattern(String);

impl ImpiPattern {
    /// A pattern; printable ASCII without spaces, not empty.
    ///
    /// # Errors
    /// A short description of the problem.
    pub fn new(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("an IMPI pattern must not be empty".to_owned());
        }
        if !pattern.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(format!(
                "IMPI pattern {pattern:?} must be printable ASCII without spaces"
            ));
        }
        Ok(Self(pattern.to_owned()))
    }

    /// The pattern text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `impi` matches. Linear backtracking over the last `*`: no exponential cases.
    #[must_use]
    pub fn matches(&self, impi: &str) -> bool {
        let (p, s) = (self.0.as_bytes(), impi.as_bytes());
        let (mut pi, mut si) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            match p.get(pi) {
                Some(b'*') => {
                    star = Some((pi, si));
                    pi += 1;
                }
                Some(c) if Some(c) == s.get(si) => {
                    pi += 1;
                    si += 1;
                }
                _ => match star {
                    Some((sp, ss)) => {
                        pi = sp + 1;
                        si = ss + 1;
                        star = Some((sp, ss + 1));
                    }
                    None => return false,
                },
            }
        }
        p.get(pi..).is_some_and(|r| r.iter().all(|&c| c == b'*'))
    }
}

impl fmt::Debug for ImpiPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImpiPattern({:?})", self.0)
    }
}

impl fmt::Display for ImpiPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted_times_parse_back() {
        for text in [
            "1970-01-01T00:00:00.000Z",
            "2000-02-29T23:59:59.999Z",
            "2026-12-02T08:53:10.123Z",
            "2100-03-01T00:00:00.000Z",
        ] {
            let t = parse_rfc3339(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(format_rfc3339(t), text);
        }
    }

    #[test]
    fn glob_matching() {
        let p = |s: &str| ImpiPattern::new(s).expect("pattern");
        assert!(p("*").matches(""));
        assert!(p("*@ims.example").matches("alice@ims.example"));
        assert!(!p("*@ims.example").matches("alice@ims.example.org"));
        assert!(p("00101*@*").matches("001010123@ims"));
        assert!(p("a*b*c").matches("abc") && p("a*b*c").matches("axxbyyc"));
        assert!(!p("a*b*c").matches("axxbyy"));
        assert!(p("exact").matches("exact") && !p("exact").matches("Exact"));
        assert!(!p(&"a*".repeat(50)).matches(&"a".repeat(49)));
    }
}
