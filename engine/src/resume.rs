//! Where each file group would resume if the job restarted now.
//!
//! The recovery model (docs/design.md, *4. Recovery model and checkpoints*) re-derives
//! open windows instead of snapshotting them: a group resumes at the first line that
//! belongs to a window not yet committed to the sinks, with the watermark state it had
//! just before that line. A group keeps, for each window it has open, the position of
//! that window's first line (`WindowMarks`); sources publish these to a process-wide
//! [`ResumeBoard`], and whoever writes a checkpoint asks the board for every group's
//! resume point.
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
    /// Lines that jumped ahead, kept whole instead of holding `position` back
    /// until their windows close: added to their windows again on a restart.
    pub kept: Vec<KeptLine>,
}

/// A line that jumped more than `max_jump` ahead of its group, kept in the
/// checkpoint: an outlier's window closes only when the group's time gets there
/// (hours later), and a resume point at its position would make a restart re-read
/// everything since. Bounded per group by [`KEEP_MAX_LINES`] and [`KEEP_MAX_BYTES`];
/// past that, such a line holds the resume point back as any other.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeptLine {
    /// Start of its window.
    pub window_ms: EventMs,
    /// The line (read lossily if it was not UTF-8, as the parser reads it).
    pub text: String,
}

/// Lines kept per group at most.
pub const KEEP_MAX_LINES: usize = 32;
/// Bytes of kept lines per group at most.
pub const KEEP_MAX_BYTES: usize = 64 * 1024;

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
            kept: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
struct Mark {
    /// Stream order among marks and kept lines.
    seq: u64,
    window: EventMs,
    position: Position,
    clock: ClockState,
}

/// Per group: the first line of each open window, in stream order.
#[derive(Debug, Clone, Default)]
pub(crate) struct WindowMarks {
    marks: Vec<Mark>,
    /// Where reading continues and the watermark state at that point.
    tail: Option<Position>,
    tail_clock: ClockState,
    /// Lines kept instead of marked (see [`KeptLine`]) with their stream order.
    kept: Vec<(u64, KeptLine)>,
    kept_bytes: usize,
    seq: u64,
}

impl WindowMarks {
    /// Whether `window` already has a mark (the common case: check before cloning).
    pub(crate) fn has(&self, window: EventMs) -> bool {
        // Few windows are open at once; newest last.
        self.marks.iter().rev().any(|m| m.window == window)
    }

    /// Records the first line of `window`: `position` is that line's start, and
    /// `clock` the watermark state just before it.
    pub(crate) fn mark(&mut self, window: EventMs, position: &Position, clock: ClockState) {
        if !self.has(window) {
            self.seq += 1;
            self.marks.push(Mark {
                seq: self.seq,
                window,
                position: position.clone(),
                clock,
            });
        }
    }

    /// Keeps `line`, the first line of `window` and one that jumped ahead, instead
    /// of marking its position; false (mark it then) when the budget is spent.
    pub(crate) fn keep(&mut self, window: EventMs, line: &[u8]) -> bool {
        if self.kept.len() >= KEEP_MAX_LINES || self.kept_bytes + line.len() > KEEP_MAX_BYTES {
            return false;
        }
        self.kept_bytes += line.len();
        self.seq += 1;
        let text = String::from_utf8_lossy(line).into_owned();
        self.kept.push((
            self.seq,
            KeptLine {
                window_ms: window,
                text,
            },
        ));
        true
    }

    /// Where the next unread line starts, and the watermark state at that point.
    pub(crate) fn set_tail(&mut self, tail: Option<Position>, clock: ClockState) {
        self.tail = tail;
        self.tail_clock = clock;
    }

    /// Forgets windows below the committed frontier: they can never be a resume point.
    pub(crate) fn prune_below(&mut self, frontier_ms: EventMs) {
        self.marks.retain(|m| m.window >= frontier_ms);
        if self.kept.iter().any(|k| k.1.window_ms < frontier_ms) {
            self.kept.retain(|k| k.1.window_ms >= frontier_ms);
            self.kept_bytes = self.kept.iter().map(|k| k.1.text.len()).sum();
        }
    }

