//! Event-time pacing of a replay's segments (see [`super`]): a replay of many
//! hosts keeps only a few windows of each alive, whatever the number of workers,
//! and a finished segment, or a host with no line in the range, stalls no one.
//!
//! The workers are simulated in one thread, their rounds alternating, as
//! `groupset/pacing_tests.rs` does for `run`'s groups: what the stages after
//! the sources hold is every partial handed out at or past the frontier (the
//! lowest window any worker may still send).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use tidemark_jobs::Job;
use tidemark_sources::parse::LineParser;

use super::*;
use crate::backpressure::ReadGate;
use crate::input_end::InputEnd;
use crate::pacing::{PaceBoard, BOUND_WINDOWS};
use crate::plan::Plan;
use crate::replay::plan::{plan_replay, PlanOptions};
use crate::replay::progress::ReplayProgress;
use crate::replay::range::ReplayRange;
use crate::replay::shared::{ReplaySourceCtx, SegmentQueue};
use crate::stats::SinkMeters;

const MINUTE: i64 = 60_000;
const T0: i64 = 1_767_225_600_000;

/// A json job over `dir/*/app.log`, one-minute windows, each folder a host.
fn job(dir: &Path) -> Job {
    let text = format!(
        "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [\"{}/*/app.log\"]\n\
         host = {{ path_regex = '/(?P<host>h[0-9]+)/' }}\n\
         [parse]\nformat = \"json\"\n[window]\nsize = \"1m\"\n\
         [[metric]]\nname = \"n\"\nkind = \"counter\"\n\
         [[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n",
        dir.display()
    );
    let env = tidemark_jobs::Env::empty();
    tidemark_jobs::from_str_with_env(&text, "j.toml", Path::new("/"), &env)
        .unwrap_or_else(|d| panic!("{d}"))
}

/// Host `h` writes `per_minute` lines a minute over minutes `from..to`
/// (relative to the range's start); returns how many fall in `0..60`.
fn write_host(dir: &Path, h: usize, minutes: std::ops::Range<i64>, per_minute: i64) -> u64 {
    let folder = dir.join(format!("h{h}"));
    std::fs::create_dir_all(&folder).unwrap();
    let mut text = String::new();
    let mut inside = 0;
    for m in minutes {
        for i in 0..per_minute {
            let ms = m * MINUTE + i * MINUTE / per_minute;
            let t = jiff::Timestamp::from_millisecond(T0 + ms).unwrap();
            text.push_str(&format!("{{\"time\":\"{t}\",\"pad\":\"{:080}\"}}\n", i));
            inside += u64::from((0..60).contains(&m));
        }
    }
    std::fs::write(folder.join("app.log"), text).unwrap();
    inside
}

/// The context `workers` replay sources share for `job` over the range's
/// hour, segments of about `segment_bytes`.
fn ctx(job: &Job, workers: usize, segment_bytes: Option<u64>) -> ReplaySourceCtx {
    let range = ReplayRange::new(T0, T0 + 60 * MINUTE, MINUTE).unwrap();
    let opts = PlanOptions {
        workers,
        segment_bytes,
    };
    let replay = plan_replay(job, range, opts).unwrap();
    let progress = Arc::new(ReplayProgress::new());
    progress.add(&progress.bytes_total, replay.bytes_to_read);
    ReplaySourceCtx {
        queue: Arc::new(SegmentQueue::new(replay.segments)),
        plan: Arc::new(Plan::new(job)),
        range,
        parse: job.parse.clone(),
        max_line_bytes: job.source.max_line_bytes,
        chunk_bytes: 4 << 10,
        rate_limit: None,
        stop: Arc::new(AtomicBool::new(false)),
        stats: Arc::new(Mutex::new(JobStats::default())),
        progress,
        failed: Arc::new(Mutex::new(None)),
        input_end: Arc::new(InputEnd::capped_at(range.to_ms())),
        gate: ReadGate::new(SinkMeters::default()),
        pace: PaceBoard::new(workers),
        slot: 0,
    }
}

/// What a replay left alive at worst, and what it read.
#[derive(Debug)]
struct Alive {
    /// Host-windows alive at once: partials handed on at or past the frontier,
    /// plus the lanes' open windows.
    partials: usize,
    /// Windows between the frontier and the furthest partial handed on.
    windows: i64,
    lines: u64,
    /// Lines counted into windows.
    counted: u64,
    rounds: u32,
    paced_turns: u64,
    /// Lines each worker read.
    by_worker: Vec<u64>,
    bytes: u64,
}

