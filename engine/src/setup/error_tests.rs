//! A job that cannot start says why by its error's type: the binary picks the
//! exit code and hint from it (a choice for the user, a held lock, a failure).

use super::*;
use crate::checkpoint::CheckpointError;
use crate::error::StateLockError;
use crate::test_jobs::nowhere_nginx as job;
use std::path::Path;

fn prepare(state: &Path) -> Result<JobSetup, EngineError> {
    JobSetup::prepare(
        &job(),
        SetupOptions {
            follow: false,
            state_dir: Some(state.to_path_buf()),
            reset: None,
            checkpoint_interval: Duration::from_secs(1),
            stats: None,
            stop: Arc::new(AtomicBool::new(false)),
            job_file: None,
            cluster_state: None,
            first_worker: 0,
            workers: 1,
            role: StateRole::Owner { expect: None },
        },
        None,
    )
}

/// A checkpoint of job `name` with no settings recorded, in job "j"'s folder.
fn save(state: &Path, name: &str) {
    let mut store = CheckpointStore::open(&state.join("j"), name).unwrap();
    store
        .save(&Checkpoint {
            job: name.into(),
            frontier_ms: 60_000,
            sinks: Vec::new(),
            groups: Vec::new(),
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
fn a_damaged_checkpoint_keeps_its_type_so_the_cli_can_offer_the_choice() {
    let d = tempfile::tempdir().unwrap();
    save(d.path(), "j");
    std::fs::write(
        d.path().join("j").join(crate::checkpoint::CHECKPOINT_FILE),
        b"junk",
    )
    .unwrap();
    match prepare(d.path()).err().expect("refused") {
        EngineError::Checkpoint(e @ CheckpointError::Damaged { .. }) => {
            assert!(e.needs_reset_choice(), "{e}")
        }
        other => panic!("flattened: {other:?}"),
    }
}

#[test]
fn another_jobs_checkpoint_is_a_wrong_job_error_not_text() {
    let d = tempfile::tempdir().unwrap();
    // Job "other"'s checkpoint where job "j" keeps its own (copied by hand).
    save(d.path(), "other");
    match prepare(d.path()).err().expect("refused") {
        EngineError::Checkpoint(CheckpointError::WrongJob {
            found, expected, ..
        }) => assert_eq!((found.as_str(), expected.as_str()), ("other", "j")),
        other => panic!("flattened: {other:?}"),
    }
}

#[test]
fn a_state_folder_held_by_another_run_is_a_lock_error_not_a_checkpoint_error() {
    let d = tempfile::tempdir().unwrap();
    let first = prepare(d.path()).unwrap();
    match prepare(d.path())
        .err()
        .expect("refused while the first holds it")
    {
        EngineError::StateLock(StateLockError::Held { job, dir }) => {
            assert_eq!(job, "j");
            assert_eq!(dir, d.path().join("j"));
        }
        other => panic!("flattened: {other:?}"),
    }
    drop(first);
    prepare(d.path()).expect("free once the first is gone");
}
