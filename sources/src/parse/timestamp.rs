//! Event time from a field's text.
//!
//! Results are ms since the epoch, rounded down, and always within
//! `jiff::Timestamp`'s range so downstream code can format any of them.
//!
//! - `rfc3339`: `2026-11-20T10:01:02.345Z`, `...+02:00`. An offset is required
//!   (a time without one would be a guess). Canonical forms take a hand-written
//!   path; anything else goes to `jiff::Timestamp`'s parser, which also takes
//!   a space or lowercase `t` as separator, `,` as decimal mark, etc.
//! - `epoch_seconds`: `1700000000`, `1700000000.5`, `-1.25`, `1.7e9`.
//! - `epoch_millis`: `1700000000123`; a fraction is accepted and rounded down.
//! - strftime: `jiff::fmt::strtime`. Without `%z`/`%:z`/`%s`/`%Q` the time is UTC.
//!   nginx's `%d/%b/%Y:%H:%M:%S %z` has an exactly equivalent fast path.
//! - A UTC offset beyond ±14:00 is a bad timestamp (see [`MAX_OFFSET_MIN`]).
//!
//! The last text and its result are cached: consecutive lines very often share a
//! timestamp (nginx logs whole seconds). For nginx's format the last *minute* is
//! cached too: lines written a few seconds out of order (requests logged when they
//! end) defeat the exact-text cache about 40% of the time, while a minute holds
//! thousands of lines; a time in the cached minute is its start plus the seconds,
//! the same value `nginx_fast` computes (see [`MinuteCache`]).

use super::{BuildError, LineError};
use jiff::{fmt::strtime, tz::Offset, Timestamp};
use tidemark_jobs::{TimeFormat, NGINX_TIME_FORMAT};

/// Longer texts are not cached, so a hostile line cannot make the cache huge.
const CACHE_MAX: usize = 64;

/// The largest UTC offset a timestamp may carry, in minutes: no time zone is
/// further than 14 hours from UTC (Kiribati's +14:00). jiff reads offsets up to
/// ±25:59:59, so `+2500` would otherwise pass as a time in a zone that does not
/// exist: it is a damaged line, counted as a bad timestamp.
const MAX_OFFSET_MIN: i64 = 14 * 60;

fn offset_in_range(offset: Offset) -> bool {
    i64::from(offset.seconds()).abs() <= MAX_OFFSET_MIN * 60
}

enum Kind {
    Rfc3339,
    EpochSeconds,
    EpochMillis,
    NginxLocal,
    Strftime(String),
}

pub(crate) struct TimeParser {
    kind: Kind,
    last_text: String,
    last: Option<Result<i64, LineError>>,
    /// `NginxLocal` only: the minute of the last time `nginx_fast` read.
    minute: Option<MinuteCache>,
}

/// One minute of nginx local time that `nginx_fast` read: `dd/Mon/yyyy:hh:mm:`,
/// ` ±hhmm` and the minute's start. `civil_ms` is the minute's start plus
/// `s * 1000` for every second `s` in 0..=59, and no other check depends on the
/// seconds, so a text with the same minute and offset and seconds 00..=59 gets
/// exactly what `nginx_fast` would give it (seconds 60+ are not taken: they go to
/// jiff, as before).
struct MinuteCache {
    head: [u8; 18],
    tail: [u8; 6],
    start_ms: i64,
}

impl MinuteCache {
    /// `text` is one that `nginx_fast` read as `ms`.
    fn new(text: &[u8], ms: i64) -> Option<MinuteCache> {
        let head = text.get(..18)?.try_into().ok()?;
        let tail = text.get(20..)?.try_into().ok()?;
        let secs = digits(text.get(18..20)?)?;
        Some(MinuteCache {
            head,
            tail,
            start_ms: ms - secs * 1000,
        })
    }

    #[inline]
    fn get(&self, text: &[u8]) -> Option<i64> {
        if text.len() != 26 || text[..18] != self.head || text[20..] != self.tail {
            return None;
        }
        let (t, u) = (text[18], text[19]);
        if !(b'0'..=b'5').contains(&t) || !u.is_ascii_digit() {
            return None;
        }
        Some(self.start_ms + i64::from(t - b'0') * 10_000 + i64::from(u - b'0') * 1000)
    }
}

impl TimeParser {
    pub(crate) fn new(format: &TimeFormat) -> Result<TimeParser, BuildError> {
        let kind = match format {
            TimeFormat::Rfc3339 => Kind::Rfc3339,
            TimeFormat::EpochSeconds => Kind::EpochSeconds,
            TimeFormat::EpochMillis => Kind::EpochMillis,
            TimeFormat::Strftime(p) if p == NGINX_TIME_FORMAT => Kind::NginxLocal,
            TimeFormat::Strftime(p) => {
                check_pattern(p)?;
                Kind::Strftime(p.clone())
            }
        };
        Ok(TimeParser {
            kind,
            last_text: String::new(),
            last: None,
            minute: None,
        })
    }

