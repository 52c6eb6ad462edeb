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

use super::{LineError, Span};
use memchr::{memchr, memchr2, memrchr};

// Spans are indexed like this list (the constants below are its positions).
use tidemark_jobs::NGINX_FIELDS as FIELDS;

const ADDR: usize = 0;
const USER: usize = 1;
const TIME: usize = 2;
const METHOD: usize = 3;
const PATH: usize = 4;
const PROTOCOL: usize = 5;
const STATUS: usize = 6;
const BYTES: usize = 7;
const REFERER: usize = 8;
const AGENT: usize = 9;
const REQUEST_TIME: usize = 10;
const REQUEST: usize = 11;

pub(crate) fn position(name: &str) -> Option<usize> {
    FIELDS.iter().position(|f| *f == name)
}

const MISMATCH: LineError = LineError::FormatMismatch;

/// Fills `spans` (indexed like [`FIELDS`]) from one line.
pub(crate) fn parse(text: &str, spans: &mut [Span]) -> Result<(), LineError> {
    let b = text.as_bytes();
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
    let lb = i + memchr(b'[', &b[i..]).ok_or(MISMATCH)?;
    if lb == i || b[lb - 1] != b' ' {
        return Err(MISMATCH);
    }
    spans[USER] = Span::Line(i, lb - 1);
    let ts = lb + 1;
    let rb = ts + memchr(b']', &b[ts..]).ok_or(MISMATCH)?;
    spans[TIME] = Span::Line(ts, rb);

    let i = expect(b, rb + 1, b" \"")?;
    let req_end = closing_quote(b, i, b" ")?;
    spans[REQUEST] = Span::Line(i, req_end);
    split_request(b, i, req_end, spans);

    let (status_end, i) = token(b, req_end + 2)?;
    spans[STATUS] = Span::Line(req_end + 2, status_end);
    let (bytes_end, i2) = token(b, i)?;
    spans[BYTES] = Span::Line(i, bytes_end);

    let i = expect(b, i2, b"\"")?;
    let ref_end = closing_quote(b, i, b" \"")?;
    spans[REFERER] = Span::Line(i, ref_end);

    let ua = ref_end + 3;
    let ua_end = closing_quote(b, ua, b" ")?;
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
    let rest = b.get(start..).ok_or(MISMATCH)?;
    match memchr(b' ', rest) {
        Some(0) | None => Err(MISMATCH),
        Some(n) => Ok((start + n, start + n + 1)),
    }
}

#[inline]
fn expect(b: &[u8], at: usize, lit: &[u8]) -> Result<usize, LineError> {
    match b.get(at..) {
        Some(rest) if rest.starts_with(lit) => Ok(at + lit.len()),
        _ => Err(MISMATCH),
    }
}

/// Index of the first unescaped `"` at or after `start` that is followed by `then`
/// or ends the line.
fn closing_quote(b: &[u8], start: usize, then: &[u8]) -> Result<usize, LineError> {
    let mut i = start;
    loop {
        let j = i + memchr2(b'"', b'\\', b.get(i..).ok_or(MISMATCH)?).ok_or(MISMATCH)?;
        if b[j] == b'\\' {
            i = j + 2;
        } else if j + 1 == b.len() || b[j + 1..].starts_with(then) {
            return Ok(j);
        } else {
            i = j + 1;
        }
    }
}

fn split_request(b: &[u8], start: usize, end: usize, spans: &mut [Span]) {
    let req = &b[start..end];
    let (Some(first), Some(last)) = (memchr(b' ', req), memrchr(b' ', req)) else {
        return;
    };
    spans[METHOD] = Span::Line(start, start + first);
    if first == last {
        spans[PATH] = Span::Line(start + first + 1, end);
    } else {
        spans[PATH] = Span::Line(start + first + 1, start + last);
        spans[PROTOCOL] = Span::Line(start + last + 1, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Result<Vec<Option<&str>>, LineError> {
        let mut spans = [Span::Missing; 12];
        parse(line, &mut spans)?;
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
