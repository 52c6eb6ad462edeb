//! Confirming a segment read before the clock it starts from was known.
//!
//! A segment after the first is read from a fresh clock, while the segments
//! before it are still being read. Its lines' event times are recorded (the
//! *head*). Once the true clock state at its start is known, the head is run
//! through two clocks side by side: one from the true state, one fresh. If both
//! decide every line alike (late or not, outlier or not) until they are equal —
//! from then on they decide alike whatever comes — the speculative read counted
//! exactly the lines the sequential read counts, and its clock is the true one.
//! If they differ on a line first, the read is wrong and is done again from the
//! true state. Lines far beyond the disorder bound near a cut are what make it
//! differ; for ordinary input the clocks meet within the first few lines.

use crate::time::EventMs;
use crate::watermark::{ClockState, GroupClock};

/// Event times recorded per speculative segment, at most: 8 MiB. A segment whose
/// clocks have not met by then (the true start is far ahead of its lines, all of
/// which are then late) is read again.
const HEAD_CAP: usize = 1 << 20;

/// The event times of a speculative read's stamped lines, in order.
#[derive(Debug, Default)]
pub(crate) struct Head {
    times: Vec<EventMs>,
    /// Some line's time was not recorded (past [`HEAD_CAP`]).
    overflowed: bool,
}

impl Head {
    #[inline]
    pub(crate) fn push(&mut self, t: EventMs) {
        if self.times.len() < HEAD_CAP {
            self.times.push(t);
        } else {
            self.overflowed = true;
        }
    }
}

/// The clock a segment's read from `start` would have now, if it decides every
/// line of `head` as the fresh clock that became `spec` did; `None` if not (or
/// if that cannot be known: the clocks had not met when the head overflowed).
pub(crate) fn confirm(
    head: &Head,
    start: ClockState,
    spec: &GroupClock,
    disorder_ms: i64,
    max_jump_ms: i64,
) -> Option<GroupClock> {
    let mut truth = GroupClock::restored(disorder_ms, max_jump_ms, start);
    let mut fresh = GroupClock::new(disorder_ms, max_jump_ms);
    for &t in &head.times {
        if truth == fresh {
            return Some(*spec);
        }
        if truth.see(t) != fresh.see(t) {
            return None;
        }
    }
    if truth == fresh {
        Some(*spec)
    } else if head.overflowed {
        None
    } else {
        // Every line was replayed and decided alike: the true clock is `truth`.
        Some(truth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: i64 = 5_000;
    const J: i64 = 3_600_000;

    fn run(
        start: Option<ClockState>,
        times: &[EventMs],
    ) -> (Vec<crate::watermark::Seen>, GroupClock) {
        let mut c = match start {
            Some(s) => GroupClock::restored(D, J, s),
            None => GroupClock::new(D, J),
        };
        let seen = times.iter().map(|&t| c.see(t)).collect();
        (seen, c)
    }

    fn head(times: &[EventMs]) -> Head {
        let mut h = Head::default();
        for &t in times {
            h.push(t);
        }
        h
    }

    #[test]
    fn a_segment_within_the_bound_is_confirmed_with_the_true_clock() {
        let before = [100_000, 101_000, 99_000, 102_000];
        let seg = [101_500, 103_000, 98_000, 104_000];
        let (_, prior) = run(None, &before);
        let (spec_seen, spec) = run(None, &seg);
        let (true_seen, truth) = run(Some(prior.state()), &seg);
        assert_eq!(spec_seen, true_seen);
        assert_eq!(
            confirm(&head(&seg), prior.state(), &spec, D, J),
            Some(truth)
        );
    }

    #[test]
    fn a_line_late_only_against_the_earlier_segments_refuses_the_segment() {
        // 96_000 is within 5 s of the segment's own lines but more than 5 s behind
        // the 102_000 read before the cut: late in the sequential read.
        let before = [100_000, 102_000];
        let seg = [100_000, 96_000, 103_000];
        let (_, prior) = run(None, &before);
        let (spec_seen, spec) = run(None, &seg);
        let (true_seen, _) = run(Some(prior.state()), &seg);
        assert_ne!(spec_seen, true_seen);
        assert_eq!(confirm(&head(&seg), prior.state(), &spec, D, J), None);
    }

    #[test]
    fn a_head_that_overflowed_before_the_clocks_met_is_refused() {
        let mut h = head(&[1_000]);
        h.overflowed = true;
        let start = ClockState {
            max_seen_ms: Some(900_000),
            ..ClockState::default()
        };
        let (_, spec) = run(None, &[1_000]);
        // 1_000 is late against the true clock: refused anyway; and a clock that
        // never met with an unrecorded tail is refused too.
        assert_eq!(confirm(&h, start, &spec, D, J), None);
        let mut h = head(&[1_000]);
        h.overflowed = true;
        let start = ClockState {
            max_seen_ms: Some(0),
            ..ClockState::default()
        };
        assert_eq!(confirm(&h, start, &spec, D, J), None);
    }
}
