//! Lines as a search sees them: which lines count ([`Accept`], a time from the
//! job's parser), walking the lines of a window read from a file, and what a
//! probe found ([`Probe`], [`Hit`]). See the [search docs](super::search) for
//! the model.

use memchr::{memchr, memrchr};

use crate::parse::LineParser;

/// Which lines a search may use: exactly those a run would count. A line the run
/// refuses (stamped before 1970 or more than `max_clock_skew` ahead of the clock,
/// or longer than `max_line_bytes`) must not steer a search either — a line dated
/// 2099 would otherwise make a whole file look later than the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    /// Latest acceptable time: the wall clock plus the job's `max_clock_skew`.
    pub max_ms: i64,
    /// Longest acceptable line (without `\n` and one `\r`).
    pub max_line_bytes: usize,
    /// The job's `max_jump`: a line more than this ahead of the next parseable
    /// line is an outlier a run does not let move its watermark, so it steers no
    /// search (`i64::MAX`: every line is taken as it is).
    pub max_jump_ms: i64,
}

impl Default for Accept {
    /// Every parseable line stamped at or after 1970.
    fn default() -> Self {
        Accept {
            max_ms: i64::MAX,
            max_line_bytes: usize::MAX,
            max_jump_ms: i64::MAX,
        }
    }
}

/// The event time of one line (without its `'\n'`; a trailing `'\r'` is
/// dropped), if the line is one a run would count.
pub(crate) fn parse_time(parser: &mut LineParser, line: &[u8], accept: &Accept) -> Option<i64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > accept.max_line_bytes {
        return None;
    }
    let t = parser.parse(line).ok().map(|p| p.event_ms())?;
    (0..=accept.max_ms).contains(&t).then_some(t)
}

/// Calls `f(start, next, line)` for each line of `buf`, in order, while it
/// returns true. `start`/`next` are positions in `buf` (`next` is after the
/// `'\n'`), `line` excludes the `'\n'`. With `skip`, the window began inside a
/// line: bytes up to the first `'\n'` are not a line. Without `eof`, an
/// unterminated tail is not a line (it may continue past the window).
pub(crate) fn for_each_line(
    buf: &[u8],
    skip: bool,
    eof: bool,
    mut f: impl FnMut(usize, usize, &[u8]) -> bool,
) -> Walk {
    let mut s = 0;
    if skip {
        match memchr(b'\n', buf) {
            Some(i) => s = i + 1,
            None if eof => return Walk::End,
            None => return Walk::Short,
        }
    }
    while s < buf.len() {
        let (end, next) = match memchr(b'\n', &buf[s..]) {
            Some(i) => (s + i, s + i + 1),
            None if eof => (buf.len(), buf.len()),
            None => return Walk::Short,
        };
        if !f(s, next, &buf[s..end]) {
            return Walk::Stopped;
        }
        s = next;
    }
    if eof {
        Walk::End
    } else {
        Walk::Short
    }
}

/// The time of the last parseable line of `buf`, a window that ends at the end
/// of the file (with `skip`, it began inside a line).
pub(crate) fn last_parsed(
    parser: &mut LineParser,
    buf: &[u8],
    skip: bool,
    accept: &Accept,
) -> Option<i64> {
    // A final '\n' ends the last line; it does not begin an empty one.
    let mut end = match buf.last() {
        Some(b'\n') => buf.len() - 1,
        _ => buf.len(),
    };
    loop {
        match memrchr(b'\n', &buf[..end]) {
            Some(i) => {
                if let Some(t) = parse_time(parser, &buf[i + 1..end], accept) {
                    return Some(t);
                }
                end = i;
            }
            None if skip => return None,
            None => return parse_time(parser, &buf[..end], accept),
        }
    }
}

/// Where a probe landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probe {
    /// The first line start at or after the probed offset (the file length if
    /// no line starts there); `None` if no `'\n'` was found within the budget.
    pub at: Option<u64>,
    pub hit: Hit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hit {
    /// The first parseable line at or after `at`: its start, the start of the
    /// next line (or the file length), its time.
    Line { start: u64, next: u64, t: i64 },
    /// No parseable line from `at` to the end of the file.
    Eof,
    /// The budget ran out first.
    GaveUp,
}

pub(crate) fn time_of(hit: Hit) -> Option<i64> {
    match hit {
        Hit::Line { t, .. } => Some(t),
        Hit::Eof | Hit::GaveUp => None,
    }
}

/// How a walk over the lines of a window ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    /// The callback asked to stop.
    Stopped,
    /// Every line up to the end of the file was visited.
    End,
    /// The window ended inside a line (or before the first line start).
    Short,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_jobs::{Format, Parse, TimeFormat};

    fn parser() -> LineParser {
        let cfg = Parse {
            format: Format::Logfmt,
            timestamp_field: "ts".into(),
            timestamp_format: TimeFormat::EpochMillis,
        };
        LineParser::new(&cfg, &[]).unwrap()
    }

    fn lines(buf: &[u8], skip: bool, eof: bool) -> (Vec<(usize, usize, Vec<u8>)>, Walk) {
        let mut out = Vec::new();
        let walk = for_each_line(buf, skip, eof, |s, n, l| {
            out.push((s, n, l.to_vec()));
            true
        });
        (out, walk)
    }

    #[test]
    fn walk_lines_of_windows() {
        let (ls, w) = lines(b"ab\ncd\nef", false, true);
        assert_eq!(w, Walk::End);
        assert_eq!(ls.len(), 3);
        assert_eq!(ls[2], (6, 8, b"ef".to_vec()));
        let (ls, w) = lines(b"ab\ncd\nef", false, false);
        assert_eq!((ls.len(), w), (2, Walk::Short));
        let (ls, w) = lines(b"ab\ncd\n", true, true);
        assert_eq!(ls, vec![(3, 6, b"cd".to_vec())]);
        assert_eq!(w, Walk::End);
        assert_eq!(lines(b"abc", true, false).1, Walk::Short);
        assert_eq!(lines(b"abc", true, true), (vec![], Walk::End));
        assert_eq!(lines(b"", false, true), (vec![], Walk::End));
        let (ls, _) = lines(b"\n\n", false, true);
        assert_eq!(ls.len(), 2);
    }

    #[test]
    fn last_parsed_from_the_end() {
        let mut p = parser();
        assert_eq!(
            last_parsed(&mut p, b"ts=1\nts=2\n", false, &Accept::default()),
            Some(2)
        );
        assert_eq!(
            last_parsed(&mut p, b"ts=1\nts=2", false, &Accept::default()),
            Some(2)
        );
        assert_eq!(
            last_parsed(&mut p, b"ts=1\r\nts=2\r\n", false, &Accept::default()),
            Some(2)
        );
        assert_eq!(
            last_parsed(&mut p, b"ts=1\nxx\n\n\xff\n", false, &Accept::default()),
            Some(1)
        );
        assert_eq!(
            last_parsed(&mut p, b"ts=1\nxx\n", true, &Accept::default()),
            None
        );
        assert_eq!(
            last_parsed(&mut p, b"ts=1", false, &Accept::default()),
            Some(1)
        );
        assert_eq!(last_parsed(&mut p, b"ts=1", true, &Accept::default()), None);
        assert_eq!(last_parsed(&mut p, b"", false, &Accept::default()), None);
        assert_eq!(last_parsed(&mut p, b"\n", false, &Accept::default()), None);
    }
}
