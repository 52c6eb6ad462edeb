//! Keeping the process's claim table up to date with what a group reads: the
//! files it left during a read turn, the file it reads now, and the inodes it
//! holds open (see `crate::claims`).

use std::path::Path;

use tidemark_sources::file::EscapedPath;

use super::GroupSet;

impl GroupSet {
    /// After group `i`'s read turn: claims the files it left in the turn, as it
    /// last read them (a file truncated in place, read again from 0 and renamed
    /// away within the turn: review R17s), then the one it reads now, then
    /// tells which inodes it holds open.
    pub(super) fn claim_reads(&mut self, i: usize) {
        let g = &mut self.groups[i];
        let claims = &self.files.claims;
        for (path, id, born) in g.take_left() {
            if let Some(owner) = claims.claim(&id, &path, g.live(), born, &self.roots) {
                warn_two_paths(&path, &owner);
            }
        }
        if let Some((path, id, born)) = g.reading() {
            if self.reading[i].as_ref() != Some(id) {
                if let Some(owner) = claims.claim(id, path, g.live(), born, &self.roots) {
                    warn_two_paths(path, &owner);
                }
                self.reading[i] = Some(id.clone());
            }
        }
        self.note_held(i);
    }

    /// Tells the claim table which inodes group `i` holds open, if that changed
    /// (see `Claims::hold`): after a read turn and after its file is parked.
    pub(super) fn note_held(&mut self, i: usize) {
        let now = self.groups[i].held_inodes();
        if self.held[i] != now {
            self.held[i] = now;
            self.files.claims.hold(self.groups[i].live(), now);
        }
    }
}

/// A file a group reads is another group's: seen only once it is open; the
/// path that found it first keeps it. Warned once per file.
fn warn_two_paths(path: &Path, owner: &Path) {
    tracing::warn!(
        "{}: also read by the group of {} (one file reached by two paths between two \
         discoveries)",
        EscapedPath(path),
        EscapedPath(owner)
    );
}
