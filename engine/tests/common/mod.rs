//! Helpers shared by the engine's integration tests: run a job in-process and
//! collect its closed windows; write nginx lines into (possibly gzipped) files.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use tidemark_engine::error::EngineError;
use tidemark_engine::{
    fixed_output, run_job, ClosedWindow, JobStats, RunOptions, RunOutcome, Sink,
};
use tidemark_jobs::Job;

#[derive(Clone, Default)]
pub struct Collected(pub Arc<Mutex<Vec<ClosedWindow>>>);

impl Sink for Collected {
    fn describe(&self) -> String {
        "collected in memory".to_string()
    }
    fn write_window(&mut self, w: &ClosedWindow) -> Result<(), tidemark_engine::sink::BoxError> {
        self.0.lock().unwrap().push(w.clone());
        Ok(())
    }
}

pub fn job_from(toml: &str, dir: &Path) -> Job {
    match tidemark_jobs::from_str(toml, "test.toml", dir) {
        Ok(j) => j,
        Err(d) => panic!("test job invalid:\n{d}"),
    }
}

/// Options for a live run (following the files) that stops when `stop` is set;
/// no state dir, no shared stats, 1 s checkpoint interval.
pub fn live_options(workers: usize, stop: Arc<AtomicBool>) -> RunOptions {
    RunOptions {
        workers,
        until_eof: false,
        stop,
        state_dir: None,
        reset: None,
        checkpoint_interval: std::time::Duration::from_secs(1),
        stats: None,
    }
}

/// Runs `job` on its own thread (a live run goes on until its stop flag is set).
pub fn spawn_run(
    job: Job,
    opts: RunOptions,
    out: Box<dyn Sink>,
) -> std::thread::JoinHandle<Result<RunOutcome, EngineError>> {
    std::thread::spawn(move || run_job(&job, opts, fixed_output(out)))
}

/// Runs `job` to the end of its files with `workers` threads.
pub fn run_until_eof(job: &Job, workers: usize) -> (Vec<ClosedWindow>, JobStats) {
    let out = Collected::default();
    let opts = RunOptions {
        until_eof: true,
        ..live_options(workers, Arc::new(AtomicBool::new(false)))
    };
    let outcome = run_job(job, opts, fixed_output(Box::new(out.clone()))).expect("run");
    let windows = out.0.lock().unwrap().clone();
    (windows, outcome.stats)
}

/// `[20/Nov/2026:10:00:01 +0000]`-style nginx line with a request time.
pub fn nginx_line(t_secs: i64, method: &str, status: u16, bytes: u64, rt_ms: u32) -> String {
    let ts = jiff::Timestamp::from_second(t_secs).unwrap();
    format!(
        "10.0.0.1 - - [{}] \"{method} /x HTTP/1.1\" {status} {bytes} \"-\" \"test\" {}.{:03}\n",
        ts.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        rt_ms / 1000,
        rt_ms % 1000
    )
}

pub fn write_file(path: &Path, lines: &[String], gzip: bool) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    let data: String = lines.concat();
    if gzip {
        let f = std::fs::File::create(path).unwrap();
        let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        enc.write_all(data.as_bytes()).unwrap();
        enc.finish().unwrap();
    } else {
        std::fs::write(path, data).unwrap();
    }
}

/// Flattens windows into `(start_ms, record, labels) -> value as f64`.
pub type SeriesKey = (i64, String, Vec<(String, String)>);

pub fn flatten(windows: &[ClosedWindow]) -> std::collections::BTreeMap<SeriesKey, f64> {
    let mut m = std::collections::BTreeMap::new();
    for w in windows {
        for s in &w.series {
            let v = match s.value {
                tidemark_engine::Value::Int(i) => i as f64,
                tidemark_engine::Value::Float(f) => f,
            };
            let prev = m.insert((w.start_ms, s.record.to_string(), s.labels.to_vec()), v);
            assert!(
                prev.is_none(),
                "duplicate series {} {:?}",
                s.record,
                s.labels
            );
        }
    }
    m
}

/// Replays `[t0 + from_min, t0 + to_min)` of `job` (minutes from `t0`, in seconds)
/// with `workers` workers; returns the windows, the stats and the files skipped.
pub fn replay_minutes(
    job: &Job,
    t0: i64,
    from_min: i64,
    to_min: i64,
    workers: usize,
    segment_bytes: Option<u64>,
) -> (Vec<ClosedWindow>, JobStats, u64) {
    use tidemark_engine::replay::plan::PlanOptions;
    use tidemark_engine::replay::{
        plan_replay, run_replay, ReplayOptions, ReplayProgress, ReplayRange,
    };
    let range = ReplayRange::new(
        (t0 + from_min * 60) * 1000,
        (t0 + to_min * 60) * 1000,
        60_000,
    )
    .unwrap();
    let opts = PlanOptions {
        workers,
        segment_bytes,
    };
    let plan = plan_replay(job, range, opts).expect("plan");
    let skipped = plan.files_skipped;
    let out = Collected::default();
    let outcome = run_replay(
        job,
        plan,
        ReplayOptions {
            workers,
            rate_limit: None,
            stop: Arc::new(AtomicBool::new(false)),
            progress: Arc::new(ReplayProgress::new()),
        },
        tidemark_engine::Sinks::new(vec![Box::new(out.clone())]),
    )
    .expect("replay");
    let windows = out.0.lock().unwrap().clone();
    (windows, outcome.stats, skipped)
}

/// The windows of `live` that lie in `[t0 + from_min, t0 + to_min)`.
pub fn windows_in(live: &[ClosedWindow], t0: i64, from_min: i64, to_min: i64) -> Vec<ClosedWindow> {
    let (a, b) = ((t0 + from_min * 60) * 1000, (t0 + to_min * 60) * 1000);
    live.iter()
        .filter(|w| w.start_ms >= a && w.end_ms <= b)
        .cloned()
        .collect()
}
