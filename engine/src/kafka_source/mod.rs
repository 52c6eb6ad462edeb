//! Stage 1 for a `[source] kind = "kafka"` job (docs/kafka.md): consumes the topic's
//! partitions assigned to this worker and hands per-host partials on as the file
//! source does, each stream with the file group's semantics.
//!
//! Partitions are assigned by a fixed rule — partition `p` to global worker
//! `p mod workers` — with `assign`, never `subscribe`: no consumer-group rebalancing
//! moves a partition while its streams hold open windows. The group id only
//! receives committed offsets, so standard tools show the lag.
//!
//! A stream is an agent's file group (host, group: [`tidemark_kafka::wire`]) or, for
//! records not from an agent, a partition. An agent's resends are dropped by
//! sequence, its heartbeats let a quiet group's windows close ([`group::Stream::at_end`]).

pub(crate) mod consumer;
mod discover;
mod group;
mod pace;
pub mod resume;
mod scan;
pub mod sequence;
mod streams;
mod take;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidemark_jobs::Job;
use tidemark_sources::parse::LineParser;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, Stream as TimelyStream};

use crate::backpressure::{Gate, ReadGate, PAUSE_RECHECK};
use crate::error::FailureSlot;
use crate::input_end::InputEnd;
use crate::plan::Plan;
use crate::series::HostPartial;
use crate::stats::{flush, JobStats, SharedStats};
use crate::time::{first_open_window, wall_clock_ms, EventMs, WindowTime};

pub use consumer::ConnectError;
use consumer::{Polled, Reader};
use group::{Stream, StreamStart};
use streams::Streams;

/// Records taken per activation, so one activation stays short.
const RECORDS_PER_ACTIVATION: usize = 4096;
/// How soon to look again when the topic had nothing new.
const POLL_AGAIN: Duration = Duration::from_millis(20);
/// How soon to try again when the brokers cannot be reached.
const CONNECT_AGAIN: Duration = Duration::from_secs(1);
/// Warnings of one kind logged per worker before the rest are only counted.
const MAX_WARNINGS: u32 = 20;
/// Set (to anything) by `benches/kafka_backlog.sh LIVE=1` only, for its A/B figure:
/// a live run's catch-up is not paced (no window closes until every partition was
/// read to its end once), as before live pacing.
const BENCH_UNPACED_LIVE: &str = "TIDEMARK_BENCH_UNPACED_LIVE";

/// What a kafka source needs besides its scope.
pub(crate) struct KafkaCtx {
    pub(crate) job: Arc<Job>,
    pub(crate) plan: Arc<Plan>,
    /// Follow the topic (live mode), or stop at the end it had at start.
    pub(crate) follow: bool,
    pub(crate) gate: Arc<ReadGate>,
    pub(crate) stats: SharedStats,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) failed: FailureSlot,
    pub(crate) input_end: Arc<InputEnd>,
    /// Where the checkpoint resumed from left the streams, and the windows written.
    pub(crate) resume: Arc<crate::start::ResumePlan>,
    /// Where the streams publish their resume marks for checkpoints.
    pub(crate) board: Arc<crate::resume::ResumeBoard>,
    /// This worker's place on the job's pacing board ([`pace`]).
    pub(crate) pacer: crate::pacing::Pacer,
}

