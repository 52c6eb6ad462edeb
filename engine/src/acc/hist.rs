//! An exact, mergeable histogram plus the sum of its observations.
//!
//! A dense hdrhistogram holds a count for every bucket up to its largest value:
//! about 10 to 25 KB for latencies, whether it saw one value or a million. Most
//! series of a window see a few values (30k histogram series cost 733 MiB), so a
//! histogram starts *sparse*: the buckets it has seen, as a sorted vector of
//! (bucket, count), and becomes dense past [`SPARSE_MAX`] buckets. Buckets are
//! hdrhistogram's own (a value is kept as the lowest value of its bucket), and a
//! quantile walks them as hdrhistogram does, so quantiles are bit-for-bit those
//! of the dense histogram (proptest below).

use std::sync::OnceLock;

use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::ExactSum;

/// Histogram values are recorded in millionths of the field's unit.
const HIST_SCALE: f64 = 1_000_000.0;
/// Two significant digits: every quantile is within 1% of an exact one.
const HIST_SIGFIG: u8 = 2;
/// Most buckets a sparse histogram holds (16 bytes each) before it becomes dense.
const SPARSE_MAX: usize = 64;

/// An empty dense histogram: the bucket arithmetic, which depends only on the
/// configuration, for sparse histograms.
fn layout() -> &'static Histogram<u64> {
    static LAYOUT: OnceLock<Histogram<u64>> = OnceLock::new();
    // ok: 2 significant digits is a valid configuration.
    LAYOUT.get_or_init(|| Histogram::new(HIST_SIGFIG).expect("valid sigfig"))
}

#[derive(Clone, Debug)]
enum Counts {
    /// (lowest value of a bucket, count > 0), sorted by bucket, at most [`SPARSE_MAX`].
    Sparse(Vec<(u64, u64)>),
    Dense(Box<Histogram<u64>>),
}

/// An exact, mergeable histogram plus the sum of observations.
#[derive(Clone, Debug)]
pub struct Hist {
    counts: Counts,
    /// Exact sum of every recorded value: the `NAME_sum` record.
    pub sum: ExactSum,
}

impl Hist {
    /// An empty histogram. It starts sparse (a short sorted list of buckets), since most
    /// series of a window see few distinct values, and turns dense only when that list
    /// grows long.
    pub fn new() -> Hist {
        Hist {
            counts: Counts::Sparse(Vec::new()),
            sum: ExactSum::default(),
        }
    }

    /// An empty histogram with room for `buckets` sparse buckets (at most
    /// [`SPARSE_MAX`]): a window's histogram usually sees about as many buckets
    /// as the same series did in the window before, and growing the list from
    /// empty reallocates it two or three times per series and window.
    pub fn with_buckets(buckets: usize) -> Hist {
        Hist {
            counts: Counts::Sparse(Vec::with_capacity(buckets.min(SPARSE_MAX))),
            sum: ExactSum::default(),
        }
    }

    /// Test view: room for sparse buckets (0 once dense).
    #[cfg(test)]
    pub fn sparse_capacity(&self) -> usize {
        match &self.counts {
            Counts::Sparse(buckets) => buckets.capacity(),
            Counts::Dense(_) => 0,
        }
    }

    /// How many buckets it holds while sparse; `None` once dense.
    pub fn sparse_buckets(&self) -> Option<usize> {
        match &self.counts {
            Counts::Sparse(buckets) => Some(buckets.len()),
            Counts::Dense(_) => None,
        }
    }

