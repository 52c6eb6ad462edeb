//! How the tailer treats files it cannot open or read (the policy is in
//! [`crate::tail::unreadable`]): waiting for them, or reporting and skipping them.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::Tailer;
use crate::file::EscapedPath;
use crate::tail::fd_backoff::FdBackoff;
use crate::tail::identity::Cand;
use crate::tail::state::Blocked;
use crate::tail::unreadable::{hint, Unreadable, REPORT_EVERY};

impl Tailer {
    /// A settled scan of the group's files, with the unreadable ones sorted out: a
    /// file already read is dropped; in follow mode the others stay (opening one
    /// blocks the group); otherwise they are reported, skipped and dropped.
    pub(super) fn scan(&mut self) -> Vec<Cand> {
        let mut scan = self.scanner.scan();
        self.untrusted_scan = false;
        if let Some((e, listed_before)) = self.scanner.take_list_error() {
            // The scan used the last listing that worked: nothing seems gone, but a
            // file that appeared since is not seen. Reported like a file. With no
            // listing at all, the siblings are unknown: follow mode waits.
            let dir = match self.live.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            self.open_failed_at(&dir, &e);
            self.untrusted_scan = self.waits_for(&e) && !listed_before;
        }
        if scan.iter().all(|c| c.unreadable.is_none()) {
            return scan;
        }
        let held: Vec<(u64, u64)> = self
            .stream
            .cur()
            .into_iter()
            .chain(self.stream.set_aside_file().map(|(file, _)| file))
            .map(|c| &c.id)
            .map(|id| (id.dev, id.ino))
            .collect();
        let mut skipped = Vec::new();
        scan.retain(|c| {
            let Some(e) = &c.unreadable else {
                return true;
            };
            let (dev, ino) = (c.id.dev, c.id.ino);
            if held.contains(&(dev, ino)) || self.done.has_unopened(c) {
                return false;
            }
            if self.waits_for(e) {
                return true;
            }
            skipped.push((c.path.clone(), c.id.clone(), e.clone()));
            false
        });
        for (path, id, e) in skipped {
            self.skip_unreadable(&path, &e);
            self.done.insert(id, crate::tail::done::WHOLE);
        }
        scan
    }

    /// `path` could not be opened or read: wait for it (follow mode), or report and
    /// list it (the caller skips it).
    pub(super) fn open_failed_at(&mut self, path: &Path, e: &io::Error) {
        if self.waits_for(e) {
            self.block_on(path, e);
        } else {
            self.skip_unreadable(path, e);
        }
    }

    /// Whether the group waits for a file that failed with `e` rather than skip it:
    /// always in follow mode; without follow only while the process is out of file
    /// descriptors, which passes once other groups close theirs.
    pub(super) fn waits_for(&self, e: &io::Error) -> bool {
        self.opts.follow || crate::fds::is_out_of_fds(e)
    }

    /// Follow mode: the group waits for `path`. Reported (and counted) when the
    /// wait starts, then every [`REPORT_EVERY`].
    pub(super) fn block_on(&mut self, path: &Path, e: &io::Error) {
        // One try per read: a second failure in the same read is not a new try.
        let first_this_read = !self.blocked_now;
        self.blocked_now = true;
        let now = self.now;
        if let Some(b) = self.blocked.as_mut() {
            if b.path == path {
                if first_this_read {
                    b.retry = crate::fds::is_out_of_fds(e).then(|| match b.retry {
                        Some(r) => r.next(now),
                        None => FdBackoff::first(now, self.opts.fd_retry),
                    });
                    self.counters.fd_backoffs += u64::from(b.retry.is_some());
                }
                if now.saturating_duration_since(b.reported) >= REPORT_EVERY {
                    b.reported = now;
                    let waited = now.saturating_duration_since(b.since).as_secs();
                    let msg = format!(
                        "{}: still cannot be read after {waited}s ({e}); its group is \
                         waiting for it and holds its windows open. hint: {}",
                        EscapedPath(path),
                        hint(e)
                    );
                    self.push_error(msg);
                }
                return;
            }
        }
        let retry = crate::fds::is_out_of_fds(e).then(|| FdBackoff::first(now, self.opts.fd_retry));
        self.counters.fd_backoffs += u64::from(retry.is_some());
        let backs_off = retry.is_some();
        self.blocked = Some(Blocked {
            path: path.to_path_buf(),
            since: now,
            reported: now,
            retry,
        });
        self.counters.open_errors += 1;
        self.unreadable = vec![Unreadable {
            path: path.to_path_buf(),
            error: e.to_string(),
        }];
        self.unreadable_changes += 1;
        self.push_error(format!(
            "{}: cannot be read ({e}); trying again {}. Its group waits for it: \
             its windows stay open and no line of it is lost or late once it can be read. \
             hint: {}",
            EscapedPath(path),
            if backs_off {
                "after the poll interval, then twice as long each time up to 5 s"
            } else {
                "at every poll"
            },
            hint(e)
        ));
    }

