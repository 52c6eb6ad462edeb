//! Line parsers: turn one log line into an event time and named fields.
//!
//! The hot path is allocation-free: a [`LineParser`] is built once per file group
//! with the list of fields the job needs (each gets a *slot*), and
//! [`LineParser::parse`] returns a [`Parsed`] view that borrows the line and the
//! parser's scratch space.
//!
//! ```
//! use tidemark_jobs::{Format, Parse, TimeFormat};
//! use tidemark_sources::parse::LineParser;
//!
//! let cfg = Parse {
//!     format: Format::Logfmt,
//!     timestamp_field: "ts".into(),
//!     timestamp_format: TimeFormat::EpochSeconds,
//! };
//! let mut p = LineParser::new(&cfg, &["status".to_string()]).unwrap();
//! let line = p.parse(b"ts=1700000000 status=200").unwrap();
//! assert_eq!(line.event_ms(), 1_700_000_000_000);
//! assert_eq!(line.field(0), Some("200"));
//! ```
//!
//! Per format (details in each module):
//! - `nginx`: the "combined" log format plus an optional trailing `$request_time`;
//!   fields are [`NGINX_FIELDS`]. Values are the bytes as logged (nginx's `\xXX`
//!   escapes are not decoded, `-` stays `-`).
//! - `json`: one object per line; dotted paths reach nested objects.
//! - `logfmt`: `key=value key="quoted \" value" flag`; a bare `flag` reads as `"true"`.
//! - `regex`: named captures; a line the regex does not match is a
//!   [`LineError::FormatMismatch`].
//!
//! Event times are milliseconds since the Unix epoch, rounded down (towards the
//! past), and always within the range `jiff::Timestamp` can represent.
//!
//! A line that is not valid UTF-8 is read with U+FFFD replacements
//! ([`Parsed::lossy_utf8`]), whichever of its fields the job uses. The nginx scanner
//! checks every line in full whatever fields the job uses (see `nginx.rs`), so which
//! lines are accepted never depends on the job's labels.

mod bytes;
mod json;
mod logfmt;
mod names;
mod nginx;
#[cfg(test)]
mod nginx_diff_tests;
#[cfg(test)]
mod nginx_reference;
mod number;
mod regex;
mod timestamp;

pub use number::{parse_decimal, parse_number, Decimal};
pub use tidemark_jobs::NGINX_FIELDS;

use tidemark_jobs::{Format, Parse};

/// Why a line was not turned into an event. Every variant is counted by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LineError {
    /// The line is empty or only whitespace.
    EmptyLine,
    /// The line does not have the configured layout (nginx, logfmt quoting) or the
    /// regex does not match it.
    FormatMismatch,
    /// JSON: the line is valid JSON but not an object.
    NotAnObject,
    /// JSON: the line is not valid JSON.
    BadJson,
    /// The timestamp field is absent (or JSON `null`).
    MissingTimestamp,
    /// The timestamp field is present but not a time in the configured format.
    BadTimestamp,
}

impl LineError {
    pub const ALL: &'static [LineError] = &[
        LineError::EmptyLine,
        LineError::FormatMismatch,
        LineError::NotAnObject,
        LineError::BadJson,
        LineError::MissingTimestamp,
        LineError::BadTimestamp,
    ];

    /// Stable snake_case name, used as a metric label value.
    pub fn reason(self) -> &'static str {
        match self {
            LineError::EmptyLine => "empty_line",
            LineError::FormatMismatch => "format_mismatch",
            LineError::NotAnObject => "not_an_object",
            LineError::BadJson => "bad_json",
            LineError::MissingTimestamp => "missing_timestamp",
            LineError::BadTimestamp => "bad_timestamp",
        }
    }
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for LineError {}

/// A parse configuration that can never work.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid regex pattern: {0}")]
    Regex(#[from] ::regex::Error),
    #[error("field `{field}` is never produced by the {format} format (available: {available})")]
    UnknownField {
        field: String,
        format: &'static str,
        available: String,
    },
    #[error("timestamp format `{pattern}` cannot be used to read times: {reason}")]
    TimeFormat { pattern: String, reason: String },
}

/// Where a field's text lives for the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Span {
    Missing,
    /// Byte range of the (possibly lossily converted) line.
    Line(usize, usize),
    /// Byte range of the parser's scratch buffer (unescaped strings).
    Scratch(usize, usize),
    Static(&'static str),
}

impl Span {
    #[inline]
    fn resolve<'a>(self, text: &'a str, scratch: &'a str) -> Option<&'a str> {
        match self {
            Span::Missing => None,
            Span::Line(s, e) => text.get(s..e),
            Span::Scratch(s, e) => scratch.get(s..e),
            Span::Static(s) => Some(s),
        }
    }
}

enum Inner {
    /// Whether the job uses `method`, `path` or `protocol`.
    Nginx {
        split_request: bool,
    },
    Json(json::JsonParser),
    Logfmt(logfmt::LogfmtParser),
    Regex(regex::RegexParser),
}

/// Parses the lines of one file group. Build once, reuse for every line.
pub struct LineParser {
    inner: Inner,
    /// Public slot -> index into `spans`.
    slot_map: Vec<usize>,
    ts_key: usize,
    /// One per distinct field (per nginx field for nginx), rewritten every line.
    spans: Vec<Span>,
    scratch: String,
    lossy: String,
    time: timestamp::TimeParser,
}

