//! logfmt: `time=2026-11-20T10:01:02Z level=info msg="a \"quoted\" value" cached`.
//!
//! - A bare key (`cached`) reads as `"true"`, as in the original logfmt
//!   convention; `key=` reads as `""`.
//! - Quoted values are unescaped like JSON strings (`\"`, `\\`, `\n`, `\uXXXX`...);
//!   unknown escapes are kept as written.
//! - Unquoted values run to the next whitespace and may contain `=` and `"`
//!   (`url=/a?b=c`); a token starting with `=` has no key and is ignored.
//! - The only error is an unterminated quoted value (`FormatMismatch`): anything
//!   else is some sequence of keys and values, and a plain-text line simply lacks
//!   the timestamp field.
//! - A repeated key: the last one wins.

use super::{json::unescape, names::NameIndex, LineError, Span};
use memchr::memchr2;

pub(crate) struct LogfmtParser {
    names: NameIndex,
}

#[inline]
fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

impl LogfmtParser {
    pub(crate) fn new(names: &[String]) -> LogfmtParser {
        LogfmtParser {
            names: NameIndex::new(names),
        }
    }

    pub(crate) fn parse(
        &self,
        text: &str,
        spans: &mut [Span],
        scratch: &mut String,
    ) -> Result<(), LineError> {
        let b = text.as_bytes();
        let n = b.len();
        let mut i = 0;
        loop {
            while i < n && is_ws(b[i]) {
                i += 1;
            }
            if i == n {
                return Ok(());
            }
            let ks = i;
            while i < n && !is_ws(b[i]) && b[i] != b'=' {
                i += 1;
            }
            // Split at ASCII bytes, so on char boundaries.
            let key = text.get(ks..i).unwrap_or_default();
            let slot = self.names.get(key);
            let span = if i < n && b[i] == b'=' {
                i += 1;
                if i < n && b[i] == b'"' {
                    let (vs, ve, escaped) = quoted(b, i + 1)?;
                    i = ve + 1;
                    if escaped && slot.is_some() {
                        let from = scratch.len();
                        unescape(&text[vs..ve], scratch);
                        Span::Scratch(from, scratch.len())
                    } else {
                        Span::Line(vs, ve)
                    }
                } else {
                    let vs = i;
                    while i < n && !is_ws(b[i]) {
                        i += 1;
                    }
                    Span::Line(vs, i)
                }
            } else {
                Span::Static("true")
            };
            if let (Some(slot), false) = (slot, key.is_empty()) {
                spans[slot] = span;
            }
        }
    }
}

/// From just after the opening quote: (start, end of contents, has escapes).
fn quoted(b: &[u8], start: usize) -> Result<(usize, usize, bool), LineError> {
    let mut i = start;
    let mut escaped = false;
    loop {
        let rest = b.get(i..).ok_or(LineError::FormatMismatch)?;
        let j = i + memchr2(b'"', b'\\', rest).ok_or(LineError::FormatMismatch)?;
        if b[j] == b'"' {
            return Ok((start, j, escaped));
        }
        escaped = true;
        i = j + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(names: &[&str], line: &str) -> Result<Vec<Option<String>>, LineError> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let p = LogfmtParser::new(&names);
        let mut spans = vec![Span::Missing; names.len()];
        let mut scratch = String::new();
        p.parse(line, &mut spans, &mut scratch)?;
        Ok(spans
            .iter()
            .map(|s| s.resolve(line, &scratch).map(str::to_string))
            .collect())
    }

    fn some(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|s| s.map(str::to_string)).collect()
    }

    #[test]
    fn typical_line() {
        let line = r#"time=2026-11-20T10:01:02.345Z level=info msg="request done \"ok\"" path=/api?a=b status=200 dur=0.012 cached empty= host=web-1"#;
        let got = run(
            &[
                "time", "msg", "path", "status", "dur", "cached", "empty", "nope", "host",
            ],
            line,
        )
        .unwrap();
        assert_eq!(
            got,
            some(&[
                Some("2026-11-20T10:01:02.345Z"),
                Some("request done \"ok\""),
                Some("/api?a=b"),
                Some("200"),
                Some("0.012"),
                Some("true"),
                Some(""),
                None,
                Some("web-1"),
            ])
        );
    }

    #[test]
    fn edge_cases() {
        assert_eq!(run(&["a"], "a=1 a=2").unwrap(), some(&[Some("2")]));
        assert_eq!(run(&["a"], "=x a=\"\" =").unwrap(), some(&[Some("")]));
        assert_eq!(
            run(&["a", "b"], "a=\"x y\"b=2").unwrap(),
            some(&[Some("x y"), Some("2")])
        );
        assert_eq!(
            run(&["a"], "a=\"tab\\there\\u00e9 \\q\"").unwrap(),
            some(&[Some("tab\there\u{e9} \\q")])
        );
        assert_eq!(
            run(&["a"], "  \t a=\"\\\\\"  ").unwrap(),
            some(&[Some("\\")])
        );
        assert_eq!(run(&["a"], "just some text").unwrap(), some(&[None]));
        assert_eq!(run(&["a"], "a=x\"y").unwrap(), some(&[Some("x\"y")]));
    }

    #[test]
    fn unterminated_quote() {
        for bad in ["a=\"open", "a=\"open\\\"", "a=\"\\", "x=1 a=\""] {
            assert_eq!(run(&["a"], bad), Err(LineError::FormatMismatch), "{bad}");
        }
    }
}
