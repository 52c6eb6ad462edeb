//! A file group's watermark with its two guards against wrong clocks.
//!
//! - **Jumps** ([`GroupClock`]). A line stamped more than `max_jump` ahead of the
//!   latest time its group has confirmed is a *suspect*: it counts in its own window
//!   (it is not lost), but it moves the watermark only when the next line confirms
//!   the jump, by not being more than `max_jump` behind it. A host that resumes after
//!   a quiet hour confirms its jump with its next line; a lone line stamped hours
//!   ahead in historical data does not, and is counted as an *outlier*, so the rest
//!   of its host is not dropped as late. A group's first line waits for the next
//!   line in the same way (it has nothing to be judged against); if the next line
//!   rejects it, that line sets the group's time. The rule depends on the group's lines
//!   alone, so it gives the same result for any `-w`, in a replay, and after a
//!   restart: the suspect is part of the state a checkpoint keeps ([`ClockState`]).
//!   For any stream in which no suspect is rejected — in particular any whose
//!   disorder is within `max_out_of_orderness`, since `max_jump` is at least that —
//!   it decides exactly what the plain watermark did.
//! - **Stuck clocks** ([`LagWatch`]). Live mode only, and wall-clock based like
//!   `idle_timeout`: a group that has caught up with its files and keeps delivering
//!   lines, but whose latest time has not moved for `max_clock_lag` and is more than
//!   `max_clock_lag` behind this machine's clock (a frozen host clock), would hold
//!   every window of the job open for good: it never goes idle. It is warned about
//!   (rate-limited), listed in the stats, and stops holding windows open: its
//!   watermark follows the wall clock like an idle group's, so its lines count as
//!   late. A group whose time moves, however far behind the wall clock, still
//!   holds its windows: old logs appended to a live file, or lines that arrive
//!   late, close their windows by their own watermark. But it is *trailing*
//!   ([`Lag::Trailing`]): warned about and listed in the stats, since it holds
//!   every window of the job back by that much.

use std::time::{Duration, Instant};

use crate::time::{EventMs, Watermark};

/// The watermark state a checkpoint keeps for a group, taken just before a line:
/// enough to decide every later line exactly as an uninterrupted run would.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClockState {
    /// Largest confirmed event time.
    pub max_seen_ms: Option<EventMs>,
    /// How far idleness or discovery raised the watermark.
    pub floor_ms: Option<EventMs>,
    /// A line that jumped ahead, waiting for the next line to confirm it.
    pub suspect_ms: Option<EventMs>,
}

/// What [`GroupClock::see`] decided about a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Below the watermark: drop the line and count it.
    pub late: bool,
    /// The earlier suspect this line did not confirm (its event time): count it
    /// as an outlier. It already counts in its own window.
    pub outlier: Option<EventMs>,
}

/// A file group's (or replay segment's) watermark: max confirmed event time minus
/// the disorder bound, raised by a floor, with jumps held until confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupClock {
    wm: Watermark,
    max_jump_ms: i64,
    suspect: Option<EventMs>,
}

impl GroupClock {
    pub fn new(disorder_ms: i64, max_jump_ms: i64) -> GroupClock {
        GroupClock {
            wm: Watermark::new(disorder_ms),
            max_jump_ms,
            suspect: None,
        }
    }

    /// A clock in `state` (from a checkpoint).
    pub fn restored(disorder_ms: i64, max_jump_ms: i64, state: ClockState) -> GroupClock {
        let mut c = GroupClock::new(disorder_ms, max_jump_ms);
        if let Some(m) = state.max_seen_ms {
            c.wm.observe(m);
        }
        if let Some(f) = state.floor_ms {
            c.wm.raise_to(f);
        }
        c.suspect = state.suspect_ms;
        c
    }

    pub fn state(&self) -> ClockState {
        ClockState {
            max_seen_ms: self.wm.max_seen(),
            floor_ms: self.wm.floor(),
            suspect_ms: self.suspect,
        }
    }

    /// Current watermark; `None` until the first line or a floor.
    pub fn get(&self) -> Option<EventMs> {
        self.wm.get()
    }

