//! The engine's side of the sink interface, through a real run: a sink that fails
//! stops the job with an error that names it and keeps its reason (the sinks
//! before it in the job's list got the window, none after); a checkpoint records
//! the frontier its sinks were synced for, and the commit points they reported.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use common::{job_from, live_options, nginx_line, write_file, Collected};
use tidemark_engine::checkpoint::{CheckpointStore, FileIdentity, SinkCommit};
use tidemark_engine::sink::{BoxError, Sink, Sinks};
use tidemark_engine::{run_job, ClosedWindow, RunOptions};

const T0: i64 = 1_795_168_800;

#[derive(Debug, thiserror::Error)]
#[error("disk full after {0} windows (test)")]
struct Full(usize);

/// Takes `cap` windows, then fails.
struct Failing {
    taken: usize,
    cap: usize,
}

impl Sink for Failing {
    fn describe(&self) -> String {
        "failing test sink".to_string()
    }
    fn write_window(&mut self, _: &ClosedWindow) -> Result<(), BoxError> {
        if self.taken == self.cap {
            return Err(Full(self.cap).into());
        }
        self.taken += 1;
        Ok(())
    }
}

/// Five minutes of nginx lines in `dir`, and a job over them.
fn five_minutes(dir: &std::path::Path) -> tidemark_jobs::Job {
    let lines: Vec<String> = (0..300)
        .map(|i| nginx_line(T0 + i, "GET", 200, 1, 1))
        .collect();
    write_file(&dir.join("h/access.log"), &lines, false);
    job_from(
        r#"
name = "fails"
[source]
kind = "file"
include = ["*/access.log"]
[parse]
format = "nginx"
[[metric]]
name = "reqs"
kind = "counter"
[[rule]]
record = "total"
expr = "sum(reqs)"
[[sink]]
kind = "stdout"
"#,
        dir,
    )
}

/// Counts windows; its commit point is that count, as of its last sync.
#[derive(Clone, Default)]
struct Counting {
    written: Arc<Mutex<u64>>,
    /// (frontier, windows written then) of each sync.
    synced: Arc<Mutex<Vec<(i64, u64)>>>,
    committed: Arc<Mutex<u64>>,
}

impl Sink for Counting {
    fn describe(&self) -> String {
        "counting test sink".to_string()
    }
    fn write_window(&mut self, _: &ClosedWindow) -> Result<(), BoxError> {
        *self.written.lock().unwrap() += 1;
        Ok(())
    }
    fn sync(&mut self, frontier_ms: i64) -> Result<(), BoxError> {
        let n = *self.written.lock().unwrap();
        self.synced.lock().unwrap().push((frontier_ms, n));
        *self.committed.lock().unwrap() = n;
        Ok(())
    }
    fn commit_point(&self) -> Option<SinkCommit> {
        Some(SinkCommit {
            path: "/counting".into(),
            committed_len: *self.committed.lock().unwrap(),
            file: Some(FileIdentity { dev: 7, ino: 7 }),
            tail: None,
        })
    }
}

#[test]
fn a_checkpoint_records_the_frontier_its_sinks_were_synced_for_and_their_commit_points() {
    let d = tempfile::tempdir().unwrap();
    let job = five_minutes(d.path());
    let sink = Counting::default();
    let state = d.path().join("state");
    let opts = RunOptions {
        until_eof: true,
        state_dir: Some(state.clone()),
        ..live_options(1, Arc::new(AtomicBool::new(false)))
    };
    let out = sink.clone();
    run_job(
        &job,
        opts,
        Box::new(move |_: &_| Ok(Sinks::new(vec![Box::new(out)]))),
    )
    .expect("run");
    let cp = CheckpointStore::open(&state.join("fails"), "fails")
        .unwrap()
        .load()
        .unwrap()
        .expect("a checkpoint");
    let synced = sink.synced.lock().unwrap().clone();
    // The first sync is for the checkpoint written as the run starts, before
    // any window; the last is for the final one, after all five.
    assert_eq!(synced.first().map(|s| s.1), Some(0), "{synced:?}");
    let &(frontier, written) = synced.last().unwrap();
    assert_eq!(written, 5, "{synced:?}");
    assert_eq!(cp.frontier_ms, frontier, "{synced:?}");
    assert_eq!(frontier, (T0 + 300) * 1000, "the end of the last window");
    assert_eq!(cp.sinks.len(), 1);
    assert_eq!(
        cp.sinks[0].committed_len, 5,
        "the commit point after that sync"
    );
}

#[test]
fn a_failing_sink_is_named_in_the_jobs_error_with_its_reason() {
    let d = tempfile::tempdir().unwrap();
    let job = five_minutes(d.path());
    let before = Collected::default();
    let after = Collected::default();
    let sinks = {
        let (before, after) = (before.clone(), after.clone());
        move |_: &_| {
            Ok(Sinks::new(vec![
                Box::new(before),
                Box::new(Failing { taken: 0, cap: 2 }),
                Box::new(after),
            ]))
        }
    };
    let opts = RunOptions {
        until_eof: true,
        ..live_options(1, Arc::new(AtomicBool::new(false)))
    };
    let err = run_job(&job, opts, Box::new(sinks)).expect_err("the sink failed");
    // As the binary prints it (`{:#}`): the error and its causes.
    let text = tidemark_engine::error::full_message(&err);
    assert!(text.starts_with("output failed: "), "{text}");
    assert!(text.contains("the sink failing test sink failed"), "{text}");
    assert!(text.contains("disk full after 2 windows (test)"), "{text}");
    // The third window (10:02) is the one it failed on.
    assert!(text.contains("2026-11-20T10:02:00Z"), "{text}");
    assert_eq!(before.0.lock().unwrap().len(), 3, "the sink before it");
    assert_eq!(after.0.lock().unwrap().len(), 2, "the sink after it");
}

/// Panics at its first window (a bug, not an error it reports).
struct Panicking;

impl Sink for Panicking {
    fn describe(&self) -> String {
        "panicking test sink".to_string()
    }
    fn write_window(&mut self, _: &ClosedWindow) -> Result<(), BoxError> {
        panic!("a bug in a sink (test)");
    }
}

/// Review R17e: with `-w 2`, a worker that panicked left the other parked for
/// ever (the run never returned). It must end the run with an error naming the
/// panic instead. The deadline is generous: a run of five minutes of lines
/// takes well under a second.
#[test]
fn a_worker_that_panics_ends_the_run_with_an_error_instead_of_a_hang() {
    let d = tempfile::tempdir().unwrap();
    let job = five_minutes(d.path());
    let opts = RunOptions {
        until_eof: true,
        ..live_options(2, Arc::new(AtomicBool::new(false)))
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let sinks = |_: &_| Ok(Sinks::new(vec![Box::new(Panicking) as Box<dyn Sink>]));
        let r = run_job(&job, opts, Box::new(sinks));
        let _ = tx.send(
            r.map(|_| ())
                .map_err(|e| tidemark_engine::error::full_message(&e)),
        );
    });
    let r = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the run ended (a worker panicked: the other must not wait for ever)");
    let text = r.expect_err("a worker panicked");
    assert!(text.contains("a bug in a sink (test)"), "{text}");
}
