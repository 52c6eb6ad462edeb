//! Back-pressure from a sink (issue 12 §1): while a sink's meter says it is
//! backlogged, the job's sources read nothing; afterwards the output is exactly
//! that of a run without the pause, and no line is late — also when the pause is
//! longer than `idle_timeout` and lines are written (to a known file and to a new
//! one) while it lasts.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{flatten, job_from, live_options, nginx_line, spawn_run, write_file, Collected};
use tidemark_engine::sink::{BoxError, Sink};
use tidemark_engine::stats::{SharedStats, SinkMeter};
use tidemark_engine::{fixed_output, run_job, ClosedWindow, JobStats, RunOptions};

const T0: i64 = 1_795_168_800; // 2026-11-20T10:00:00Z

/// Collects windows; asks the job to pause reading when it takes its first
/// window (the test clears the flag), as a sink with a full queue does.
#[derive(Clone)]
struct Backlogging {
    out: Collected,
    meter: Arc<SinkMeter>,
    pause_on_first: bool,
}

impl Backlogging {
    fn new(pause_on_first: bool) -> Backlogging {
        Backlogging {
            out: Collected::default(),
            meter: SinkMeter::named("backlogging test sink"),
            pause_on_first,
        }
    }
}

impl Sink for Backlogging {
    fn describe(&self) -> String {
        "backlogging test sink".to_string()
    }
    fn write_window(&mut self, w: &ClosedWindow) -> Result<(), BoxError> {
        if std::mem::take(&mut self.pause_on_first) {
            self.meter.set_backlogged(true);
        }
        self.out.write_window(w)
    }
    fn meter(&self) -> Option<Arc<SinkMeter>> {
        Some(self.meter.clone())
    }
}

fn job_text(rate_limit: Option<&str>, idle_timeout: &str) -> String {
    let rate = rate_limit
        .map(|r| format!("rate_limit = \"{r}\"\nread_chunk = \"16KiB\"\n"))
        .unwrap_or_default();
    format!(
        r#"
name = "bp"
[source]
kind = "file"
include = ["*/access.log"]
host = {{ path_regex = '/(?P<host>[^/]+)/access\.log$' }}
poll_interval = "20ms"
{rate}[parse]
format = "nginx"
[window]
size = "1m"
max_out_of_orderness = "5s"
idle_timeout = "{idle_timeout}"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status"]
[[rule]]
record = "status:reqs:sum1m"
expr = "sum by (status) (reqs)"
[[sink]]
kind = "stdout"
"#
    )
}

/// 30 minutes of lines from three hosts, several a second: about 3 MB.
fn thirty_minutes(dir: &Path) -> u64 {
    let mut total = 0;
    for (h, statuses) in [("a", [200, 404]), ("b", [200, 500]), ("c", [301, 200])] {
        let lines: Vec<String> = (0..30 * 60 * 3)
            .map(|i| nginx_line(T0 + i / 3, "GET", statuses[(i % 2) as usize], 10, 5))
            .collect();
        total += lines.iter().map(|l| l.len() as u64).sum::<u64>();
        write_file(&dir.join(format!("{h}/access.log")), &lines, false);
    }
    total
}

