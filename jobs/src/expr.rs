//! Recording-rule expressions: a hand-written tokenizer and recursive-descent parser.
//!
//! ```text
//! expr     := agg | quantile
//! agg      := OP [grouping] "(" METRIC ")" [grouping]     OP: sum min max avg count
//! grouping := ("by" | "without") "(" [LABEL ("," LABEL)* [","]] ")"
//! quantile := "histogram_quantile" "(" NUMBER "," (METRIC | agg) ")"
//! ```
//!
//! Keywords are case-insensitive, as in PromQL. The parser only checks syntax; names are
//! resolved against the job's metrics by `crate::validate`. Every node carries the byte
//! offset where it starts so errors can point at the exact character.

use crate::job::AggOp;
use lexer::{error, tokenize, Tok, Token};

mod lexer;

/// A metric or label name and the byte offset where it starts in the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub text: String,
    pub offset: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupingKind {
    By,
    Without,
}

/// `by (a, b)` or `without (a, b)` as written (not sorted, duplicates kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupingClause {
    pub kind: GroupingKind,
    pub labels: Vec<Name>,
    /// Offset of the `by` / `without` keyword.
    pub offset: usize,
}

/// `op [grouping] (metric) [grouping]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregation {
    pub op: AggOp,
    pub op_offset: usize,
    pub grouping: Option<GroupingClause>,
    pub metric: Name,
}

/// The argument of `histogram_quantile(q, ...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuantileArg {
    Metric(Name),
    Aggregate(Aggregation),
}

/// A parsed, unresolved rule expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Aggregate(Aggregation),
    HistogramQuantile {
        q: f64,
        q_offset: usize,
        arg: QuantileArg,
    },
}

/// A syntax error at a position inside the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ExprError {
    /// Byte offset inside the expression.
    pub offset: usize,
    /// 1-based character column inside the expression.
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

/// The keyword for an aggregation operator (`"sum"`, ...).
pub fn op_name(op: AggOp) -> &'static str {
    match op {
        AggOp::Sum => "sum",
        AggOp::Min => "min",
        AggOp::Max => "max",
        AggOp::Avg => "avg",
        AggOp::Count => "count",
    }
}

const SUPPORTED: &str = "supported: sum, min, max, avg, count (optionally with `by (...)` or `without (...)`) and histogram_quantile(q, metric)";

fn agg_op(word: &str) -> Option<AggOp> {
    [AggOp::Sum, AggOp::Min, AggOp::Max, AggOp::Avg, AggOp::Count]
        .into_iter()
        .find(|op| word.eq_ignore_ascii_case(op_name(*op)))
}

fn grouping_kind(word: &str) -> Option<GroupingKind> {
    if word.eq_ignore_ascii_case("by") {
        Some(GroupingKind::By)
    } else if word.eq_ignore_ascii_case("without") {
        Some(GroupingKind::Without)
    } else {
        None
    }
}

