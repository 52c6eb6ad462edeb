//! One stream of a kafka source: an agent's file group (host, group), or, for records
//! not from an agent, a partition. Each has the file group's semantics: event time
//! from the parsed line, its own watermark, late lines dropped, per-host windows.

use std::sync::Arc;
use std::time::Instant;

use tidemark_sources::parse::LineParser;

use crate::agg::{explain, stamp, OpenWindows};
use crate::plan::{HostPlan, Plan};
use crate::series::HostPartial;
use crate::stats::JobStats;
use crate::time::{first_open_window, window_start, EventMs, WindowTime};
use crate::watermark::GroupClock;

use super::resume::{Point, StreamCheckpoint, StreamMarks};
use super::sequence::{SeqState, Verdict};
use tidemark_kafka::wire::GroupRef;

/// Warnings logged per stream before further bad lines are only counted.
const MAX_WARNINGS: u32 = 10;

/// Sequence warnings logged per worker before the rest are only counted.
const MAX_SEQUENCE_WARNINGS: u32 = 20;

/// An agent's record, for [`Stream::agent_record`].
pub(crate) enum AgentItem<'a> {
    /// A line, and the host its series are labelled with.
    Line {
        seq: u64,
        line: &'a [u8],
        host: &'a str,
    },
    /// Every line up to `seq` sent, as of wall time `at_ms`.
    Heartbeat { seq: u64, at_ms: EventMs },
}

/// What taking a record needs besides the stream.
pub(crate) struct RecordCx<'a> {
    pub(crate) parser: &'a mut LineParser,
    pub(crate) plan: &'a Plan,
    pub(crate) wall_ms: EventMs,
    pub(crate) max_line: usize,
    pub(crate) stats: &'a mut JobStats,
    /// Sequence warnings logged so far.
    pub(crate) warned: &'a mut u32,
    /// How much earlier than a heartbeat's time a later line may be stamped
    /// (`[source] heartbeat_grace`).
    pub(crate) heartbeat_grace_ms: i64,
    /// Warnings about heartbeats stamped in the future logged so far.
    pub(crate) warned_ahead: &'a mut u32,
    /// When the broker appended the record, if the topic stamps records so
    /// (`message.timestamp.type = LogAppendTime`): what a heartbeat is judged
    /// against (see [`heartbeat_in_time`]).
    pub(crate) append_ms: Option<EventMs>,
}

/// What a stream starts with.
#[derive(Clone, Copy)]
pub(crate) struct StreamStart {
    /// Lines below this are late (a stream found after its worker moved on).
    pub(crate) floor: EventMs,
    /// Windows below this are in the sinks already.
    pub(crate) skip_below: EventMs,
    /// Keep resume marks (only when checkpoints are written).
    pub(crate) checkpointing: bool,
    pub(crate) now: Instant,
}

/// A stream's state in one worker.
pub(crate) struct Stream {
    /// What its partials fold by: the agent's group (its live path, as a file job
    /// names the same group), or `partition N` for other records.
    key: Arc<str>,
    /// The partition it is read from (its idleness is the partition's).
    pub(crate) partition: i32,
    /// The agent's sequence state (unused for other records).
    pub(crate) seq: SeqState,
    wm: GroupClock,
    windows: OpenWindows,
    /// When its last record arrived (live mode's idle timeout).
    last_record: Instant,
    /// Set at the end of a finite run: every window closes.
    finished: bool,
    warnings: u32,
    /// Its records below this offset are in its restored state: skipped.
    pub(crate) resume_from: i64,
    /// Its records below this offset were read by an earlier run (see
    /// [`StreamCheckpoint::seen_to`]).
    seen_to: i64,
    /// Windows below this are in the sinks already.
    skip_below: EventMs,
    /// Resume marks, kept only when checkpoints are written.
    pub(crate) marks: Option<StreamMarks>,
    /// Changed since its marks were last published.
    pub(crate) dirty: bool,
    /// Made from its first record in this run's range (not restored from a
    /// checkpoint, not returned after `stream_retention`): the discovery pass fed a
    /// shadow every record it reads, from the same state, so the earliest window
    /// the pass found for it bounds the windows it can add to ([`Stream::bounded_by`]).
    fresh: bool,
}

