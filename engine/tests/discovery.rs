//! Discovery in live mode: a file that appears after start is picked up within
//! 1 s. The poll interval is an hour here, so only the directory watcher (inotify)
//! can wake the source in time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{live_options, spawn_run, Collected};
use tidemark_engine::{JobStats, RunOptions};

#[test]
fn a_new_file_is_picked_up_within_one_second() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("a")).unwrap();
    std::fs::write(d.path().join("a/app.log"), "ts=1795168800000 msg=first\n").unwrap();
    let job = tidemark_jobs::from_str(
        r#"
name = "discovery"
[source]
kind = "file"
include = ["*/app.log"]
poll_interval = "1h"
[parse]
format = "logfmt"
timestamp = { field = "ts", format = "epoch_millis" }
[[metric]]
name = "lines"
kind = "counter"
[[rule]]
record = "total"
expr = "sum(lines)"
"#,
        "discovery.toml",
        d.path(),
    )
    .unwrap();
    let stats = Arc::new(Mutex::new(JobStats::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let opts = RunOptions {
        stats: Some(stats.clone()),
        ..live_options(2, stop.clone())
    };
    let runner = spawn_run(job, opts, Box::new(Collected::default()));
    let lines = || stats.lock().unwrap().lines_read;
    let wait_for = |n: u64, limit: Duration| {
        let t = Instant::now();
        while lines() < n && t.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(10));
        }
        t.elapsed()
    };
    wait_for(1, Duration::from_secs(10));
    assert_eq!(lines(), 1, "the first file is read at start");
    // Let the source settle into its (hour-long) poll wait, then add a new host.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::create_dir_all(d.path().join("b")).unwrap();
    std::fs::write(
        d.path().join("b/app.log"),
        "ts=1795168801000 msg=new\nts=1795168802000 msg=new\n",
    )
    .unwrap();
    let took = wait_for(3, Duration::from_secs(10));
    stop.store(true, Ordering::SeqCst);
    runner.join().unwrap().unwrap();
    assert_eq!(lines(), 3, "the new file's lines were read");
    assert!(
        took < Duration::from_secs(1),
        "the new file was picked up after {took:?}, not within 1 s"
    );
}
