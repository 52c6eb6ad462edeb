//! Human-written durations (`"250ms"`, `"1m30s"`) and byte sizes (`"1MiB"`, `"5MB"`).
//!
//! Durations are one or more `<integer><unit>` parts, largest unit first, each unit at
//! most once: units `h`, `m`, `s`, `ms`. Sizes are one `<integer><unit>`: `B`, decimal
//! `kB`/`KB`, `MB`, `GB`, `TB` (powers of 1000) or binary `KiB`, `MiB`, `GiB`, `TiB`
//! (powers of 1024).

use std::time::Duration;

/// Why a duration string was rejected. The `Display` text is a complete sentence an
/// operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration; write a number with a unit, e.g. \"5s\"")]
    Empty,
    #[error("a duration cannot contain spaces (`{0}`); write e.g. \"1m\" or \"1m30s\"")]
    Whitespace(String),
    #[error("`{0}` has no unit; write e.g. \"{0}s\" (units: h, m, s, ms)")]
    MissingUnit(String),
    #[error("expected a number before `{0}`; write e.g. \"5s\" or \"1m30s\"")]
    MissingNumber(String),
    #[error("unknown duration unit `{0}`; use h, m, s or ms (e.g. \"1m30s\")")]
    UnknownUnit(String),
    #[error("fractions are not supported; combine units instead, e.g. \"1s500ms\"")]
    Fraction(String),
    #[error("units must go from largest to smallest, each at most once (`{0}` is out of place); e.g. \"1h30m\"")]
    UnitOrder(String),
    #[error("duration is too large")]
    Overflow,
}

/// Why a byte size string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("empty size; write a number with a unit, e.g. \"1MiB\"")]
    Empty,
    #[error("`{0}` has no unit; write e.g. \"{0}B\" or use KiB, MiB, GiB")]
    MissingUnit(String),
    #[error("expected a whole number before the unit; write e.g. \"256KiB\"")]
    MissingNumber,
    #[error("unknown size unit `{0}`; use B, KiB, MiB, GiB, TiB (1024-based) or kB, MB, GB, TB (1000-based)")]
    UnknownUnit(String),
    #[error("size is too large")]
    Overflow,
}

/// Parses `"250ms"`, `"5s"`, `"1m"`, `"1h"`, `"1m30s"`, ... Surrounding whitespace is
/// ignored; whitespace inside is not allowed.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.contains(char::is_whitespace) {
        return Err(DurationError::Whitespace(s.to_string()));
    }
    if s.contains('.') {
        return Err(DurationError::Fraction(s.to_string()));
    }
    let mut rest = s;
    let mut total_ms: u64 = 0;
    // Rank of the previous unit; each next unit must rank strictly lower.
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, after) = rest.split_at(digits);
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit())
            .map_or(after.len(), |(i, _)| i);
        let (unit, next) = after.split_at(unit_len);
        if number.is_empty() {
            return Err(DurationError::MissingNumber(rest.to_string()));
        }
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(s.to_string()));
        }
        let (rank, unit_ms) = match unit {
            "h" => (3, 3_600_000u64),
            "m" => (2, 60_000),
            "s" => (1, 1_000),
            "ms" => (0, 1),
            other => return Err(DurationError::UnknownUnit(other.to_string())),
        };
        if rank >= last_rank {
            return Err(DurationError::UnitOrder(unit.to_string()));
        }
        last_rank = rank;
        let value: u64 = number.parse().map_err(|_| DurationError::Overflow)?;
        let part = value.checked_mul(unit_ms).ok_or(DurationError::Overflow)?;
        total_ms = total_ms.checked_add(part).ok_or(DurationError::Overflow)?;
        rest = next;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way [`parse_duration`] reads it (`"1m30s"`, `"250ms"`, `"0s"`).
/// Sub-millisecond parts are dropped.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        let n = ms / size;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
            ms -= n * size;
        }
    }
    out
}

