//! Discovery in live mode: a file that appears after start is read, long before the
//! job's (hour-long) poll interval. Either the directory watcher (inotify) wakes the
//! source at once or, where inotify does not work, the discovery safety net finds it
//! (`DISCOVERY_INTERVAL`); the test holds on both, and on a loaded machine, because
//! it waits for the lines themselves under a generous deadline rather than timing
//! them. The watcher's own promptness is tested in `tidemark_sources::watch`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::{live_options, spawn_run, Collected};
use tidemark_engine::{JobStats, RunOptions};

#[test]
fn a_new_file_is_picked_up_long_before_the_poll_interval() {
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
    // Generous: only a machine stalled for minutes reaches it, and the poll interval
    // (1 h) is far beyond it, so reaching the lines proves discovery did not wait for
    // the poll.
    let deadline = Duration::from_secs(120);
    let wait_for = |n: u64| {
        let t = Instant::now();
        while lines() < n && t.elapsed() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for(1);
    assert_eq!(lines(), 1, "the first file is read at start");
    // The first file's line was read, so the first discovery is over: the new host
    // below appears after start.
    std::fs::create_dir_all(d.path().join("b")).unwrap();
    std::fs::write(
        d.path().join("b/app.log"),
        "ts=1795168801000 msg=new\nts=1795168802000 msg=new\n",
    )
    .unwrap();
    wait_for(3);
    stop.store(true, Ordering::SeqCst);
    runner.join().unwrap().unwrap();
    assert_eq!(
        lines(),
        3,
        "the new file's lines were not read within {deadline:?} (poll interval 1 h)"
    );
}