    /// Largest confirmed event time.
    pub fn max_seen(&self) -> Option<EventMs> {
        self.wm.max_seen()
    }

    /// Moves the watermark to at least `t` without a line (idle source, discovery).
    pub fn raise_to(&mut self, t: EventMs) {
        self.wm.raise_to(t);
    }

    /// Takes a line stamped `t` into account: first it settles the pending suspect
    /// (confirmed unless `t` is more than `max_jump` behind it), then it judges `t`
    /// against the watermark, and if `t` is not late, either moves the watermark
    /// or, when `t` jumps more than `max_jump` ahead, holds `t` as the suspect.
    #[inline]
    pub fn see(&mut self, t: EventMs) -> Seen {
        let mut outlier = None;
        let mut first = self.wm.max_seen().is_none();
        if let Some(s) = self.suspect.take() {
            // Differences of event times cannot overflow: they lie within jiff's
            // range (about ±3e17 ms), and `max_jump_ms` is at most i64::MAX.
            if s - t > self.max_jump_ms {
                outlier = Some(s);
            } else {
                self.wm.observe(s);
                first = false;
            }
        }
        if self.wm.is_late(t) {
            return Seen {
                late: true,
                outlier,
            };
        }
        match self.wm.max_seen() {
            Some(max) if t - max > self.max_jump_ms => self.suspect = Some(t),
            // A group's first line has nothing to be judged against: it waits for
            // the next line too. If that one rejects it, that one sets the time.
            None if first && outlier.is_none() => self.suspect = Some(t),
            _ => self.wm.observe(t),
        }
        Seen {
            late: false,
            outlier,
        }
    }
}

/// `3h5s`-style text for a span of `ms` (for messages).
pub(crate) fn format_span(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let d = Duration::from_millis(ms.unsigned_abs());
    format!("{sign}{}", tidemark_jobs::duration::format_duration(d))
}

/// How often a group whose clock still trails is warned about again.
const LAG_WARN_EVERY: Duration = Duration::from_secs(300);

/// What [`LagWatch::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    /// Not stuck (or not delivering lines, or still reading a backlog).
    Fine,
    /// Its latest time is stuck `behind_ms` behind the wall clock: raise its floor
    /// to `floor_ms`. `warn` is set when a warning is due (first time, then every
    /// few minutes).
    Stuck {
        behind_ms: i64,
        floor_ms: EventMs,
        warn: bool,
    },
    /// It keeps writing lines, and their time moves, but it is `behind_ms` (more
    /// than `max_clock_lag`) behind the wall clock: reported, not released (its
    /// windows close by its own time). `warn` as for `Stuck`.
    Trailing { behind_ms: i64, warn: bool },
    /// It was stuck or trailing, and is neither now.
    Recovered,
}

/// Where a [`LagWatch`] stands; each state but `Fine` owns when it was last warned about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum LagState {
    #[default]
    Fine,
    Trailing {
        warned_at: Instant,
    },
    Stuck {
        warned_at: Instant,
    },
}

/// Watches one live group for a clock that stopped while the group keeps writing
/// (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct LagWatch {
    /// Whether the last read reached the end of the group's files.
    at_end: bool,
    /// When a read last delivered lines appended after the group had reached the
    /// end of its files: lines written now, so their times are the host's clock,
    /// not a backlog being read (nor old files read once in live mode).
    live_lines_at: Option<Instant>,
    /// The group's latest time when last checked, and since when it has not moved.
    last_max: Option<EventMs>,
    unmoved_since: Option<Instant>,
    state: LagState,
}

impl LagWatch {
    /// Records a read: whether it delivered lines and reached the end of the files.
    pub fn after_read(&mut self, now: Instant, delivered: bool, at_end: bool) {
        if delivered && self.at_end {
            self.live_lines_at = Some(now);
        }
        self.at_end = at_end;
    }

    /// Reading goes on after a pause: the lines read next were written during
    /// it, not now, so they do not count as live lines until the group has
    /// caught up again, and the unmoved time starts again.
    pub fn after_pause(&mut self) {
        self.at_end = false;
        self.unmoved_since = None;
    }