impl Stream {
    /// A new stream; lines below `start.floor` are late (windows before it may be
    /// closed).
    pub(crate) fn new(key: &str, partition: i32, plan: &Plan, start: StreamStart) -> Stream {
        let mut wm = GroupClock::new(plan.disorder_ms, plan.max_jump_ms);
        if start.floor > 0 {
            wm.raise_to(start.floor);
        }
        Stream {
            key: key.into(),
            partition,
            seq: SeqState::default(),
            wm,
            windows: OpenWindows::default(),
            last_record: start.now,
            finished: false,
            warnings: 0,
            resume_from: i64::MIN,
            // Not in the checkpoint: its records of windows already written are
            // read again (or the checkpoint was written before it was seen).
            seen_to: i64::MAX,
            skip_below: start.skip_below,
            marks: start.checkpointing.then(StreamMarks::default),
            dirty: true,
            fresh: true,
        }
    }

    /// A stream the discovery pass ([`super::discover`]) runs ahead of the reading
    /// to see where its lines start: no marks, no warnings (the reading proper logs).
    pub(crate) fn shadow(key: &str, partition: i32, plan: &Plan, now: Instant) -> Stream {
        let mut s = Stream::new(
            key,
            partition,
            plan,
            StreamStart {
                floor: 0,
                skip_below: EventMs::MIN,
                checkpointing: false,
                now,
            },
        );
        s.warnings = u32::MAX / 2;
        s
    }

    /// Whether its watermark has taken a line's time (its first line is confirmed
    /// or rejected): every line it counts from now on is at or past its watermark.
    pub(crate) fn clock_started(&self) -> bool {
        self.wm.max_seen().is_some()
    }

    /// Its watermark (`None` before its first line or floor).
    pub(crate) fn watermark(&self) -> Option<EventMs> {
        self.wm.get()
    }

    /// Whether it was finished (no more records in a finite run).
    pub(crate) fn is_finished(&self) -> bool {
        self.finished
    }

    /// The earliest window it holds data of.
    pub(crate) fn first_data_window(&self) -> Option<WindowTime> {
        self.windows.first_start()
    }

    /// A stream as a checkpoint left it.
    pub(crate) fn restored(cp: &StreamCheckpoint, plan: &Plan, start: StreamStart) -> Stream {
        let mut s = Stream::new(
            &cp.group,
            cp.partition,
            plan,
            StreamStart { floor: 0, ..start },
        );
        s.wm = GroupClock::restored(plan.disorder_ms, plan.max_jump_ms, cp.clock());
        s.fresh = false;
        s.seq = cp.seq;
        s.resume_from = cp.offset;
        s.seen_to = cp.seen_to;
        if let Some(m) = &mut s.marks {
            m.set_seen_to(cp.seen_to);
            // Until its first record is read again, it resumes where it did.
            m.set_tail(Point {
                offset: cp.offset,
                clock: cp.clock(),
                seq: cp.seq,
            });
        }
        s
    }

    /// A stream forgotten after `stream_retention` that sends again: it goes on
    /// with the sequence and clock it had (its lines below `start.floor` are late).
    pub(crate) fn returned(
        key: &str,
        partition: i32,
        plan: &Plan,
        start: StreamStart,
        seq: SeqState,
        clock: crate::watermark::ClockState,
    ) -> Stream {
        let mut s = Stream::new(key, partition, plan, start);
        s.wm = GroupClock::restored(plan.disorder_ms, plan.max_jump_ms, clock);
        s.fresh = false;
        if start.floor > 0 {
            s.wm.raise_to(start.floor);
        }
        s.seq = seq;
        s
    }

    /// What is kept of it when it is forgotten: its sequence and clock.
    pub(crate) fn kept(&self) -> (SeqState, crate::watermark::ClockState) {
        (self.seq, self.wm.state())
    }

    /// Whether it may be forgotten: no record for `retention`, no window open,
    /// none waiting for the sinks (marks pruned to the committed frontier).
    pub(crate) fn forgettable(&self, now: Instant, retention: std::time::Duration) -> bool {
        !self.finished
            && self.windows.len() == 0
            && self.resume_offset().is_none()
            && now.duration_since(self.last_record) >= retention
    }

