//! Which of a worker's groups hold a file open, kept up to date through a read
//! round.
//!
//! A group that needs a descriptor while the worker is at its share of
//! `max_open_files` closes another group's file (`descriptors.rs`). Looking
//! for that group among every group made each such turn cost O(groups): with
//! 2,000 groups and a share of 256, almost every turn needs one, and the
//! search walked 2,000 cold group states per turn. Only a group that holds a
//! file can give one up, so the search walks these, at most the share.

use crate::group::GroupState;

/// The indices of the groups holding a file (in no particular order).
#[derive(Debug, Default)]
pub(super) struct Holders {
    list: Vec<usize>,
    /// Per group: its place in `list`, if it is there.
    at: Vec<Option<usize>>,
}

impl Holders {
    /// Looks at every group once (at the start of a round).
    pub(super) fn rebuild(&mut self, groups: &[GroupState]) {
        self.list.clear();
        self.at.clear();
        self.at.resize(groups.len(), None);
        for (i, g) in groups.iter().enumerate() {
            if g.holds_file() {
                self.at[i] = Some(self.list.len());
                self.list.push(i);
            }
        }
    }

    /// How many groups hold a file.
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    /// The groups holding a file.
    pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.list.iter().copied()
    }

    /// Group `i` held a file (`before`) and holds one now (`now`).
    pub(super) fn update(&mut self, i: usize, before: bool, now: bool) {
        match (before, now) {
            (false, true) => self.add(i),
            (true, false) => self.remove(i),
            _ => {}
        }
    }

    fn add(&mut self, i: usize) {
        if self.at.len() <= i {
            self.at.resize(i + 1, None);
        }
        if self.at[i].is_none() {
            self.at[i] = Some(self.list.len());
            self.list.push(i);
        }
    }

    /// Group `i` closed its file.
    pub(super) fn remove(&mut self, i: usize) {
        let Some(pos) = self.at.get_mut(i).and_then(Option::take) else {
            return;
        };
        self.list.swap_remove(pos);
        if let Some(&moved) = self.list.get(pos) {
            self.at[moved] = Some(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Holders;

    #[test]
    fn adds_and_removes_keep_places_consistent() {
        let mut h = Holders::default();
        for i in [3, 7, 1, 9] {
            h.update(i, false, true);
        }
        h.update(7, true, true);
        h.remove(3);
        h.update(9, true, false);
        h.remove(3);
        let mut got: Vec<usize> = h.iter().collect();
        got.sort_unstable();
        assert_eq!(got, [1, 7]);
        assert_eq!(h.len(), 2);
        h.update(3, false, true);
        h.remove(1);
        let mut got: Vec<usize> = h.iter().collect();
        got.sort_unstable();
        assert_eq!(got, [3, 7]);
    }
}
