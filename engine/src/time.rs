//! Event time, windows and watermarks.
//!
//! Event times are milliseconds since the Unix epoch (UTC). The dataflow's timestamps
//! are window starts in the same unit, so a window closes exactly when the frontier
//! passes its start — that is, when every source's watermark has passed its end.

/// Milliseconds since the Unix epoch.
pub type EventMs = i64;

/// Dataflow timestamp: a window start in ms since the epoch. Event times before the
/// epoch are rejected at parse time, so this never needs to be negative.
pub type WindowTime = u64;

/// This machine's clock in ms since the epoch (0 if it is before 1970).
pub fn wall_clock_ms() -> EventMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as EventMs)
        .unwrap_or(0)
}

/// Start of the window holding `t` for windows of `size_ms`, aligned to the epoch.
pub(crate) fn window_start(t: EventMs, size_ms: i64) -> EventMs {
    t - t.rem_euclid(size_ms)
}

/// The earliest window that can still receive lines under watermark `wm`: the one
/// holding `wm` itself (a line at `wm` is not late). `None` watermark (nothing seen)
/// keeps everything open.
pub(crate) fn first_open_window(wm: Option<EventMs>, size_ms: i64) -> WindowTime {
    match wm {
        None => 0,
        Some(w) if w <= 0 => 0,
        Some(w) => window_start(w, size_ms) as WindowTime,
    }
}

/// An event time (a frontier) for messages; [`EventMs::MIN`], the frontier
/// before any window is written, is "none yet".
pub(crate) fn format_ms(ms: EventMs) -> String {
    if ms == EventMs::MIN {
        return "none yet".to_string();
    }
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// A group's watermark: max event time seen minus the allowed disorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watermark {
    max_seen: Option<EventMs>,
    disorder_ms: i64,
    /// Raised by idleness (wall clock) or end of input; never lowered.
    floor: Option<EventMs>,
}

impl Watermark {
    pub fn new(disorder_ms: i64) -> Watermark {
        Watermark {
            max_seen: None,
            disorder_ms,
            floor: None,
        }
    }

    /// Current watermark; `None` until the first line or an idle advance.
    pub fn get(&self) -> Option<EventMs> {
        let from_data = self.max_seen.map(|m| m.saturating_sub(self.disorder_ms));
        match (from_data, self.floor) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether a line at `t` is late (strictly below the watermark).
    pub fn is_late(&self, t: EventMs) -> bool {
        self.get().is_some_and(|w| t < w)
    }

    /// Max event time seen (what a checkpoint stores to restore this watermark).
    pub fn max_seen(&self) -> Option<EventMs> {
        self.max_seen
    }

    /// How far idleness or discovery raised the watermark (also checkpointed).
    pub fn floor(&self) -> Option<EventMs> {
        self.floor
    }

    pub fn observe(&mut self, t: EventMs) {
        self.max_seen = Some(self.max_seen.map_or(t, |m| m.max(t)));
    }

    /// Moves the watermark to at least `t` without a line (idle source, end of input).
    pub fn raise_to(&mut self, t: EventMs) {
        self.floor = Some(self.floor.map_or(t, |f| f.max(t)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_epoch() {
        assert_eq!(window_start(125_000, 60_000), 120_000);
        assert_eq!(window_start(120_000, 60_000), 120_000);
        assert_eq!(window_start(-1, 60_000), -60_000);
    }

    #[test]
    fn watermark_trails_max_by_disorder_and_floor_only_raises() {
        let mut w = Watermark::new(5_000);
        assert_eq!(w.get(), None);
        assert!(!w.is_late(0));
        w.observe(100_000);
        w.observe(90_000);
        assert_eq!(w.get(), Some(95_000));
        assert!(w.is_late(94_999));
        assert!(!w.is_late(95_000));
        w.raise_to(50_000);
        assert_eq!(w.get(), Some(95_000));
        w.raise_to(200_000);
        assert_eq!(w.get(), Some(200_000));
        assert_eq!(first_open_window(w.get(), 60_000), 180_000);
    }
}