    /// The offset it resumes at, if a window of it is not yet in the sinks.
    pub(crate) fn resume_offset(&self) -> Option<i64> {
        self.marks.as_ref().and_then(|m| m.first_offset())
    }

    /// The offset after its last record, if it had one (and keeps marks).
    pub(crate) fn tail_offset(&self) -> Option<i64> {
        self.marks.as_ref().and_then(|m| m.tail_offset())
    }

    /// Its state now, before a record at `offset`.
    pub(crate) fn point(&self, offset: i64) -> Point {
        Point {
            offset,
            clock: self.wm.state(),
            seq: self.seq,
        }
    }

    /// After its record at `offset`: where it would resume if no window were open.
    pub(crate) fn after_record(&mut self, offset: i64) {
        let after = self.point(offset + 1);
        if let Some(m) = &mut self.marks {
            m.set_tail(after);
            self.dirty = true;
        }
    }

    /// A record arrived (line or heartbeat).
    pub(crate) fn touched(&mut self, now: Instant) {
        self.last_record = now;
    }

    /// Takes an agent's record at `offset`: judged by sequence (resends dropped,
    /// gaps and new epochs counted), then a line is aggregated and a heartbeat
    /// may move the watermark. Records before the stream's resume point are in its
    /// restored state already: skipped.
    pub(crate) fn agent_record(
        &mut self,
        offset: i64,
        group: &GroupRef<'_>,
        item: AgentItem<'_>,
        cx: &mut RecordCx<'_>,
    ) {
        if offset < self.resume_from {
            return;
        }
        let before = self.point(offset);
        match item {
            AgentItem::Line { seq, line, host } => {
                let verdict = self.seq.line(group.epoch, seq);
                if judge(verdict, group, seq, cx.stats, cx.warned) {
                    self.plain(line, host, before, cx);
                }
            }
            AgentItem::Heartbeat { seq, at_ms } => {
                let verdict = self.seq.heartbeat(group.epoch, seq);
                // A heartbeat older than lines taken says nothing new (not a line).
                if verdict != Verdict::Resend
                    && judge(verdict, group, seq, cx.stats, cx.warned)
                    && heartbeat_in_time(at_ms, group, cx)
                {
                    self.at_end(at_ms, cx.plan, cx.heartbeat_grace_ms);
                }
            }
        }
        self.after_record(offset);
    }

    /// Takes a record not from an agent (a line labelled `host`) at `offset`.
    pub(crate) fn plain_record(
        &mut self,
        offset: i64,
        line: &[u8],
        host: &str,
        cx: &mut RecordCx<'_>,
    ) {
        if offset < self.resume_from {
            return;
        }
        let before = self.point(offset);
        self.plain(line, host, before, cx);
        self.after_record(offset);
    }

    fn plain(&mut self, line: &[u8], host: &str, before: Point, cx: &mut RecordCx<'_>) {
        cx.stats.lines_read += 1;
        cx.stats.bytes_read += line.len() as u64 + 1;
        if line.len() > cx.max_line {
            cx.stats.oversize_lines += 1;
            return;
        }
        self.line(line, host, before, cx.parser, cx.plan, cx.wall_ms, cx.stats);
    }