/// Reads the whole plan with `workers` simulated workers, rounds alternating;
/// `bound_ms`: the pacing bound (`None`: the replay's own).
fn replay(ctx: &ReplaySourceCtx, workers: usize, bound_ms: Option<EventMs>) -> Alive {
    let mut lanes: Vec<Lanes> = (0..workers)
        .map(|w| {
            let pacer = match bound_ms {
                Some(b) => Pacer::new(b, ctx.pace.clone(), w),
                None => Lanes::pacer(ctx.plan.window_ms, ctx.pace.clone(), w),
            };
            Lanes::new(pacer)
        })
        .collect();
    let mut parser = LineParser::new(&ctx.parse, &ctx.plan.fields).unwrap();
    let mut stats: Vec<JobStats> = (0..workers).map(|_| JobStats::default()).collect();
    let mut tally = Tally::default();
    let wall = crate::time::wall_clock_ms();
    // Partials handed on and not yet below the frontier, by window.
    let mut held: BTreeMap<WindowTime, usize> = BTreeMap::new();
    let mut ended = vec![false; workers];
    let mut counted = 0u64;
    let mut alive = Alive {
        partials: 0,
        windows: 0,
        lines: 0,
        counted: 0,
        rounds: 0,
        paced_turns: 0,
        by_worker: Vec::new(),
        bytes: 0,
    };
    loop {
        alive.rounds += 1;
        assert!(alive.rounds < 100_000, "stalled: {alive:?}");
        let mut busy = false;
        for (w, l) in lanes.iter_mut().enumerate() {
            if ended[w] {
                // As the source: its operator is gone, it runs no more rounds.
                continue;
            }
            let c = ReplaySourceCtx {
                slot: w,
                ..ctx.clone()
            };
            let mut emit = |t: WindowTime, p: HostPartial| {
                if let crate::acc::Acc::Count(n) = p.acc {
                    counted += n;
                }
                *held.entry(t).or_default() += 1;
            };
            let r = l
                .round(
                    &c,
                    &mut parser,
                    16 << 10,
                    wall,
                    &mut stats[w],
                    &mut tally,
                    &mut emit,
                )
                .unwrap();
            busy |= r.busy || r.waiting;
        }
        // A source drops its capability when it has no lane and the queue is
        // empty, and is not activated again. It looks at the queue after its
        // round, and by then another worker may have taken the head the round
        // saw (threads): it looks here, after every worker's round, the latest
        // it can.
        for (w, l) in lanes.iter().enumerate() {
            ended[w] = ended[w] || l.hold_from(ctx.queue.head_lo()).is_none();
        }
        let frontier = lanes
            .iter()
            .filter_map(|l| l.open_from())
            .chain(ctx.queue.head_lo())
            .min()
            .unwrap_or(WindowTime::MAX);
        held.retain(|t, _| *t >= frontier);
        let open: usize = lanes.iter().map(|l| l.open_windows()).sum();
        alive.partials = alive.partials.max(held.values().sum::<usize>() + open);
        if let Some((last, _)) = held.last_key_value() {
            let span = (*last as i64 - frontier as i64) / MINUTE + 1;
            alive.windows = alive.windows.max(span);
        }
        if !busy && lanes.iter().all(|l| l.open_from().is_none()) && ctx.queue.head_lo().is_none() {
            break;
        }
    }
    alive.lines = stats.iter().map(|s| s.lines_read).sum();
    alive.by_worker = stats.iter().map(|s| s.lines_read).collect();
    alive.bytes = stats.iter().map(|s| s.bytes_read).sum();
    alive.counted = counted;
    alive.paced_turns = stats.iter().map(|s| s.paced_turns).sum();
    alive
}