impl LineParser {
    /// `fields`: the fields the job needs; field i is read back with `Parsed::field(i)`.
    ///
    /// Fails if the regex does not compile, if nginx/regex can never produce a
    /// requested field (or the timestamp field), or if the strftime pattern cannot
    /// read a complete time.
    pub fn new(cfg: &Parse, fields: &[String]) -> Result<LineParser, BuildError> {
        let time = timestamp::TimeParser::new(&cfg.timestamp_format)?;
        let all = fields.iter().chain(std::iter::once(&cfg.timestamp_field));
        let (inner, keys, nkeys) = match &cfg.format {
            Format::Nginx => {
                let keys = all
                    .map(|f| nginx::position(f).ok_or_else(|| unknown(f, "nginx", &NGINX_FIELDS)))
                    .collect::<Result<Vec<_>, _>>()?;
                let split_request = nginx::needs_request_split(&keys);
                (Inner::Nginx { split_request }, keys, NGINX_FIELDS.len())
            }
            Format::Json | Format::Logfmt => {
                let (names, keys) = dedup(all);
                let inner = if cfg.format == Format::Json {
                    Inner::Json(json::JsonParser::new(&names))
                } else {
                    Inner::Logfmt(logfmt::LogfmtParser::new(&names))
                };
                (inner, keys, names.len())
            }
            Format::Regex(pattern) => {
                let (names, keys) = dedup(all);
                let p = regex::RegexParser::new(pattern, &names)?;
                (Inner::Regex(p), keys, names.len())
            }
        };
        let (ts_key, slot_map) = keys.split_last().expect("timestamp key is always there");
        Ok(LineParser {
            inner,
            slot_map: slot_map.to_vec(),
            ts_key: *ts_key,
            spans: vec![Span::Missing; nkeys],
            scratch: String::new(),
            lossy: String::new(),
            time,
        })
    }

    /// `line` has no trailing '\n' or '\r'. Never panics, whatever the bytes.
    pub fn parse<'a>(&'a mut self, line: &'a [u8]) -> Result<Parsed<'a>, LineError> {
        // One huge line must not pin its buffers' memory for the parser's life.
        if line.len() <= KEEP_CAPACITY {
            shrink(&mut self.lossy);
            shrink(&mut self.scratch);
            if let Inner::Json(p) = &mut self.inner {
                p.shrink(KEEP_CAPACITY);
            }
        }
        // simdutf8 gives std's answer with vector instructions: it took the whole-line
        // check from ~190 to ~110 instructions per nginx line (std's is
        // word-at-a-time). Checking only the fields a job uses would need them as
        // `&str` one by one, which costs more than the whole line (measured).
        let (text, lossy): (&'a str, bool) = match simdutf8::basic::from_utf8(line) {
            Ok(t) => (t, false),
            Err(_) => {
                to_lossy(line, &mut self.lossy);
                (self.lossy.as_str(), true)
            }
        };
        if text.trim_ascii().is_empty() {
            return Err(LineError::EmptyLine);
        }
        self.scratch.clear();
        self.spans.fill(Span::Missing);
        match &mut self.inner {
            Inner::Nginx { split_request } => {
                nginx::parse(text.as_bytes(), &mut self.spans, *split_request)?
            }
            Inner::Json(p) => p.parse(text, &mut self.spans, &mut self.scratch)?,
            Inner::Logfmt(p) => p.parse(text, &mut self.spans, &mut self.scratch)?,
            Inner::Regex(p) => p.parse(text, &mut self.spans)?,
        }
        let ts = self.spans[self.ts_key]
            .resolve(text, &self.scratch)
            .ok_or(LineError::MissingTimestamp)?;
        let event_ms = self.time.parse(ts)?;
        Ok(Parsed {
            event_ms,
            text,
            scratch: &self.scratch,
            spans: &self.spans,
            slot_map: &self.slot_map,
            lossy,
        })
    }
}

const KEEP_CAPACITY: usize = 1 << 16;

#[inline]
fn shrink(s: &mut String) {
    if s.capacity() > KEEP_CAPACITY {
        s.clear();
        s.shrink_to(KEEP_CAPACITY);
    }
}

fn unknown(field: &str, format: &'static str, available: &[&str]) -> BuildError {
    BuildError::UnknownField {
        field: field.to_string(),
        format,
        available: available.join(", "),
    }
}

/// Distinct names in first-seen order, and for each input its index among them.
fn dedup<'s>(all: impl Iterator<Item = &'s String>) -> (Vec<String>, Vec<usize>) {
    let mut names: Vec<String> = Vec::new();
    // By name: a job may name thousands of fields.
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let keys = all
        .map(|f| {
            *seen.entry(f.as_str()).or_insert_with(|| {
                names.push(f.clone());
                names.len() - 1
            })
        })
        .collect();
    (names, keys)
}

/// Same result as `String::from_utf8_lossy`, but into a reused buffer.
fn to_lossy(line: &[u8], out: &mut String) {
    out.clear();
    for chunk in line.utf8_chunks() {
        out.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
}

/// One parsed line: its event time and the job's fields.
#[derive(Debug)]
pub struct Parsed<'a> {
    event_ms: i64,
    text: &'a str,
    scratch: &'a str,
    spans: &'a [Span],
    slot_map: &'a [usize],
    lossy: bool,
}

impl<'a> Parsed<'a> {
    /// Event time, ms since the Unix epoch (UTC).
    #[inline]
    pub fn event_ms(&self) -> i64 {
        self.event_ms
    }

    /// Field `slot` (its index in the `fields` given to [`LineParser::new`]);
    /// `None` if this line does not have it (or `slot` is out of range).
    #[inline]
    pub fn field(&self, slot: usize) -> Option<&'a str> {
        let key = *self.slot_map.get(slot)?;
        self.spans[key].resolve(self.text, self.scratch)
    }

    /// The line had invalid UTF-8 and was read with U+FFFD replacements.
    #[inline]
    pub fn lossy_utf8(&self) -> bool {
        self.lossy
    }
}

#[cfg(test)]
mod tests;