fn bytes_read(stats: &SharedStats) -> u64 {
    stats.lock().unwrap().bytes_read
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    // Generous for a loaded machine: the loop ends as soon as it holds.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// While the sink is backlogged the bytes read stay where they are; the run is
/// then the same as one without the pause.
fn a_paused_run_reads_nothing_while_paused_and_ends_exact(workers: usize) {
    let d = tempfile::tempdir().unwrap();
    let total = thirty_minutes(d.path());
    // Paced so that most of the input is still unread at the first window.
    let job = job_from(&job_text(Some("1MiB/s"), "1h"), d.path());

    let reference = Collected::default();
    let opts = RunOptions {
        until_eof: true,
        ..live_options(workers, Arc::new(AtomicBool::new(false)))
    };
    let plain = run_job(&job, opts, fixed_output(Box::new(reference.clone()))).expect("run");

    let sink = Backlogging::new(true);
    let stats: SharedStats = Arc::new(Mutex::new(JobStats::default()));
    let opts = RunOptions {
        until_eof: true,
        stats: Some(stats.clone()),
        ..live_options(workers, Arc::new(AtomicBool::new(false)))
    };
    let runner = spawn_run(job, opts, Box::new(sink.clone()));
    wait_for("the sink to ask for a pause", || sink.meter.is_backlogged());
    // An activation that began before the flag was set may still end its read.
    std::thread::sleep(Duration::from_millis(300));
    let at_pause = bytes_read(&stats);
    let windows_at_pause = sink.out.0.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(1500));
    let later = bytes_read(&stats);
    sink.meter.set_backlogged(false);
    let outcome = runner.join().unwrap().expect("run");

    assert!(
        at_pause < total,
        "the pause came after the whole input was read ({at_pause} of {total} bytes): \
         nothing shows"
    );
    assert_eq!(
        at_pause, later,
        "bytes were read while the sink was backlogged"
    );
    assert!(windows_at_pause < plain.stats.windows_emitted as usize);
    assert_eq!(outcome.stats.bytes_read, total);
    assert_eq!(outcome.stats.late_lines, 0);
    assert_eq!(plain.stats.late_lines, 0);
    assert_eq!(outcome.stats.output_pauses, 1, "{:?}", outcome.stats);
    assert!(
        outcome.stats.output_paused_ms >= 1500,
        "{}",
        outcome.stats.output_paused_ms
    );
    assert!(outcome
        .stats
        .summary()
        .contains("reads paused for a backlogged sink"));
    let got = flatten(&sink.out.0.lock().unwrap());
    let want = flatten(&reference.0.lock().unwrap());
    assert_eq!(got.len(), 30 * 4, "30 windows of 4 statuses");
    assert_eq!(
        got, want,
        "the paused run's output differs from the plain run's"
    );
}

#[test]
fn a_backlogged_sink_pauses_reading_and_the_output_stays_exact() {
    a_paused_run_reads_nothing_while_paused_and_ends_exact(1);
}

#[test]
fn a_backlogged_sink_pauses_every_worker_and_the_output_stays_exact() {
    a_paused_run_reads_nothing_while_paused_and_ends_exact(2);
}

