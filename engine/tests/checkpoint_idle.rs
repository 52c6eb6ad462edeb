//! Regression: a checkpoint deferred by `--checkpoint-interval` was only retried
//! when more input arrived, so a job that went idle left its last windows
//! uncommitted and a restart redid them (found by the recovery benchmark).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{job_from, live_options, nginx_line, spawn_run, write_file, Collected};
use tidemark_engine::checkpoint::CheckpointStore;
use tidemark_engine::RunOptions;

const T0: i64 = 1_795_168_800;

#[test]
fn an_idle_job_still_commits_its_last_windows() {
    let d = tempfile::tempdir().unwrap();
    // Ten minutes of data: in live mode nine windows close by watermark.
    let lines: Vec<String> = (0..600)
        .map(|i| nginx_line(T0 + i, "GET", 200, 1, 1))
        .collect();
    write_file(&d.path().join("h/access.log"), &lines, false);
    let job = job_from(
        r#"
name = "idle"
[source]
kind = "file"
include = ["*/access.log"]
poll_interval = "50ms"
[parse]
format = "nginx"
[window]
idle_timeout = "1h"
[[metric]]
name = "reqs"
kind = "counter"
[[rule]]
record = "total"
expr = "sum(reqs)"
[[sink]]
kind = "stdout"
"#,
        d.path(),
    );
    let state = d.path().join("state");
    let stop = Arc::new(AtomicBool::new(false));
    let out = Collected::default();
    let opts = RunOptions {
        state_dir: Some(state.clone()),
        checkpoint_interval: Duration::from_millis(300),
        ..live_options(1, stop.clone())
    };
    // Opened before the run starts: opening a store removes a leftover
    // `checkpoint.tmp`, which on a live folder is the run's save in progress
    // (this test failed now and then when it opened the store after the run).
    let store = CheckpointStore::open(&state.join("idle"), "idle").unwrap();
    let runner = spawn_run(job, opts, Box::new(out.clone()));
    // 10:09 stays open: nothing later.
    let last_closed = (T0 + 9 * 60) * 1000;
    // Generous for a loaded machine: the loop ends as soon as the frontier is seen.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut frontier = i64::MIN;
    while Instant::now() < deadline {
        if let Ok(Some(cp)) = store.load() {
            frontier = cp.frontier_ms;
            if frontier >= last_closed {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let windows = out.0.lock().unwrap().len();
    stop.store(true, Ordering::SeqCst);
    runner.join().unwrap().unwrap();
    assert_eq!(windows, 9, "nine windows closed by watermark");
    assert!(
        frontier >= last_closed,
        "the idle job's checkpoint is stuck at {frontier}, not at the last closed window {last_closed}"
    );
}