/// Builds the kafka source operator for this worker's partitions.
pub(crate) fn kafka_source<'scope>(
    scope: Scope<'scope, WindowTime>,
    ctx: KafkaCtx,
) -> TimelyStream<'scope, WindowTime, Vec<HostPartial>> {
    let (index, peers) = (scope.index(), scope.peers());
    source(scope, "KafkaSource", move |cap, info| {
        let activator = scope.activator_for(info.address);
        let mut cap = Some(cap);
        let mut state = SourceState::new(ctx, index, peers);
        move |output| {
            let Some(held) = cap.as_mut() else {
                return;
            };
            let now = Instant::now();
            match state.step(*held.time(), now) {
                Step::Stop => {
                    flush(&state.ctx.stats, &mut state.delta);
                    cap = None;
                }
                Step::Wait(wait) => {
                    flush(&state.ctx.stats, &mut state.delta);
                    activator.activate_after(wait);
                }
                Step::Read { busy } => {
                    let mut ready: BTreeMap<WindowTime, Vec<HostPartial>> = BTreeMap::new();
                    let open = state.close(|t, p| ready.entry(t).or_default().push(p));
                    for (t, parts) in ready {
                        output
                            .session(&held.delayed(&t))
                            .give_iterator(parts.into_iter());
                    }
                    flush(&state.ctx.stats, &mut state.delta);
                    if open == WindowTime::MAX {
                        state.reader_done();
                        cap = None;
                        return;
                    }
                    if open > *held.time() {
                        held.downgrade(&open);
                    }
                    if busy {
                        activator.activate();
                    } else {
                        activator.activate_after(POLL_AGAIN);
                    }
                }
            }
        }
    })
}

enum Step {
    /// Stopped: drop the capability, leave open windows unemitted.
    Stop,
    /// Nothing to do before this long.
    Wait(Duration),
    /// Records were read (`busy`: more are waiting).
    Read { busy: bool },
}

/// Counts of warnings logged, per kind.
#[derive(Default)]
struct Warned {
    connect: u32,
    bad: u32,
    sequence: u32,
    poll: u32,
    /// Heartbeats stamped in the future.
    ahead: u32,
}

struct SourceState {
    ctx: KafkaCtx,
    index: usize,
    peers: usize,
    reader: Option<Reader>,
    parser: Option<LineParser>,
    /// Agent streams by (host, group, partition); other records' by partition (host "").
    streams: Streams,
    delta: JobStats,
    paused: bool,
    warned: Warned,
    /// Where a stream found from now on starts (windows below may be closed).
    floor: EventMs,
    /// When connecting first failed (a finite run gives up after a while).
    failing_since: Option<Instant>,
    /// Since when the brokers have given nothing (no record, no partition end)
    /// while reading was not paused, and librdkafka's error count then.
    quiet_since: Option<(Instant, u32)>,
    /// The discovery pass of a finite run or a live run's catch-up ([`discover`]).
    scan: ScanPhase,
}

/// Where the discovery pass is.
enum ScanPhase {
    /// Not started, could not start (windows close as before pacing: a backlog's
    /// all at its end), or a live run caught up.
    Off,
    Running(Box<discover::Scan>),
    /// Every stream of the range is known: partitions are paced, windows close.
    Done(discover::Discovered),
}

impl SourceState {
    fn new(ctx: KafkaCtx, index: usize, peers: usize) -> SourceState {
        SourceState {
            ctx,
            index,
            peers,
            reader: None,
            parser: None,
            streams: Streams::default(),
            delta: JobStats::default(),
            paused: false,
            warned: Warned::default(),
            floor: 0,
            failing_since: None,
            quiet_since: None,
            scan: ScanPhase::Off,
        }
    }