/// Parses `"512B"`, `"256KiB"`, `"1MiB"`, `"5MB"`, `"1GiB"`, ... into bytes.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(SizeError::Empty);
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = s.split_at(digits);
    if number.is_empty() {
        return Err(SizeError::MissingNumber);
    }
    let multiplier: u64 = match unit.trim_start() {
        "" => return Err(SizeError::MissingUnit(s.to_string())),
        "B" => 1,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other if other.starts_with('.') => return Err(SizeError::MissingNumber),
        other => return Err(SizeError::UnknownUnit(other.to_string())),
    };
    let value: u64 = number.parse().map_err(|_| SizeError::Overflow)?;
    value.checked_mul(multiplier).ok_or(SizeError::Overflow)
}

/// Formats a byte count with the largest binary unit that divides it (`"1MiB"`, `"512B"`).
pub fn format_size(bytes: u64) -> String {
    for (unit, size) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if bytes != 0 && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(ms(250)));
        assert_eq!(parse_duration("5s"), Ok(ms(5_000)));
        assert_eq!(parse_duration("1m"), Ok(ms(60_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1h2m3s4ms"), Ok(ms(3_723_004)));
        assert_eq!(parse_duration(" 0s "), Ok(ms(0)));
        assert_eq!(parse_duration("90s"), Ok(ms(90_000)));
    }

    #[test]
    fn duration_errors() {
        use DurationError::*;
        assert_eq!(parse_duration(""), Err(Empty));
        assert_eq!(parse_duration("   "), Err(Empty));
        assert_eq!(parse_duration("5"), Err(MissingUnit("5".into())));
        assert_eq!(parse_duration("1m30"), Err(MissingUnit("1m30".into())));
        assert_eq!(parse_duration("s"), Err(MissingNumber("s".into())));
        assert_eq!(parse_duration("5x"), Err(UnknownUnit("x".into())));
        assert_eq!(parse_duration("5 s"), Err(Whitespace("5 s".into())));
        assert_eq!(parse_duration("5sec"), Err(UnknownUnit("sec".into())));
        assert_eq!(parse_duration("1.5s"), Err(Fraction("1.5s".into())));
        assert_eq!(parse_duration(".5s"), Err(Fraction(".5s".into())));
        assert_eq!(parse_duration("30s1m"), Err(UnitOrder("m".into())));
        assert_eq!(parse_duration("1s1s"), Err(UnitOrder("s".into())));
        assert_eq!(parse_duration("-5s"), Err(MissingNumber("-5s".into())));
        assert_eq!(parse_duration("99999999999999999999h"), Err(Overflow));
        assert_eq!(parse_duration("9999999999999999h"), Err(Overflow));
    }

    #[test]
    fn duration_round_trip() {
        for s in ["250ms", "5s", "1m", "1h", "1m30s", "2h0m1ms", "0s"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{s}");
        }
        assert_eq!(format_duration(ms(90_000)), "1m30s");
        assert_eq!(format_duration(ms(3_600_250)), "1h250ms");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("256KiB"), Ok(256 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert_eq!(parse_size("4kB"), Ok(4_000));
        assert_eq!(parse_size("4KB"), Ok(4_000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("64 KiB"), Ok(64 * 1024));
    }

    #[test]
    fn size_errors() {
        use SizeError::*;
        assert_eq!(parse_size(""), Err(Empty));
        assert_eq!(parse_size("1024"), Err(MissingUnit("1024".into())));
        assert_eq!(parse_size("MiB"), Err(MissingNumber));
        assert_eq!(parse_size("1.5MiB"), Err(MissingNumber));
        assert_eq!(parse_size("1mib"), Err(UnknownUnit("mib".into())));
        assert_eq!(parse_size("1Mb"), Err(UnknownUnit("Mb".into())));
        assert_eq!(parse_size("99999999999999999999B"), Err(Overflow));
        assert_eq!(parse_size("99999999TiB"), Err(Overflow));
    }

    #[test]
    fn size_format() {
        assert_eq!(format_size(1 << 20), "1MiB");
        assert_eq!(format_size(4096), "4KiB");
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(format_size(0), "0B");
    }
}
