//! The tokenizer of rule expressions.

use super::{ExprError, SUPPORTED};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tok<'a> {
    Ident(&'a str),
    Number(&'a str),
    LParen,
    RParen,
    Comma,
    End,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Token<'a> {
    pub tok: Tok<'a>,
    pub offset: usize,
}

impl Token<'_> {
    pub fn describe(&self) -> String {
        match self.tok {
            Tok::Ident(s) | Tok::Number(s) => format!("`{s}`"),
            Tok::LParen => "`(`".to_string(),
            Tok::RParen => "`)`".to_string(),
            Tok::Comma => "`,`".to_string(),
            Tok::End => "the end of the expression".to_string(),
        }
    }
}

pub(super) fn column(input: &str, offset: usize) -> usize {
    input.get(..offset).map_or(offset, |s| s.chars().count()) + 1
}

pub(super) fn error(
    input: &str,
    offset: usize,
    message: String,
    hint: Option<String>,
) -> ExprError {
    ExprError {
        offset,
        column: column(input, offset),
        message,
        hint,
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

pub(super) fn tokenize(input: &str) -> Result<Vec<Token<'_>>, ExprError> {
    let bytes = input.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let digit_at = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_digit);
        let tok = match b {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b',' => Tok::Comma,
            _ if is_ident_start(b) => {
                while i < bytes.len() && is_ident_char(bytes[i]) {
                    i += 1;
                }
                tokens.push(Token { tok: Tok::Ident(&input[start..i]), offset: start });
                continue;
            }
            _ if b.is_ascii_digit()
                || (b == b'.' && digit_at(i + 1))
                || ((b == b'-' || b == b'+')
                    && (digit_at(i + 1) || (bytes.get(i + 1) == Some(&b'.') && digit_at(i + 2)))) =>
            {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                    i += 1;
                }
                if matches!(bytes.get(i), Some(b'e' | b'E')) {
                    let sign = usize::from(matches!(bytes.get(i + 1), Some(b'+' | b'-')));
                    if digit_at(i + 1 + sign) {
                        i += 1 + sign;
                        while i < bytes.len() && bytes[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                let text = &input[start..i];
                if text.parse::<f64>().is_err() {
                    return Err(error(input, start, format!("`{text}` is not a valid number"), None));
                }
                tokens.push(Token { tok: Tok::Number(text), offset: start });
                continue;
            }
            b'{' => {
                return Err(error(
                    input,
                    start,
                    "label matchers like `{status=\"500\"}` are not supported in rules".to_string(),
                    Some("keep the label with `by (status)` and filter the output instead".to_string()),
                ))
            }
            b'[' => {
                return Err(error(
                    input,
                    start,
                    "range selectors like `[5m]` are not supported in rules".to_string(),
                    Some("rules already aggregate whole windows; set the window length in [window] size".to_string()),
                ))
            }
            b'"' | b'\'' | b'`' => {
                return Err(error(
                    input,
                    start,
                    "quoted strings are not allowed in a rule expression".to_string(),
                    Some("write metric and label names without quotes".to_string()),
                ))
            }
            b'-' if start > 0 && is_ident_char(bytes[start - 1]) => {
                return Err(error(
                    input,
                    start,
                    "`-` cannot appear in a name".to_string(),
                    Some("metric names use letters, digits, `_` and `:`; label names letters, digits and `_`".to_string()),
                ))
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' => {
                return Err(error(
                    input,
                    start,
                    format!("arithmetic (`{}`) is not supported in rule expressions", char::from(b)),
                    Some(SUPPORTED.to_string()),
                ))
            }
            _ => {
                let c = input[start..].chars().next().unwrap_or('?');
                return Err(error(
                    input,
                    start,
                    format!("unexpected character `{c}`"),
                    Some(SUPPORTED.to_string()),
                ));
            }
        };
        i += 1;
        tokens.push(Token { tok, offset: start });
    }
    tokens.push(Token {
        tok: Tok::End,
        offset: input.len(),
    });
    Ok(tokens)
}