    fn step(&mut self, held: WindowTime, now: Instant) -> Step {
        if self.ctx.stop.load(Ordering::SeqCst) {
            self.ctx.gate.end(now, &mut self.delta);
            self.delta.windows_open_at_stop += self
                .streams
                .values()
                .map(|s| s.open_windows() as u64)
                .sum::<u64>();
            if let Some(r) = &mut self.reader {
                r.commit_for_lag(true);
            }
            self.ctx.pacer.release();
            return Step::Stop;
        }
        self.floor = held as EventMs;
        if self.parser.is_none() {
            match LineParser::new(&self.ctx.job.parse, &self.ctx.plan.fields) {
                Ok(p) => self.parser = Some(p),
                Err(e) => {
                    // Validation built the same parser: this cannot happen for a
                    // checked job; stop rather than read lines that cannot count.
                    tracing::error!("kafka source: cannot build the line parser: {e}");
                    crate::error::record_failure(
                        &self.ctx.failed,
                        crate::error::JobFailure::Read(Box::new(
                            crate::error::EngineError::Parser(e),
                        )),
                    );
                    return Step::Wait(CONNECT_AGAIN);
                }
            }
        }
        if self.reader.is_none() {
            let job = self.ctx.job.clone();
            let kafka = job
                .source
                .kafka
                .as_ref()
                .expect("a kafka source is built for a kind = \"kafka\" job only");
            let starts: BTreeMap<i32, i64> = self
                .ctx
                .resume
                .kafka
                .iter()
                .flat_map(|k| k.partitions.iter().map(|p| (p.partition, p.next_offset)))
                .collect();
            match Reader::connect(
                kafka,
                &self.ctx.job.name,
                self.index,
                self.peers,
                self.ctx.follow,
                &starts,
            ) {
                Ok(mut r) => {
                    self.restore_streams(&r, now);
                    // The variable is for benches/kafka_backlog.sh's A/B only (LIVE=1):
                    // a live catch-up unpaced, every window held until caught up.
                    let unpaced = self.ctx.follow && std::env::var_os(BENCH_UNPACED_LIVE).is_some();
                    if !unpaced {
                        self.start_scan(&mut r, kafka);
                    }
                    self.reader = Some(r);
                }
                Err(e) => {
                    let since = *self.failing_since.get_or_insert(now);
                    // A finite run cannot end without its input: a missing topic
                    // (a typo) fails at once, brokers that never answer after a while.
                    let give_up = !self.ctx.follow
                        && (matches!(e, ConnectError::NoTopic(_))
                            || now.duration_since(since) >= kafka.broker_timeout);
                    if give_up {
                        tracing::error!("kafka source of job {:?}: {e}", self.ctx.job.name);
                        crate::error::record_failure(
                            &self.ctx.failed,
                            crate::error::JobFailure::Read(Box::new(
                                crate::error::EngineError::KafkaSource(e),
                            )),
                        );
                        return Step::Wait(CONNECT_AGAIN);
                    }
                    self.warned.connect += 1;
                    if self.warned.connect <= MAX_WARNINGS {
                        tracing::warn!(
                            "kafka source of job {:?}: {e}; trying again",
                            self.ctx.job.name
                        );
                    }
                    return Step::Wait(CONNECT_AGAIN);
                }
            }
        }
        if let Some(step) = self.scan_step(now) {
            return step;
        }
        match (self.ctx.gate.check(now, &mut self.delta), self.paused) {
            (Gate::Paused, _) => {
                self.paused = true;
                // Not reading is not the brokers' doing.
                self.quiet_since = None;
                return Step::Wait(PAUSE_RECHECK);
            }
            (Gate::Open, true) => {
                self.paused = false;
                for s in self.streams.values_mut() {
                    // Its records waited, unread: not idle meanwhile.
                    s.touched(now);
                }
            }
            (Gate::Open, false) => {}
        }
        let wall_ms = wall_clock_ms();
        let mut taken = 0;
        let mut busy = false;
        let mut progress = false;
        // Out of `self` while its records are taken (they borrow it).
        let mut reader = self.reader.take().expect("connected above");
        match &self.scan {
            // A backlog (a finite run, or a live one catching up): paced.
            ScanPhase::Done(found) if !self.ctx.follow || !reader.caught_up() => {
                let follow = self.ctx.follow;
                let parts = pace::read_through(&reader, follow);
                let lanes = pace::lanes(parts, &self.streams, found);
                self.delta.paced_turns += pace::pace(&mut reader, &lanes, &self.ctx.pacer, follow);
            }
            ScanPhase::Done(_) => {
                // Caught up: nothing paused, no one held back.
                self.scan = ScanPhase::Off;
                reader.pace(|_| true);
                self.ctx.pacer.release();
            }
            _ => {}
        }
        while taken < RECORDS_PER_ACTIVATION {
            let polled = reader.poll();
            progress |= !matches!(polled, Polled::Nothing | Polled::Error(_));
            match polled {
                Polled::Nothing => break,
                Polled::Error(e) => {
                    self.warned.poll += 1;
                    if self.warned.poll <= MAX_WARNINGS {
                        tracing::warn!("kafka source of job {:?}: {e}", self.ctx.job.name);
                    }
                    break;
                }
                Polled::Skip => {}
                Polled::Again {
                    partition,
                    offset,
                    next,
                    first,
                } => {
                    self.delta.kafka_reread_records += 1;
                    if first {
                        self.warned.poll += 1;
                        if self.warned.poll <= MAX_WARNINGS {
                            tracing::warn!(
                                "kafka source of job {:?}: partition {partition} went back from offset {next} to {offset} (the broker refused the offset and reading restarted at its first kept record, or it sent records again): records read already are skipped (kafka_reread_records)",
                                self.ctx.job.name
                            );
                        }
                    }
                }
                Polled::Record(record) => {
                    taken += 1;
                    self.delta.kafka_records += 1;
                    self.take(&record, now, wall_ms);
                }
            }
            if taken == RECORDS_PER_ACTIVATION {
                busy = true;
            }
        }
        reader.commit_for_lag(false);
        let held_back = reader.held_back();
        if let Some(failed) = self.stalled(&reader, progress || reader.finished() || held_back, now)
        {
            self.reader = Some(reader);
            return failed;
        }
        // Live: partitions added to the topic are read too (windows wait for them
        // to be read to their end once, as at start).
        reader.look_for_new_partitions();
        if let (false, ScanPhase::Done(found)) = (self.ctx.follow, &self.scan) {
            pace::finish_read(|p| reader.next_offset(p), &mut self.streams, found);
        }
        if reader.finished() {
            self.ctx.pacer.release();
            for s in self.streams.values_mut() {
                s.finish();
            }
        } else if self.ctx.follow && (reader.caught_up() || matches!(self.scan, ScanPhase::Done(_)))
        {
            // Caught up, or catching up with every stream of the backlog known: a
            // stream at its partition's end and quiet for `idle_timeout` holds no
            // window open.
            let plan = &self.ctx.plan;
            for s in self.streams.values_mut() {
                if reader.at_eof(s.partition) {
                    s.apply_idle(now, wall_ms, plan);
                }
            }
            if !matches!(self.scan, ScanPhase::Done(_)) {
                // Caught up (or no pass): no finding of a pass is in use, none need
                // know which streams were forgotten.
                self.streams.pass_over();
            }
            if let Some(kafka) = &self.ctx.job.source.kafka {
                let forgotten = self.streams.sweep(
                    now,
                    kafka.stream_retention,
                    self.ctx.board.committed(),
                    |p| reader.at_eof(p),
                    &mut self.delta,
                );
                if !forgotten.is_empty() {
                    self.ctx.board.kafka.forget(
                        forgotten
                            .iter()
                            .map(|k| (k.host(), k.group(), k.partition())),
                    );
                }
            }
        }
        self.reader = Some(reader);
        self.publish();
        Step::Read { busy }
    }

