//! A job's state folder (`STATE_DIR/JOB_NAME/`) as a run starts: taking its lock,
//! and reading its checkpoint into where each group resumes and how the sinks
//! start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tidemark_jobs::Job;

use crate::checkpoint::{CheckpointError, CheckpointStore, GroupCheckpoint, ResetChoice};
use crate::error::StateLockError;
use crate::resume::Resume;
use crate::start::{OutputStart, ResumePlan, StartAt};
use crate::time::{format_ms, EventMs};

/// Takes the job's state folder for this process: two runs sharing one would
/// overwrite each other's checkpoints and sinks.
pub(crate) fn lock_state(dir: &Path) -> Result<std::fs::File, StateLockError> {
    let path = dir.join("lock");
    let file = std::fs::create_dir_all(dir)
        .and_then(|_| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
        })
        .map_err(|source| StateLockError::Open {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StateLockError::Held {
            job: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            dir: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(StateLockError::Lock { path, source }),
    }
}

/// Loads the job's state (or, for a `--reset-checkpoint`, what its checkpoint
/// names): the store, where groups resume, and how the sinks start.
///
/// A reset does not delete the checkpoint: the checkpoint the run writes as its
/// sinks are open replaces it. Until then it still names the job's outputs, so a
/// run that stops first (a sink refused, say) can be run again with the same
/// choice, and `--reset-checkpoint=beginning` replaces only the files it names.
pub(crate) fn prepare_state(
    dir: &Path,
    job: &Job,
    reset: Option<ResetChoice>,
) -> Result<(Option<CheckpointStore>, ResumePlan, OutputStart), CheckpointError> {
    let store = CheckpointStore::for_job(dir, job)?;
    match reset {
        Some(choice) => {
            tracing::warn!(
                "checkpoint reset ({choice}): {}",
                match choice {
                    ResetChoice::Beginning => "re-reading every file from its start",
                    ResetChoice::End => "starting at the end of every file",
                }
            );
            let (plan, start) = match choice {
                ResetChoice::Beginning => (
                    ResumePlan {
                        checkpointing: true,
                        ..ResumePlan::default()
                    },
                    OutputStart::Rewrite {
                        named: store.named_outputs(),
                    },
                ),
                ResetChoice::End => (
                    ResumePlan {
                        start_at: StartAt::End,
                        checkpointing: true,
                        ..ResumePlan::default()
                    },
                    OutputStart::Append,
                ),
            };
            Ok((Some(store), plan, start))
        }
        None => match store.load()? {
            None => Ok((
                Some(store),
                ResumePlan {
                    checkpointing: true,
                    ..ResumePlan::default()
                },
                OutputStart::Fresh,
            )),
            Some(cp) => {
                if cp.job != job.name {
                    return Err(CheckpointError::WrongJob {
                        path: store.path().to_path_buf(),
                        found: cp.job,
                        expected: job.name.clone(),
                    });
                }
                if cp.semantics.is_none() {
                    tracing::warn!(
                        "{} was written by an older tidemark and does not record the job's settings (window size, metrics, rules, parsing), so this run cannot check that they are unchanged; if they changed, stop now and re-run with --reset-checkpoint. The current settings are recorded now, as this run starts, and checked on every later restart",
                        store.path().display()
                    );
                }
                let groups = resume_groups(cp.groups);
                tracing::info!("{}", resume_message(store.path(), cp.frontier_ms));
                Ok((
                    Some(store),
                    ResumePlan {
                        groups,
                        skip_below: cp.frontier_ms,
                        start_at: if cp.start_at_end {
                            StartAt::End
                        } else {
                            StartAt::Beginning
                        },
                        checkpointing: true,
                        limited_windows: cp.limited_windows,
                        alerts: cp.alerts,
                        kafka: cp.kafka,
                    },
                    OutputStart::Resume {
                        frontier_ms: cp.frontier_ms,
                        sinks: cp.sinks,
                    },
                ))
            }
        },
    }
}

/// What a run resuming from `checkpoint` says.
fn resume_message(checkpoint: &Path, frontier_ms: EventMs) -> String {
    if frontier_ms == EventMs::MIN {
        format!(
            "resuming from {}: no window written yet",
            checkpoint.display()
        )
    } else {
        format!(
            "resuming from {}: windows before {} are already written",
            checkpoint.display(),
            format_ms(frontier_ms)
        )
    }
}

/// A checkpoint's groups as resume points, by live path.
pub(crate) fn resume_groups(groups: Vec<GroupCheckpoint>) -> HashMap<PathBuf, Resume> {
    groups
        .into_iter()
        .map(|g| {
            (
                g.live,
                Resume {
                    position: g.resume,
                    max_seen_ms: g.max_seen_ms,
                    floor_ms: g.floor_ms,
                    suspect_ms: g.suspect_ms,
                    at_tail: g.at_tail,
                    kept: g.kept,
                },
            )
        })
        .collect()
}

/// A member's resume plan: its own read positions if they are for a frontier at or
/// below process 0's, else (none, lost, or ahead of the sinks) its files from the
/// start. Either way windows below process 0's frontier are not sent again.
pub(crate) fn prepare_member_state(
    dir: &Path,
    job: &Job,
    committed: Option<EventMs>,
) -> Result<(CheckpointStore, ResumePlan), CheckpointError> {
    let mut store = CheckpointStore::for_job(dir, job)?;
    let from_start = ResumePlan {
        skip_below: committed.unwrap_or(EventMs::MIN),
        start_at: StartAt::Beginning,
        checkpointing: true,
        ..ResumePlan::default()
    };
    let loaded = match store.load() {
        Ok(cp) => cp,
        Err(e) => {
            tracing::warn!(
                "job {:?}: {e} This member re-reads its files from the start instead; windows already written are not written again",
                job.name
            );
            store.reset()?;
            None
        }
    };
    let plan = match (loaded, committed) {
        (Some(cp), Some(f0)) if cp.frontier_ms <= f0 => {
            tracing::info!(
                "job {:?}: resuming this member's {} from windows before {}",
                job.name,
                if cp.kafka.is_some() {
                    "kafka partitions"
                } else {
                    "files"
                },
                format_ms(cp.frontier_ms)
            );
            // A kafka job's streams resume as file groups do: at their first record
            // of a window at or above the member's frontier (at or below process
            // 0's), records of windows process 0 has written counting for the
            // watermark only.
            ResumePlan {
                groups: resume_groups(cp.groups),
                kafka: cp.kafka,
                ..from_start
            }
        }
        (Some(cp), committed) => {
            tracing::warn!(
                "job {:?}: this member's read positions (windows before {}) are ahead of what process 0 has written ({}); re-reading its files from the start",
                job.name,
                format_ms(cp.frontier_ms),
                committed.map_or("nothing".into(), format_ms)
            );
            store.reset()?;
            from_start
        }
        (None, _) => from_start,
    };
    Ok((store, plan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::test_jobs::nowhere_nginx as job;

    #[test]
    fn the_frontier_before_any_window_is_shown_as_none_yet() {
        // Not "windows before -9223372036854775808 are already written".
        assert_eq!(format_ms(EventMs::MIN), "none yet");
        assert_eq!(format_ms(60_000), "1970-01-01T00:01:00Z");
        let m = resume_message(std::path::Path::new("/s/checkpoint"), EventMs::MIN);
        assert_eq!(m, "resuming from /s/checkpoint: no window written yet");
    }

    /// Saves a member checkpoint for `frontier_ms` with one group.
    fn saved(dir: &Path, frontier_ms: EventMs) {
        let mut store = CheckpointStore::open(dir, "j").unwrap();
        store
            .save(&Checkpoint {
                job: "j".into(),
                frontier_ms,
                sinks: Vec::new(),
                groups: vec![GroupCheckpoint {
                    live: "/nowhere/a.log".into(),
                    resume: None,
                    max_seen_ms: Some(frontier_ms + 5),
                    floor_ms: None,
                    suspect_ms: None,
                    at_tail: false,
                    kept: Vec::new(),
                }],
                written_unix_ms: 0,
                semantics: None,
                start_at_end: false,
                limited_windows: 0,
                alerts: None,
                kafka: None,
            })
            .unwrap();
    }

    #[test]
    fn a_member_resumes_from_positions_at_or_below_process_0s_frontier() {
        let d = tempfile::tempdir().unwrap();
        saved(d.path(), 60_000);
        for committed in [60_000, 180_000] {
            let (_, plan) = prepare_member_state(d.path(), &job(), Some(committed)).unwrap();
            assert_eq!(plan.groups.len(), 1);
            // Windows below process 0's frontier are in the sinks: skipped.
            assert_eq!(plan.skip_below, committed);
        }
    }

    /// Item 3 of issue 14's end-to-end slice: a member other than process 0 kept no
    /// kafka positions, so after its restart it read its partitions again from their
    /// first kept record.
    #[test]
    fn a_member_resumes_its_kafka_partitions_from_its_own_positions() {
        use crate::kafka_source::resume::{KafkaCheckpoint, PartitionCheckpoint};
        let d = tempfile::tempdir().unwrap();
        let kafka = KafkaCheckpoint {
            streams: Vec::new(),
            partitions: vec![PartitionCheckpoint {
                partition: 2,
                next_offset: 40,
            }],
        };
        let mut store = CheckpointStore::open(d.path(), "j").unwrap();
        store
            .save(&Checkpoint {
                job: "j".into(),
                frontier_ms: 60_000,
                sinks: Vec::new(),
                groups: Vec::new(),
                written_unix_ms: 0,
                semantics: None,
                start_at_end: false,
                limited_windows: 0,
                alerts: None,
                kafka: Some(kafka.clone()),
            })
            .unwrap();
        let (_, plan) = prepare_member_state(d.path(), &job(), Some(120_000)).unwrap();
        assert_eq!(plan.kafka, Some(kafka));
        assert_eq!(plan.skip_below, 120_000);
        // Positions ahead of the sinks are dropped, kafka's too.
        let (_, plan) = prepare_member_state(d.path(), &job(), Some(0)).unwrap();
        assert_eq!(plan.kafka, None);
    }

    #[test]
    fn a_member_never_resumes_from_positions_ahead_of_the_sinks() {
        // Positions for 3 minutes, sinks only at 2: resuming from them would lose
        // the lines of 10:02–10:03; so this member reads from the start.
        let d = tempfile::tempdir().unwrap();
        saved(d.path(), 180_000);
        let (store, plan) = prepare_member_state(d.path(), &job(), Some(120_000)).unwrap();
        assert!(plan.groups.is_empty());
        assert_eq!(plan.skip_below, 120_000);
        assert_eq!(store.load().unwrap(), None, "the stale positions are gone");
        // Nothing committed by process 0 (its state was lost or is new): same.
        saved(d.path(), 60_000);
        let (_, plan) = prepare_member_state(d.path(), &job(), None).unwrap();
        assert!(plan.groups.is_empty());
        assert_eq!(plan.skip_below, EventMs::MIN);
    }

    #[test]
    fn a_member_with_damaged_positions_reads_from_the_start() {
        let d = tempfile::tempdir().unwrap();
        saved(d.path(), 60_000);
        std::fs::write(d.path().join(crate::checkpoint::CHECKPOINT_FILE), b"junk").unwrap();
        let (_, plan) = prepare_member_state(d.path(), &job(), Some(60_000)).unwrap();
        assert!(plan.groups.is_empty());
        assert_eq!(plan.skip_below, 60_000);
    }
}
