//! What flows between the dataflow's stages and what comes out of it.

use serde::{Deserialize, Serialize};

use crate::acc::{Acc, Hist};
use crate::time::EventMs;

/// A group's share of one per-host series in one window (stage 1 → 2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostPartial {
    pub metric: u32,
    pub host: String,
    /// Label values in the metric's label order.
    pub labels: Vec<String>,
    /// The live path of the file group it was read from: partials fold in path
    /// order, whatever worker read them (so e.g. a gauge tie between two files of
    /// one host goes to the file whose path sorts last, in every run).
    pub group: String,
    /// Order within the group's stream: 0 in a live run; a replay's segments of
    /// one group number their partials in stream order, so they fold as the live
    /// run's lines did (a gauge tie goes to the later line).
    pub seq: u32,
    pub acc: Acc,
}

impl HostPartial {
    /// Routes a series to the same worker in every process.
    pub fn route(&self) -> u64 {
        let mut h = Fnv::new();
        h.u64(self.metric as u64);
        h.str(&self.host);
        for l in &self.labels {
            h.str(l);
        }
        h.finish()
    }
}

/// A value a rule aggregates.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RuleValue {
    Num(f64),
    Hist(Hist),
}

/// One host series' contribution to one rule output series (stage 2 → 3).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuleInput {
    pub rule: u32,
    pub out_labels: Vec<(String, String)>,
    /// The host series' identity: inputs fold in this order.
    pub host: String,
    pub labels: Vec<String>,
    pub value: RuleValue,
}

impl RuleInput {
    pub fn route(&self) -> u64 {
        let mut h = Fnv::new();
        h.u64(self.rule as u64);
        for (k, v) in &self.out_labels {
            h.str(k);
            h.str(v);
        }
        h.finish()
    }
}

/// An output value: counts print as integers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Int(u64),
    Float(f64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Origin {
    Rule,
    Host,
}

/// One output record: a series' final value in one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub record: String,
    /// Sorted by label name.
    pub labels: Vec<(String, String)>,
    pub value: Value,
    pub origin: Origin,
}

/// A closed window's records, sorted by (record, labels).
#[derive(Clone, Debug, PartialEq)]
pub struct ClosedWindow {
    pub start_ms: EventMs,
    pub end_ms: EventMs,
    pub series: Vec<Series>,
}

/// A file group's id: a fixed hash of its live path, equal in every process and run.
pub fn path_hash(path: &std::path::Path) -> u64 {
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
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.bytes(s.as_bytes());
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
