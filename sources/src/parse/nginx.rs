//! nginx "combined" access log, with an optional trailing `$request_time`:
//!
//! ```text
//! $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"[ $request_time]
//! ```
//!
//! A hand-written scanner: this is the hottest format, and a regex costs several
//! times more per line.
//!
//! Choices worth knowing:
//! - Values are the bytes as logged: nginx's `\xXX` escapes are not decoded and
//!   `-` stays `-` (`parse_number("-")` is `None`, so numeric fields just skip it).
//! - `$request` is split at its first and last space into `method`, `path` and
//!   `protocol`. One space (`GET /`, HTTP/0.9 style) gives no protocol. A request
//!   without any space (`-` for a closed connection, a TLS handshake sent to the
//!   plain HTTP port, ...) gives none of the three, so junk never becomes a method
//!   label; the raw text is always available as the extra field `request`.
//! - A quoted value ends at the first `"` followed by a space (or, for the
//!   referer, by ` "`; the end of line also ends the user agent) that is not
//!   preceded by a backslash (servers that escape `"` as `\"` rather than `\x22`).
//!   nginx itself never writes a raw `"` inside a value.
//! - After the user agent only one more token (`$request_time`) is allowed; a
//!   longer custom format (`... "$http_x_forwarded_for"`) is a `FormatMismatch`
//!   rather than a silent misread.
//! - Trailing spaces and tabs are ignored.
//!
//! Speed (issue 13): every line is still checked in full — which lines are accepted
//! and the value of every field are exactly those of the scanner before issue 13,
//! kept as the test-only `nginx_reference.rs` and compared on random hostile lines
//! by `nginx_diff_tests.rs`. What changed is how: most fields are a few bytes long,
//! shorter than a `memchr` call's set-up, so searches look at the first bytes
//! eight at a time before calling `memchr` (`bytes.rs`); `$request` is split into
//! method, path and protocol only when the job uses one of them.
//!
//! Taking `$request_time` from the end of the line without finding the closing
//! quotes of the referer and user agent would be cheaper, but it would accept lines
//! (a raw `"` followed by a space inside the user agent, a custom format with an
//! extra quoted field) that are a `FormatMismatch` today, and so change the numbers.

use super::bytes::{find, find2, rfind};
use super::{LineError, Span};

// Spans are indexed like this list (the constants below are its positions).
use tidemark_jobs::NGINX_FIELDS as FIELDS;

pub(super) const ADDR: usize = 0;
pub(super) const USER: usize = 1;
pub(super) const TIME: usize = 2;
pub(super) const METHOD: usize = 3;
pub(super) const PATH: usize = 4;
pub(super) const PROTOCOL: usize = 5;
pub(super) const STATUS: usize = 6;
pub(super) const BYTES: usize = 7;
pub(super) const REFERER: usize = 8;
pub(super) const AGENT: usize = 9;
pub(super) const REQUEST_TIME: usize = 10;
pub(super) const REQUEST: usize = 11;

pub(crate) fn position(name: &str) -> Option<usize> {
    FIELDS.iter().position(|f| *f == name)
}

/// Whether the job reads `method`, `path` or `protocol`: only then is `$request`
/// split (the split never rejects a line, so skipping it changes no decision).
pub(crate) fn needs_request_split(positions: &[usize]) -> bool {
    positions
        .iter()
        .any(|p| matches!(*p, METHOD | PATH | PROTOCOL))
}

const MISMATCH: LineError = LineError::FormatMismatch;

