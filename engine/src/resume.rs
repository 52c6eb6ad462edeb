//! Where each file group would resume if the job restarted now.
//!
//! DESIGN.md's recovery model re-derives open windows instead of snapshotting them:
//! a group resumes at the first line that belongs to a window not yet committed to
//! the sinks, with the watermark state it had just before that line. A group keeps,
//! for each window it has open, the position of that window's first line
//! ([`WindowMarks`]); sources publish these to a process-wide [`ResumeBoard`], and
//! whoever writes a checkpoint asks the board for every group's resume point.
//!
//! Any published snapshot gives a valid resume point for a committed frontier `F`:
//! every line before the point belongs to a window below `F` (or was late or
//! malformed), because each line of a window at or above `F` has a mark at or before
//! it. Marks are recorded in stream order, so the first qualifying mark is the
//! earliest position.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tidemark_sources::tail::Position;

use crate::time::EventMs;
use crate::watermark::ClockState;

/// One group's resume point.
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    /// `None`: nothing read yet; start at the beginning of the group.
    pub position: Option<Position>,
    /// The group's max event time seen before `position`.
    pub max_seen_ms: Option<EventMs>,
    /// How far idleness or discovery had raised its watermark by then.
    pub floor_ms: Option<EventMs>,
    /// A line that had jumped ahead and was waiting for confirmation by then.
    pub suspect_ms: Option<EventMs>,
    /// `position` is where reading had got to (no window was open): every line
    /// read after it is new, so one that falls in a window already written is
    /// lost, not re-read — counted as `late_after_written`.
    pub at_tail: bool,
}

impl Resume {
    /// The watermark state to restart from.
    pub fn clock(&self) -> ClockState {
        ClockState {
            max_seen_ms: self.max_seen_ms,
            floor_ms: self.floor_ms,
            suspect_ms: self.suspect_ms,
        }
    }

    fn at(position: Option<Position>, clock: ClockState, at_tail: bool) -> Resume {
        Resume {
            position,
            max_seen_ms: clock.max_seen_ms,
            floor_ms: clock.floor_ms,
            suspect_ms: clock.suspect_ms,
            at_tail,
        }
    }
}

#[derive(Debug, Clone)]
struct Mark {
    window: EventMs,
    position: Position,
    clock: ClockState,
}

/// Per group: the first line of each open window, in stream order.
#[derive(Debug, Clone, Default)]
pub struct WindowMarks {
    marks: Vec<Mark>,
    /// Where reading continues and the watermark state at that point.
    tail: Option<Position>,
    tail_clock: ClockState,
}

impl WindowMarks {
    /// Whether `window` already has a mark (the common case: check before cloning).
    pub fn has(&self, window: EventMs) -> bool {
        // Few windows are open at once; newest last.
        self.marks.iter().rev().any(|m| m.window == window)
    }

    /// Records the first line of `window`: `position` is that line's start, and
    /// `clock` the watermark state just before it.
    pub fn mark(&mut self, window: EventMs, position: &Position, clock: ClockState) {
        if !self.has(window) {
            self.marks.push(Mark {
                window,
                position: position.clone(),
                clock,
            });
        }
    }

    /// Where the next unread line starts, and the watermark state at that point.
    pub fn set_tail(&mut self, tail: Option<Position>, clock: ClockState) {
        self.tail = tail;
        self.tail_clock = clock;
    }

    /// Forgets windows below the committed frontier: they can never be a resume point.
    pub fn prune_below(&mut self, frontier_ms: EventMs) {
        self.marks.retain(|m| m.window >= frontier_ms);
    }

    /// The resume point if every window below `frontier_ms` is committed.
    pub fn resume(&self, frontier_ms: EventMs) -> Resume {
        match self.marks.iter().find(|m| m.window >= frontier_ms) {
            Some(m) => Resume::at(Some(m.position.clone()), m.clock, false),
            None => Resume::at(self.tail.clone(), self.tail_clock, self.tail.is_some()),
        }
    }
}

/// Every group's marks, shared by the workers of one process.
#[derive(Debug, Default)]
pub struct ResumeBoard {
    groups: Mutex<BTreeMap<PathBuf, WindowMarks>>,
    /// Groups that must have published before a checkpoint may be written: one
    /// that left them out would make them start over after a restart.
    expected: Mutex<Vec<PathBuf>>,
    committed_ms: std::sync::atomic::AtomicI64,
}

