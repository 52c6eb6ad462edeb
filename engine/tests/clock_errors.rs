//! Wrong clocks on one host (issue 10 §2d): a line stamped hours ahead inside
//! historical data, and a host whose clock froze while it keeps logging.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{flatten, job_from, live_options, nginx_line, run_until_eof, spawn_run, Collected};
use tidemark_engine::time::wall_clock_ms;
use tidemark_engine::RunOptions;

const T0: i64 = 1_795_168_800; // 2026-11-20T10:00:00Z

const JOB: &str = r#"
name = "clocks"
[source]
kind = "file"
include = ["*/access.log"]
host = { path_regex = '/(?P<host>[^/]+)/access\.log$' }
[parse]
format = "nginx"
[window]
size = "1m"
max_out_of_orderness = "5s"
[[metric]]
name = "reqs"
kind = "counter"
[[rule]]
record = "total"
expr = "sum(reqs)"
[[sink]]
kind = "stdout"
"#;

fn total(windows: &[tidemark_engine::ClosedWindow], start_s: i64) -> Option<f64> {
    flatten(windows)
        .get(&(start_s * 1000, "total".to_string(), vec![]))
        .copied()
}

#[test]
fn one_line_stamped_hours_ahead_does_not_make_the_rest_of_its_host_late() {
    // 10 minutes of ordered lines, one a second, and in the middle one line
    // stamped 3 h ahead. It dragged the group's watermark 3 h ahead, so the
    // second half of the file — 300 good lines — was dropped as late.
    let d = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = (0..600)
        .map(|i| nginx_line(T0 + i, "GET", 200, 1, 1))
        .collect();
    let outlier = T0 + 3 * 3600 + 17;
    lines.insert(300, nginx_line(outlier, "GET", 200, 1, 1));
    common::write_file(&d.path().join("web-1/access.log"), &lines, false);
    let job = job_from(JOB, d.path());
    for workers in [1, 2] {
        let (w, stats) = run_until_eof(&job, workers);
        assert_eq!(stats.late_lines, 0, "{stats:?}");
        assert_eq!(stats.outlier_lines, 1, "{stats:?}");
        for minute in 0..10 {
            assert_eq!(total(&w, T0 + minute * 60), Some(60.0), "minute {minute}");
        }
        // The outlier is kept, in the window of its own timestamp.
        assert_eq!(total(&w, outlier - outlier % 60), Some(1.0));
        assert!(
            stats.summary().contains("outlier lines"),
            "{}",
            stats.summary()
        );
    }
}

