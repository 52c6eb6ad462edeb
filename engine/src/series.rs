//! What flows between the dataflow's stages and what comes out of it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::acc::{Acc, Hist};
use crate::key::SeriesKey;
use crate::labels::Labels;
use crate::time::EventMs;

/// A group's share of one per-host series in one window (stage 1 → 2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostPartial {
    /// The metric's index in the job's `[[metric]]` list.
    pub metric: u32,
    /// Order within the group's stream: 0 in a live run; a replay's segments of
    /// one group number their partials in stream order, so they fold as the live
    /// run's lines did (a gauge tie goes to the later line).
    pub seq: u32,
    /// Whether the stream it came from had more series of this metric in this
    /// window than the metric's share of `max_series` (so some were not created).
    pub limited: bool,
    /// The host and label values ([`SeriesKey`]).
    pub key: SeriesKey,
    /// The live path of the file group it was read from: partials fold in path
    /// order, whatever worker read them (so e.g. a gauge tie between two files of
    /// one host goes to the file whose path sorts last, in every run).
    pub group: Arc<str>,
    /// The group's lines of this series in this window, folded.
    pub acc: Acc,
}

impl HostPartial {
    /// Routes a series to the same worker in every process: a fixed hash of the
    /// metric and key, so every group's partial of one series meets on one worker.
    pub fn route(&self) -> u64 {
        series_route(self.metric, &self.key)
    }
}

/// One per-host series of a window, merged from every group's partial (stage 2 →
/// the job-wide `max_series` cut on worker 0).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MergedSeries {
    /// The metric's index in the job's `[[metric]]` list.
    pub metric: u32,
    /// Whether some series of this metric in this window were already left out.
    pub limited: bool,
    /// The host and label values ([`SeriesKey`]).
    pub key: SeriesKey,
    /// Every group's partial of the series, folded in group path order.
    pub acc: Acc,
}

fn series_route(metric: u32, key: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.u64(metric as u64);
    h.bytes(key);
    h.finish()
}

/// What a rule aggregates: the contributions of one or more host series to one
/// rule output series, folded in host series order (see
/// [`crate::operators::rule_fold`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RuleValue {
    /// `n` host series' numbers (counts, sums, gauges…), folded as the rule's
    /// aggregation folds them: their sum for `sum`, `avg` and `count` (which
    /// reads only `n`), their least for `min`, their greatest for `max`.
    Num {
        /// How many host series were folded.
        n: u64,
        /// Their numbers, folded.
        folded: f64,
    },
    /// Host series' whole histograms merged, for `histogram_quantile`.
    Hist(Box<Hist>),
}

/// Host series' contributions to one rule output series (stage 2 → 3).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuleInput {
    /// The rule's index in the job's `[[rule]]` list.
    pub rule: u32,
    /// The place of the first host series folded in, in its window's (metric,
    /// host, labels) order: inputs fold in this order.
    pub ord: u32,
    /// The labels of the rule output series it feeds (what the rule's
    /// `by`/`without` grouping keeps of the host series' labels).
    pub out_labels: Labels,
    /// What they contribute, folded.
    pub value: RuleValue,
}

impl RuleInput {
    /// Routes an input to the worker of its rule output series, the same in every
    /// process: a fixed hash of the rule and the output labels.
    pub fn route(&self) -> u64 {
        let mut h = Fnv::new();
        h.u64(self.rule as u64);
        h.bytes(&self.out_labels.as_bytes());
        h.finish()
    }
}

/// An output value: counts print as integers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// A count: exact, printed without a decimal point.
    Int(u64),
    /// Any other value (a sum, gauge, average, quantile…).
    Float(f64),
}

/// Which stage made an output record: sinks choose by it (`series = "rules"` or
/// `"hosts"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Origin {
    /// A `[[rule]]`'s output series, aggregated across hosts.
    Rule,
    /// A metric's per-host series.
    Host,
}

/// One output record: a series' final value in one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Shared by every record of one metric (or histogram part) or rule.
    pub record: Arc<str>,
    /// The series' labels (for a host series, `host` and the metric's labels).
    pub labels: Labels,
    /// Its value in the window.
    pub value: Value,
    /// The stage that made it.
    pub origin: Origin,
}

/// A closed window's records, sorted by (record, labels).
#[derive(Clone, Debug, PartialEq)]
pub struct ClosedWindow {
    /// The window's first millisecond (event time, ms since the Unix epoch).
    pub start_ms: EventMs,
    /// Its end, exclusive: `start_ms` plus the job's window size.
    pub end_ms: EventMs,
    /// Its records.
    pub series: Vec<Series>,
}

/// A file group's id: a fixed hash of its live path, equal in every process and run.
pub(crate) fn path_hash(path: &std::path::Path) -> u64 {
    let mut h = Fnv::new();
    h.bytes(path.as_os_str().as_encoded_bytes());
    h.finish()
}

/// FNV-1a: a fixed hash, so routing agrees across processes and runs.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn finish(&self) -> u64 {
        // Spread the low bits: timely routes by `hash % peers`.
        let mut x = self.0;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::push_key_part;

    fn key(parts: &[&str]) -> Vec<u8> {
        let mut b = Vec::new();
        for p in parts {
            push_key_part(&mut b, p);
        }
        b
    }

    /// A cluster sends every stage's records to other processes with bincode.
    #[test]
    fn records_between_stages_round_trip_through_bincode() {
        let mut hist = Hist::new();
        hist.record(0.25).unwrap();
        let partial = HostPartial {
            metric: 2,
            seq: 7,
            limited: true,
            key: key(&["web", "/p"]).into(),
            group: Arc::from("/logs/a.log"),
            acc: Acc::Hist(Box::new(hist.clone())),
        };
        let back: HostPartial =
            bincode::deserialize(&bincode::serialize(&partial).unwrap()).unwrap();
        assert_eq!((back.metric, back.seq, back.limited), (2, 7, true));
        assert_eq!((&*back.key, &*back.group), (&*partial.key, "/logs/a.log"));
        assert_eq!(back.acc.lines(), 1);
        let input = RuleInput {
            rule: 1,
            ord: 9,
            out_labels: Labels::from_pairs(&[("path", "/p")]),
            value: RuleValue::Hist(Box::new(hist)),
        };
        let back: RuleInput = bincode::deserialize(&bincode::serialize(&input).unwrap()).unwrap();
        assert_eq!((back.ord, back.out_labels), (9, input.out_labels));
        let series = Series {
            record: Arc::from("hits"),
            labels: Labels::from_pairs(&[("host", "web"), ("path", "/p")]),
            value: Value::Int(3),
            origin: Origin::Host,
        };
        let back: Series = bincode::deserialize(&bincode::serialize(&series).unwrap()).unwrap();
        assert_eq!(back, series);
    }
}