impl ResumeBoard {
    pub fn new() -> Arc<ResumeBoard> {
        Arc::new(ResumeBoard {
            groups: Mutex::new(BTreeMap::new()),
            expected: Mutex::new(Vec::new()),
            committed_ms: std::sync::atomic::AtomicI64::new(EventMs::MIN),
        })
    }

    /// Names the groups every checkpoint must cover (those present at start).
    pub fn expect(&self, lives: impl IntoIterator<Item = PathBuf>) {
        if let Ok(mut e) = self.expected.lock() {
            e.extend(lives);
        }
    }

    /// Whether every expected group has published at least once.
    pub fn ready(&self) -> bool {
        let (Ok(e), Ok(g)) = (self.expected.lock(), self.groups.lock()) else {
            return false;
        };
        e.iter().all(|live| g.contains_key(live))
    }

    /// Publishes a group's current marks (keyed by its live path).
    pub fn publish(&self, live: &std::path::Path, marks: &WindowMarks) {
        if let Ok(mut g) = self.groups.lock() {
            match g.get_mut(live) {
                Some(m) => m.clone_from(marks),
                None => {
                    g.insert(live.to_path_buf(), marks.clone());
                }
            }
        }
    }

    /// Resume points of every published group for a committed `frontier_ms`.
    pub fn resume_points(&self, frontier_ms: EventMs) -> Vec<(PathBuf, Resume)> {
        self.groups
            .lock()
            .map(|g| {
                g.iter()
                    .map(|(live, m)| (live.clone(), m.resume(frontier_ms)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Records that windows below `frontier_ms` are durable; sources prune their marks.
    pub fn set_committed(&self, frontier_ms: EventMs) {
        self.committed_ms
            .fetch_max(frontier_ms, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn committed(&self) -> EventMs {
        self.committed_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_sources::tail::FileId;

    fn pos(offset: u64) -> Position {
        Position {
            file: FileId {
                dev: 1,
                ino: 2,
                fingerprint: 3,
                fingerprint_len: 4,
            },
            path: PathBuf::from("/l/a.log"),
            offset,
            gzip: false,
        }
    }

    fn clock(max: i64, floor: Option<i64>) -> ClockState {
        ClockState {
            max_seen_ms: Some(max),
            floor_ms: floor,
            suspect_ms: None,
        }
    }

    #[test]
    fn resume_at_first_line_of_the_first_uncommitted_window() {
        let mut m = WindowMarks::default();
        m.mark(0, &pos(0), ClockState::default());
        m.mark(60_000, &pos(100), clock(59_000, None));
        // A disordered line of window 0 after window 60s began: no new mark.
        m.mark(0, &pos(150), clock(61_000, None));
        m.mark(120_000, &pos(300), clock(119_000, Some(100_000)));
        m.set_tail(Some(pos(400)), clock(130_000, Some(110_000)));
        assert_eq!(m.resume(EventMs::MIN).position, Some(pos(0)));
        let r = m.resume(60_000);
        assert_eq!((r.position, r.max_seen_ms), (Some(pos(100)), Some(59_000)));
        let r = m.resume(120_000);
        assert_eq!((r.position, r.floor_ms), (Some(pos(300)), Some(100_000)));
        // Everything read belongs to committed windows: resume at the tail.
        let r = m.resume(180_000);
        assert_eq!(
            (r.position, r.max_seen_ms, r.at_tail),
            (Some(pos(400)), Some(130_000), true)
        );
        assert!(!m.resume(120_000).at_tail);
        m.prune_below(120_000);
        assert_eq!(m.resume(0).position, Some(pos(300)));
    }

    #[test]
    fn a_pending_suspect_is_part_of_every_resume_point() {
        let suspect = ClockState {
            suspect_ms: Some(9_000_000),
            ..clock(59_000, None)
        };
        let mut m = WindowMarks::default();
        m.mark(60_000, &pos(100), suspect);
        m.set_tail(Some(pos(400)), suspect);
        assert_eq!(m.resume(0).clock(), suspect);
        assert_eq!(m.resume(0).suspect_ms, Some(9_000_000));
        assert_eq!(m.resume(120_000).clock(), suspect);
    }
}
