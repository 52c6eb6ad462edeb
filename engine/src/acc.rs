//! Mergeable per-series state: what a window accumulates for one series.
//!
//! Merging is exact: counts and histograms add, and sums are kept as fixed-point
//! integers ([`ExactSum`]), so no result depends on the order in which lines or
//! partial states meet — not on the number of workers, and not on how a replay cuts
//! its input into segments.

use serde::{Deserialize, Serialize};

mod hist;
pub use hist::Hist;
#[cfg(test)]
pub(crate) mod seeded;

/// Billionths: values are summed as whole multiples of 1e-9.
const SUM_SCALE: f64 = 1e9;

/// A sum that does not depend on the order of its terms.
///
/// Floating-point addition is not associative: summing the same values in another
/// order (another worker count, another cut of a replay) can change the last bits,
/// and so the output bytes. Each term is rounded once to a multiple of 1e-9 and
/// added as an integer, which is exact and associative; the total converts to a
/// float once, through its decimal text, so `0.1 + 0.2` prints as `0.3`. Terms need
/// |v| < 1.7e20 and totals stay exact up to about 1.7e29.
///
/// The `i128` is kept as two halves: aligned to 8 bytes rather than 16, it leaves
/// [`Acc`] (one per series and window) at 32 bytes instead of 48.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactSum {
    lo: u64,
    hi: i64,
}

impl ExactSum {
    fn get(&self) -> i128 {
        ((self.hi as i128) << 64) | self.lo as i128
    }

    fn set(&mut self, v: i128) {
        self.lo = v as u64;
        self.hi = (v >> 64) as i64;
    }

    /// `v` as a term, or why no sum can take it.
    pub(crate) fn term(v: f64) -> Result<i128, &'static str> {
        if !v.is_finite() {
            return Err("not_finite");
        }
        let scaled = (v * SUM_SCALE).round();
        if scaled.abs() >= 1.7e29 {
            return Err("too_large");
        }
        Ok(scaled as i128)
    }

    /// Adds `v`, rounded once to a multiple of 1e-9. A value that is not finite, or that
    /// would take the total past what an `i128` of billionths holds, is refused with the
    /// reason (`not_finite`, `too_large`) and leaves the sum unchanged, so the caller can
    /// count the line as refused.
    pub fn add(&mut self, v: f64) -> Result<(), &'static str> {
        self.add_term(Self::term(v)?)
    }

    /// Adds a term [`ExactSum::term`] made.
    pub(crate) fn add_term(&mut self, term: i128) -> Result<(), &'static str> {
        let total = self.get().checked_add(term).ok_or("too_large")?;
        self.set(total);
        Ok(())
    }

    /// Adds `other`'s total. Exact and order-independent like [`ExactSum::add`]; it
    /// saturates rather than wraps, since both totals were already checked term by term.
    pub fn merge(&mut self, other: &ExactSum) {
        self.set(self.get().saturating_add(other.get()));
    }

    /// The total, correctly rounded to the nearest float.
    pub fn value(&self) -> f64 {
        let total = self.get();
        // The usual total (below 2^53 billionths, ~9e6) and 1e9 are both exact
        // floats, and IEEE division rounds their exact quotient once, to nearest
        // even — what reading the decimal text gives, without formatting and
        // parsing it (a sum's every record paid for that).
        if total.unsigned_abs() <= 1 << 53 {
            return total as f64 / SUM_SCALE;
        }
        Self::value_by_text(total)
    }

    /// [`ExactSum::value`] through the decimal text: correct for any total.
    fn value_by_text(total: i128) -> f64 {
        let sign = if total < 0 { "-" } else { "" };
        let abs = total.unsigned_abs();
        let text = format!("{sign}{}.{:09}", abs / 1_000_000_000, abs % 1_000_000_000);
        text.parse().unwrap_or(0.0)
    }
}