#[test]
fn a_host_whose_clock_froze_does_not_hold_every_window_open() {
    // A host keeps logging one frozen timestamp. It was never idle, so its
    // watermark never moved and no window of the job ever closed, silently.
    let d = tempfile::tempdir().unwrap();
    let start = wall_clock_ms();
    let frozen = start - 60_000;
    for host in ["busy", "frozen"] {
        std::fs::create_dir_all(d.path().join(host)).unwrap();
    }
    let busy_path = d.path().join("busy/access.log");
    let frozen_path = d.path().join("frozen/access.log");
    std::fs::write(&busy_path, format!("ts={start} msg=hello\n")).unwrap();
    std::fs::write(&frozen_path, format!("ts={frozen} msg=hello\n")).unwrap();
    let job = job_from(
        r#"
name = "frozen"
[source]
kind = "file"
include = ["*/access.log"]
host = { path_regex = '/(?P<host>[^/]+)/access\.log$' }
poll_interval = "20ms"
[parse]
format = "logfmt"
timestamp = { field = "ts", format = "epoch_millis" }
[window]
size = "1s"
max_out_of_orderness = "0s"
idle_timeout = "1s"
max_clock_lag = "5s"
[[metric]]
name = "lines"
kind = "counter"
[[rule]]
record = "total"
expr = "sum(lines)"
[[sink]]
kind = "stdout"
"#,
        d.path(),
    );
    let out = Collected::default();
    let stats = Arc::new(std::sync::Mutex::new(tidemark_engine::JobStats::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let opts = RunOptions {
        stats: Some(stats.clone()),
        ..live_options(2, stop.clone())
    };
    let runner = spawn_run(job, opts, Box::new(out.clone()));
    let append =
        |path: &std::path::Path| std::fs::OpenOptions::new().append(true).open(path).unwrap();
    let (mut busy, mut frozen_log) = (append(&busy_path), append(&frozen_path));
    // Generous: the property is that a window after the frozen time closes at
    // all while the frozen host keeps writing; before the fix none ever did.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut closed = false;
    while Instant::now() < deadline {
        writeln!(busy, "ts={} msg=tick", wall_clock_ms()).unwrap();
        writeln!(frozen_log, "ts={frozen} msg=tick").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        if out
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|w| w.start_ms >= start + 1000)
        {
            closed = true;
            break;
        }
    }
    // A few more frozen lines once the group is released: they are late.
    for _ in 0..5 {
        writeln!(frozen_log, "ts={frozen} msg=tick").unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let outcome = runner.join().unwrap().expect("live run stops cleanly");
    assert!(
        closed,
        "no window after the frozen host's time closed within 60 s"
    );
    let s = stats.lock().unwrap().clone();
    assert!(s.late_lines >= 5, "its lines count as late, visibly: {s:?}");
    let lag = s.clock_lag_ms.get(&frozen_path).copied().unwrap_or(0);
    assert!(
        lag > 5_000,
        "the frozen group is listed in the stats: {s:?}"
    );
    assert!(!s.clock_lag_ms.contains_key(&busy_path), "{s:?}");
    assert_eq!(s.trailing_clock_groups(), 1);
    assert!(
        outcome.stats.summary().contains("clock behind by"),
        "{}",
        outcome.stats.summary()
    );
    // Windows are still emitted once each and in order.
    let windows = out.0.lock().unwrap().clone();
    assert!(windows.windows(2).all(|p| p[0].start_ms < p[1].start_ms));
}

#[test]
fn a_clock_that_trails_but_moves_is_reported_in_the_stats() {
    // A host whose lines are stamped three hours behind this machine's clock but
    // move on: its windows close by its own time (it is not released), yet it
    // holds every window of the job back by three hours. Before, only a frozen
    // clock was reported; this one was silent.
    let d = tempfile::tempdir().unwrap();
    let behind = 3 * 3_600_000;
    std::fs::create_dir_all(d.path().join("slow")).unwrap();
    let path = d.path().join("slow/access.log");
    std::fs::write(
        &path,
        format!("ts={} msg=hello\n", wall_clock_ms() - behind),
    )
    .unwrap();
    let job = job_from(
        r#"
name = "trailing"
[source]
kind = "file"
include = ["*/access.log"]
host = { path_regex = '/(?P<host>[^/]+)/access\.log$' }
poll_interval = "20ms"
[parse]
format = "logfmt"
timestamp = { field = "ts", format = "epoch_millis" }
[window]
size = "1s"
max_out_of_orderness = "0s"
idle_timeout = "1s"
max_clock_lag = "5s"
[[metric]]
name = "lines"
kind = "counter"
[[rule]]
record = "total"
expr = "sum(lines)"
[[sink]]
kind = "stdout"
"#,
        d.path(),
    );
    let out = Collected::default();
    let stats = Arc::new(std::sync::Mutex::new(tidemark_engine::JobStats::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let opts = RunOptions {
        stats: Some(stats.clone()),
        ..live_options(1, stop.clone())
    };
    let runner = spawn_run(job, opts, Box::new(out.clone()));
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    // Generous: the property is that it is reported at all.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut reported = 0;
    while Instant::now() < deadline && reported == 0 {
        writeln!(log, "ts={} msg=tick", wall_clock_ms() - behind).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        reported = stats
            .lock()
            .unwrap()
            .clock_behind_ms
            .get(&path)
            .copied()
            .unwrap_or(0);
    }
    stop.store(true, Ordering::SeqCst);
    let outcome = runner.join().unwrap().expect("live run stops cleanly");
    assert!(
        reported > behind - 60_000,
        "the trailing group is listed in the stats: {:?}",
        stats.lock().unwrap()
    );
    let s = &outcome.stats;
    // Not released: it is not a frozen clock, and none of its lines is late.
    assert_eq!(s.trailing_clock_groups(), 0, "{s:?}");
    assert_eq!(s.late_lines, 0, "{s:?}");
    assert!(s.summary().contains("its time moving"), "{}", s.summary());
}

#[test]
fn a_trailing_clock_that_stops_goes_back_to_0_in_the_job_s_stats() {
    // A group trails by three hours, then stops writing: it no longer holds
    // the windows back, and the job's figure for it must say 0 (before, the
    // group zeroed it only in the delta of the activation it recovered in,
    // where it was not, so the job kept showing three hours).
    let d = tempfile::tempdir().unwrap();
    let behind = 3 * 3_600_000;
    std::fs::create_dir_all(d.path().join("slow")).unwrap();
    let path = d.path().join("slow/access.log");
    std::fs::write(
        &path,
        format!("ts={} msg=hello\n", wall_clock_ms() - behind),
    )
    .unwrap();
    let job = job_from(
        r#"
name = "trailing"
[source]
kind = "file"
include = ["*/access.log"]
host = { path_regex = '/(?P<host>[^/]+)/access\.log$' }
poll_interval = "20ms"
[parse]
format = "logfmt"
timestamp = { field = "ts", format = "epoch_millis" }
[window]
size = "1s"
max_out_of_orderness = "0s"
idle_timeout = "1s"
max_clock_lag = "5s"
[[metric]]
name = "lines"
kind = "counter"
[[rule]]
record = "total"
expr = "sum(lines)"
[[sink]]
kind = "stdout"
"#,
        d.path(),
    );
    let stats = Arc::new(std::sync::Mutex::new(tidemark_engine::JobStats::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let opts = RunOptions {
        stats: Some(stats.clone()),
        ..live_options(1, stop.clone())
    };
    let runner = spawn_run(job, opts, Box::new(Collected::default()));
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let figure = || stats.lock().unwrap().clock_behind_of(&path);
    let deadline = Instant::now() + Duration::from_secs(60);
    while figure().unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "never reported as trailing");
        writeln!(log, "ts={} msg=tick", wall_clock_ms() - behind).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    // It stops writing: after idle_timeout it is no longer trailing.
    let deadline = Instant::now() + Duration::from_secs(60);
    while figure() != Some(0) {
        assert!(
            Instant::now() < deadline,
            "still shown trailing: {:?}",
            figure()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    runner.join().unwrap().expect("live run stops cleanly");
}