/// Fills `spans` (indexed like [`FIELDS`]) from one line; `method`, `path` and
/// `protocol` only if `split_request`.
pub(crate) fn parse(b: &[u8], spans: &mut [Span], split_request: bool) -> Result<(), LineError> {
    let mut end = b.len();
    while end > 0 && matches!(b[end - 1], b' ' | b'\t') {
        end -= 1;
    }
    let b = &b[..end];

    let (addr_end, i) = token(b, 0)?;
    spans[ADDR] = Span::Line(0, addr_end);
    let (_ident_end, i) = token(b, i)?;
    // `$remote_user` is taken up to " [" so that a user name with a space in it
    // does not break the line.
    let lb = find(b, i, b'[').ok_or(MISMATCH)?;
    if lb == i || b[lb - 1] != b' ' {
        return Err(MISMATCH);
    }
    spans[USER] = Span::Line(i, lb - 1);
    let ts = lb + 1;
    let rb = find(b, ts, b']').ok_or(MISMATCH)?;
    spans[TIME] = Span::Line(ts, rb);

    if b.get(rb + 1) != Some(&b' ') || b.get(rb + 2) != Some(&b'"') {
        return Err(MISMATCH);
    }
    let i = rb + 3;
    let req_end = closing_quote(b, i, Then::Space)?;
    spans[REQUEST] = Span::Line(i, req_end);
    if split_request {
        split(b, i, req_end, spans);
    }

    let (status_end, i) = token(b, req_end + 2)?;
    spans[STATUS] = Span::Line(req_end + 2, status_end);
    let (bytes_end, i2) = token(b, i)?;
    spans[BYTES] = Span::Line(i, bytes_end);

    if b.get(i2) != Some(&b'"') {
        return Err(MISMATCH);
    }
    let i = i2 + 1;
    let ref_end = closing_quote(b, i, Then::SpaceQuote)?;
    spans[REFERER] = Span::Line(i, ref_end);

    let ua = ref_end + 3;
    let ua_end = closing_quote(b, ua, Then::Space)?;
    spans[AGENT] = Span::Line(ua, ua_end);
    let rest = &b[ua_end + 1..];
    if !rest.is_empty() {
        let bad = |c: &u8| matches!(c, b' ' | b'\t' | b'"');
        if rest.len() < 2 || rest[0] != b' ' || rest[1..].iter().any(bad) {
            return Err(MISMATCH);
        }
        spans[REQUEST_TIME] = Span::Line(ua_end + 2, end);
    }
    Ok(())
}

/// A non-empty run of bytes up to the next space: (end of token, start of next).
#[inline]
fn token(b: &[u8], start: usize) -> Result<(usize, usize), LineError> {
    match find(b, start, b' ') {
        Some(n) if n > start => Ok((n, n + 1)),
        _ => Err(MISMATCH),
    }
}

/// What must follow a closing quote (unless it ends the line).
#[derive(Clone, Copy)]
enum Then {
    Space,
    /// `" "`: the referer's quote is followed by the user agent's opening one.
    SpaceQuote,
}

/// Index of the first unescaped `"` at or after `start` that is followed by `then`
/// or ends the line. A backslash escapes the byte after it.
#[inline]
fn closing_quote(b: &[u8], start: usize, then: Then) -> Result<usize, LineError> {
    let mut i = start;
    loop {
        let j = find2(b, i, b'"', b'\\').ok_or(MISMATCH)?;
        if b[j] == b'\\' {
            i = j + 2;
            continue;
        }
        let closes = match then {
            Then::Space => b.get(j + 1).is_none_or(|&c| c == b' '),
            Then::SpaceQuote => {
                j + 1 == b.len() || (b.get(j + 1) == Some(&b' ') && b.get(j + 2) == Some(&b'"'))
            }
        };
        if closes {
            return Ok(j);
        }
        i = j + 1;
    }
}

