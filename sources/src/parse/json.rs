//! One JSON object per line.
//!
//! A hand scanner rather than serde_json: it walks the line once, descends only
//! into the objects a requested path goes through, and records byte ranges, so a
//! line costs no allocation (serde_json's `Value`/borrowed maps allocate per line).
//!
//! - `a.b.c` reaches nested objects; a key that itself contains dots (`"http.status"`)
//!   is matched too. If a line has both, or repeats a key, the last one wins.
//! - Strings are unescaped (in the scratch buffer only when they contain escapes);
//!   numbers and booleans are their text; objects and arrays are their raw JSON
//!   text; `null` is missing.
//! - Syntax is checked on the whole line (trailing garbage is `BadJson`), except
//!   that raw control characters inside strings are accepted, and an unpaired
//!   `\uD800`-style surrogate reads as U+FFFD: rejecting a log line over those
//!   would lose data for no benefit.

use std::collections::HashMap;

use super::{LineError, Span};
use memchr::{memchr, memchr2};

const BAD: LineError = LineError::BadJson;

/// Up to this many children a scan beats hashing the key.
const SCAN_UP_TO: usize = 8;

/// The requested paths as a tree of keys.
#[derive(Default)]
struct Node {
    key: Box<str>,
    /// Index in `spans` of the field that ends here.
    field: Option<usize>,
    children: Vec<Node>,
    /// `children` by key: a job may name thousands of fields, and a line carry
    /// thousands of keys, so a scan per key would cost keys × names.
    by_key: HashMap<Box<[u8]>, usize>,
}

impl Node {
    fn insert<'k>(&mut self, mut path: impl Iterator<Item = &'k str>, field: usize) {
        match path.next() {
            None => self.field = Some(field),
            Some(seg) => {
                let i = match self.by_key.get(seg.as_bytes()) {
                    Some(&i) => i,
                    None => {
                        self.children.push(Node {
                            key: seg.into(),
                            ..Node::default()
                        });
                        self.by_key
                            .insert(seg.as_bytes().into(), self.children.len() - 1);
                        self.children.len() - 1
                    }
                };
                self.children[i].insert(path, field);
            }
        }
    }

    #[inline]
    fn child(&self, key: &[u8]) -> Option<&Node> {
        if self.children.len() > SCAN_UP_TO {
            return self.by_key.get(key).map(|&i| &self.children[i]);
        }
        // Keys are short: a byte loop is cheaper than a call to memcmp.
        self.children.iter().find(|c| {
            let k = c.key.as_bytes();
            k.len() == key.len() && k.iter().zip(key).all(|(a, b)| a == b)
        })
    }
}

pub(crate) struct JsonParser {
    root: Node,
    /// Open containers while skipping a value; kept to reuse its allocation.
    stack: Vec<u8>,
    key_buf: String,
}

impl JsonParser {
    pub(crate) fn new(names: &[String]) -> JsonParser {
        let mut root = Node::default();
        for (i, name) in names.iter().enumerate() {
            root.insert(name.split('.'), i);
            if name.contains('.') {
                root.insert(std::iter::once(name.as_str()), i);
            }
        }
        JsonParser {
            root,
            stack: Vec::new(),
            key_buf: String::new(),
        }
    }

    pub(crate) fn shrink(&mut self, keep: usize) {
        if self.stack.capacity() > keep {
            self.stack.clear();
            self.stack.shrink_to(keep);
        }
        if self.key_buf.capacity() > keep {
            self.key_buf.clear();
            self.key_buf.shrink_to(keep);
        }
    }

    pub(crate) fn parse(
        &mut self,
        text: &str,
        spans: &mut [Span],
        scratch: &mut String,
    ) -> Result<(), LineError> {
        let mut s = Scan {
            text,
            b: text.as_bytes(),
            i: 0,
        };
        s.ws();
        if s.peek() != Some(b'{') {
            let valid = s.skip_value(&mut self.stack).is_ok() && {
                s.ws();
                s.i == s.b.len()
            };
            return Err(if valid { LineError::NotAnObject } else { BAD });
        }
        s.i += 1;
        let mut cx = Cx {
            spans,
            scratch,
            stack: &mut self.stack,
            key_buf: &mut self.key_buf,
        };
        s.object(&self.root, &mut cx)?;
        s.ws();
        if s.i != s.b.len() {
            return Err(BAD);
        }
        Ok(())
    }
}