/// Live: a pause about three times `idle_timeout` long, during which lines stamped
/// with the wall clock are appended to a file already read (its group idle at
/// its end) and written to a new file. A paused group is not idle: none of those
/// lines may be late, and every one is read once the pause ends.
fn lines_written_during_a_long_pause_are_not_late(workers: usize) {
    let d = tempfile::tempdir().unwrap();
    let now_s = || tidemark_engine::time::wall_clock_ms() / 1000;
    let line = |t: i64| nginx_line(t, "GET", 200, 1, 1);
    let start = now_s();
    let old: Vec<String> = (0..120).map(|i| line(start - 120 + i)).collect();
    write_file(&d.path().join("a/access.log"), &old, false);
    write_file(&d.path().join("b/access.log"), &old, false);
    // Its folder is there from the start: the watcher sees the file appear at
    // once (a folder and file made together may wait for the next rescan).
    std::fs::create_dir_all(d.path().join("c")).unwrap();
    let job = job_from(&job_text(None, "2s"), d.path());
    let sink = Backlogging::new(false);
    let stats: SharedStats = Arc::new(Mutex::new(JobStats::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let opts = RunOptions {
        stats: Some(stats.clone()),
        ..live_options(workers, stop.clone())
    };
    let runner = spawn_run(job, opts, Box::new(sink.clone()));
    wait_for("the first lines to be read", || {
        stats.lock().unwrap().lines_read == 240
    });
    // Both groups idle at their end for longer than idle_timeout.
    std::thread::sleep(Duration::from_millis(2500));
    sink.meter.set_backlogged(true);
    wait_for("the pause to be seen", || {
        stats.lock().unwrap().output_pauses == 1
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut written = 240;
    for _ in 0..6 {
        let t = now_s();
        let batch: Vec<String> = (0..5).map(|_| line(t)).collect();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(d.path().join("a/access.log"))
            .unwrap();
        std::io::Write::write_all(&mut f, batch.concat().as_bytes()).unwrap();
        written += 5;
        std::thread::sleep(Duration::from_millis(500));
    }
    // A host that appears during the pause, stamped from its start (its
    // seconds rounded up: found at once, it is judged from then).
    let t = now_s() + 1;
    write_file(
        &d.path().join("c/access.log"),
        &(0..7).map(|_| line(t)).collect::<Vec<_>>(),
        false,
    );
    written += 7;
    std::thread::sleep(Duration::from_millis(4000));
    assert_eq!(
        stats.lock().unwrap().lines_read,
        240,
        "lines were read while paused"
    );
    sink.meter.set_backlogged(false);
    wait_for("every line to be read", || {
        stats.lock().unwrap().lines_read == written
    });
    stop.store(true, Ordering::SeqCst);
    let outcome = runner.join().unwrap().expect("run");
    assert_eq!(
        outcome.stats.late_lines,
        0,
        "the pause made lines late: {}",
        outcome.stats.summary()
    );
    assert_eq!(outcome.stats.output_pauses, 1);
}

#[test]
fn lines_written_during_a_pause_longer_than_idle_timeout_are_not_late() {
    lines_written_during_a_long_pause_are_not_late(1);
}

#[test]
fn lines_written_during_a_long_pause_are_not_late_with_two_workers() {
    lines_written_during_a_long_pause_are_not_late(2);
}

/// A replay pauses too, and its output is the same.
#[test]
fn a_replay_pauses_while_a_sink_is_backlogged() {
    use tidemark_engine::replay::plan::PlanOptions;
    use tidemark_engine::replay::{
        plan_replay, run_replay, ReplayOptions, ReplayProgress, ReplayRange,
    };
    let d = tempfile::tempdir().unwrap();
    let total = thirty_minutes(d.path());
    let job = job_from(&job_text(None, "1h"), d.path());
    let replay = |sink: Box<dyn Sink>| {
        let range = ReplayRange::new(T0 * 1000, (T0 + 1800) * 1000, 60_000).unwrap();
        let plan = plan_replay(
            &job,
            range,
            PlanOptions {
                workers: 2,
                segment_bytes: None,
            },
        )
        .expect("plan");
        run_replay(
            &job,
            plan,
            ReplayOptions {
                workers: 2,
                rate_limit: Some(1 << 20),
                stop: Arc::new(AtomicBool::new(false)),
                progress: Arc::new(ReplayProgress::new()),
            },
            tidemark_engine::Sinks::new(vec![sink]),
        )
    };
    let reference = Collected::default();
    replay(Box::new(reference.clone())).expect("replay");
    let sink = Backlogging::new(true);
    let runner = {
        let out = sink.out.clone();
        let meter = sink.meter.clone();
        let watch = std::thread::spawn(move || {
            wait_for("the sink to ask for a pause", || meter.is_backlogged());
            let windows = || out.0.lock().unwrap().len();
            std::thread::sleep(Duration::from_millis(300));
            let at_pause = windows();
            std::thread::sleep(Duration::from_millis(1500));
            let later = windows();
            meter.set_backlogged(false);
            (at_pause, later)
        });
        let outcome = replay(Box::new(sink.clone())).expect("replay");
        (outcome, watch.join().unwrap())
    };
    let (outcome, (at_pause, later)) = runner;
    // Replay's stats are only read at its end: the windows written show the
    // pause (the sources held their capabilities, so nothing closed).
    assert_eq!(at_pause, later, "windows were closed while paused");
    assert!(at_pause < 30);
    assert_eq!(outcome.stats.bytes_read, total);
    assert_eq!(outcome.stats.output_pauses, 1);
    assert!(outcome.stats.output_paused_ms >= 1500);
    assert_eq!(
        flatten(&sink.out.0.lock().unwrap()),
        flatten(&reference.0.lock().unwrap())
    );
}

/// A stop (SIGTERM) ends a live job whose sink stays backlogged.
#[test]
fn a_stop_ends_a_paused_job() {
    let d = tempfile::tempdir().unwrap();
    thirty_minutes(d.path());
    let job = job_from(&job_text(Some("1MiB/s"), "1h"), d.path());
    let sink = Backlogging::new(true);
    let stats: SharedStats = Arc::new(Mutex::new(JobStats::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let opts = RunOptions {
        stats: Some(stats.clone()),
        ..live_options(2, stop.clone())
    };
    let runner = spawn_run(job, opts, Box::new(sink.clone()));
    wait_for("the pause to be seen", || {
        stats.lock().unwrap().output_pauses == 1
    });
    stop.store(true, Ordering::SeqCst);
    wait_for("the job to end", || runner.is_finished());
    let outcome = runner.join().unwrap().expect("run");
    assert!(sink.meter.is_backlogged(), "still backlogged at the end");
    assert_eq!(outcome.stats.output_pauses, 1);
    assert!(outcome.stats.windows_open_at_stop > 0);
}
