//! Today's nginx scanner as it was before issue 13 (commit b048814), kept verbatim
//! as the test-only reference the faster scanner in `nginx.rs` is checked against
//! (`nginx_diff_tests.rs`): same accept/reject decision and same field spans for
//! every line. Not compiled outside tests. Do not "improve" it.

use super::{LineError, Span};
use memchr::{memchr, memchr2, memrchr};

// Spans are indexed like this list (the constants below are its positions).

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

const MISMATCH: LineError = LineError::FormatMismatch;

/// Fills `spans` (indexed like `NGINX_FIELDS`) from one line.
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