    /// Watches for brokers that give nothing (`[source] broker_timeout`): a finite
    /// run that has not read to its end fails naming them; a live run is warned
    /// (when librdkafka reported errors meanwhile: a quiet topic is no fault) and
    /// keeps trying. `Some` when the run fails.
    fn stalled(&mut self, reader: &Reader, progress: bool, now: Instant) -> Option<Step> {
        let errors = reader.client_errors();
        if progress || reader.finished() {
            self.quiet_since = None;
            return None;
        }
        let (since, errors_then) = *self.quiet_since.get_or_insert((now, errors));
        let kafka = self.ctx.job.source.kafka.as_ref()?;
        if now.duration_since(since) < kafka.broker_timeout {
            return None;
        }
        let waited = tidemark_jobs::duration::format_duration(kafka.broker_timeout);
        if self.ctx.follow {
            if errors > errors_then {
                tracing::warn!(
                    "kafka source of job {:?}: nothing from the brokers {} for {waited} and {} client error(s) meanwhile; still trying",
                    self.ctx.job.name,
                    kafka.brokers,
                    errors - errors_then
                );
            }
            // Warned at most once per broker_timeout.
            self.quiet_since = Some((now, errors));
            return None;
        }
        if self.ctx.failed.lock().map_or(true, |f| f.is_some()) {
            // Failed already (said once): wait for the run to stop.
            return Some(Step::Wait(CONNECT_AGAIN));
        }
        let e = match reader.stuck_below_end() {
            Some((partition, at, end)) => ConnectError::StuckBelowEnd {
                partition,
                at,
                end,
                waited,
            },
            None => ConnectError::Stalled {
                brokers: kafka.brokers.clone(),
                waited,
            },
        };
        tracing::error!("kafka source of job {:?}: {e}", self.ctx.job.name);
        crate::error::record_failure(
            &self.ctx.failed,
            crate::error::JobFailure::Read(Box::new(crate::error::EngineError::KafkaSource(e))),
        );
        Some(Step::Wait(CONNECT_AGAIN))
    }

