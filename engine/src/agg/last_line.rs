//! The last line's series in each metric: a one-line [`super::LineCache`] for
//! the windows too small to have one. With thousands of hosts every window of
//! a file group holds a minute of one host, ~18 lines, and most lines repeat the
//! labels of the line before (a `GET` answered `200`): such a line builds one
//! key and compares it, instead of building, hashing and looking up a key per
//! metric.

use super::Slot;
use crate::time::EventMs;

/// The last line's window, key ([`crate::plan::Plan::line_slots`] with the
/// host) and per metric its [`Slot`] in that window. Only a cache: what it does
/// not know is looked up, and it is forgotten whenever a window's series move
/// (a cut) or a window closes, so what a window holds is what a lookup per
/// metric gives.
#[derive(Default)]
pub(super) struct LastLine {
    /// The start of the window its slots are in; `None`: nothing remembered.
    start: Option<EventMs>,
    key: Vec<u8>,
    slots: Vec<Slot>,
}

impl LastLine {
    /// Makes `key` (a line of the window starting at `start`) the last line:
    /// its slots are kept if it is the last line's key in the same window, else
    /// all [`Slot::Unknown`].
    pub(super) fn find(&mut self, start: EventMs, key: &[u8], metrics: usize) {
        if self.start == Some(start) && self.key == key && self.slots.len() == metrics {
            return;
        }
        self.start = Some(start);
        self.key.clear();
        self.key.extend_from_slice(key);
        self.slots.clear();
        self.slots.resize(metrics, Slot::Unknown);
    }

    /// Metric `m`'s slot of the last line.
    pub(super) fn slot(&self, m: usize) -> Slot {
        self.slots.get(m).copied().unwrap_or(Slot::Unknown)
    }

    pub(super) fn set_slot(&mut self, m: usize, slot: Slot) {
        if let Some(s) = self.slots.get_mut(m) {
            *s = slot;
        }
    }

    /// Forgets the last line: its slots may no longer be where its series are.
    pub(super) fn forget(&mut self) {
        self.start = None;
    }
}
