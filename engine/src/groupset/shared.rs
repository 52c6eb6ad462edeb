//! One discovery per process, shared by its workers.
//!
//! Each worker used to evaluate the globs itself: N walks of the same folders,
//! and a second path to a file that appeared between two workers' walks was a
//! group in one and not in the other. Now the first worker due runs the
//! discovery for all of them, under one lock, and decides with the claim table
//! which new paths are groups; each worker then takes the groups it has not
//! seen yet (and keeps those its path hash gives it).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tidemark_sources::file::discover::{rotated_siblings_within, Duplicate};
use tidemark_sources::file::{AllowedRoots, Discovered, FileGroup};

use crate::claims::{Claims, GroupClaim};

/// What a process reads: which group reads each file, and the groups found
/// after start.
#[derive(Debug)]
pub struct ProcessFiles {
    /// Which group reads each file (by identity), so no file is read twice.
    pub claims: Arc<Claims>,
    state: Mutex<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    seeded: bool,
    /// Groups found after start, in the order found.
    groups: Vec<FileGroup>,
    /// Live paths of every group, those at start included.
    known: HashSet<PathBuf>,
    ran_at: Option<Instant>,
    runs: u64,
    /// What the last discovery left out (for the reporting worker).
    report: Arc<Discovered>,
    /// What the discovery of the groups there at start left out (see
    /// [`ProcessFiles::keep_start_report`]).
    start_report: Option<Arc<Discovered>>,
}

/// What [`ProcessFiles::refresh`] gives a worker.
pub struct Fresh {
    /// Groups new to this worker.
    pub groups: Vec<FileGroup>,
    pub report: Arc<Discovered>,
    /// Whether this call evaluated the globs (rather than another worker's run).
    pub ran: bool,
}

impl ProcessFiles {
    /// `fp_bytes`: how many first bytes identify a file (the job's tail option).
    pub fn new(fp_bytes: usize) -> Arc<ProcessFiles> {
        Arc::new(ProcessFiles {
            claims: Claims::new(fp_bytes),
            state: Mutex::new(Shared::default()),
        })
    }

    /// The groups there at start (the same list for every worker): claimed and
    /// known once, by the first worker to start.
    pub fn seed(&self, initial: &[FileGroup], roots: &AllowedRoots) {
        let Ok(mut s) = self.state.lock() else {
            return;
        };
        if std::mem::replace(&mut s.seeded, true) {
            return;
        }
        for g in initial {
            self.claims.claim_group(g, roots);
            s.known.insert(g.live.clone());
        }
    }

    /// Keeps what the discovery of the groups there at start left out, for the
    /// reporting worker's first discovery: it used to evaluate the globs once
    /// more only to report that (a walk of every folder, again, at start).
    pub fn keep_start_report(&self, report: Discovered) {
        if let Ok(mut s) = self.state.lock() {
            s.start_report = Some(Arc::new(report));
        }
    }

    /// What [`ProcessFiles::keep_start_report`] kept, if anything.
    pub fn start_report(&self) -> Option<Arc<Discovered>> {
        self.state.lock().ok().and_then(|s| s.start_report.clone())
    }

    /// How many times the globs were evaluated after start, by all workers.
    #[cfg(test)]
    pub fn runs(&self) -> u64 {
        self.state.lock().map_or(0, |s| s.runs)
    }

    /// The groups found since this worker's `seen`; the globs are evaluated
    /// (with `run`, given the known live paths) unless another worker did so
    /// after `since`, this worker's previous look.
    pub fn refresh<E>(
        &self,
        since: Option<Instant>,
        now: Instant,
        seen: &mut usize,
        roots: &AllowedRoots,
        run: impl FnOnce(&HashSet<PathBuf>) -> Result<Discovered, E>,
    ) -> Result<Fresh, E> {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let fresh = match (s.ran_at, since) {
            (Some(ran), Some(since)) => ran > since,
            _ => false,
        };
        let ran = !fresh;
        if ran {
            let mut d = run(&s.known)?;
            let mut known_lives = None;
            for g in std::mem::take(&mut d.groups) {
                if s.known.contains(&g.live) {
                    continue;
                }
                // The file a known group's live path names now (a link flipped
                // onto it) is that group's next file, even before it opens it.
                let lives = known_lives.get_or_insert_with(|| lives_by_inode(&s.known));
                let verdict = match inode_of(&g.live).and_then(|id| lives.get(&id)) {
                    Some(owner) => GroupClaim::SameAs(owner.clone()),
                    None => self.claims.claim_group(&g, roots),
                };
                // A path to a file another group reads (found by another path,
                // a link flipped since, a `dateext` rename) is not a group: that
                // group reads it, as one of its files.
                let g = match verdict {
                    GroupClaim::Claimed => g,
                    GroupClaim::SameAs(owner) => {
                        d.duplicates.push(Duplicate {
                            path: g.live,
                            same_as: owner.clone(),
                        });
                        if s.known.contains(&owner) {
                            continue;
                        }
                        // Left out of this run for the path refused just now.
                        FileGroup {
                            rotated: rotated_siblings_within(&owner, roots, &mut Vec::new()),
                            live: owner,
                        }
                    }
                };
                s.known.insert(g.live.clone());
                s.groups.push(g);
            }
            // A path this run left out for one the claim table then refused is
            // the group's own name.
            let known = &s.known;
            d.duplicates.retain(|dup| !known.contains(&dup.path));
            s.report = Arc::new(d);
            s.ran_at = Some(now);
            s.runs += 1;
        }
        let groups = s.groups[(*seen).min(s.groups.len())..].to_vec();
        *seen = s.groups.len();
        Ok(Fresh {
            groups,
            report: s.report.clone(),
            ran,
        })
    }
}

fn inode_of(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The known groups by the inode their live path names now: one `stat` each,
/// only when a discovery found something new.
fn lives_by_inode(known: &HashSet<PathBuf>) -> HashMap<(u64, u64), PathBuf> {
    known
        .iter()
        .filter_map(|p| Some((inode_of(p)?, p.clone())))
        .collect()
}