    /// Whether the group waits for a file descriptor and its next try is not due:
    /// then a read does nothing (the wait, its report and the group's windows stay).
    pub(super) fn backing_off(&self, now: Instant) -> bool {
        self.blocked
            .as_ref()
            .and_then(|b| b.retry)
            .is_some_and(|r| !r.due(now))
    }

    /// Ends a wait that no read of this call renewed (the file could be read, or
    /// is gone).
    pub(super) fn end_wait(&mut self) {
        if self.blocked_now {
            return;
        }
        let Some(b) = self.blocked.take() else {
            return;
        };
        self.unreadable.clear();
        self.unreadable_changes += 1;
        let waited = self.now.saturating_duration_since(b.since).as_secs();
        self.push_error(format!(
            "{}: no longer blocks its group (it could not be read for {waited}s)",
            EscapedPath(&b.path)
        ));
    }

    /// Without follow: reports `path` once, counts it and lists it.
    pub(super) fn skip_unreadable(&mut self, path: &Path, e: &io::Error) {
        if self.unreadable.iter().any(|u| u.path == path) {
            return;
        }
        self.counters.open_errors += 1;
        self.counters.discontinuities += 1;
        self.unreadable.push(Unreadable {
            path: path.to_path_buf(),
            error: e.to_string(),
        });
        self.unreadable_changes += 1;
        self.push_error(format!(
            "{}: cannot be read ({e}); its lines are missing from this run, which ends \
             with an error listing it. hint: {}",
            EscapedPath(path),
            hint(e)
        ));
    }

    /// The current (compressed) file's data ends early or is corrupt. What it held
    /// up to its last complete line is delivered; that incomplete line is not (it
    /// would be a fragment). The file counts as read up to that line, so a newer
    /// file starting with the same content (the one it was compressed from, or a
    /// copy) continues from there: no line is lost or doubled. If none does, the
    /// rest is lost: reported, counted, and listed without follow.
    pub(super) fn damaged_gzip(&mut self, e: &io::Error) {
        let Some(cur) = self.close_cur() else {
            return;
        };
        self.counters.damaged_gzip += 1;
        let line_off = self.lb.next_line_off(cur.read_off);
        self.lb.clear();
        self.done.insert(cur.id.clone(), line_off);
        let scan = self.scan();
        let continued = scan.iter().find(|c| {
            !c.is_inode(cur.id.dev, cur.id.ino)
                && c.same_content(&cur.id)
                && self.done.state(c).is_some_and(|from| from == line_off)
        });
        let what = format!(
            "{}: compressed data ends early or is damaged ({e}) after {line_off} bytes of \
             complete lines",
            EscapedPath(&cur.path)
        );
        match continued {
            Some(c) => {
                let msg = format!(
                    "{what}; {}, which starts with the same content, continues from there: \
                     nothing is lost",
                    EscapedPath(&c.path)
                );
                self.push_error(msg);
            }
            None => {
                let lost = io::Error::new(
                    e.kind(),
                    format!(
                        "compressed data ends early after {line_off} bytes ({e}); the rest is lost"
                    ),
                );
                if self.opts.follow {
                    // (Without follow, `skip_unreadable` counts it.)
                    self.counters.discontinuities += 1;
                    self.push_error(format!(
                        "{what}; the rest of it is lost. hint: recover it from a backup and \
                         replay that range"
                    ));
                } else {
                    self.skip_unreadable(&cur.path, &lost);
                }
            }
        }
    }

    /// Files of the group that could not be opened or read: in follow mode the one
    /// the group is waiting for (empty once it can be read); otherwise every file
    /// skipped so far.
    pub fn unreadable(&self) -> &[Unreadable] {
        &self.unreadable
    }

    /// Increases whenever [`Tailer::unreadable`] changes.
    pub fn unreadable_changes(&self) -> u64 {
        self.unreadable_changes
    }
}
