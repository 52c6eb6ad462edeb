//! The syntax of an alert expression: a hand-written scanner and parser.
//!
//! ```text
//! alert    := selector CMP NUMBER                 CMP: > >= < <= == !=
//! selector := NAME [ "{" [ matcher ("," matcher)* [","] ] "}" ]
//! matcher  := LABEL ("=" | "!=" | "=~" | "!~") STRING
//! ```
//!
//! STRING is a PromQL string: double or single quotes with backslash escapes
//! (`\\`, `\"`, `\'`, `\n`, `\t`, `\r`), or backticks without escapes. Names are
//! resolved against the job by `crate::validate`; every node keeps the byte offset
//! where it starts so errors point at the exact character.

use super::{CmpOp, MatchOp};
use crate::expr::{ExprError, Name};

/// One `label OP "value"` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMatcher {
    pub label: Name,
    pub op: MatchOp,
    /// The string's value, escapes processed.
    pub value: String,
    /// Offset of the opening quote.
    pub value_offset: usize,
}

/// A parsed, unresolved alert expression.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertExpr {
    pub name: Name,
    pub matchers: Vec<ParsedMatcher>,
    pub op: CmpOp,
    pub op_offset: usize,
    pub threshold: f64,
    pub threshold_offset: usize,
}

const SHAPE: &str = "an alert expression is a series, a comparison and a number, e.g. status:http_requests:sum1m{status=~\"5..\"} > 100";

