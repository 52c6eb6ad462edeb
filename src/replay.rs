//! `tidemark replay`: recompute the windows of a past time range from the job's
//! files (live, rotated, compressed and archived), in parallel, with progress.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tidemark_engine::alerts::AlertEvaluator;
use tidemark_engine::checkpoint::FileIdentity;
use tidemark_engine::output_guard::Protected;
use tidemark_engine::replay::plan::PlanOptions;
use tidemark_engine::replay::{
    plan_replay, run_replay_from, ReplayOptions, ReplayProgress, ReplayRange,
};
use tidemark_engine::OutputStart;
use tidemark_jobs::duration::parse_size;
use tidemark_jobs::{Job, SeriesChoice, Sink, SinkKind};
use tidemark_sinks::{Existing, OpenMetricsSink};

use crate::replay_om::{openmetrics_output, OpenMetricsFlags};
use crate::run::{load_job, stop_on_signals, EXIT_INVALID};

/// Exit code after Ctrl-C (128 + SIGINT), as shells report it.
const EXIT_INTERRUPTED: u8 = 130;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise.
    Auto,
    Bar,
    Plain,
    None,
}

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Start of the range (RFC 3339, e.g. 2026-11-20T10:00:00Z); rounded up to a window start.
    #[arg(long)]
    pub from: String,
    /// End of the range, exclusive; rounded down to a window end.
    #[arg(long)]
    pub to: String,
    /// Worker threads.
    #[arg(short = 'w', long, default_value_t = 1, value_parser = crate::parse_workers)]
    pub workers: usize,
    /// Write JSON Lines here instead of the job's JSONL path (which is refused
    /// if it already exists: it is usually the live run's output); with
    /// --format openmetrics, the OpenMetrics file (required).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Replace a non-empty file at --output (refused otherwise). Never an
    /// input, the job file, or the job's own JSONL output.
    #[arg(long)]
    pub overwrite: bool,
    /// --format and the OpenMetrics flags.
    #[command(flatten)]
    pub openmetrics: OpenMetricsFlags,
    /// Read at most this fast, e.g. 50MiB/s (default: the job's rate_limit).
    #[arg(long, value_name = "RATE")]
    pub rate_limit: Option<String>,
    /// Progress display: a bar on a terminal, plain lines otherwise.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// How often plain progress lines are printed.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = crate::parse_duration_arg)]
    pub progress_interval: Duration,
    /// Target segment size in bytes (tests and tuning).
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub segment_bytes: Option<u64>,
}