/// A line's value as [`Acc::accept`] converted it for its metric's kind: what
/// [`Acc::add_accepted`] adds without converting again (zeros where the kind does
/// not use a part).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// The value as a term of an exact sum (sums and histograms).
    term: i128,
    /// The value scaled for a histogram's counts.
    scaled: u64,
}

/// Below this, an integer `N` of billionths (or millionths) read from a decimal is
/// also what today's float path makes of the same text: `v = digits / 10^frac` is
/// correctly rounded (relative error ≤ 2^-53), so `v × 10^9` is within
/// `N × 2^-53 ≤ 1/8` of `N`, its float within 1/16 more, and `.round()` gives `N`.
const EXACT_BELOW: u64 = 1 << 50;

/// 10^0 ..= 10^9: a decimal's digits to billionths.
const POW10: [u64; 10] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];

impl Accepted {
    /// A decimal read straight to the fixed-point terms `kind` needs, without a
    /// float: bit for bit what [`Acc::accept`] makes of the same text through
    /// `parse_number`. `None` where that is not certain (more fraction digits than
    /// the scale holds, a magnitude near 2^50): the caller takes the float path.
    #[inline]
    pub(crate) fn from_decimal(
        kind: tidemark_jobs::MetricKind,
        d: tidemark_sources::parse::Decimal,
    ) -> Option<Result<Accepted, &'static str>> {
        use tidemark_jobs::MetricKind;
        // Billionths: the sum's scale.
        let term = |d: tidemark_sources::parse::Decimal| -> Option<i128> {
            let n = d
                .digits
                .checked_mul(*POW10.get(9usize.checked_sub(d.frac as usize)?)?)?;
            (n < EXACT_BELOW).then_some(if d.neg { -(n as i128) } else { n as i128 })
        };
        match kind {
            MetricKind::Counter | MetricKind::Gauge => Some(Ok(Accepted::default())),
            MetricKind::Sum => Some(Ok(Accepted {
                term: term(d)?,
                scaled: 0,
            })),
            MetricKind::Histogram => {
                if d.neg && d.digits != 0 {
                    return Some(Err("negative_histogram_value"));
                }
                // Millionths, a histogram's scale: whole when the text has at most
                // 6 fraction digits, then exactly its term / 1000.
                if d.frac > 6 {
                    return None;
                }
                let term = term(d)?;
                Some(Ok(Accepted {
                    term,
                    scaled: (term.unsigned_abs() / 1000) as u64,
                }))
            }
        }
    }
}

/// One series' state in one window. Each variant knows how many lines it holds,
/// so that a series left out under `max_series` counts them.
///
/// 32 bytes: a histogram (about 150 bytes plus its counts) is boxed, so that the
/// many small series of a high-cardinality window do not each pay for one.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Acc {
    /// A counter: how many lines matched.
    Count(u64),
    /// A sum: the exact total of the lines' values.
    Sum {
        /// Total of the values.
        sum: ExactSum,
        /// Lines whose value was added.
        lines: u64,
    },
    /// Last value by event time; ties go to the later line.
    Gauge {
        /// Event time (ms since the epoch) of the line whose value is kept.
        t: i64,
        /// The kept value: that of the line with the latest event time.
        v: f64,
        /// Lines seen; each counts, though only one value is kept.
        lines: u64,
    },
    /// A histogram: bucket counts and the exact sum of the values.
    Hist(Box<Hist>),
}

