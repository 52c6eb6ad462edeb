//! A line's event time: parsed, or why the line cannot be used.

use tidemark_sources::parse::{LineParser, Parsed};

use crate::stats::JobStats;
use crate::time::EventMs;

/// Parses a line and takes its event time, or says why the line cannot be used
/// (counted in `stats.parse_errors` under that reason; the caller logs it).
///
/// A line stamped more than `max_clock_skew` ahead of this machine's clock
/// (`future_limit`) is refused: a bad clock, or local time logged as UTC, would
/// drag the watermark into the future and make every later line late.
pub fn stamp<'a>(
    parser: &'a mut LineParser,
    line: &'a [u8],
    future_limit: EventMs,
    stats: &mut JobStats,
) -> Result<(Parsed<'a>, EventMs), &'static str> {
    let reason = match parser.parse(line) {
        Ok(parsed) => {
            if parsed.lossy_utf8() {
                stats.invalid_utf8_lines += 1;
            }
            let t = parsed.event_ms();
            if t < 0 {
                "timestamp_before_1970"
            } else if t > future_limit {
                "future_timestamp"
            } else {
                return Ok((parsed, t));
            }
        }
        Err(e) => {
            count_if_invalid_utf8(line, stats);
            e.reason()
        }
    };
    *stats.parse_errors.entry(reason).or_default() += 1;
    Err(reason)
}

/// A binary line fails to parse, but it is invalid UTF-8 all the same: checked
/// again here, off the hot path (only lines that failed pay).
#[cold]
#[inline(never)]
fn count_if_invalid_utf8(line: &[u8], stats: &mut JobStats) {
    if std::str::from_utf8(line).is_err() {
        stats.invalid_utf8_lines += 1;
    }
}

/// What to tell a user about a line refused for `reason`.
pub fn explain(reason: &'static str) -> &'static str {
    match reason {
        "future_timestamp" => "future_timestamp: more than [window] max_clock_skew ahead of this machine's clock; check the host's clock and time zone, or raise max_clock_skew",
        r => r,
    }
}