    /// How a stream found now starts.
    fn stream_start(&self, now: Instant) -> StreamStart {
        StreamStart {
            floor: self.floor,
            skip_below: self.ctx.resume.skip_below,
            checkpointing: self.ctx.resume.checkpointing,
            now,
        }
    }

    /// The streams of this worker's partitions as the checkpoint left them: they
    /// hold windows open from the start, as resumed file groups do.
    fn restore_streams(&mut self, reader: &Reader, now: Instant) {
        let start = self.stream_start(now);
        let plan = &self.ctx.plan;
        for cp in self.ctx.resume.kafka.iter().flat_map(|k| k.streams.iter()) {
            if reader.reads(cp.partition) {
                self.streams
                    .insert(&cp.host, &cp.group, Stream::restored(cp, plan, start));
            }
        }
    }

    /// Shares the streams' resume marks with the checkpoint writer.
    fn publish(&mut self) {
        if !self.ctx.resume.checkpointing {
            return;
        }
        let committed = self.ctx.board.committed();
        let mut changed = Vec::new();
        for (key, s) in self.streams.iter_mut() {
            if s.dirty {
                s.prune_marks(committed);
                s.dirty = false;
                changed.push(((key.host(), key.group()), s));
            }
        }
        let partitions = self.reader.iter().flat_map(|r| r.positions());
        self.ctx.board.kafka.publish(
            changed
                .iter()
                .filter_map(|(k, s)| s.marks.as_ref().map(|m| (*k, s.partition, m))),
            partitions,
        );
    }

    /// Hands on every window the streams' watermarks passed; returns the first
    /// window this worker may still add to.
    fn close(&mut self, mut emit: impl FnMut(WindowTime, HostPartial)) -> WindowTime {
        let plan = &self.ctx.plan;
        let mut reached = WindowTime::MIN;
        for s in self.streams.values_mut() {
            s.close_windows(plan, &mut emit);
            reached = reached.max(s.watermark_window(plan));
        }
        if reached != WindowTime::MIN {
            self.ctx.input_end.raise(reached as EventMs);
        }
        let Some(reader) = &self.reader else {
            return self.floor as WindowTime;
        };
        if reader.finished() {
            return WindowTime::MAX;
        }
        if let ScanPhase::Done(found) = &self.scan {
            if !self.ctx.follow || !reader.caught_up() {
                // Every stream of the backlog that can still add to a window is known.
                return match pace::first_open(&self.streams, found, plan) {
                    // No stream can add to a window any more, but records are left
                    // (bad ones, other shippers' without a host, heartbeats): they are
                    // read and counted before the source ends (review R15p: it ended
                    // here, skipping them and pinning its pacing slot, so another
                    // worker waited for ever). The held time stays where it is.
                    Some(WindowTime::MAX) | None => self.floor as WindowTime,
                    Some(t) => t,
                };
            }
        }
        // Until every partition was read to its end once, a stream not seen yet may
        // still come with old lines: nothing closes before then (exactness first).
        if !self.ctx.follow || !reader.caught_up() {
            return self.floor as WindowTime;
        }
        match self.streams.values().map(|s| s.first_open(plan)).min() {
            Some(t) => t,
            None => first_open_window(Some(wall_clock_ms() - plan.idle_timeout_ms), plan.window_ms),
        }
    }

    fn reader_done(&mut self) {
        // Whatever ends the reading frees this worker's place on the pacing board.
        self.ctx.pacer.release();
        if let Some(r) = &mut self.reader {
            r.commit_for_lag(true);
        }
    }
}