    /// `v` scaled for the histogram, or why no histogram can take it.
    #[cfg(test)]
    pub(super) fn scaled(v: f64) -> Result<u64, &'static str> {
        Self::accept(v).map(|(scaled, _)| scaled)
    }

    /// `v` scaled for the histogram and as a term of its sum, or why no histogram
    /// can take it: the checks run once per line, before its series is created
    /// (see [`super::Acc::accept`]).
    pub(super) fn accept(v: f64) -> Result<(u64, i128), &'static str> {
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
        let term = ExactSum::term(v)?;
        Ok((scaled as u64, term))
    }

    /// Records `v` (in the field's unit). Fails for negative or non-finite values.
    pub fn record(&mut self, v: f64) -> Result<(), &'static str> {
        let (scaled, term) = Self::accept(v)?;
        self.record_accepted(scaled, term)
    }

    /// Records a value [`Hist::accept`] converted: `scaled` for the counts, `term`
    /// for the sum.
    pub(super) fn record_accepted(&mut self, scaled: u64, term: i128) -> Result<(), &'static str> {
        // Both or neither: the count and the sum must describe the same values.
        let mut sum = self.sum;
        sum.add_term(term)?;
        self.add_n(scaled, 1).map_err(|_| "too_large")?;
        self.sum = sum;
        Ok(())
    }

    /// Adds `n` values equivalent to `value`.
    fn add_n(&mut self, value: u64, n: u64) -> Result<(), hdrhistogram::RecordError> {
        match &mut self.counts {
            Counts::Dense(h) => h.record_n(value, n),
            Counts::Sparse(buckets) => {
                let bucket = layout().lowest_equivalent(value);
                match buckets.binary_search_by_key(&bucket, |&(b, _)| b) {
                    Ok(i) => buckets[i].1 += n,
                    Err(i) => buckets.insert(i, (bucket, n)),
                }
                if buckets.len() > SPARSE_MAX {
                    self.densify()?;
                }
                Ok(())
            }
        }
    }

    /// Turns a sparse histogram dense (a no-op on a dense one).
    fn densify(&mut self) -> Result<(), hdrhistogram::RecordError> {
        if let Counts::Sparse(buckets) = &self.counts {
            let mut h = layout().clone();
            for &(bucket, n) in buckets {
                h.record_n(bucket, n)?;
            }
            self.counts = Counts::Dense(Box::new(h));
        }
        Ok(())
    }

    /// Adds every observation of `other` and its sum. Bucket counts add, so the result does
    /// not depend on the order in which partial histograms meet.
    pub fn merge(&mut self, other: &Hist) {
        // Values too large for any histogram were refused when recorded, and
        // auto-resizing histograms accept any other histogram's range.
        match &other.counts {
            Counts::Sparse(buckets) => {
                for &(bucket, n) in buckets {
                    let _ = self.add_n(bucket, n);
                }
            }
            Counts::Dense(theirs) => {
                let _ = self.densify();
                if let Counts::Dense(mine) = &mut self.counts {
                    let _ = mine.add(&**theirs);
                }
            }
        }
        self.sum.merge(&other.sum);
    }

    /// How many values were recorded: the `NAME_count` record, and the lines this histogram
    /// holds.
    pub fn count(&self) -> u64 {
        match &self.counts {
            Counts::Sparse(buckets) => buckets.iter().map(|&(_, n)| n).sum(),
            Counts::Dense(h) => h.len(),
        }
    }

    /// The q-quantile in the field's unit; `None` for an empty histogram.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let value = match &self.counts {
            Counts::Dense(h) => (!h.is_empty()).then(|| h.value_at_quantile(q))?,
            Counts::Sparse(buckets) => sparse_quantile(buckets, q)?,
        };
        Some(value as f64 / HIST_SCALE)
    }

    /// Whether the counts are dense.
    #[cfg(test)]
    fn is_dense(&self) -> bool {
        matches!(self.counts, Counts::Dense(_))
    }
}