    /// Parses `line`, stamps it, drops it if late, adds it to its window under
    /// `host` (unless the job reads the host from a field).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn line(
        &mut self,
        line: &[u8],
        host: &str,
        before: Point,
        parser: &mut LineParser,
        plan: &Plan,
        wall_ms: EventMs,
        stats: &mut JobStats,
    ) {
        let future_limit = wall_ms.saturating_add(plan.max_clock_skew_ms);
        let (parsed, t) = match stamp(parser, line, future_limit, stats) {
            Ok(p) => p,
            Err(reason) => {
                self.warnings += 1;
                if self.warnings <= MAX_WARNINGS {
                    tracing::warn!(
                        "kafka {}: a line is skipped: {} ({:?}){}",
                        self.key,
                        explain(reason),
                        String::from_utf8_lossy(&line[..line.len().min(200)]),
                        if self.warnings == MAX_WARNINGS {
                            " — further bad lines of this stream are only counted"
                        } else {
                            ""
                        }
                    );
                }
                return;
            }
        };
        let start = window_start(t, plan.window_ms);
        let seen = self.wm.see(t);
        if seen.outlier.is_some() {
            stats.outlier_lines += 1;
        }
        if seen.late {
            stats.late_lines += 1;
            return;
        }
        if start < self.skip_below {
            if before.offset >= self.seen_to {
                // New, but its window was written by an earlier run.
                stats.late_after_written += 1;
            }
            // Otherwise read again after a restart: for the watermark only, as
            // the first time.
            return;
        }
        if let Some(m) = &mut self.marks {
            if !m.has(start) {
                m.mark(start, before);
            }
        }
        let host = match &plan.host {
            HostPlan::Field(slot) => parsed.field(*slot).unwrap_or(""),
            HostPlan::PerGroup => host,
        };
        stats.lines_counted += 1;
        self.windows.add(plan, &parsed, t, start, host, stats);
    }

    /// The agent said the stream had sent every line as of wall time `at_ms`: lines
    /// to come are stamped after it, less `grace_ms` (a line written later may carry
    /// an earlier time: a request logged at its end with its start time, a buffered
    /// writer), so windows before that may close without waiting for
    /// `idle_timeout`. Never further than a line stamped `at_ms` would move it
    /// (`at_ms` less the allowed disorder): a heartbeat never makes late a line the
    /// line data alone would take.
    pub(crate) fn at_end(&mut self, at_ms: EventMs, plan: &Plan, grace_ms: i64) {
        self.wm
            .raise_to(at_ms.saturating_sub(grace_ms.max(plan.disorder_ms)));
    }

    /// Live mode: a stream whose partition is caught up and which had no record
    /// for `idle_timeout` stops holding windows open, as an idle file group does.
    pub(crate) fn apply_idle(&mut self, now: Instant, wall_ms: EventMs, plan: &Plan) {
        if now.duration_since(self.last_record).as_millis() as i64 >= plan.idle_timeout_ms {
            self.wm.raise_to(wall_ms - plan.idle_timeout_ms);
        }
    }

    /// The end of a finite run: every window may close.
    pub(crate) fn finish(&mut self) {
        self.finished = true;
    }

    /// The earliest window it may still add to.
    pub(crate) fn first_open(&self, plan: &Plan) -> WindowTime {
        if self.finished {
            return WindowTime::MAX;
        }
        first_open_window(self.wm.get(), plan.window_ms)
    }

    /// The earliest window it may still add to, at or after `pass`: the earliest
    /// window the discovery pass found for it (`None`: the pass did not find it;
    /// [`WindowTime::MAX`]: it has no line). The pass's bound counts only for a
    /// stream made this run (a restored or returned one starts from a state the
    /// pass's shadow did not have). Without it, a stream read to its first line
    /// only (its watermark waits for a second, maybe an hour later in its
    /// partition) would hold every window from the start.
    pub(crate) fn bounded_by(&self, plan: &Plan, pass: Option<WindowTime>) -> WindowTime {
        let own = self.first_open(plan);
        match pass {
            Some(w) if self.fresh => own.max(w),
            _ => own,
        }
    }

    /// Where it stands for pacing: its watermark, raised for a stream made this run
    /// to the pass's earliest window (`pass` as in [`Stream::bounded_by`]), as a
    /// stream not read yet stands there. `None`: it adds to no window, so it holds
    /// its partition nowhere.
    pub(crate) fn paced_at(&self, pass: Option<WindowTime>) -> Option<Option<EventMs>> {
        let wm = self.watermark();
        match pass {
            Some(WindowTime::MAX) if self.fresh => None,
            // [`WindowTime::MIN`]: where its lines start is unknown.
            Some(w) if self.fresh && w != WindowTime::MIN => Some(wm.max(Some(w as EventMs))),
            _ => Some(wm),
        }
    }

    /// The first window its watermark leaves open ([`crate::input_end`]).
    pub(crate) fn watermark_window(&self, plan: &Plan) -> WindowTime {
        first_open_window(self.wm.get(), plan.window_ms)
    }

    /// Hands every window its watermark passed to `emit`.
    pub(crate) fn close_windows(
        &mut self,
        plan: &Plan,
        mut emit: impl FnMut(WindowTime, HostPartial),
    ) {
        let below = (!self.finished).then(|| first_open_window(self.wm.get(), plan.window_ms));
        let key = &self.key;
        self.windows
            .drain(below, |t, s| emit(t, s.into_partial(key, 0)));
    }

    /// Windows with data not yet emitted.
    pub(crate) fn open_windows(&self) -> usize {
        self.windows.len()
    }

    /// Forgets marks of windows the sinks have.
    pub(crate) fn prune_marks(&mut self, committed: EventMs) {
        if let Some(m) = &mut self.marks {
            m.prune_below(committed);
        }
    }
}