struct Cx<'c> {
    spans: &'c mut [Span],
    scratch: &'c mut String,
    stack: &'c mut Vec<u8>,
    key_buf: &'c mut String,
}

struct Scan<'t> {
    text: &'t str,
    b: &'t [u8],
    i: usize,
}

impl Scan<'_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    #[inline]
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += usize::from(hit);
        hit
    }

    /// The members of an object whose `{` was consumed. Recursion only follows
    /// requested paths, so its depth is bounded by the job, not the line.
    fn object(&mut self, node: &Node, cx: &mut Cx<'_>) -> Result<(), LineError> {
        self.ws();
        if self.eat(b'}') {
            return Ok(());
        }
        loop {
            if !self.eat(b'"') {
                return Err(BAD);
            }
            let (ks, ke, escaped) = self.string()?;
            let child = if node.children.is_empty() {
                None
            } else if escaped {
                cx.key_buf.clear();
                unescape(&self.text[ks..ke], cx.key_buf);
                node.child(cx.key_buf.as_bytes())
            } else {
                node.child(&self.b[ks..ke])
            };
            self.ws();
            if !self.eat(b':') {
                return Err(BAD);
            }
            self.ws();
            match child {
                None => self.skip_value(cx.stack)?,
                Some(c) => self.member(c, cx)?,
            }
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(BAD),
            }
        }
    }

    /// The value of a key on a requested path.
    fn member(&mut self, node: &Node, cx: &mut Cx<'_>) -> Result<(), LineError> {
        let start = self.i;
        let span = match self.peek() {
            Some(b'"') => {
                self.i += 1;
                let (s, e, escaped) = self.string()?;
                if escaped && node.field.is_some() {
                    let from = cx.scratch.len();
                    unescape(&self.text[s..e], cx.scratch);
                    Span::Scratch(from, cx.scratch.len())
                } else {
                    Span::Line(s, e)
                }
            }
            Some(b'{') if !node.children.is_empty() => {
                self.i += 1;
                self.object(node, cx)?;
                Span::Line(start, self.i)
            }
            Some(b'n') => {
                self.skip_value(cx.stack)?;
                Span::Missing
            }
            _ => {
                self.skip_value(cx.stack)?;
                Span::Line(start, self.i)
            }
        };
        if let Some(f) = node.field {
            cx.spans[f] = span;
        }
        Ok(())
    }

    /// After the opening quote: the raw contents' range and whether it has
    /// escapes; leaves `i` after the closing quote.
    fn string(&mut self) -> Result<(usize, usize, bool), LineError> {
        let start = self.i;
        let mut escaped = false;
        loop {
            let j = self.i + find_quote_or_backslash(&self.b[self.i..]).ok_or(BAD)?;
            if self.b[j] == b'"' {
                self.i = j + 1;
                return Ok((start, j, escaped));
            }
            escaped = true;
            self.i = match self.b.get(j + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => j + 2,
                Some(b'u') if self.b.get(j + 2..j + 6).and_then(hex4).is_some() => j + 6,
                _ => return Err(BAD),
            };
        }
    }

    /// Skips one value, checking its syntax, without recursion: a line of ten
    /// million `[` must not overflow the stack.
    fn skip_value(&mut self, stack: &mut Vec<u8>) -> Result<(), LineError> {
        stack.clear();
        loop {
            self.ws();
            match self.peek().ok_or(BAD)? {
                b'"' => {
                    self.i += 1;
                    self.string()?;
                }
                b'{' => {
                    self.i += 1;
                    self.ws();
                    if !self.eat(b'}') {
                        stack.push(b'}');
                        self.key()?;
                        continue;
                    }
                }
                b'[' => {
                    self.i += 1;
                    self.ws();
                    if !self.eat(b']') {
                        stack.push(b']');
                        continue;
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return Err(BAD),
            }
            // A value ended: close containers until one wants another element.
            loop {
                let Some(&close) = stack.last() else {
                    return Ok(());
                };
                self.ws();
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        if close == b'}' {
                            self.ws();
                            self.key()?;
                        }
                        break;
                    }
                    Some(c) if c == close => {
                        self.i += 1;
                        stack.pop();
                    }
                    _ => return Err(BAD),
                }
            }
        }
    }

    /// `"key" :` inside a skipped object.
    fn key(&mut self) -> Result<(), LineError> {
        if !self.eat(b'"') {
            return Err(BAD);
        }
        self.string()?;
        self.ws();
        if self.eat(b':') {
            Ok(())
        } else {
            Err(BAD)
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), LineError> {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(BAD)
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<(), LineError> {
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(BAD),
        }
        if self.eat(b'.') {
            self.some_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.some_digits()?;
        }
        Ok(())
    }

    #[inline]
    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Result<(), LineError> {
        let at = self.i;
        self.digits();
        if self.i > at {
            Ok(())
        } else {
            Err(BAD)
        }
    }
}