fn error(input: &str, offset: usize, message: String, hint: Option<String>) -> ExprError {
    ExprError {
        offset,
        column: input.get(..offset).map_or(offset, |s| s.chars().count()) + 1,
        message,
        hint,
    }
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// Parses one alert expression.
pub fn parse(input: &str) -> Result<AlertExpr, ExprError> {
    let mut p = Parser { input, pos: 0 };
    p.skip_space();
    let name = p.name("a series name (a rule's `record` or a metric's name)")?;
    p.skip_space();
    let mut matchers = Vec::new();
    if p.peek() == Some(b'{') {
        p.pos += 1;
        loop {
            p.skip_space();
            if p.peek() == Some(b'}') {
                p.pos += 1;
                break;
            }
            matchers.push(p.matcher()?);
            p.skip_space();
            match p.peek() {
                Some(b',') => p.pos += 1,
                Some(b'}') => {
                    p.pos += 1;
                    break;
                }
                _ => {
                    return Err(p.unexpected(
                        "`,` or `}` after a label matcher",
                        "separate matchers with `,` and close them with `}`",
                    ))
                }
            }
        }
        p.skip_space();
    }
    let op_offset = p.pos;
    let op = p.cmp()?;
    p.skip_space();
    let threshold_offset = p.pos;
    let threshold = p.number()?;
    p.skip_space();
    if p.pos < input.len() {
        return Err(error(
            input,
            p.pos,
            format!("unexpected `{}` after the threshold", p.rest_word()),
            Some(format!(
                "{SHAPE}; combining comparisons (and, or) is not supported: write one [[alert]] each"
            )),
        ));
    }
    Ok(AlertExpr {
        name,
        matchers,
        op,
        op_offset,
        threshold,
        threshold_offset,
    })
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.as_bytes().get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// The text at the current position up to the next space, for messages.
    fn rest_word(&self) -> String {
        let rest = &self.input[self.pos..];
        let word: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
        if word.is_empty() {
            rest.chars().take(1).collect()
        } else {
            word
        }
    }

    fn unexpected(&self, wanted: &str, hint: &str) -> ExprError {
        let found = if self.pos >= self.input.len() {
            "the end of the expression".to_string()
        } else {
            format!("`{}`", self.input[self.pos..].chars().next().unwrap_or('?'))
        };
        error(
            self.input,
            self.pos,
            format!("expected {wanted}, found {found}"),
            Some(hint.to_string()),
        )
    }

    fn name(&mut self, what: &str) -> Result<Name, ExprError> {
        let start = self.pos;
        if !self.peek().is_some_and(is_name_start) {
            return Err(self.unexpected(what, SHAPE));
        }
        while self.peek().is_some_and(is_name_char) {
            self.pos += 1;
        }
        Ok(Name {
            text: self.input[start..self.pos].to_string(),
            offset: start,
        })
    }

    fn matcher(&mut self) -> Result<ParsedMatcher, ExprError> {
        let label = self.name("a label name")?;
        if label.text.contains(':') {
            return Err(error(
                self.input,
                label.offset,
                format!("`{}` is not a valid label name", label.text),
                Some("label names use letters, digits and `_`".to_string()),
            ));
        }
        self.skip_space();
        let bytes = self.input.as_bytes();
        let two = bytes.get(self.pos..self.pos + 2);
        let op = match (two, self.peek()) {
            (Some(b"=~"), _) => MatchOp::Regex,
            (Some(b"!~"), _) => MatchOp::NotRegex,
            (Some(b"!="), _) => MatchOp::NotEqual,
            (Some(b"=="), _) => {
                return Err(error(
                    self.input,
                    self.pos,
                    "`==` is not a label matcher".to_string(),
                    Some("match a label with a single `=`, e.g. {status=\"500\"}".to_string()),
                ))
            }
            (_, Some(b'=')) => MatchOp::Equal,
            _ => {
                return Err(self.unexpected(
                    "`=`, `!=`, `=~` or `!~` after the label name",
                    "write a matcher as label=\"value\", e.g. {status=~\"5..\"}",
                ))
            }
        };
        self.pos += if op == MatchOp::Equal { 1 } else { 2 };
        self.skip_space();
        let value_offset = self.pos;
        let value = self.string()?;
        Ok(ParsedMatcher {
            label,
            op,
            value,
            value_offset,
        })
    }

    fn string(&mut self) -> Result<String, ExprError> {
        let start = self.pos;
        let Some(quote @ (b'"' | b'\'' | b'`')) = self.peek() else {
            return Err(self.unexpected(
                "a quoted string",
                "quote label values, e.g. {status=\"500\"} or {path=~'/api/.*'}",
            ));
        };
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.input[self.pos..];
            let Some(c) = rest.chars().next() else {
                return Err(error(
                    self.input,
                    start,
                    "this string is not closed".to_string(),
                    Some(format!("end it with {}", char::from(quote))),
                ));
            };
            if c == char::from(quote) {
                self.pos += 1;
                return Ok(out);
            }
            if c == '\\' && quote != b'`' {
                let escaped = rest[1..].chars().next();
                let real = match escaped {
                    Some('\\') => '\\',
                    Some('"') => '"',
                    Some('\'') => '\'',
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    _ => {
                        return Err(error(
                            self.input,
                            self.pos,
                            format!(
                                "unknown escape `\\{}` in a string",
                                escaped.map(String::from).unwrap_or_default()
                            ),
                            Some("escape a backslash as `\\\\` (in a regex, `\\\\.` matches a dot), or write the string in backticks, which take no escapes".to_string()),
                        ))
                    }
                };
                out.push(real);
                self.pos += 1 + escaped.map_or(0, char::len_utf8);
                continue;
            }
            out.push(c);
            self.pos += c.len_utf8();
        }
    }

    fn cmp(&mut self) -> Result<CmpOp, ExprError> {
        let bytes = self.input.as_bytes();
        let two = bytes.get(self.pos..self.pos + 2);
        let (op, len) = match (two, self.peek()) {
            (Some(b">="), _) => (CmpOp::Ge, 2),
            (Some(b"<="), _) => (CmpOp::Le, 2),
            (Some(b"=="), _) => (CmpOp::Eq, 2),
            (Some(b"!="), _) => (CmpOp::Ne, 2),
            (_, Some(b'>')) => (CmpOp::Gt, 1),
            (_, Some(b'<')) => (CmpOp::Lt, 1),
            (_, Some(b'=')) => {
                return Err(error(
                    self.input,
                    self.pos,
                    "`=` is not a comparison".to_string(),
                    Some("compare for equality with `==`".to_string()),
                ))
            }
            (_, Some(b'[')) => {
                return Err(error(
                    self.input,
                    self.pos,
                    "range selectors like `[5m]` are not supported in alerts".to_string(),
                    Some("average over the last windows with average_over = \"5m\"".to_string()),
                ))
            }
            _ => return Err(self.unexpected("a comparison (>, >=, <, <=, == or !=)", SHAPE)),
        };
        self.pos += len;
        Ok(op)
    }

    fn number(&mut self) -> Result<f64, ExprError> {
        let start = self.pos;
        let bytes = self.input.as_bytes();
        if matches!(self.peek(), Some(b'+' | b'-')) {
            self.pos += 1;
        }
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.' || b == b'_')
        {
            self.pos += 1;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let sign = usize::from(matches!(bytes.get(self.pos + 1), Some(b'+' | b'-')));
            if bytes
                .get(self.pos + 1 + sign)
                .is_some_and(u8::is_ascii_digit)
            {
                self.pos += 1 + sign;
                while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    self.pos += 1;
                }
            }
        }
        let text = &self.input[start..self.pos];
        let digits = text.trim_start_matches(['+', '-']);
        if digits.is_empty() {
            self.pos = start;
            return Err(self.unexpected(
                "a number after the comparison",
                "compare with a number, e.g. > 100 or < 0.5; comparing two series is not supported",
            ));
        }
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() && !text.contains('_') => Ok(v),
            _ => Err(error(
                self.input,
                start,
                format!("`{text}` is not a valid number"),
                Some("write a decimal number, e.g. 100, 0.5 or 1e6".to_string()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selector_with_matchers_and_a_threshold() {
        let e =
            parse(r#"status:http_requests:sum1m{status=~"5..", host!='web 1',} > 100"#).unwrap();
        assert_eq!(e.name.text, "status:http_requests:sum1m");
        assert_eq!(e.matchers.len(), 2);
        assert_eq!(e.matchers[0].label.text, "status");
        assert_eq!(e.matchers[0].op, MatchOp::Regex);
        assert_eq!(e.matchers[0].value, "5..");
        assert_eq!(e.matchers[1].op, MatchOp::NotEqual);
        assert_eq!(e.matchers[1].value, "web 1");
        assert_eq!((e.op, e.threshold), (CmpOp::Gt, 100.0));
        let e = parse("x<=-0.5").unwrap();
        assert_eq!(
            (e.op, e.threshold, e.threshold_offset),
            (CmpOp::Le, -0.5, 3)
        );
        let e = parse(r#"x{p=~`a\.b`, q="\"\\"} != 1e3"#).unwrap();
        assert_eq!(e.matchers[0].value, r"a\.b");
        assert_eq!(e.matchers[1].value, r#""\"#);
        assert_eq!((e.op, e.threshold), (CmpOp::Ne, 1000.0));
    }

    #[test]
    fn errors_point_at_the_character() {
        for (input, offset, says) in [
            ("x > ", 4, "expected a number"),
            ("x 100", 2, "expected a comparison"),
            ("x{status=500} > 1", 9, "expected a quoted string"),
            ("x{status=\"5} > 1", 9, "not closed"),
            ("x{status==\"5\"} > 1", 8, "not a label matcher"),
            ("x{a=\"1\" b=\"2\"} > 1", 8, "`,` or `}`"),
            ("x = 1", 2, "not a comparison"),
            ("x[5m] > 1", 1, "range selectors"),
            ("x > 1 and y > 2", 6, "after the threshold"),
            ("x > 1.2.3", 4, "not a valid number"),
            ("{a=\"1\"} > 1", 0, "series name"),
            ("x{a=\"\\d\"} > 1", 5, "unknown escape"),
            ("x > y", 4, "expected a number"),
        ] {
            let e = parse(input).unwrap_err();
            assert_eq!(e.offset, offset, "{input}: {e:?}");
            assert!(e.message.contains(says), "{input}: {}", e.message);
            assert!(e.hint.is_some(), "{input}");
        }
    }
}
