//! Mergeable per-series state: what a window accumulates for one series.
//!
//! Merging is exact for counts and histograms (hdrhistogram counts add), and sums are
//! folded in a fixed order (file line order, then group number) so floating-point
//! results do not depend on how many workers ran.

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Histogram values are recorded in millionths of the field's unit.
pub const HIST_SCALE: f64 = 1_000_000.0;
/// Two significant digits: every quantile is within 1% of an exact one.
const HIST_SIGFIG: u8 = 2;

/// An exact, mergeable histogram plus the sum of observations.
#[derive(Clone, Debug)]
pub struct Hist {
    pub h: Histogram<u64>,
    pub sum: f64,
}

impl Hist {
    pub fn new() -> Hist {
        Hist {
            // ok: 2 significant digits is a valid configuration.
            h: Histogram::new(HIST_SIGFIG).expect("valid sigfig"),
            sum: 0.0,
        }
    }

    /// Records `v` (in the field's unit). Fails for negative or non-finite values.
    pub fn record(&mut self, v: f64) -> Result<(), &'static str> {
        if !v.is_finite() {
            return Err("not_finite");
        }
        if v < 0.0 {
            return Err("negative_histogram_value");
        }
        let scaled = (v * HIST_SCALE).round();
        if scaled >= u64::MAX as f64 {
            return Err("too_large");
        }
        self.h.record(scaled as u64).map_err(|_| "too_large")?;
        self.sum += v;
        Ok(())
    }

    pub fn merge(&mut self, other: &Hist) {
        // Auto-resizing histograms accept any other histogram's range.
        let _ = self.h.add(&other.h);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.h.len()
    }

    /// The q-quantile in the field's unit; `None` for an empty histogram.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.h.is_empty() {
            return None;
        }
        Some(self.h.value_at_quantile(q) as f64 / HIST_SCALE)
    }
}

impl Default for Hist {
    fn default() -> Self {
        Hist::new()
    }
}

impl Serialize for Hist {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(&self.h, &mut bytes)
            .map_err(serde::ser::Error::custom)?;
        (self.sum, bytes).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (sum, bytes): (f64, Vec<u8>) = Deserialize::deserialize(d)?;
        let mut h: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(serde::de::Error::custom)?;
        h.auto(true);
        Ok(Hist { h, sum })
    }
}

/// One series' state in one window.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Acc {
    Count(u64),
    Sum(f64),
    /// Last value by event time; ties go to the later line.
    Gauge {
        t: i64,
        v: f64,
    },
    Hist(Hist),
}

impl Acc {
    /// Folds `other` (which comes later in the fixed merge order) into `self`.
    pub fn merge(&mut self, other: &Acc) {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::Sum(a), Acc::Sum(b)) => *a += b,
            (Acc::Gauge { t, v }, Acc::Gauge { t: t2, v: v2 }) if *t2 >= *t => {
                *t = *t2;
                *v = *v2;
            }
            (Acc::Hist(a), Acc::Hist(b)) => a.merge(b),
            // Kinds come from the metric definition, so they always agree.
            _ => {}
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
    fn gauge_keeps_latest_event_time_ties_to_later() {
        let mut g = Acc::Gauge { t: 10, v: 1.0 };
        g.merge(&Acc::Gauge { t: 5, v: 2.0 });
        g.merge(&Acc::Gauge { t: 10, v: 3.0 });
        match g {
            Acc::Gauge { v, .. } => assert_eq!(v, 3.0),
            _ => unreachable!(),
        }
    }
}
