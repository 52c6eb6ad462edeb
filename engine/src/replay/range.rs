//! The time range of a replay (`--from`, `--to`): the whole windows it emits.

use crate::time::{window_start, EventMs};

/// Why `--from`/`--to` hold nothing to replay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// `--from` is a negative time: windows start at multiples of their size
    /// since 1970, and event times before it are not accepted anywhere.
    #[error("--from is before 1970")]
    BeforeEpoch,
    /// `--to` is at or before `--from`.
    #[error("--to must be later than --from")]
    Empty,
    /// The range is not empty, but once `--from` is rounded up and `--to` down
    /// to window boundaries nothing is left: a replay emits only whole windows.
    #[error(
        "[{}, {}) holds no whole window of the job's {window_ms} ms (windows start at multiples of it since 1970-01-01T00:00:00Z); widen the range",
        show(*from_ms),
        show(*to_ms)
    )]
    NoWholeWindow {
        /// `--from`, in ms since the epoch, as given.
        from_ms: EventMs,
        /// `--to`, in ms since the epoch, as given.
        to_ms: EventMs,
        /// The job's window size.
        window_ms: i64,
    },
}

/// An instant as RFC 3339, or its milliseconds if it has none.
fn show(ms: EventMs) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// The whole windows a replay emits: `[from, to)` in ms since the epoch, both on
/// window boundaries and `from < to`, so at least one window. Made only by
/// [`ReplayRange::new`], which keeps that true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayRange {
    from_ms: EventMs,
    to_ms: EventMs,
}

impl ReplayRange {
    /// The windows of `window_ms` wholly inside `[from_ms, to_ms)`: `from_ms`
    /// rounded up and `to_ms` rounded down to window boundaries (a partial window
    /// at either end would print a count of part of a minute as if it were all of
    /// it). Fails when no whole window is left.
    ///
    /// ```
    /// use tidemark_engine::replay::range::{RangeError, ReplayRange};
    ///
    /// let r = ReplayRange::new(30_000, 200_000, 60_000).unwrap();
    /// assert_eq!((r.from_ms(), r.to_ms()), (60_000, 180_000));
    /// assert!(matches!(
    ///     ReplayRange::new(30_000, 100_000, 60_000),
    ///     Err(RangeError::NoWholeWindow { .. })
    /// ));
    /// ```
    pub fn new(
        from_ms: EventMs,
        to_ms: EventMs,
        window_ms: i64,
    ) -> Result<ReplayRange, RangeError> {
        if from_ms < 0 {
            return Err(RangeError::BeforeEpoch);
        }
        if to_ms <= from_ms {
            return Err(RangeError::Empty);
        }
        let from = window_start(from_ms + window_ms - 1, window_ms);
        let to = window_start(to_ms, window_ms);
        if to <= from {
            return Err(RangeError::NoWholeWindow {
                from_ms,
                to_ms,
                window_ms,
            });
        }
        Ok(ReplayRange {
            from_ms: from,
            to_ms: to,
        })
    }

    /// Start of the first window emitted.
    pub fn from_ms(&self) -> EventMs {
        self.from_ms
    }

    /// End of the last window emitted.
    pub fn to_ms(&self) -> EventMs {
        self.to_ms
    }
}