/// Parses one rule expression.
pub fn parse(input: &str) -> Result<Expr, ExprError> {
    let tokens = tokenize(input)?;
    let mut p = Parser {
        input,
        tokens,
        pos: 0,
    };
    let expr = p.expr()?;
    let t = p.next();
    if t.tok != Tok::End {
        return Err(p.err(
            t.offset,
            format!(
                "unexpected {} after the end of the expression",
                t.describe()
            ),
            Some("remove it; a rule is a single aggregation".to_string()),
        ));
    }
    Ok(expr)
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token<'a>>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek_at(&self, ahead: usize) -> Token<'a> {
        let end = Token {
            tok: Tok::End,
            offset: self.input.len(),
        };
        self.tokens.get(self.pos + ahead).copied().unwrap_or(end)
    }

    fn peek(&self) -> Token<'a> {
        self.peek_at(0)
    }

    fn next(&mut self) -> Token<'a> {
        let t = self.peek();
        if t.tok != Tok::End {
            self.pos += 1;
        }
        t
    }

    fn err(&self, offset: usize, message: String, hint: Option<String>) -> ExprError {
        error(self.input, offset, message, hint)
    }

    fn expect(
        &mut self,
        want: Tok<'_>,
        what: &str,
        hint: Option<String>,
    ) -> Result<Token<'a>, ExprError> {
        let t = self.next();
        if t.tok == want {
            Ok(t)
        } else {
            Err(self.err(
                t.offset,
                format!("expected {what}, found {}", t.describe()),
                hint,
            ))
        }
    }

    fn expr(&mut self) -> Result<Expr, ExprError> {
        let t = self.next();
        match t.tok {
            Tok::Ident(word) if word.eq_ignore_ascii_case("histogram_quantile") => self.quantile(),
            Tok::Ident(word) => match agg_op(word) {
                Some(op) => Ok(Expr::Aggregate(self.aggregation(op, t.offset)?)),
                None if self.peek().tok == Tok::LParen => Err(self.err(
                    t.offset,
                    format!("unknown function `{word}`"),
                    Some(SUPPORTED.to_string()),
                )),
                None => Err(self.err(
                    t.offset,
                    format!("`{word}` alone is not a rule: a rule must aggregate its metric"),
                    Some(format!("write e.g. `sum({word})` or `sum by (label) ({word})`")),
                )),
            },
            Tok::End => Err(self.err(
                t.offset,
                "the expression is empty".to_string(),
                Some("write e.g. `sum by (status) (http_requests_total)`".to_string()),
            )),
            _ => Err(self.err(
                t.offset,
                format!("expected an aggregation such as `sum(...)` or `histogram_quantile(...)`, found {}", t.describe()),
                Some(SUPPORTED.to_string()),
            )),
        }
    }

    fn aggregation(&mut self, op: AggOp, op_offset: usize) -> Result<Aggregation, ExprError> {
        let name = op_name(op);
        let mut grouping = match self.peek().tok {
            Tok::Ident(w) if grouping_kind(w).is_some() => Some(self.grouping()?),
            _ => None,
        };
        self.expect(
            Tok::LParen,
            &format!("`(` and a metric name after `{name}`"),
            Some(format!("write e.g. `{name} by (label) (metric_name)`")),
        )?;
        let metric = self.metric_name(&format!("write e.g. `{name}(http_requests_total)`"))?;
        let close = self.next();
        if close.tok != Tok::RParen {
            let hint = if close.tok == Tok::LParen {
                "functions such as rate() are not supported; per-window values are already totals"
                    .to_string()
            } else {
                format!(
                    "an aggregation reads exactly one metric: `{name}({})`",
                    metric.text
                )
            };
            return Err(self.err(
                close.offset,
                format!(
                    "expected `)` after the metric name, found {}",
                    close.describe()
                ),
                Some(hint),
            ));
        }
        if let Tok::Ident(w) = self.peek().tok {
            if grouping_kind(w).is_some() {
                let t = self.peek();
                if grouping.is_some() {
                    return Err(self.err(
                        t.offset,
                        "the grouping is given twice".to_string(),
                        Some("keep a single `by (...)` or `without (...)` clause".to_string()),
                    ));
                }
                grouping = Some(self.grouping()?);
            }
        }
        Ok(Aggregation {
            op,
            op_offset,
            grouping,
            metric,
        })
    }

    fn metric_name(&mut self, usage: &str) -> Result<Name, ExprError> {
        let t = self.next();
        match t.tok {
            Tok::Ident(word) => {
                if agg_op(word).is_some() && self.peek().tok == Tok::LParen {
                    return Err(self.err(
                        t.offset,
                        "nested aggregations are not supported".to_string(),
                        Some(
                            "aggregate the metric directly, e.g. `sum by (label) (metric_name)`"
                                .to_string(),
                        ),
                    ));
                }
                Ok(Name {
                    text: word.to_string(),
                    offset: t.offset,
                })
            }
            _ => Err(self.err(
                t.offset,
                format!("expected a metric name, found {}", t.describe()),
                Some(usage.to_string()),
            )),
        }
    }

    fn grouping(&mut self) -> Result<GroupingClause, ExprError> {
        let kw = self.next();
        let (kind, word) = match kw.tok {
            Tok::Ident(w) => match grouping_kind(w) {
                Some(k) => (k, w),
                None => {
                    return Err(self.err(
                        kw.offset,
                        format!("expected `by` or `without`, found `{w}`"),
                        None,
                    ))
                }
            },
            _ => {
                return Err(self.err(
                    kw.offset,
                    format!("expected `by` or `without`, found {}", kw.describe()),
                    None,
                ))
            }
        };
        self.expect(
            Tok::LParen,
            &format!("`(` after `{word}`"),
            Some(format!("write `{word} (label1, label2)`")),
        )?;
        let mut labels = Vec::new();
        loop {
            let t = self.next();
            match t.tok {
                Tok::RParen => break,
                Tok::Ident(label) => {
                    if label.contains(':') {
                        return Err(self.err(
                            t.offset,
                            format!("`{label}` is not a valid label name (`:` is not allowed in label names)"),
                            None,
                        ));
                    }
                    labels.push(Name {
                        text: label.to_string(),
                        offset: t.offset,
                    });
                    let sep = self.next();
                    match sep.tok {
                        Tok::Comma => {}
                        Tok::RParen => break,
                        _ => {
                            return Err(self.err(
                                sep.offset,
                                format!(
                                    "expected `,` or `)` in the label list, found {}",
                                    sep.describe()
                                ),
                                Some(format!("write `{word} (label1, label2)`")),
                            ))
                        }
                    }
                }
                _ => {
                    return Err(self.err(
                        t.offset,
                        format!("expected a label name or `)`, found {}", t.describe()),
                        Some(format!("write `{word} (label1, label2)`")),
                    ))
                }
            }
        }
        Ok(GroupingClause {
            kind,
            labels,
            offset: kw.offset,
        })
    }

    fn quantile(&mut self) -> Result<Expr, ExprError> {
        let usage = "write e.g. `histogram_quantile(0.99, http_request_duration_seconds)`";
        self.expect(
            Tok::LParen,
            "`(` after `histogram_quantile`",
            Some(usage.to_string()),
        )?;
        let t = self.next();
        let q = match t.tok {
            Tok::Number(text) => text
                .parse::<f64>()
                .map_err(|_| self.err(t.offset, format!("`{text}` is not a valid number"), None))?,
            _ => {
                return Err(self.err(
                    t.offset,
                    format!(
                        "expected the quantile (a number between 0 and 1), found {}",
                        t.describe()
                    ),
                    Some(usage.to_string()),
                ))
            }
        };
        self.expect(
            Tok::Comma,
            "`,` after the quantile",
            Some(usage.to_string()),
        )?;
        let first = self.peek();
        let arg = match first.tok {
            Tok::Ident(w) => match agg_op(w) {
                Some(op) if matches!(self.peek_at(1).tok, Tok::LParen | Tok::Ident(_)) => {
                    self.next();
                    QuantileArg::Aggregate(self.aggregation(op, first.offset)?)
                }
                _ => QuantileArg::Metric(self.metric_name(usage)?),
            },
            _ => QuantileArg::Metric(self.metric_name(usage)?),
        };
        self.expect(
            Tok::RParen,
            "`)` to close `histogram_quantile(`",
            Some(usage.to_string()),
        )?;
        Ok(Expr::HistogramQuantile {
            q,
            q_offset: t.offset,
            arg,
        })
    }
}

#[cfg(test)]
mod tests;
