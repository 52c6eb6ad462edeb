//! How much room a new window's series start with.

use super::MetricSeries;
use crate::acc::Acc;

/// How large a metric's series were in a drained window: the next window's
/// maps and histograms start with that much room (and some slack).
#[derive(Clone, Copy, Default)]
pub(super) struct Room {
    pub(super) series: usize,
    pub(super) key_bytes: usize,
    /// Sparse buckets per histogram series, on average (rounded up).
    pub(super) hist_buckets: usize,
    /// Histogram series that were sparse: only as many new ones start with
    /// room for `hist_buckets` (review R17e: a window of many new one-value
    /// series after one of a few wide ones reserved ~1 KiB for each of them).
    pub(super) hists: usize,
}

impl Room {
    /// What `series` held.
    pub(super) fn of(series: &MetricSeries) -> Room {
        let (mut hists, mut buckets) = (0usize, 0usize);
        for acc in series.map.accs() {
            if let Acc::Hist(h) = acc {
                if let Some(b) = h.sparse_buckets() {
                    hists += 1;
                    buckets += b;
                }
            }
        }
        Room {
            series: series.map.len(),
            key_bytes: series.map.key_bytes(),
            hist_buckets: buckets.div_ceil(hists.max(1)),
            hists,
        }
    }

    /// Room for a window like the one measured, give or take: exactly as large,
    /// a window with one series more (a window of a few series often has)
    /// would grow each of its vectors, doubling them.
    pub(super) fn with_slack(self) -> Room {
        let slack = |n: usize| n.saturating_add(n / 4).saturating_add(2);
        let per_key = self.key_bytes.div_ceil(self.series.max(1));
        Room {
            series: slack(self.series),
            key_bytes: self
                .key_bytes
                .saturating_add(self.key_bytes / 4)
                .saturating_add(2 * per_key),
            hist_buckets: self.hist_buckets,
            hists: slack(self.hists),
        }
    }
}