    /// Whether the group's clock is stuck: it delivered lines written since it
    /// caught up with its files within the last `idle_timeout`, yet its latest time
    /// has not moved for `max_clock_lag` and is more than `max_clock_lag` behind
    /// `wall_ms`. A group that delivers nothing is left to the idle rule; one whose
    /// time moves, however far behind (old logs appended to a live file, a host
    /// whose lines arrive late), still holds windows until its data passes them.
    pub fn check(
        &mut self,
        now: Instant,
        wall_ms: EventMs,
        max_seen: Option<EventMs>,
        idle_timeout_ms: i64,
        max_clock_lag_ms: i64,
    ) -> Lag {
        if max_seen != self.last_max || self.unmoved_since.is_none() {
            self.last_max = max_seen;
            self.unmoved_since = Some(now);
        }
        let elapsed = |at: Instant| now.duration_since(at).as_millis() as i64;
        let producing = self
            .live_lines_at
            .is_some_and(|at| elapsed(at) <= idle_timeout_ms);
        let unmoved = self
            .unmoved_since
            .is_some_and(|at| elapsed(at) >= max_clock_lag_ms);
        let behind_ms = max_seen.map_or(0, |m| wall_ms.saturating_sub(m));
        // Warned on entering a state, then every LAG_WARN_EVERY while in it.
        let due = |at: Instant| now.duration_since(at) >= LAG_WARN_EVERY;
        match self.state {
            _ if producing && unmoved && behind_ms > max_clock_lag_ms => {
                let warned_at = match self.state {
                    LagState::Stuck { warned_at } if !due(warned_at) => warned_at,
                    _ => now,
                };
                self.state = LagState::Stuck { warned_at };
                Lag::Stuck {
                    behind_ms,
                    floor_ms: wall_ms.saturating_sub(idle_timeout_ms),
                    warn: warned_at == now,
                }
            }
            _ if producing && !unmoved && behind_ms > max_clock_lag_ms => {
                let warned_at = match self.state {
                    LagState::Trailing { warned_at } if !due(warned_at) => warned_at,
                    _ => now,
                };
                self.state = LagState::Trailing { warned_at };
                Lag::Trailing {
                    behind_ms,
                    warn: warned_at == now,
                }
            }
            LagState::Stuck { .. } if !unmoved => {
                self.state = LagState::Fine;
                Lag::Recovered
            }
            // A trailing group that caught up, or stopped writing (the idle rule
            // takes over then).
            LagState::Trailing { .. } => {
                self.state = LagState::Fine;
                Lag::Recovered
            }
            // Fine, or stuck but quiet for now (the idle rule takes over if it
            // stays so; its floor is not lowered again either way).
            LagState::Fine | LagState::Stuck { .. } => Lag::Fine,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const J: i64 = 60_000;

    fn run(clock: &mut GroupClock, ts: &[EventMs]) -> Vec<Seen> {
        ts.iter().map(|t| clock.see(*t)).collect()
    }

    #[test]
    fn a_lone_line_far_ahead_is_an_outlier_and_moves_nothing() {
        let mut c = GroupClock::new(5_000, J);
        let h = 3_600_000;
        let seen = run(&mut c, &[1_000, 2_000, 3 * h, 3_000, 4_000]);
        assert!(seen.iter().all(|s| !s.late), "{seen:?}");
        assert_eq!(seen[3].outlier, Some(3 * h));
        assert_eq!(c.max_seen(), Some(4_000));
        assert_eq!(c.get(), Some(-1_000));
    }

    #[test]
    fn a_jump_the_next_line_confirms_moves_the_watermark() {
        let mut c = GroupClock::new(5_000, J);
        let h = 3_600_000;
        // A host quiet for an hour: its next line confirms the jump, and a line
        // older than the disorder bound after it is late, as without the rule.
        let seen = run(&mut c, &[1_000, h, h + 1_000, h - 10_000]);
        assert_eq!(
            seen.iter().map(|s| (s.late, s.outlier)).collect::<Vec<_>>(),
            [(false, None), (false, None), (false, None), (true, None)]
        );
        assert_eq!(c.max_seen(), Some(h + 1_000));
        // Each line of a sparse stream confirms the one before.
        let mut c = GroupClock::new(5_000, J);
        let seen = run(&mut c, &[0, h, 2 * h, 3 * h]);
        assert!(seen.iter().all(|s| !s.late && s.outlier.is_none()));
        assert_eq!(
            (c.max_seen(), c.state().suspect_ms),
            (Some(2 * h), Some(3 * h))
        );
    }

    #[test]
    fn a_first_line_far_ahead_is_an_outlier_too() {
        let mut c = GroupClock::new(5_000, J);
        let seen = run(&mut c, &[50_000_000, 1_000, 2_000]);
        assert!(seen.iter().all(|s| !s.late), "{seen:?}");
        assert_eq!(seen[1].outlier, Some(50_000_000));
        assert_eq!(c.max_seen(), Some(2_000));
        // A first line the next confirms is the group's time, as always.
        let mut c = GroupClock::new(5_000, J);
        assert!(!c.see(10_000).late);
        assert_eq!((c.get(), c.state().suspect_ms), (None, Some(10_000)));
        assert!(!c.see(9_000).late);
        assert_eq!(c.get(), Some(5_000));
    }

    #[test]
    fn a_late_line_rejects_the_suspect_and_is_late_against_the_confirmed_time() {
        let mut c = GroupClock::new(5_000, J);
        let seen = run(&mut c, &[100_000, 10_000_000, 50_000]);
        assert_eq!(seen[2].outlier, Some(10_000_000));
        assert!(seen[2].late);
    }

    fn plain(ts: &[EventMs], disorder: i64) -> Vec<bool> {
        let mut wm = Watermark::new(disorder);
        ts.iter()
            .map(|t| {
                let late = wm.is_late(*t);
                if !late {
                    wm.observe(*t);
                }
                late
            })
            .collect()
    }

    proptest! {
        /// Restoring the state taken before any line and reading on decides every
        /// line as the uninterrupted clock does: the checkpoint state is complete.
        #[test]
        fn state_restored_at_any_line_decides_the_rest_alike(
            steps in prop::collection::vec((-200i64..200, 0u8..10), 0..60),
            floor_at in prop::option::of(0usize..60),
        ) {
            let mut t = 1_000_000i64;
            let ts: Vec<EventMs> = steps.iter().map(|(d, big)| {
                t += if *big == 0 { d * 1_000 } else { d * 10 };
                t
            }).collect();
            let mut whole = GroupClock::new(500, 1_000);
            let mut states = Vec::new();
            let mut want = Vec::new();
            for (i, t) in ts.iter().enumerate() {
                if floor_at == Some(i) {
                    whole.raise_to(*t - 700);
                }
                states.push(whole.state());
                want.push(whole.see(*t));
            }
            for (cut, state) in states.iter().enumerate() {
                let mut c = GroupClock::restored(500, 1_000, *state);
                for (i, t) in ts.iter().enumerate().skip(cut) {
                    if floor_at == Some(i) && i != cut {
                        c.raise_to(*t - 700);
                    }
                    prop_assert_eq!(c.see(*t), want[i], "cut {} line {}", cut, i);
                }
            }
        }

        /// Within the disorder bound no suspect is ever rejected, and lateness is
        /// exactly the plain watermark's.
        #[test]
        fn without_outliers_lateness_is_the_plain_watermarks(
            steps in prop::collection::vec((0i64..120_000, 0i64..=5_000, any::<bool>()), 0..80),
        ) {
            let mut max = 0i64;
            let ts: Vec<EventMs> = steps.iter().map(|(adv, back, jump)| {
                max += adv + if *jump { 3_600_000 } else { 0 };
                max - back
            }).collect();
            let mut c = GroupClock::new(5_000, J);
            let got: Vec<Seen> = run(&mut c, &ts);
            prop_assert!(got.iter().all(|s| s.outlier.is_none()));
            prop_assert_eq!(got.iter().map(|s| s.late).collect::<Vec<_>>(), plain(&ts, 5_000));
        }
    }

    #[test]
    fn a_group_writing_lines_whose_time_stopped_is_released_and_warned_about_rarely() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let (idle, lag) = (30_000, 600_000);
        let wall = 100_000_000;
        let mut w = LagWatch::default();
        // Reading a backlog, up to the end of the files: never stuck.
        w.after_read(t0, true, false);
        w.after_read(t0, true, true);
        assert_eq!(w.check(t0, wall, Some(0), idle, lag), Lag::Fine);
        // Lines appended since, still stamped 0, but not yet for max_clock_lag:
        // trailing (reported), not yet stuck (released).
        w.after_read(at(300), true, true);
        assert_eq!(
            w.check(at(300), wall, Some(0), idle, lag),
            Lag::Trailing {
                behind_ms: wall,
                warn: true
            }
        );
        w.after_read(at(601), true, true);
        assert_eq!(
            w.check(at(601), wall, Some(0), idle, lag),
            Lag::Stuck {
                behind_ms: wall,
                floor_ms: wall - idle,
                warn: true
            }
        );
        w.after_read(at(602), true, true);
        assert!(matches!(
            w.check(at(602), wall + 1_000, Some(0), idle, lag),
            Lag::Stuck { warn: false, .. }
        ));
        // Its time moves again, still far behind: trailing, no longer released.
        assert!(matches!(
            w.check(at(603), wall, Some(5), idle, lag),
            Lag::Trailing { warn: true, .. }
        ));
        // It catches up.
        assert_eq!(
            w.check(at(604), wall, Some(wall - 5), idle, lag),
            Lag::Recovered
        );
        assert_eq!(w.check(at(605), wall, Some(wall - 4), idle, lag), Lag::Fine);
    }

    #[test]
    fn a_group_whose_time_moves_is_never_stuck_however_far_behind() {
        // Old logs appended to a live file: far behind the wall clock, but moving.
        let t0 = Instant::now();
        let mut w = LagWatch::default();
        w.after_read(t0, false, true);
        for s in 0..2_000u64 {
            let now = t0 + Duration::from_secs(s);
            w.after_read(now, true, true);
            let lag = w.check(now, 10_000_000_000, Some(s as i64), 30_000, 600_000);
            assert!(matches!(lag, Lag::Trailing { .. }), "second {s}: {lag:?}");
        }
    }

    #[test]
    fn a_producing_group_hours_behind_is_reported_though_its_time_moves() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let (idle, lag, h) = (30_000, 600_000, 3_600_000);
        let wall = 100 * h;
        let mut w = LagWatch::default();
        // Reading a backlog hours old is not trailing.
        w.after_read(t0, true, false);
        assert_eq!(w.check(t0, wall, Some(wall - 3 * h), idle, lag), Lag::Fine);
        w.after_read(t0, true, true);
        assert_eq!(w.check(t0, wall, Some(wall - 3 * h), idle, lag), Lag::Fine);
        // Lines written since, three hours behind, their time moving.
        w.after_read(at(1), true, true);
        assert_eq!(
            w.check(at(1), wall, Some(wall - 3 * h + 1_000), idle, lag),
            Lag::Trailing {
                behind_ms: 3 * h - 1_000,
                warn: true
            }
        );
        w.after_read(at(2), true, true);
        assert_eq!(
            w.check(at(2), wall + 1_000, Some(wall - 3 * h + 2_000), idle, lag),
            Lag::Trailing {
                behind_ms: 3 * h - 1_000,
                warn: false
            }
        );
        // Warned again after a while, still not released.
        w.after_read(at(400), true, true);
        assert!(matches!(
            w.check(at(400), wall, Some(wall - 3 * h + 3_000), idle, lag),
            Lag::Trailing { warn: true, .. }
        ));
        // It catches up.
        w.after_read(at(401), true, true);
        assert_eq!(
            w.check(at(401), wall, Some(wall - 1_000), idle, lag),
            Lag::Recovered
        );
        assert_eq!(w.check(at(402), wall, Some(wall), idle, lag), Lag::Fine);
    }
}