#[test]
fn a_paced_replay_keeps_only_a_few_windows_of_each_host_alive() {
    let d = tempfile::tempdir().unwrap();
    let hosts = 12;
    let lines: u64 = (0..hosts).map(|h| write_host(d.path(), h, 0..60, 6)).sum();
    let job = job(d.path());
    for workers in [1, 2, 3] {
        let c = ctx(&job, workers, None);
        let paced = replay(&c, workers, None);
        assert_eq!((paced.lines, paced.counted), (lines, lines), "{paced:?}");
        // Bytes a segment put down had read past its stop are read again but
        // counted once: progress ends at 100%, and bytes read are the files'.
        let p = &c.progress;
        assert_eq!(p.get(&p.bytes_done), p.get(&p.bytes_total));
        assert_eq!(paced.bytes, p.get(&p.bytes_total));
        let bound = BOUND_WINDOWS + 2;
        assert!(paced.windows <= bound, "-w {workers}: {paced:?}");
        assert!(
            paced.partials <= hosts * bound as usize,
            "-w {workers}: {paced:?}"
        );
        // Without pacing (a bound no replay reaches), the same reads break
        // both bounds.
        let unpaced = replay(&ctx(&job, workers, None), workers, Some(EventMs::MAX / 4));
        assert_eq!(unpaced.lines, lines);
        assert!(unpaced.windows > bound, "-w {workers}: {unpaced:?}");
        assert!(
            unpaced.partials > hosts * bound as usize,
            "-w {workers}: {unpaced:?}"
        );
    }
}

/// A host whose file ends early (finished), one with no line in the range
/// (read whole: it jumps over it), and one starting late hold no one back.
#[test]
fn finished_and_empty_segments_stall_no_one() {
    let d = tempfile::tempdir().unwrap();
    let mut lines = write_host(d.path(), 0, 0..1, 2);
    assert_eq!(write_host(d.path(), 1, -3..-1, 4), 0);
    let mut text = std::fs::read_to_string(d.path().join("h1/app.log")).unwrap();
    write_host(d.path(), 1, 61..62, 4);
    text += &std::fs::read_to_string(d.path().join("h1/app.log")).unwrap();
    std::fs::write(d.path().join("h1/app.log"), text).unwrap();
    lines += write_host(d.path(), 2, 40..60, 4);
    for h in 3..6 {
        lines += write_host(d.path(), h, 0..60, 4);
    }
    let job = job(d.path());
    let run = replay(&ctx(&job, 1, None), 1, None);
    assert_eq!(run.counted, lines, "{run:?}");
    assert!(run.windows <= BOUND_WINDOWS + 2, "{run:?}");
    // Two workers: one of them may read host 2 ahead rather than idle (it
    // then holds its 20 windows); nothing stalls either way.
    let run = replay(&ctx(&job, 2, None), 2, None);
    assert_eq!(run.counted, lines, "{run:?}");
}

/// One host cut into many segments, two workers: the second one reads (ahead
/// of the horizon, whole) rather than idling while the first one's segment is
/// the slowest, and the result is the same.
#[test]
fn segments_of_one_host_are_read_by_every_worker() {
    let d = tempfile::tempdir().unwrap();
    let lines = write_host(d.path(), 0, 0..60, 120);
    let job = job(d.path());
    let c = ctx(&job, 2, Some(64 << 10));
    let run = replay(&c, 2, None);
    assert_eq!((run.lines, run.counted), (lines, lines), "{run:?}");
    assert!(c.progress.get(&c.progress.segments_done) > 10, "{run:?}");
    assert!(run.by_worker.iter().all(|&n| n > lines / 4), "{run:?}");
}

/// Two workers: worker 0 finishes its last lane while a segment is still
/// queued (past its horizon: worker 1's slot still holds the position of a
/// lane it has just finished), then worker 1 takes that segment (within its
/// own horizon, worker 0's position plus the bound) before worker 0's source
/// looks at the queue again and ends. Worker 0 publishes no more: its source
/// must release its slot as it ends, or worker 1's lane waits at worker 0's
/// last position for good (tests/replay.rs's proptest hung so at -w 3).
#[test]
fn a_source_ending_after_another_worker_took_the_last_segment_stalls_no_one() {
    let d = tempfile::tempdir().unwrap();
    // Host 0: more than a round's budget (16 KiB), all before the bound (6
    // minutes), so that its second round finishes it; host 1: a few lines,
    // finished in worker 1's first round; host 2 starts past the bound.
    let mut lines = write_host(d.path(), 0, 0..6, 24);
    assert!(
        std::fs::metadata(d.path().join("h0/app.log"))
            .unwrap()
            .len()
            > 16 << 10
    );
    lines += write_host(d.path(), 1, 0..2, 2);
    lines += write_host(d.path(), 2, 10..30, 24);
    let job = job(d.path());
    let c = ctx(&job, 2, None);
    let run = replay(&c, 2, None);
    assert_eq!((run.lines, run.counted), (lines, lines), "{run:?}");
    // Worker 1 read host 2 paced (it waited at the bound), not taken whole.
    assert!(run.paced_turns > 0, "{run:?}");
}