/// `$request` split at its first and last space (see the module doc).
#[inline]
fn split(b: &[u8], start: usize, end: usize, spans: &mut [Span]) {
    let Some(first) = find(&b[..end], start, b' ') else {
        return;
    };
    // From the end: the protocol is short. `first` is a space, so there is one.
    let last = rfind(b, first, end, b' ').unwrap_or(first);
    spans[METHOD] = Span::Line(start, first);
    if first == last {
        spans[PATH] = Span::Line(first + 1, end);
    } else {
        spans[PATH] = Span::Line(first + 1, last);
        spans[PROTOCOL] = Span::Line(last + 1, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Result<Vec<Option<&str>>, LineError> {
        let mut spans = [Span::Missing; 12];
        parse(line.as_bytes(), &mut spans, true)?;
        Ok(spans.iter().map(|s| s.resolve(line, "")).collect())
    }

    /// The positions above must name the fields validation accepts under those
    /// names: reordering the shared list in tidemark-jobs would otherwise make
    /// `status` read the byte count.
    #[test]
    fn field_positions_name_the_preset_fields() {
        let at = [
            (ADDR, "remote_addr"),
            (USER, "remote_user"),
            (TIME, "time_local"),
            (METHOD, "method"),
            (PATH, "path"),
            (PROTOCOL, "protocol"),
            (STATUS, "status"),
            (BYTES, "body_bytes_sent"),
            (REFERER, "http_referer"),
            (AGENT, "http_user_agent"),
            (REQUEST_TIME, "request_time"),
            (REQUEST, "request"),
        ];
        assert_eq!(at.len(), FIELDS.len());
        for (i, name) in at {
            assert_eq!(FIELDS[i], name);
        }
    }

    #[test]
    fn combined_line() {
        let f = fields(r#"203.0.113.9 - alice [20/Nov/2026:10:01:02 +0000] "GET /api/v1/items?id=7 HTTP/1.1" 200 5316 "https://example.com/start" "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0""#).unwrap();
        assert_eq!(
            f,
            [
                Some("203.0.113.9"),
                Some("alice"),
                Some("20/Nov/2026:10:01:02 +0000"),
                Some("GET"),
                Some("/api/v1/items?id=7"),
                Some("HTTP/1.1"),
                Some("200"),
                Some("5316"),
                Some("https://example.com/start"),
                Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"),
                None,
                Some("GET /api/v1/items?id=7 HTTP/1.1"),
            ]
        );
    }

    #[test]
    fn request_time_and_trailing_space() {
        let f = fields("::1 - - [01/Jan/2026:00:00:00 -0700] \"POST /x HTTP/2.0\" 502 0 \"-\" \"curl/8.5.0\" 0.123 \t").unwrap();
        assert_eq!(f[REQUEST_TIME], Some("0.123"));
        assert_eq!(f[AGENT], Some("curl/8.5.0"));
        assert_eq!(f[REFERER], Some("-"));
        assert_eq!(f[USER], Some("-"));
    }

    #[test]
    fn odd_requests_keep_the_line() {
        let f = fields(r#"1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] "-" 400 0 "-" "-""#).unwrap();
        assert_eq!((f[METHOD], f[PATH], f[PROTOCOL]), (None, None, None));
        assert_eq!(f[REQUEST], Some("-"));
        let f = fields(r#"1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] "\x16\x03\x01\x00\xF1\x01" 400 157 "-" "-" 0.001"#).unwrap();
        assert_eq!(f[METHOD], None);
        let f =
            fields(r#"1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] "GET /" 200 1 "-" "-""#).unwrap();
        assert_eq!(
            (f[METHOD], f[PATH], f[PROTOCOL]),
            (Some("GET"), Some("/"), None)
        );
        let f = fields(r#"1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] "" 400 0 "-" "-""#).unwrap();
        assert_eq!((f[REQUEST], f[METHOD]), (Some(""), None));
        let f =
            fields(r#"1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] "GET /a b HTTP/1.1" 200 1 "-" "-""#)
                .unwrap();
        assert_eq!((f[PATH], f[PROTOCOL]), (Some("/a b"), Some("HTTP/1.1")));
    }

    #[test]
    fn quotes_inside_values() {
        let f = fields(r#"1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] "GET /q=\"a b\" HTTP/1.1" 200 1 "http://r/\"x\" y" "UA \"quoted\" thing" 1.5"#).unwrap();
        assert_eq!(f[REQUEST], Some(r#"GET /q=\"a b\" HTTP/1.1"#));
        assert_eq!(f[REFERER], Some(r#"http://r/\"x\" y"#));
        assert_eq!(f[AGENT], Some(r#"UA \"quoted\" thing"#));
        assert_eq!(f[REQUEST_TIME], Some("1.5"));
        let f =
            fields(r#"1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] "GET / HTTP/1.1" 200 1 "-" "a"b""#)
                .unwrap();
        assert_eq!(f[AGENT], Some(r#"a"b"#));
        let f = fields(
            r#"1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] "GET /\x22 HTTP/1.1" 200 1 "-" "a\x22b""#,
        )
        .unwrap();
        assert_eq!(f[PATH], Some(r"/\x22"));
        let f = fields(
            r#"1.2.3.4 - john doe [20/Nov/2026:10:01:02 +0000] "GET / HTTP/1.1" 200 1 "-" "-""#,
        )
        .unwrap();
        assert_eq!(f[USER], Some("john doe"));
    }

    #[test]
    fn malformed_lines() {
        for line in [
            "hello world",
            "1.2.3.4",
            "1.2.3.4 - - 20/Nov/2026:10:01:02 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
            "1.2.3.4 - - [20/Nov/2026:10:01:02 +0000 \"GET / HTTP/1.1\" 200 1 \"-\" \"-\"",
            "1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] GET / HTTP/1.1 200 1 \"-\" \"-\"",
            "1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\" 0.1 0.2",
            "1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\" \"x\"",
            "1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"UA \"raw\" quotes\"",
            "1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"-\" 0.1\"",
            "1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] \"GET / HTTP/1.1\" 200 1 \"-\"",
            "1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] \"GET / HTTP/1.1\" 200  \"-\" \"-\"",
            "1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] \"GET / HTTP/1.1\"",
            "1.2.3.4 - - [20/Nov/2026:10:01:02 +0000] \"GET / HTTP/1.1\\",
            " - - [x] \"a\" 1 2 \"-\" \"-\"",
            "1.2.3.4 - -[x] \"a\" 1 2 \"-\" \"-\"",
        ] {
            assert_eq!(fields(line), Err(MISMATCH), "{line}");
        }
    }
}
