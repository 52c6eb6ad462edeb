//! `[[alert]]`: a comparison over one rule's or metric's series, evaluated once per
//! closed window (docs/alerts.md). The checked [`Alert`] the engine evaluates; its
//! expression grammar ([`parse`]) and annotation templates ([`template`]).

pub mod parse;
pub mod template;

use regex::Regex;

pub use template::{Template, TemplatePart};

/// A comparison operator of an alert expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl CmpOp {
    /// Whether `value CMP threshold` holds. NaN never compares true (as in PromQL),
    /// except for `!=`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            CmpOp::Gt => value > threshold,
            CmpOp::Ge => value >= threshold,
            CmpOp::Lt => value < threshold,
            CmpOp::Le => value <= threshold,
            CmpOp::Eq => value == threshold,
            CmpOp::Ne => value != threshold,
        }
    }

    /// As written in an expression.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }
}

/// How a label matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`, fully anchored.
    Regex,
    /// `!~`, fully anchored.
    NotRegex,
}

/// `label OP "value"`. A series without the label matches as if it had the
/// empty value (as in PromQL).
#[derive(Debug, Clone)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
    /// For `=~` / `!~`: `^(?:value)$`, compiled.
    pub regex: Option<Regex>,
}

impl Matcher {
    /// Whether a series whose `label` is `value` (absent: `""`) matches.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            // Validation compiles every regex matcher.
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }
}

/// Which output records an alert reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesOrigin {
    /// A `[[rule]]`'s output series.
    Rule,
    /// A metric's per-host series (or a histogram's `_count`, `_sum`, quantiles).
    Host,
}

/// A checked `[[alert]]`. Durations are counted in windows of the job's size.
#[derive(Debug, Clone)]
pub struct Alert {
    /// `[A-Za-z_][A-Za-z0-9_]*`, unique in the job.
    pub name: String,
    /// The expression as written (for logs and the fingerprint).
    pub expr: String,
    /// The record name of the compared series.
    pub record: String,
    /// Whether `record` is a rule's or a metric's series.
    pub origin: SeriesOrigin,
    pub matchers: Vec<Matcher>,
    pub op: CmpOp,
    pub threshold: f64,
    /// Consecutive windows the condition must hold before it fires; at least 1
    /// (`for = "0s"` and `for` of one window both fire at the first window).
    pub for_windows: u32,
    /// Windows it keeps firing after its condition stopped holding. 0 = none.
    pub keep_firing_windows: u32,
    /// Once firing, the instance stays firing while `value op resolve_threshold`
    /// holds: `threshold` itself unless `resolve_below` / `resolve_above` is set.
    pub resolve_threshold: f64,
    /// The compared value is the average of the series' values present in the
    /// last this many windows; 1 = the window's own value.
    pub average_windows: u32,
    /// Added to (and overriding) the series' labels: part of each instance's identity.
    pub labels: Vec<(String, String)>,
    /// Sorted by name.
    pub annotations: Vec<(String, Template)>,
}

impl Alert {
    /// Whether a series of `record` with `labels` is one this alert compares.
    pub fn selects<'a>(
        &self,
        record: &str,
        origin: SeriesOrigin,
        labels: impl Iterator<Item = (&'a str, &'a str)> + Clone,
    ) -> bool {
        record == self.record
            && origin == self.origin
            && self.matchers.iter().all(|m| {
                let value = labels
                    .clone()
                    .find(|(k, _)| *k == m.label)
                    .map_or("", |(_, v)| v);
                m.matches(value)
            })
    }
}