/// `Histogram::value_at_quantile` over the buckets that have counts (the
/// others add nothing to the running total), step for step.
fn sparse_quantile(buckets: &[(u64, u64)], q: f64) -> Option<u64> {
    let total: u64 = buckets.iter().map(|&(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let q = if q > 1.0 { 1.0 } else { q };
    let at = ((q * total as f64).ceil() as u64).max(1);
    let mut running = 0u64;
    for &(bucket, n) in buckets {
        running += n;
        if running >= at {
            return Some(if q == 0.0 {
                bucket
            } else {
                layout().highest_equivalent(bucket)
            });
        }
    }
    Some(0)
}

impl Default for Hist {
    fn default() -> Self {
        Hist::new()
    }
}

/// On the wire between workers and processes (bincode); never in a checkpoint,
/// which holds read positions only.
#[derive(Serialize, Deserialize)]
enum Wire {
    Sparse(Vec<(u64, u64)>),
    /// hdrhistogram's V2 encoding.
    Dense(Vec<u8>),
}

impl Serialize for Hist {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let wire = match &self.counts {
            Counts::Sparse(buckets) => Wire::Sparse(buckets.clone()),
            Counts::Dense(h) => {
                let mut bytes = Vec::new();
                V2Serializer::new()
                    .serialize(&**h, &mut bytes)
                    .map_err(serde::ser::Error::custom)?;
                Wire::Dense(bytes)
            }
        };
        (self.sum, wire).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (sum, wire): (ExactSum, Wire) = Deserialize::deserialize(d)?;
        let counts = match wire {
            Wire::Sparse(buckets) => {
                let sorted = buckets.windows(2).all(|w| w[0].0 < w[1].0);
                if !sorted || buckets.len() > SPARSE_MAX {
                    return Err(serde::de::Error::custom("sparse histogram out of order"));
                }
                Counts::Sparse(buckets)
            }
            Wire::Dense(bytes) => {
                let mut h: Histogram<u64> = Deserializer::new()
                    .deserialize(&mut bytes.as_slice())
                    .map_err(serde::de::Error::custom)?;
                h.auto(true);
                Counts::Dense(Box::new(h))
            }
        };
        Ok(Hist { counts, sum })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The same values in one dense histogram, as before sparse ones existed.
    fn dense(values: &[f64]) -> Histogram<u64> {
        let mut h = layout().clone();
        for &v in values {
            h.record(Hist::scaled(v).unwrap()).unwrap();
        }
        h
    }

    const QS: [f64; 9] = [0.0, 0.001, 0.1, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0];

    proptest! {
        #[test]
        fn sparse_histograms_give_the_dense_histograms_quantiles_bit_for_bit(
            values in prop::collection::vec(
                prop_oneof![0.0..0.01f64, 0.0..10.0f64, 0.0..1e6f64, Just(0.0), Just(1.0)],
                1..300,
            ),
            split in 0usize..300,
        ) {
            let want = dense(&values);
            // Recorded one by one, and as two parts merged (sparse or dense each).
            let mut one = Hist::new();
            for &v in &values {
                one.record(v).unwrap();
            }
            let split = split.min(values.len());
            let (mut a, mut b) = (Hist::new(), Hist::new());
            for &v in &values[..split] {
                a.record(v).unwrap();
            }
            for &v in &values[split..] {
                b.record(v).unwrap();
            }
            a.merge(&b);
            let wire: Hist = bincode::deserialize(&bincode::serialize(&a).unwrap()).unwrap();
            for h in [&one, &a, &wire] {
                prop_assert_eq!(h.count(), want.len());
                for q in QS {
                    let got = h.quantile(q).unwrap();
                    let exact = want.value_at_quantile(q) as f64 / HIST_SCALE;
                    prop_assert_eq!(got.to_bits(), exact.to_bits(), "q = {}", q);
                }
            }
        }
    }

    #[test]
    fn a_histogram_stays_sparse_up_to_its_bucket_limit() {
        let mut h = Hist::new();
        for i in 0..SPARSE_MAX {
            h.record(i as f64).unwrap();
            h.record(i as f64).unwrap();
        }
        assert!(!h.is_dense());
        h.record(1e6).unwrap();
        assert!(h.is_dense());
        assert_eq!(h.count(), 2 * SPARSE_MAX as u64 + 1);
    }
}