    /// The resume point if every window below `frontier_ms` is committed.
    pub(crate) fn resume(&self, frontier_ms: EventMs) -> Resume {
        let first = self.marks.iter().find(|m| m.window >= frontier_ms);
        let mut r = match first {
            Some(m) => Resume::at(Some(m.position.clone()), m.clock, false),
            None => Resume::at(self.tail.clone(), self.tail_clock, self.tail.is_some()),
        };
        // Only the lines before the resume point: those after it are read again.
        let before = first.map_or(u64::MAX, |m| m.seq);
        r.kept = (self.kept.iter())
            .filter(|(seq, k)| *seq < before && k.window_ms >= frontier_ms)
            .map(|(_, k)| k.clone())
            .collect();
        r
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
    /// A kafka source's streams (`crate::kafka_source::resume`): they have no
    /// file positions, so they keep their own marks here.
    pub(crate) kafka: crate::kafka_source::resume::KafkaBoard,
}

impl ResumeBoard {
    /// An empty board, shared: every worker's groups publish to it and the
    /// committer reads it.
    pub fn new() -> Arc<ResumeBoard> {
        Arc::new(ResumeBoard {
            groups: Mutex::new(BTreeMap::new()),
            expected: Mutex::new(Vec::new()),
            committed_ms: std::sync::atomic::AtomicI64::new(EventMs::MIN),
            kafka: Default::default(),
        })
    }

    /// Names the groups every checkpoint must cover (those present at start).
    pub(crate) fn expect(&self, lives: impl IntoIterator<Item = PathBuf>) {
        if let Ok(mut e) = self.expected.lock() {
            e.extend(lives);
        }
    }

    /// Whether every expected group has published at least once.
    pub(crate) fn ready(&self) -> bool {
        let (Ok(e), Ok(g)) = (self.expected.lock(), self.groups.lock()) else {
            return false;
        };
        e.iter().all(|live| g.contains_key(live))
    }

    /// Publishes a group's current marks (keyed by its live path).
    pub(crate) fn publish(&self, live: &std::path::Path, marks: &WindowMarks) {
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
    pub(crate) fn resume_points(&self, frontier_ms: EventMs) -> Vec<(PathBuf, Resume)> {
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
    pub(crate) fn set_committed(&self, frontier_ms: EventMs) {
        self.committed_ms
            .fetch_max(frontier_ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// The highest frontier recorded by [`ResumeBoard::set_committed`]
    /// (`EventMs::MIN` before any): groups drop their marks of windows below it.
    pub(crate) fn committed(&self) -> EventMs {
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

    #[test]
    fn kept_lines_move_the_resume_point_on_are_bounded_and_not_kept_twice() {
        // A line three hours ahead starts its window: its window stays open for
        // hours. Marked like any window's first line, it held every resume point
        // at its position until then (a restart re-read everything since).
        let h = 3_600_000;
        let mut m = WindowMarks::default();
        m.mark(0, &pos(0), ClockState::default());
        assert!(m.keep(3 * h, b"ts=10800000 far ahead"));
        m.mark(60_000, &pos(200), clock(59_000, None));
        m.set_tail(Some(pos(300)), clock(61_000, None));
        let r = m.resume(60_000);
        assert_eq!(r.position, Some(pos(200)));
        assert_eq!(r.kept.len(), 1, "the line is in the checkpoint instead");
        assert_eq!(r.kept[0].window_ms, 3 * h);
        // Resuming before it, it is read again: not kept twice.
        let r = m.resume(0);
        assert_eq!((r.position, r.kept.len()), (Some(pos(0)), 0));
        // Committed up to past it: nothing kept.
        m.prune_below(3 * h + 60_000);
        assert!(m.resume(3 * h + 60_000).kept.is_empty());
        // What is kept is bounded: past it, lines are marked as before.
        let mut m = WindowMarks::default();
        let line = vec![b'x'; 1_000];
        let kept = (0..100).filter(|i| m.keep(i * 60_000, &line)).count();
        assert_eq!(kept, KEEP_MAX_LINES);
        let big = vec![b'x'; KEEP_MAX_BYTES / 2 + 1];
        let mut m = WindowMarks::default();
        assert!(m.keep(0, &big));
        assert!(!m.keep(60_000, &big));
    }
}
