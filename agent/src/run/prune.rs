//! Forgetting groups whose files are gone (`group_retention`): a host whose pods
//! churn would otherwise keep, for ever, every group it ever saw — its tailer,
//! sequence and checkpoint entry.
//!
//! A group is gone when nothing of it is left to read or to acknowledge: no file at
//! its live path, no rotated sibling, no file still open (a deleted file is read to
//! its end first), nothing in flight or held, its epoch not broken. Once it has been
//! gone for `group_retention` it is dropped, and its checkpoint entry with it. If
//! its files appear again later it is a new group: a new epoch, numbered from 1 —
//! never the numbers of the epoch forgotten.
//!
//! A checkpoint entry no discovery has found since the agent started (its files
//! went while the agent was stopped, or the globs changed) is dropped after
//! `group_retention` too.

use std::io;
use std::path::Path;
use std::time::Instant;

use tidemark_sources::file::discover::rotated_siblings_listed;
use tidemark_sources::file::EscapedPath;
use tidemark_sources::tail::ReadStatus;

use super::Shipper;
use crate::error::AgentError;
use crate::group::Group;
use crate::stats::Stats;

impl Shipper<'_> {
    /// Notes which groups are gone, and drops those gone for `group_retention`.
    pub(super) fn prune(&mut self, now: Instant) -> Result<(), AgentError> {
        let retention = self.agent.group_retention;
        let mut pruned = Vec::new();
        for slot in self.groups.iter_mut() {
            let Some(g) = slot else { continue };
            if !is_gone(g) {
                g.gone_since = None;
                continue;
            }
            let since = *g.gone_since.get_or_insert(now);
            if now.saturating_duration_since(since) < retention {
                continue;
            }
            tracing::info!(
                "{}: none of its files has existed for {}s (group_retention): forgotten \
                 after line {} of epoch {:016x}; files there later start a new epoch",
                EscapedPath(&g.live),
                now.saturating_duration_since(since).as_secs(),
                g.ship.acked_seq(),
                g.ship.id.epoch,
            );
            pruned.push(g.live.clone());
            // Nothing of it is in flight: no delivery report names this slot.
            *slot = None;
        }
        // Entries of groups not found this run.
        let unseen_for = self
            .first_discovery
            .map(|t| now.saturating_duration_since(t));
        if unseen_for.is_some_and(|d| d >= retention) {
            for live in self.saved.groups.keys() {
                if !self.known.contains(live) {
                    tracing::info!(
                        "{}: in the checkpoint, but none of its files was found for {}s \
                         (group_retention): forgotten; files there later start a new epoch",
                        EscapedPath(live),
                        retention.as_secs(),
                    );
                    pruned.push(live.clone());
                }
            }
        }
        if pruned.is_empty() {
            return Ok(());
        }
        for live in &pruned {
            self.known.remove(live);
            self.saved.groups.remove(live);
        }
        self.count_groups();
        self.checkpoint(true)?;
        Stats::add(&self.stats.groups_pruned, pruned.len() as u64);
        Ok(())
    }
}

/// Whether nothing of `g` is left: see the module docs.
fn is_gone(g: &Group) -> bool {
    g.status == ReadStatus::Idle
        && g.reading()
        && g.in_flight() == 0
        && !g.heartbeat_in_flight
        && g.tailer.current_file().is_none()
        && no_file_at(&g.live)
}

/// No file at `live` and no rotated sibling of it (a folder that cannot be listed
/// is not taken for empty).
fn no_file_at(live: &Path) -> bool {
    match std::fs::symlink_metadata(live) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        _ => return false,
    }
    rotated_siblings_listed(live).is_ok_and(|s| s.is_empty())
}