pub fn replay(path: &Path, args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let Some(mut job) = load_job(path) else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    let usage = |msg: String| {
        eprintln!("error: {msg}");
        Ok(ExitCode::from(EXIT_INVALID))
    };
    let from = match parse_time("--from", &args.from) {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let to = match parse_time("--to", &args.to) {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let window_ms = job.window.size.as_millis() as i64;
    let range = match ReplayRange::new(from, to, window_ms) {
        Ok(r) => r,
        Err(e) => return usage(e.to_string()),
    };
    if (range.from_ms(), range.to_ms()) != (from, to) {
        tracing::warn!(
            "replaying the whole windows inside the range: [{}, {})",
            fmt_ms(range.from_ms()),
            fmt_ms(range.to_ms())
        );
    }
    let rate_limit = match &args.rate_limit {
        None => job.source.rate_limit,
        Some(r) => match parse_rate(r) {
            Ok(n) => Some(n),
            Err(e) => return usage(e),
        },
    };
    for topic in without_kafka(&mut job) {
        eprintln!(
            "replay: not writing to the job's kafka sink (topic {topic}): it is the live run's, and a replay's windows would be read there as new ones; write the replay to a file with --output PATH"
        );
    }
    let live_remote_write = take_remote_write(&mut job);
    if live_remote_write.is_some() && job.sinks.is_empty() && args.output.is_none() {
        return usage(
            "the job's only sink is a prometheus_remote_write sink, which a replay does not send to; write the replay to a file with --output PATH (or --format openmetrics --output PATH to backfill Prometheus)"
                .to_string(),
        );
    }
    // Before --output replaces them: the job's own outputs (the live run's) are
    // never the replay's, --overwrite or not.
    let live_outputs: Vec<PathBuf> = if args.output.is_some() {
        job.sinks
            .iter()
            .filter_map(|s| match &s.kind {
                SinkKind::Jsonl(p) => Some(p.clone()),
                SinkKind::Stdout
                | SinkKind::RemoteWrite(_)
                | SinkKind::Alertmanager(_)
                | SinkKind::Kafka(_) => None,
            })
            .collect()
    } else {
        Vec::new()
    };
    for url in without_alertmanager(&mut job) {
        eprintln!(
            "replay: the alertmanager sink {url} is not opened: a replay never pages (write the alerts' transcript to a jsonl sink to back-test them)"
        );
    }
    let mut openmetrics = match openmetrics_output(
        &args.openmetrics,
        args.output.as_deref(),
        args.overwrite,
        &mut job,
    ) {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    if let (Some(om), Some(live)) = (&mut openmetrics, &live_remote_write) {
        live.shape(om, &args.openmetrics);
    }
    if openmetrics.is_none() {
        if let Err(e) = choose_output(&mut job, args.output.as_deref()) {
            return usage(e);
        }
        if job.sinks.is_empty() {
            return usage(
                "the job's only sinks are alertmanager sinks, which a replay does not open; write the replay to a file with --output PATH".into(),
            );
        }
    }
    let stop = stop_on_signals()?;
    // Alerts warm up: their longest `for` / `keep_firing_for` / `average_over`
    // before the range is read for them only (docs/alerts.md).
    let warm_ms = if job.sinks.iter().any(|s| s.alerts) {
        i64::from(AlertEvaluator::warm_up_windows(&job)) * window_ms
    } else {
        0
    };
    let read_range =
        match ReplayRange::new((range.from_ms() - warm_ms).max(0), range.to_ms(), window_ms) {
            Ok(r) if warm_ms > 0 => r,
            _ => range,
        };
    let print_from = (read_range != range).then_some(range.from_ms());
    if let Some(from) = print_from {
        eprintln!(
            "replay: the alerts warm up from {} (their longest for, keep_firing_for or average_over); nothing before {} is written",
            fmt_ms(read_range.from_ms()),
            fmt_ms(from)
        );
    }
    let plan = plan_replay(
        &job,
        read_range,
        PlanOptions {
            workers: args.workers.max(1),
            segment_bytes: args.segment_bytes,
        },
    )
    .with_context(|| format!("cannot plan the replay of job {:?}", job.name))?;
    eprintln!(
        "replay [{}, {}): {} of {} in {} files ({} skipped after reading their ends, {} compressed read whole; the search read {}), {} segments on {} worker{}",
        fmt_ms(range.from_ms()),
        fmt_ms(range.to_ms()),
        human(plan.bytes_to_read),
        human(plan.bytes_in_files),
        plan.files,
        plan.files_skipped,
        plan.gzip_files_read,
        human(plan.search_bytes),
        plan.segments.len(),
        args.workers.max(1),
        if args.workers > 1 { "s" } else { "" },
    );
    let guard = protected(path, &plan.inputs, &live_outputs);
    if let Err(e) = guard.check(&job) {
        return usage(format!(
            "{e}; write the replay elsewhere with --output PATH"
        ));
    }
    if let Some(om) = &openmetrics {
        // The same checks as for a jsonl output at that path.
        let mut probe = job.clone();
        probe.sinks = vec![Sink {
            kind: SinkKind::Jsonl(om.path.clone()),
            series: om.opts.series,
            alerts: false,
        }];
        if let Err(e) = guard.check(&probe) {
            return usage(format!(
                "--output {} is {}: writing it would destroy it; write the replay elsewhere with --output PATH",
                om.path.display(),
                e.what
            ));
        }
    }
    let existing = if args.overwrite {
        Existing::Replace
    } else {
        Existing::Refuse
    };
    let mut outputs = match tidemark_sinks::open_with(&job, &OutputStart::Fresh, existing) {
        Ok(o) => o,
        Err(e) if e.is_usage() => return usage(e.to_string()),
        Err(e) => anyhow::bail!("cannot open the job's sinks: {e}"),
    };
    if let Some(om) = &openmetrics {
        match OpenMetricsSink::create(&om.path, om.opts.clone()) {
            Ok(s) => outputs.push(Box::new(s)),
            Err(e) if e.is_usage() => return usage(e.to_string()),
            Err(e) => anyhow::bail!("cannot open the OpenMetrics output: {e}"),
        }
        // Stands for the OpenMetrics sink in the job the replay runs (never
        // opened): the engine computes per-host series only when a sink of the
        // job prints them.
        job.sinks.push(Sink {
            kind: SinkKind::Jsonl(om.path.clone()),
            series: om.opts.series,
            alerts: false,
        });
    }
    // A replay ends with its range: freed memory is reused until then.
    crate::alloc_decay::keep_freed_pages();
    let progress = Arc::new(ReplayProgress::new());
    let done = Arc::new(AtomicBool::new(false));
    let shower = {
        let mode = match args.progress {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Plain,
            m => m,
        };
        let (progress, done, every) = (progress.clone(), done.clone(), args.progress_interval);
        std::thread::spawn(move || show_progress(mode, &progress, &done, every))
    };
    let outcome = run_replay_from(
        &job,
        plan,
        ReplayOptions {
            workers: args.workers.max(1),
            rate_limit,
            stop: stop.clone(),
            progress: progress.clone(),
        },
        outputs,
        print_from,
    );
    done.store(true, Ordering::SeqCst);
    let _ = shower.join();
    let outcome = outcome.with_context(|| format!("replay of job {:?} failed", job.name))?;
    eprint!("{}", outcome.stats.lines_summary());
    let secs = progress.elapsed().as_secs_f64();
    let first = outcome
        .first_window_after
        .map(|d| format!("{:.2}s", d.as_secs_f64()))
        .unwrap_or_else(|| "-".into());
    if let (true, Some(om)) = (outcome.interrupted, &openmetrics) {
        eprintln!(
            "interrupted after {secs:.1}s: nothing was written to {} (an OpenMetrics output is written only once the whole range is replayed)",
            om.path.display()
        );
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    if outcome.interrupted {
        eprintln!(
            "interrupted after {secs:.1}s: {} windows written (first after {first}) are complete and kept; the rest of the range was not written",
            outcome.windows_written
        );
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    eprintln!(
        "replay done in {secs:.1}s: {} windows written (first after {first})",
        outcome.windows_written
    );
    if let Some(om) = &openmetrics {
        eprintln!(
            "OpenMetrics written to {}; load it with: promtool tsdb create-blocks-from openmetrics {} DIR",
            om.path.display(),
            shell_word(&om.path.display().to_string())
        );
    }
    Ok(crate::run::finite_exit(&outcome.stats))
}

/// `s` as one shell word, quoted only when it needs to be (so the command
/// printed can be pasted as it is).
fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:,@%=".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn parse_time(flag: &str, s: &str) -> Result<i64, String> {
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| {
            format!("{flag} {s:?} is not an RFC 3339 time ({e}); write e.g. 2026-11-20T10:00:00Z")
        })
}

fn parse_rate(s: &str) -> Result<u64, String> {
    let hint = "write a size per second, e.g. --rate-limit 50MiB/s";
    let Some(size) = s.trim().strip_suffix("/s") else {
        return Err(format!("--rate-limit {s:?} has no `/s`; {hint}"));
    };
    match parse_size(size.trim()) {
        Ok(0) => Err(format!("--rate-limit must be greater than 0; {hint}")),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("invalid --rate-limit {s:?}: {e}; {hint}")),
    }
}

/// The job's remote-write sink, taken out of the job: it is the live run's
/// destination, and a replay never sends to it (a past range is refused there
/// as too old, or mixed into live data). A range goes into Prometheus with
/// `--format openmetrics`, which takes the sink's settings ([`LiveRemoteWrite::shape`]).
struct LiveRemoteWrite {
    rw: Box<tidemark_jobs::RemoteWrite>,
    series: SeriesChoice,
    /// Whether the job has a jsonl sink printing series (whose `series` the
    /// backfill prints then).
    had_jsonl: bool,
}

fn take_remote_write(job: &mut Job) -> Option<LiveRemoteWrite> {
    // As `replay_om` chooses the file's series: from a jsonl sink that prints
    // series (not a transcript-only one).
    let had_jsonl = job
        .sinks
        .iter()
        .any(|s| matches!(s.kind, SinkKind::Jsonl(_)) && s.series != SeriesChoice::None);
    let live = job.sinks.iter().find_map(|s| match &s.kind {
        SinkKind::RemoteWrite(rw) => Some(LiveRemoteWrite {
            rw: rw.clone(),
            series: s.series,
            had_jsonl,
        }),
        _ => None,
    })?;
    job.sinks
        .retain(|s| !matches!(s.kind, SinkKind::RemoteWrite(_)));
    eprintln!(
        "replay: not sending to the job's prometheus_remote_write sink (it is the live run's); to load the range into Prometheus, replay with --format openmetrics"
    );
    Some(live)
}

impl LiveRemoteWrite {
    /// A backfill makes the live run's series: what the flags leave unsaid
    /// comes from the sink.
    fn shape(&self, om: &mut crate::replay_om::OpenMetricsOut, flags: &OpenMetricsFlags) {
        if flags.timestamp.is_none() {
            om.opts.time = self.rw.timestamp;
        }
        if flags.external_label.is_empty() {
            om.opts.external_labels = self.rw.external_labels.clone();
        }
        if !self.had_jsonl {
            om.opts.series = self.series;
        }
        eprintln!(
            "openmetrics: sample time and external labels as the job's prometheus_remote_write sink sends them (unless --timestamp / --external-label say otherwise)"
        );
    }
}

/// Removes the job's kafka sinks, returning their topics: the topic is the live
/// run's output, read by others, and a replay never writes into it.
fn without_kafka(job: &mut Job) -> Vec<String> {
    let mut topics = Vec::new();
    job.sinks.retain(|s| match &s.kind {
        SinkKind::Kafka(k) => {
            topics.push(k.topic.clone());
            false
        }
        _ => true,
    });
    topics
}

/// Removes the job's alertmanager sinks, returning their urls: a replay (a
/// back-test of past windows) must never page anyone.
fn without_alertmanager(job: &mut Job) -> Vec<String> {
    let mut urls = Vec::new();
    job.sinks.retain(|s| match &s.kind {
        SinkKind::Alertmanager(am) => {
            urls.push(am.url.clone());
            false
        }
        _ => true,
    });
    urls
}

/// `--output` replaces the job's JSONL path (or adds one). Without it, the job's
/// own JSONL file must not exist yet: it is usually the live run's output, which a
/// replay must not overwrite.
fn choose_output(job: &mut Job, output: Option<&Path>) -> Result<(), String> {
    match output {
        Some(out) => {
            let out = std::path::absolute(out).map_err(|e| format!("--output: {e}"))?;
            let jsonl = job
                .sinks
                .iter()
                .filter(|s| matches!(s.kind, SinkKind::Jsonl(_)))
                .count();
            if jsonl > 1 {
                return Err(format!(
                    "the job has {jsonl} jsonl sinks and --output replaces one path; write a job with one jsonl sink for the replay, or replay without --output into new files"
                ));
            }
            let mut replaced = false;
            for s in job.sinks.iter_mut() {
                if let SinkKind::Jsonl(p) = &mut s.kind {
                    if !replaced {
                        *p = out.clone();
                        replaced = true;
                    }
                }
            }
            // A second JSONL sink would also be the live run's: drop it.
            let mut first = true;
            job.sinks.retain(|s| match s.kind {
                SinkKind::Jsonl(_) => std::mem::replace(&mut first, false),
                SinkKind::Stdout
                | SinkKind::RemoteWrite(_)
                | SinkKind::Alertmanager(_)
                | SinkKind::Kafka(_) => true,
            });
            if !replaced {
                job.sinks.push(Sink {
                    kind: SinkKind::Jsonl(out),
                    series: SeriesChoice::All,
                    // A back-test: the transcript goes with the records.
                    alerts: !job.alerts.is_empty(),
                });
            }
            Ok(())
        }
        None => {
            for s in &job.sinks {
                if let SinkKind::Jsonl(p) = &s.kind {
                    if std::fs::metadata(p).is_ok_and(|m| m.len() > 0) {
                        return Err(format!(
                            "{} already exists (probably the live run's output); write the replay elsewhere with --output PATH",
                            p.display()
                        ));
                    }
                }
            }
            Ok(())
        }
    }
}

/// What the replay's output must not be: a file it reads (it would be emptied
/// before it is read), the job file, or one of the job's own JSONL outputs
/// (`live_outputs`, the live run's). [`Protected::check`] adds the lexical checks
/// validation made on the job's sinks (a future rotated sibling of an input).
fn protected(job_file: &Path, inputs: &[(u64, u64)], live_outputs: &[PathBuf]) -> Protected {
    let mut p = Protected::default();
    for &(dev, ino) in inputs {
        p.identity(
            FileIdentity { dev, ino },
            "one of the files this replay reads".into(),
        );
    }
    p.job_file(&std::path::absolute(job_file).unwrap_or_else(|_| job_file.to_path_buf()));
    for out in live_outputs {
        p.file(out, "the job's own JSONL output (the live run's)");
    }
    p
}

fn show_progress(mode: ProgressMode, p: &ReplayProgress, done: &AtomicBool, every: Duration) {
    let tick = Duration::from_millis(100);
    match mode {
        ProgressMode::None => {}
        ProgressMode::Bar => {
            let bar = indicatif::ProgressBar::new(p.get(&p.bytes_total));
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40.cyan/blue} {bytes}/{total_bytes} {msg} ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            while !done.load(Ordering::SeqCst) {
                bar.set_length(p.get(&p.bytes_total));
                bar.set_position(p.get(&p.bytes_done));
                bar.set_message(rate_text(p));
                std::thread::sleep(tick);
            }
            bar.set_position(p.get(&p.bytes_done));
            bar.finish_and_clear();
        }
        ProgressMode::Plain | ProgressMode::Auto => {
            let mut last = std::time::Instant::now();
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(tick);
                if last.elapsed() >= every {
                    last = std::time::Instant::now();
                    let (d, t) = (p.get(&p.bytes_done), p.get(&p.bytes_total).max(1));
                    let secs = p.elapsed().as_secs_f64();
                    let eta = if d > 0 {
                        format!("{:.0}s", secs * (t.saturating_sub(d)) as f64 / d as f64)
                    } else {
                        "-".into()
                    };
                    eprintln!(
                        "progress: {:.0}% ({} of {}), {}, ETA {eta}",
                        100.0 * d as f64 / t as f64,
                        human(d),
                        human(t),
                        rate_text(p)
                    );
                }
            }
        }
    }
}

fn rate_text(p: &ReplayProgress) -> String {
    let secs = p.elapsed().as_secs_f64().max(1e-3);
    format!(
        "{:.0} lines/s, {} windows written",
        p.get(&p.lines) as f64 / secs,
        p.get(&p.windows_written)
    )
}

/// Bytes in a unit a person reads at a glance (decimal, one decimal place).
fn human(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", b / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b / 1e6),
        _ => format!("{:.2} GB", b / 1e9),
    }
}

fn fmt_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}
