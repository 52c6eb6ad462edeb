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

/// Edit-distance cells (one character of a word against one of a candidate) that
/// "did you mean" suggestions may cost in one job file. Plenty for any real job
/// (a typo among 1,000 metric names costs about 400,000), and it keeps a file of
/// thousands of misspelt names linear: past it, problems get no suggestion.
const SUGGESTION_BUDGET: u64 = 4_000_000;

/// Diagnostics [`Report::finish`] returns at most (plus one saying how many more).
pub(crate) const SHOWN_AT_MOST: usize = 1_000;

/// Bytes between the character counts [`LineIndex`] keeps.
const CHARS_EVERY: usize = 256;

/// Where each line starts, and how many characters precede every
/// [`CHARS_EVERY`]th byte: a byte offset's line and column in O(log n), so
/// reporting k problems in a file of n bytes costs O(n + k log n), not O(k n)
/// (scanning from the start for each problem made a 24k-metric job take 17 s).
struct LineIndex {
    line_starts: Vec<usize>,
    chars_before_block: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut line_starts = vec![0];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        let mut chars_before_block = Vec::with_capacity(text.len() / CHARS_EVERY + 1);
        let mut chars = 0;
        for block in text.as_bytes().chunks(CHARS_EVERY) {
            chars_before_block.push(chars);
            chars += count_chars(block);
        }
        chars_before_block.push(chars);
        LineIndex {
            line_starts,
            chars_before_block,
        }
    }

    /// Characters in `text[..offset]`.
    fn chars_before(&self, text: &str, offset: usize) -> usize {
        let block = offset / CHARS_EVERY;
        self.chars_before_block[block] + count_chars(&text.as_bytes()[block * CHARS_EVERY..offset])
    }
}

/// Characters in UTF-8 bytes: the bytes that are not continuation bytes.
fn count_chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| (**b & 0xC0) != 0x80).count()
}

/// The job file's text plus the diagnostics found so far.
pub(crate) struct Report<'a> {
    pub text: &'a str,
    pub file: &'a str,
    pub diags: Vec<Diagnostic>,
    lines: LineIndex,
    /// What is left of [`SUGGESTION_BUDGET`].
    suggestion_budget: u64,
    /// The last value [`Report::inside`] looked at, and where its contents start.
    last_inside: Option<(Range<usize>, Option<usize>)>,
}

impl<'a> Report<'a> {
    pub fn new(text: &'a str, file: &'a str) -> Self {
        Report {
            text,
            file,
            diags: Vec::new(),
            lines: LineIndex::new(text),
            suggestion_budget: SUGGESTION_BUDGET,
            last_inside: None,
        }
    }

    /// 1-based line and character column of a byte offset (clamped into the text).
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self
            .lines
            .line_starts
            .partition_point(|&start| start <= offset);
        let line_start = self.lines.line_starts[line - 1];
        let column = self.lines.chars_before(self.text, offset)
            - self.lines.chars_before(self.text, line_start)
            + 1;
        (line, column)
    }

    /// `"did you mean `x`? "` for the candidate closest to `word`, or `""`; for
    /// lists that grow with the job (metric names, labels, fields), whose
    /// suggestions share one budget (see [`SUGGESTION_BUDGET`]).
    pub fn did_you_mean<'c, I>(&mut self, word: &str, candidates: I) -> String
    where
        I: IntoIterator<Item = &'c str>,
    {
        super::names::closest_within(word, candidates, &mut self.suggestion_budget)
            .map_or_else(String::new, |c| format!("did you mean `{c}`? "))
    }

    /// Whether [`Report::did_you_mean`] can still suggest anything (so callers
    /// can skip building candidate lists).
    pub fn can_suggest(&self) -> bool {
        self.suggestion_budget > 0
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

    fn offset_inside(&mut self, value: &Spanned<String>, inner: usize) -> usize {
        let span = value.span();
        // One value can have many problems (every `$` of a path): compare it with
        // the file once, not once per problem.
        let contents = match &self.last_inside {
            Some((s, contents)) if *s == span => *contents,
            _ => {
                let contents = self.contents_start(value);
                self.last_inside = Some((span.clone(), contents));
                contents
            }
        };
        match contents {
            Some(start) if inner <= value.get_ref().len() => start + inner,
            _ => span.start,
        }
    }

    /// Where a string value's contents start in the file, when they map 1:1 onto
    /// it: exactly when they equal the raw text between the quotes (no escapes
    /// were processed).
    fn contents_start(&self, value: &Spanned<String>) -> Option<usize> {
        let span = value.span();
        let raw = self.text.get(span.clone()).unwrap_or("");
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
            return raw
                .get(start..end)
                .filter(|body| *body == value.get_ref())
                .map(|_| span.start + start);
        }
        None
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
    ///
    /// At most [`SHOWN_AT_MOST`] are kept, then one that says how many more there
    /// were: a body of a megabyte can hold half a million problems, and printing
    /// (or answering an API request with) each would multiply its size.
    pub fn finish(mut self) -> Diagnostics {
        self.diags.sort_by_key(|d| (d.line, d.column));
        if self.diags.len() > SHOWN_AT_MOST {
            let more = self.diags.len() - SHOWN_AT_MOST;
            self.diags.truncate(SHOWN_AT_MOST);
            self.diags.push(Diagnostic {
                file: self.file.to_string(),
                line: 0,
                column: 0,
                message: format!("{more} more problems are not shown"),
                hint: Some("fix the ones above and validate again".to_string()),
            });
        }
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
    fn positions_agree_with_a_scan_from_the_start() {
        // Long lines and multi-byte characters across the index's blocks.
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&"é".repeat(i * 7));
            text.push_str(&"x".repeat(i * 11));
            text.push('\n');
        }
        let r = Report::new(&text, "f");
        for offset in (0..=text.len() + 3).filter(|o| text.is_char_boundary((*o).min(text.len()))) {
            let before = &text[..offset.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before[line_start..].chars().count() + 1;
            assert_eq!(r.position(offset), (line, column), "offset {offset}");
        }
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