    pub(crate) fn parse(&mut self, text: &str) -> Result<i64, LineError> {
        if let Some(ms) = self.minute.as_ref().and_then(|m| m.get(text.as_bytes())) {
            return Ok(ms);
        }
        if let Some(last) = self.last {
            if self.last_text == text {
                return last;
            }
        }
        let r = match &self.kind {
            Kind::Rfc3339 => rfc3339(text),
            Kind::EpochSeconds => epoch(text, 3),
            Kind::EpochMillis => epoch(text, 0),
            Kind::NginxLocal => match nginx_fast(text.as_bytes()) {
                Some(ms) => {
                    self.minute = MinuteCache::new(text.as_bytes(), ms);
                    Ok(ms)
                }
                None => strftime(NGINX_TIME_FORMAT, text),
            },
            Kind::Strftime(p) => strftime(p, text),
        };
        if text.len() <= CACHE_MAX {
            self.last_text.clear();
            self.last_text.push_str(text);
            self.last = Some(r);
        }
        r
    }
}

/// A pattern that cannot read back a time it printed would fail on every line
/// (no year, `%Z`, a locale directive...): better to say so when the job starts.
fn check_pattern(pattern: &str) -> Result<(), BuildError> {
    let err = |reason: String| BuildError::TimeFormat {
        pattern: pattern.to_string(),
        reason,
    };
    let sample = Timestamp::from_millisecond(1_795_000_862_345)
        .expect("in range")
        .to_zoned(jiff::tz::TimeZone::UTC);
    let text = strtime::format(pattern, &sample).map_err(|e| err(e.to_string()))?;
    match strtime::parse(pattern, &text).and_then(|tm| to_timestamp(&tm)) {
        Ok(_) => Ok(()),
        Err(e) => Err(err(format!("`{text}` does not read back: {e}"))),
    }
}

fn to_timestamp(tm: &strtime::BrokenDownTime) -> Result<Timestamp, jiff::Error> {
    if let Some(offset) = tm.offset().filter(|o| !offset_in_range(*o)) {
        return Err(jiff::Error::from_args(format_args!(
            "UTC offset {offset} is beyond ±14:00"
        )));
    }
    if tm.timestamp().is_some() || tm.offset().is_some() {
        tm.to_timestamp()
    } else if tm.iana_time_zone().is_some() {
        Ok(tm.to_zoned()?.timestamp())
    } else {
        Offset::UTC.to_timestamp(tm.to_datetime()?)
    }
}

fn strftime(pattern: &str, text: &str) -> Result<i64, LineError> {
    strtime::parse(pattern, text)
        .and_then(|tm| to_timestamp(&tm))
        .map(floor_ms)
        .map_err(|_| LineError::BadTimestamp)
}

fn floor_ms(ts: Timestamp) -> i64 {
    // Rounding down keeps a pre-1970 time with sub-ms digits in the right window.
    ts.as_nanosecond().div_euclid(1_000_000) as i64
}

fn rfc3339(text: &str) -> Result<i64, LineError> {
    if let Some(ms) = rfc3339_fast(text.as_bytes()) {
        return Ok(ms);
    }
    rfc3339_jiff(text).map(floor_ms)
}