impl Acc {
    /// Folds `other` (which comes later in the fixed merge order) into `self`.
    pub fn merge(&mut self, other: &Acc) {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::Sum { sum, lines }, Acc::Sum { sum: s2, lines: l2 }) => {
                sum.merge(s2);
                *lines += l2;
            }
            (
                Acc::Gauge { t, v, lines },
                Acc::Gauge {
                    t: t2,
                    v: v2,
                    lines: l2,
                },
            ) => {
                if *t2 >= *t {
                    *t = *t2;
                    *v = *v2;
                }
                *lines += l2;
            }
            (Acc::Hist(a), Acc::Hist(b)) => a.merge(b),
            // Kinds come from the metric definition, so they always agree.
            _ => {}
        }
    }

    /// `v` converted for a series of `kind`, or why any such series would refuse
    /// it whatever it holds: checked before a series is created for it, so a
    /// refused value takes no series slot, and converted once per line.
    pub(crate) fn accept(
        kind: tidemark_jobs::MetricKind,
        v: f64,
    ) -> Result<Accepted, &'static str> {
        use tidemark_jobs::MetricKind;
        match kind {
            MetricKind::Counter | MetricKind::Gauge => Ok(Accepted::default()),
            MetricKind::Sum => Ok(Accepted {
                term: ExactSum::term(v)?,
                scaled: 0,
            }),
            MetricKind::Histogram => {
                let (scaled, term) = Hist::accept(v)?;
                Ok(Accepted { term, scaled })
            }
        }
    }

    /// Adds one line's value, which [`Acc::accept`] accepted for this state's kind
    /// as `accepted` (`v` is the value itself, which a gauge keeps), at event time
    /// `t`. A sum that would overflow refuses the line and says why.
    pub(crate) fn add_accepted(
        &mut self,
        accepted: Accepted,
        v: f64,
        t: i64,
    ) -> Result<(), &'static str> {
        match self {
            Acc::Count(c) => *c += 1,
            Acc::Sum { sum, lines } => {
                sum.add_term(accepted.term)?;
                *lines += 1;
            }
            Acc::Gauge {
                t: gt,
                v: gv,
                lines,
            } => {
                *lines += 1;
                if t >= *gt {
                    *gt = t;
                    *gv = v;
                }
            }
            Acc::Hist(h) => h.record_accepted(accepted.scaled, accepted.term)?,
        }
        Ok(())
    }

    /// The lines this state holds (a line whose value was refused is not held).
    pub fn lines(&self) -> u64 {
        match self {
            Acc::Count(n) | Acc::Sum { lines: n, .. } | Acc::Gauge { lines: n, .. } => *n,
            Acc::Hist(h) => h.count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hist_round_trips_through_serde_and_merges_exactly() {
        let mut a = Hist::new();
        for i in 1..=1000 {
            a.record(i as f64 / 1000.0).unwrap();
        }
        let bytes = bincode::serialize(&a).unwrap();
        let b: Hist = bincode::deserialize(&bytes).unwrap();
        assert_eq!(b.count(), 1000);
        let mut m = a.clone();
        m.merge(&b);
        assert_eq!(m.count(), 2000);
        let p99 = m.quantile(0.99).unwrap();
        assert!((p99 - 0.99).abs() / 0.99 < 0.01, "{p99}");
        assert!(a.record(-1.0).is_err());
        assert!(a.record(f64::NAN).is_err());
    }

    #[test]
    fn exact_sums_do_not_depend_on_order_or_grouping() {
        let values = [0.1, 0.2, 1e-9, 123_456.789, -0.3, 5123.0, 0.042];
        let mut forward = ExactSum::default();
        for v in values {
            forward.add(v).unwrap();
        }
        let mut parts = (ExactSum::default(), ExactSum::default());
        for (i, v) in values.iter().rev().enumerate() {
            let p = if i % 2 == 0 {
                &mut parts.0
            } else {
                &mut parts.1
            };
            p.add(*v).unwrap();
        }
        parts.1.merge(&parts.0);
        assert_eq!(forward, parts.1);
        let mut s = ExactSum::default();
        s.add(0.1).unwrap();
        s.add(0.2).unwrap();
        assert_eq!(s.value(), 0.3, "0.1 + 0.2 is 0.3 here");
        let mut neg = ExactSum::default();
        neg.add(-2.5).unwrap();
        assert_eq!(neg.value(), -2.5);
        assert!(ExactSum::default().add(f64::NAN).is_err());
        assert!(ExactSum::default().add(1e25).is_err());
    }

    #[test]
    fn gauge_keeps_latest_event_time_ties_to_later() {
        let gauge = |t, v| Acc::Gauge { t, v, lines: 1 };
        let mut g = gauge(10, 1.0);
        g.merge(&gauge(5, 2.0));
        g.merge(&gauge(10, 3.0));
        match g {
            Acc::Gauge { v, .. } => assert_eq!(v, 3.0),
            _ => unreachable!(),
        }
        assert_eq!(g.lines(), 3);
    }

    #[test]
    fn a_series_state_is_32_bytes_and_knows_its_lines() {
        assert_eq!(std::mem::size_of::<Acc>(), 32);
        let mut s = Acc::Sum {
            sum: ExactSum::default(),
            lines: 2,
        };
        s.merge(&Acc::Sum {
            sum: ExactSum::default(),
            lines: 3,
        });
        assert_eq!(s.lines(), 5);
        let mut h = Hist::new();
        h.record(1.0).unwrap();
        h.record(2.0).unwrap();
        assert_eq!(Acc::Hist(Box::new(h)).lines(), 2);
        assert_eq!(Acc::Count(7).lines(), 7);
    }

    /// Every text `from_decimal` takes gets bit for bit the terms the float path
    /// (`parse_number`, then `accept`) gives it, and the usual log values do take
    /// the direct path.
    #[test]
    fn decimals_read_directly_give_the_float_paths_terms() {
        use proptest::prelude::*;
        use tidemark_jobs::MetricKind;
        use tidemark_sources::parse::{parse_decimal, parse_number};
        let kinds = [MetricKind::Sum, MetricKind::Histogram, MetricKind::Counter];
        // Digits around every scale and around 2^50 billionths (~1125899.9).
        let text = prop_oneof![
            "[-+]?[0-9]{0,8}(\\.[0-9]{0,11})?",
            "[-+]?1125[0-9]{3}(\\.[0-9]{0,9})?",
            "[-+]?[0-9]{0,15}(\\.[0-9]{0,15})?",
            "-?0\\.0{0,8}[0-9]{0,3}",
        ];
        let direct = std::cell::Cell::new(0u32);
        seeded::runner("decimals_read_directly", 20_000)
            .run(&(text, 0..kinds.len()), |(s, k)| {
                let kind = kinds[k];
                let Some(got) = parse_decimal(&s).and_then(|d| Accepted::from_decimal(kind, d))
                else {
                    return Ok(());
                };
                direct.set(direct.get() + 1);
                let v = parse_number(&s).expect("parse_number reads every plain decimal");
                prop_assert_eq!(got, Acc::accept(kind, v), "{:?} as {:?}", s, kind);
                Ok(())
            })
            .unwrap();
        let direct = direct.get();
        assert!(direct > 10_000, "only {direct} texts took the direct path");
        for (s, kind) in [
            ("0.123", MetricKind::Histogram),
            ("2409", MetricKind::Sum),
            ("-0", MetricKind::Histogram),
            ("-0.5", MetricKind::Histogram),
            ("1125899.90684262", MetricKind::Sum),
        ] {
            let d = parse_decimal(s).unwrap();
            assert_eq!(
                Accepted::from_decimal(kind, d),
                Some(Acc::accept(kind, parse_number(s).unwrap())),
                "{s}"
            );
        }
        // Not certain, so left to the float path.
        for (s, kind) in [
            ("0.0000005", MetricKind::Histogram),
            ("0.0000000005", MetricKind::Sum),
            ("1125899.90684263", MetricKind::Sum),
        ] {
            assert_eq!(
                Accepted::from_decimal(kind, parse_decimal(s).unwrap()),
                None,
                "{s}"
            );
        }
    }

    /// The quotient path gives bit for bit what the decimal text reads as,
    /// around 2^53 billionths (where it stops) and far below it.
    #[test]
    fn sum_values_are_the_decimal_texts_value() {
        use proptest::prelude::*;
        let edge = (1i128 << 53) - 2000..(1i128 << 53) + 2000;
        let total = prop_oneof![
            -(1i128 << 53)..=(1i128 << 53),
            -1_000_000_000_000i128..1_000_000_000_000,
            edge.clone(),
            edge.prop_map(|t| -t),
            any::<i64>().prop_map(i128::from),
        ];
        seeded::runner("sum_values_are_the_decimal_texts_value", 50_000)
            .run(&total, |t| {
                let mut s = ExactSum::default();
                s.set(t);
                let want = ExactSum::value_by_text(t);
                prop_assert_eq!(s.value().to_bits(), want.to_bits(), "total {}", t);
                Ok(())
            })
            .unwrap();
        for t in [0, 1, -1, 5, 999_999_999, 1_000_000_000, 1 << 53, -(1 << 53)] {
            let mut s = ExactSum::default();
            s.set(t);
            assert_eq!(
                s.value().to_bits(),
                ExactSum::value_by_text(t).to_bits(),
                "{t}"
            );
        }
    }

    #[test]
    fn exact_sums_keep_their_full_range_in_two_halves() {
        let mut s = ExactSum::default();
        s.add(-1.5e20).unwrap();
        s.add(-1.5e20).unwrap();
        assert_eq!(s.value(), -3e20);
        let mut t = ExactSum::default();
        t.add(1.5e20).unwrap();
        t.merge(&s);
        assert_eq!(t.value(), -1.5e20);
    }
}

/// Review R13a: edge texts, every kind: the direct decimal path and the float
/// path (`parse_number` then `accept`) agree, refusals included.
#[cfg(test)]
mod review_r13a {
    use super::*;
    use tidemark_jobs::MetricKind;
    use tidemark_sources::parse::{parse_decimal, parse_number};

    #[test]
    fn edge_decimals_take_the_float_paths_terms() {
        let mut texts: Vec<String> = [
            "-0",
            "+0",
            "-0.0",
            "+1",
            "1.",
            ".5",
            "-.5",
            "+.5",
            "0001",
            "1e3",
            "1_000",
            " 1",
            "1 ",
            "-",
            "+",
            ".",
            "",
            "NaN",
            "inf",
            "-inf",
            "0x10",
            "1.2.3",
            "--1",
            "+-1",
            "1-",
            "999999999999999",
            "99999999999999.9",
            "9999999.99999999",
            "0.999999999999999",
            "000000000000001",
            "0000000000000001",
            "1125899.906842",
            "1125899.906843",
            "1125899.906842624",
            "-1125899.906842",
            "-0.000001",
            "-0.0000001",
            "-0.0000000001",
            "0.0000001",
            "0.000000001",
            "0.0000000005",
            "0.0000000015",
            "18446744.073709551",
            "4503599627.370496",
            "9007199254.740993",
            "0.1",
            "0.2",
            "0.3",
            "2.675",
            "1.005",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for d in 1..=15 {
            for f in 0..=d {
                let digits: String = (0..d).map(|i| char::from(b'1' + (i % 9) as u8)).collect();
                let (a, b) = digits.split_at(d - f);
                texts.push(format!("{a}.{b}"));
                texts.push(format!("-{a}.{b}"));
                texts.push("9".repeat(d));
            }
        }
        for s in &texts {
            for kind in [MetricKind::Sum, MetricKind::Histogram, MetricKind::Counter] {
                let Some(direct) = parse_decimal(s).and_then(|d| Accepted::from_decimal(kind, d))
                else {
                    continue;
                };
                let float = match parse_number(s) {
                    Some(v) => Acc::accept(kind, v),
                    None => Err("not_a_number"),
                };
                assert_eq!(direct, float, "{s:?} as {kind:?}");
            }
        }
    }
}
