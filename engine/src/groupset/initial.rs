//! The file groups a job starts with, and how they are split over the workers:
//! found and assigned once, before the workers start, so that all agree.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use tidemark_jobs::Job;
use tidemark_sources::file::discover::{discover_preferring, rotated_siblings_within};
use tidemark_sources::file::{AllowedRoots, Discovered, FileGroup};

use crate::error::EngineError;
use crate::start::ResumePlan;

/// The groups of [`initial_discovery`] (tests).
#[cfg(test)]
pub fn initial_groups(job: &Job, resume: &ResumePlan) -> Result<Vec<FileGroup>, EngineError> {
    initial_discovery(job, resume).map(|(groups, _)| groups)
}

/// The job's groups at start: what the globs match, plus every group a checkpoint
/// names even if its live file is missing right now (between a rotation's rename
/// and create) — otherwise windows could close without it and all its lines would
/// then be late. Found once, before the workers start, so all agree on the list.
///
/// Files whose real path is outside the job's allowed roots are left out. What
/// the discovery left out comes back with the groups (its own groups taken out):
/// the first worker reports it ([`super::ProcessFiles::keep_start_report`])
/// instead of evaluating the globs once more only for that.
pub fn initial_discovery(
    job: &Job,
    resume: &ResumePlan,
) -> Result<(Vec<FileGroup>, Discovered), EngineError> {
    let roots = AllowedRoots::of_source(&job.source);
    // Of several paths to one file, the one the checkpoint knows resumes.
    let checkpointed: HashSet<PathBuf> = resume.groups.keys().cloned().collect();
    let src = &job.source;
    let mut report = discover_preferring(&src.include, &src.exclude, &roots, &checkpointed)
        .map_err(EngineError::Discover)?;
    let mut found = std::mem::take(&mut report.groups);
    // A checkpointed group whose live file is another path to a group found (an
    // older version read both) is not read twice.
    let found_files: HashSet<(u64, u64)> = found
        .iter()
        .flat_map(|g| g.files_in_order())
        .filter_map(|(p, _)| std::fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    let mut missing: Vec<&PathBuf> = resume
        .groups
        .keys()
        .filter(|live| !found.iter().any(|g| &g.live == *live))
        .filter(|live| {
            std::fs::metadata(live).map_or(true, |m| !found_files.contains(&(m.dev(), m.ino())))
        })
        .collect();
    missing.sort();
    for live in missing {
        found.push(FileGroup {
            rotated: rotated_siblings_within(live, &roots, &mut Vec::new()),
            live: live.clone(),
        });
    }
    Ok((found, report))
}

/// Splits groups over `peers` workers by size: largest first, each to the least
/// loaded worker (ties: lower index); returns the owner of each group. Sizes are
/// read here, so call it once and share the result with every worker.
pub fn balance(groups: &[FileGroup], peers: usize) -> Vec<usize> {
    let size = |g: &FileGroup| -> u64 {
        g.files_in_order()
            .map(|(p, gzip)| {
                let len = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                // Compressed logs expand several times; weigh them as they read.
                if gzip {
                    len.saturating_mul(5)
                } else {
                    len
                }
            })
            .sum()
    };
    let mut order: Vec<(u64, usize)> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (size(g), i))
        .collect();
    order.sort_by(|a, b| b.0.cmp(&a.0).then(groups[a.1].live.cmp(&groups[b.1].live)));
    let mut load = vec![0u64; peers.max(1)];
    let mut owner = vec![0usize; groups.len()];
    for (sz, i) in order {
        let w = (0..load.len()).min_by_key(|&w| (load[w], w)).unwrap_or(0);
        load[w] += sz.max(1);
        owner[i] = w;
    }
    owner
}
