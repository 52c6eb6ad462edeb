//! Error reports that point at a line and column of the job file.

use std::fmt;
use std::ops::{Deref, Range};

use toml::Spanned;

/// One problem in a job file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The job file as the user named it.
    pub file: String,
    /// 1-based line; 0 when the problem concerns the whole file (e.g. it cannot be read).
    pub line: usize,
    /// 1-based column, counted in characters; 0 together with `line`.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What to do about it, when there is something more specific to say.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: error: {}", self.file, self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: error: {}",
                self.file, self.line, self.column, self.message
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in a job file, in file order. Displays one diagnostic per
/// line (plus its hint line), without a trailing newline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.0
    }
}

impl Deref for Diagnostics {
    type Target = [Diagnostic];
    fn deref(&self) -> &[Diagnostic] {
        &self.0
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The job file's text plus the diagnostics found so far.
pub(crate) struct Report<'a> {
    pub text: &'a str,
    pub file: &'a str,
    pub diags: Vec<Diagnostic>,
}

impl<'a> Report<'a> {
    pub fn new(text: &'a str, file: &'a str) -> Self {
        Report {
            text,
            file,
            diags: Vec::new(),
        }
    }

    /// 1-based line and character column of a byte offset (clamped into the text).
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// Records an error at a byte offset of the file.
    pub fn at(
        &mut self,
        offset: usize,
        message: impl Into<String>,
        hint: impl Into<Option<String>>,
    ) {
        let (line, column) = self.position(offset);
        self.diags.push(Diagnostic {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
            hint: hint.into(),
        });
    }

    /// Records an error at the start of a value.
    pub fn on<T>(
        &mut self,
        value: &Spanned<T>,
        message: impl Into<String>,
        hint: impl Into<Option<String>>,
    ) {
        self.at(value.span().start, message, hint);
    }

    /// Records an error at byte `inner` of a string value's contents when the string is
    /// written without escapes (so the offset maps 1:1 onto the file), else at the value.
    pub fn inside(
        &mut self,
        value: &Spanned<String>,
        inner: usize,
        message: impl Into<String>,
        hint: impl Into<Option<String>>,
    ) {
        let offset = self.offset_inside(value, inner);
        self.at(offset, message, hint);
    }

    fn offset_inside(&self, value: &Spanned<String>, inner: usize) -> usize {
        let span = value.span();
        let raw = self.text.get(span.clone()).unwrap_or("");
        // The contents map 1:1 onto the file exactly when they equal the raw text
        // between the quotes (no escapes were processed).
        for quote in ["\"\"\"", "'''", "\"", "'"] {
            if !raw.starts_with(quote) || raw.len() < 2 * quote.len() {
                continue;
            }
            let mut start = quote.len();
            if quote.len() == 3 {
                // A newline right after the opening quotes is not part of the string.
                if raw[start..].starts_with("\r\n") {
                    start += 2;
                } else if raw[start..].starts_with('\n') {
                    start += 1;
                }
            }
            let end = raw.len() - quote.len();
            if let Some(body) = raw.get(start..end) {
                if body == value.get_ref() && inner <= body.len() {
                    return span.start + start + inner;
                }
            }
            break;
        }
        span.start
    }

    /// Records an error at a span (its start).
    pub fn span(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<Option<String>>,
    ) {
        self.at(span.start, message, hint);
    }

    /// All diagnostics, sorted by position (stable: same position keeps check order).
    pub fn finish(mut self) -> Diagnostics {
        self.diags.sort_by_key(|d| (d.line, d.column));
        Diagnostics(self.diags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let r = Report::new("ab\nçd = 1\n", "f");
        assert_eq!(r.position(0), (1, 1));
        assert_eq!(r.position(2), (1, 3));
        assert_eq!(r.position(3), (2, 1));
        assert_eq!(r.position(5), (2, 2)); // after the two-byte `ç`
        assert_eq!(r.position(4), (2, 1)); // inside `ç`: clamped back
        assert_eq!(r.position(999), (3, 1));
    }

    #[test]
    fn display() {
        let d = Diagnostic {
            file: "j.toml".into(),
            line: 3,
            column: 7,
            message: "bad".into(),
            hint: Some("fix it".into()),
        };
        let whole = Diagnostic {
            line: 0,
            column: 0,
            hint: None,
            ..d.clone()
        };
        let all = Diagnostics(vec![d, whole]);
        assert_eq!(
            all.to_string(),
            "j.toml:3:7: error: bad\n  hint: fix it\nj.toml: error: bad"
        );
    }
}