/// Whether a heartbeat's time may move the watermark: not if it is further ahead of
/// the clock than `max_clock_skew` (the agent's clock is wrong; trusting it would
/// make every later line of the stream late). Such a heartbeat's time is ignored —
/// its sequence was taken — counted and warned (rate-limited).
///
/// The clock: the broker's append time when the topic stamps records with it
/// (`LogAppendTime`), the same each time the record is read, so a restart that
/// reads the heartbeat again judges it as the first read did. Otherwise the record's
/// timestamp is the agent's own (CreateTime, the clock being judged) and only this
/// machine's clock at read time is left: a heartbeat ahead when first read may be in
/// time when read again after a restart (docs/kafka.md).
fn heartbeat_in_time(at_ms: EventMs, group: &GroupRef<'_>, cx: &mut RecordCx<'_>) -> bool {
    let clock_ms = cx.append_ms.unwrap_or(cx.wall_ms);
    let limit = clock_ms.saturating_add(cx.plan.max_clock_skew_ms);
    if at_ms <= limit {
        return true;
    }
    cx.stats.kafka_heartbeats_ahead += 1;
    *cx.warned_ahead += 1;
    if *cx.warned_ahead <= MAX_SEQUENCE_WARNINGS {
        tracing::warn!(
            "kafka: agent {} group {}: a heartbeat stamped {} ahead of this machine's clock (more than max_clock_skew): its time is ignored (is the agent's clock wrong?); counted in kafka_heartbeats_ahead{}",
            group.host,
            group.group,
            crate::watermark::format_span(at_ms - clock_ms),
            if *cx.warned_ahead == MAX_SEQUENCE_WARNINGS {
                " — further ones are only counted"
            } else {
                ""
            }
        );
    }
    false
}

/// Counts and warns about a sequence verdict; whether to take the record.
fn judge(
    verdict: Verdict,
    group: &GroupRef<'_>,
    seq: u64,
    stats: &mut JobStats,
    warned: &mut u32,
) -> bool {
    let mut warn = |what: String| {
        *warned += 1;
        if *warned <= MAX_SEQUENCE_WARNINGS {
            tracing::warn!("kafka: agent {} group {}: {what}", group.host, group.group);
        }
    };
    match verdict {
        Verdict::Take => true,
        Verdict::Resend => {
            stats.kafka_resent_lines += 1;
            false
        }
        Verdict::Gap { lost } => {
            stats.kafka_lost_lines += lost;
            warn(format!(
                "{lost} line(s) before sequence {seq} never arrived (lost upstream); counted in kafka_lost_lines"
            ));
            true
        }
        Verdict::NewEpoch { from, lost } => {
            if let Some(from) = from {
                stats.kafka_new_epochs += 1;
                warn(format!(
                    "a new sequence epoch {:016x} (was {from:016x}): the agent lost its state for this group; its lines are taken",
                    group.epoch
                ));
            }
            if lost > 0 {
                stats.kafka_lost_lines += lost;
                warn(format!(
                    "its first record here is sequence {seq}: {lost} earlier line(s) of epoch {:016x} are not in the topic (retention, or lost upstream)",
                    group.epoch
                ));
            }
            true
        }
    }
}

#[cfg(test)]
mod tests;