/// Most JSON strings in logs are short keys and values, where memchr's setup
/// cost dominates: look 8 bytes at a time first (SWAR), then hand long strings
/// (messages, user agents) to memchr.
#[inline]
fn find_quote_or_backslash(b: &[u8]) -> Option<usize> {
    const SHORT: usize = 32;
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Lowest set high bit marks the first zero byte exactly (borrows only
    // disturb bytes above it).
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut i = 0;
    while i + 8 <= b.len().min(SHORT) {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        let x = u64::from_le_bytes(w);
        let hits =
            zero_bytes(x ^ (ONES * u64::from(b'"'))) | zero_bytes(x ^ (ONES * u64::from(b'\\')));
        if hits != 0 {
            return Some(i + hits.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    if i < SHORT {
        return b[i..]
            .iter()
            .position(|&c| c == b'"' || c == b'\\')
            .map(|p| p + i);
    }
    memchr2(b'"', b'\\', &b[i..]).map(|p| p + i)
}

fn hex4(h: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(h).ok()?;
    if s.len() != 4 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// Appends the unescaped form of a JSON-style string body to `out`. Shared with
/// logfmt, so unknown escapes are kept as written instead of failing.
pub(crate) fn unescape(raw: &str, out: &mut String) {
    let b = raw.as_bytes();
    let mut i = 0;
    while let Some(off) = memchr(b'\\', &b[i..]) {
        let j = i + off;
        out.push_str(&raw[i..j]);
        let (ch, used) = match b.get(j + 1) {
            Some(b'"') => ('"', 2),
            Some(b'\\') => ('\\', 2),
            Some(b'/') => ('/', 2),
            Some(b'b') => ('\u{8}', 2),
            Some(b'f') => ('\u{c}', 2),
            Some(b'n') => ('\n', 2),
            Some(b'r') => ('\r', 2),
            Some(b't') => ('\t', 2),
            Some(b'u') => match b.get(j + 2..j + 6).and_then(hex4) {
                Some(hi @ 0xD800..=0xDBFF) => {
                    let lo = b.get(j + 6..j + 8).filter(|p| p == b"\\u");
                    match lo.and(b.get(j + 8..j + 12)).and_then(hex4) {
                        Some(lo @ 0xDC00..=0xDFFF) => {
                            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            (char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER), 12)
                        }
                        _ => (char::REPLACEMENT_CHARACTER, 6),
                    }
                }
                Some(c) => (char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER), 6),
                None => ('\\', 1),
            },
            _ => ('\\', 1),
        };
        out.push(ch);
        i = j + used;
    }
    out.push_str(&raw[i..]);
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