/// What `text.parse::<Timestamp>()` gives, less offsets beyond ±14:00, from one
/// parse: the pieces hold both the offset to check and what the timestamp is made
/// of (jiff builds a `Timestamp` from the same parse the same way). Parsing twice
/// (a `Timestamp`, then `Pieces` for its offset) doubled the cost of every line off
/// the fast path.
fn rfc3339_jiff(text: &str) -> Result<Timestamp, LineError> {
    use jiff::fmt::temporal::{Pieces, PiecesOffset};
    let Ok(pieces) = Pieces::parse(text) else {
        // Not expected to differ, but jiff is the judge of what it reads.
        return text.parse().map_err(|_| LineError::BadTimestamp);
    };
    let offset = match pieces.offset() {
        Some(PiecesOffset::Zulu) => Offset::UTC,
        Some(PiecesOffset::Numeric(n)) if offset_in_range(n.offset()) => n.offset(),
        Some(PiecesOffset::Numeric(_)) => return Err(LineError::BadTimestamp),
        // No offset (a time zone annotation alone, or none): not a timestamp.
        _ => return text.parse().map_err(|_| LineError::BadTimestamp),
    };
    let time = pieces.time().ok_or(LineError::BadTimestamp)?;
    offset
        .to_timestamp(pieces.date().to_datetime(time))
        .map_err(|_| LineError::BadTimestamp)
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)`; `None` means "ask jiff".
fn rfc3339_fast(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let (h, mi, s) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    let mut i = 19;
    let mut frac_ms = 0;
    if b[i] == b'.' {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        let mut f = [b'0'; 3];
        let k = n.min(3);
        f[..k].copy_from_slice(&b[i + 1..i + 1 + k]);
        frac_ms = digits(&f)?;
        i += 1 + n;
    }
    let offset_min = match &b[i..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (oh, om) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if om > 59 || oh * 60 + om > MAX_OFFSET_MIN {
                return None;
            }
            if *sign == b'-' {
                -(oh * 60 + om)
            } else {
                oh * 60 + om
            }
        }
        _ => return None,
    };
    civil_ms(year, month, day, h, mi, s, offset_min).map(|ms| ms + frac_ms)
}

/// `20/Nov/2026:10:01:02 +0000` exactly; anything unusual (lowercase month,
/// leap second, invalid date, extreme offset) returns `None` and goes to jiff,
/// so the result is always what jiff would give.
pub(crate) fn nginx_fast(b: &[u8]) -> Option<i64> {
    if b.len() != 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' {
        return None;
    }
    if b[14] != b':' || b[17] != b':' || b[20] != b' ' {
        return None;
    }
    let day = digits(&b[0..2])?;
    let month = match &b[3..6] {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    };
    let year = digits(&b[7..11])?;
    let (h, mi, s) = (
        digits(&b[12..14])?,
        digits(&b[15..17])?,
        digits(&b[18..20])?,
    );
    let sign = match b[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (oh, om) = (digits(&b[22..24])?, digits(&b[24..26])?);
    if om > 59 || oh * 60 + om > MAX_OFFSET_MIN {
        return None;
    }
    civil_ms(year, month, day, h, mi, s, sign * (oh * 60 + om))
}

/// Validated civil time at a UTC offset -> ms. Years are kept to 1..=9998 so
/// that no offset can push the result outside jiff's range.
fn civil_ms(y: i64, m: i64, d: i64, h: i64, mi: i64, s: i64, offset_min: i64) -> Option<i64> {
    if !(1..=9998).contains(&y) || !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let secs = days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + s - offset_min * 60;
    Some(secs * 1000)
}

#[inline]
fn digits(b: &[u8]) -> Option<i64> {
    let mut v = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    Some(v)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Decimal epoch value scaled by `10^scale_digits` to ms, rounded down, exactly
/// (no float rounding for plain decimals).
fn epoch(text: &str, scale_digits: usize) -> Result<i64, LineError> {
    const BAD: LineError = LineError::BadTimestamp;
    let b = text.as_bytes();
    if b.iter().any(|c| matches!(c, b'e' | b'E')) {
        return epoch_float(text, scale_digits);
    }
    let (neg, b) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    let (int, frac) = match memchr::memchr(b'.', b) {
        Some(dot) => (&b[..dot], &b[dot + 1..]),
        None => (b, &b[..0]),
    };
    if int.is_empty() || int.len() > 18 || (int.len() < b.len() && frac.is_empty()) {
        return Err(BAD);
    }
    let int = digits(int).ok_or(BAD)?;
    if !frac.iter().all(u8::is_ascii_digit) {
        return Err(BAD);
    }
    let mut scaled = [b'0'; 3];
    let k = frac.len().min(scale_digits);
    scaled[..k].copy_from_slice(&frac[..k]);
    let part = digits(&scaled[..scale_digits]).ok_or(BAD)?;
    let rest_nonzero = frac[k..].iter().any(|&c| c != b'0');
    let magnitude = int
        .checked_mul(10i64.pow(scale_digits as u32))
        .and_then(|v| v.checked_add(part))
        .ok_or(BAD)?;
    let ms = if neg {
        -magnitude - i64::from(rest_nonzero)
    } else {
        magnitude
    };
    in_range(ms)
}

fn epoch_float(text: &str, scale_digits: usize) -> Result<i64, LineError> {
    let v: f64 = text.parse().map_err(|_| LineError::BadTimestamp)?;
    let ms = (v * 10f64.powi(scale_digits as i32)).floor();
    // Also rejects NaN and infinities ("1e999").
    if !(-1e17..=1e17).contains(&ms) {
        return Err(LineError::BadTimestamp);
    }
    in_range(ms as i64)
}

fn in_range(ms: i64) -> Result<i64, LineError> {
    let min = Timestamp::MIN.as_millisecond();
    let max = Timestamp::MAX.as_millisecond();
    if (min..=max).contains(&ms) {
        Ok(ms)
    } else {
        Err(LineError::BadTimestamp)
    }
}

#[cfg(test)]
#[path = "timestamp_tests.rs"]
mod tests;
