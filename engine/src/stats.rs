//! Self-metrics a job keeps while it runs; printed on shutdown.

use crate::time::EventMs;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub mod export;
mod gauges;
mod member;
pub mod sink;
mod summary;
pub use gauges::{GroupGauges, MemberGroup};
pub use member::MemberStats;
pub use sink::{SinkMeter, SinkMeters};

/// One job's self-metrics: what its sources read, refused and skipped, and what it wrote.
/// Each worker counts into a local `JobStats` and folds it into the job's shared one
/// ([`flush`]); the total is the exit summary of `tidemark run` and `replay`, decides a
/// finite run's exit status, and feeds a cluster member's [`MemberStats`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JobStats {
    /// File groups found (a live file and its rotated siblings are one group).
    pub file_groups: u64,
    /// Files in those groups when they were found, rotated ones included.
    pub files_discovered: u64,
    /// Files opened for reading (a file reopened after a rotation or parking counts again).
    pub files_opened: u64,
    /// Segments of large files read by several workers at once (`crate::split`).
    pub split_segments: u64,
    /// Of those, segments read a second time, with the true clock: their
    /// speculative read judged a line near its start differently (a cost, not a loss).
    pub split_rereads: u64,
    /// Times the include globs were evaluated (discovery runs, the first one
    /// included): in live mode on a layout change (a file appeared, moved or
    /// went away) and every few seconds as a safety net, never per write.
    pub discovery_runs: u64,
    /// Files that could not be opened or read, or whose real path is outside the allowed
    /// roots.
    pub file_open_errors: u64,
    /// Live files truncated with no copy of the old content: read again from the start.
    pub truncations: u64,
    /// Live files renamed away and replaced (rename + create rotation).
    pub rotations: u64,
    /// Truncations whose old content was found in a copy and read from there (copytruncate
    /// rotation).
    pub copytruncates: u64,
    /// Files deleted while open: read to their end, then closed.
    pub deletions: u64,
    /// Resume points whose file could not be found again after a restart.
    pub resume_misses: u64,
    /// Per group (live path): bytes behind the end of its files when last measured.
    pub lag_bytes: BTreeMap<std::path::PathBuf, u64>,
    /// Bytes read from the files.
    pub bytes_read: u64,
    /// Lines read, before parsing.
    pub lines_read: u64,
    /// Lines longer than `max_line_bytes`: skipped.
    pub oversize_lines: u64,
    /// Lines that are not valid UTF-8, whether they then parsed (read with U+FFFD replacements) or not.
    pub invalid_utf8_lines: u64,
    /// Lines that could not be parsed, by reason.
    pub parse_errors: BTreeMap<&'static str, u64>,
    /// Values a metric could not use: metric → reason → count. The line still counts
    /// for the job's other metrics.
    pub value_errors: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// Lines whose event time is below their group's watermark (their window may be
    /// closed): not counted in any window.
    pub late_lines: u64,
    /// Lines added to a window in this run (before `max_series`, which counts its own
    /// drops): neither malformed, too long, late, nor of a window already written.
    pub lines_counted: u64,
    /// Windows handed to the sinks.
    pub windows_emitted: u64,
    /// What each of the job's sinks is (`Sink::describe`), in job file order.
    pub sinks: Vec<String>,
    /// Start and end of the last window written (for status reports).
    pub last_window_ms: Option<(EventMs, EventMs)>,
    /// Every window before this is written: the job's output frontier.
    pub frontier_ms: Option<EventMs>,
    /// Checkpoints saved (each after the sinks were synced up to its frontier).
    pub checkpoints_written: u64,
    /// Checkpoint saves that found no file descriptor left (EMFILE/ENFILE) and
    /// were tried again later.
    pub checkpoint_fd_waits: u64,
    /// Per worker index: files held open and live files parked (closed while
    /// idle to keep within `max_open_files`), as of its last read round.
    pub open_files: BTreeMap<usize, (u64, u64)>,
    /// Parked files opened again.
    pub reopens: u64,
    /// Of those reopens, how many found no file descriptor (EMFILE/ENFILE) and waited.
    pub reopen_fd_waits: u64,
    /// Parked files deleted or moved out of their folder before they were
    /// reopened: lines written to them after parking, if any, were not read.
    pub lost_while_parked: u64,
    /// Files closed mid-read for event-time pacing and deleted or moved out of
    /// their folder before they were reopened: their unread lines were lost.
    pub lost_while_paused: u64,
    /// Turns in which a group waited for a file descriptor because no group
    /// ahead of it could be closed mid-read safely (each was reading a rotated
    /// sibling, a compressed file, or one deleted or set aside): exact, but
    /// pacing does not bound how far the groups holding one run ahead.
    pub paced_fd_waits: u64,
    /// Tries to open a file that found no file descriptor (EMFILE/ENFILE), after
    /// each of which the group waited longer (from `poll_interval` to 5 s).
    pub fd_backoffs: u64,
    /// Windows still open when a live run was stopped (not emitted: not final).
    pub windows_open_at_stop: u64,
    /// Group turns ended early or deferred by event-time pacing: the group
    /// reached the bound ahead of the slowest group with lines to read
    /// ([`crate::pacing`]).
    pub paced_turns: u64,
    /// Closed windows a stop found held back for a sink that was not ready
    /// (its receiver slow or down): not emitted; with checkpoints the next run
    /// computes them again.
    pub windows_held_at_stop: u64,
    /// `max_series`: per metric, lines of series left out because the window had
    /// more series of the metric than its share (see `crate::limit`).
    pub series_limit_dropped: BTreeMap<String, u64>,
    /// Windows that lost series to `max_series` (each warned about once), with
    /// those of earlier runs this one resumed after.
    pub series_limited_windows: u64,
    /// Which of them a checkpoint records (worker 0's process only).
    pub limited_windows: crate::limit::LimitedWindows,
    /// Per group (live path), the files that could not be opened or read, with
    /// the error: in a live run those its group waits for now; in a finite run
    /// those skipped (the run then fails). Empty lists once resolved.
    pub unreadable_files: BTreeMap<std::path::PathBuf, Vec<(std::path::PathBuf, String)>>,
    /// Groups left out as another path (a directory link, `..`, a hard link) to
    /// the files of a group already read.
    pub duplicate_paths: u64,
    /// Matched paths that are not regular files (FIFOs, devices, sockets): not read.
    pub not_regular_files: u64,
    /// Directory links leading back to their own ancestor: not followed.
    pub symlink_loops: u64,
    /// Compressed files whose data ended early or was corrupt (read up to the
    /// damage; whether the rest was lost is logged).
    pub damaged_gzip_files: u64,
    // A kafka source's records (see `crate::kafka_source`).
    /// Records read from the topic (lines, heartbeats and others).
    pub kafka_records: u64,
    /// Agent lines at or below the sequence already taken from their group (an
    /// agent resent them after a restart): dropped, never counted twice.
    pub kafka_resent_lines: u64,
    /// Agent lines that never arrived: sequence numbers skipped (lost upstream).
    pub kafka_lost_lines: u64,
    /// Agent groups that started a new sequence epoch (the agent lost its state).
    pub kafka_new_epochs: u64,
    /// Records that could not be used: an agent's with a bad header, or another
    /// shipper's without the host header. Skipped.
    pub kafka_bad_records: u64,
    /// Agent heartbeats stamped further ahead of this machine's clock than
    /// `max_clock_skew` (the agent's clock is wrong): their time is ignored (their
    /// sequence is still taken), so they cannot push a watermark into the future.
    pub kafka_heartbeats_ahead: u64,
    /// Records below their partition's next offset, read again after the broker
    /// sent reading back (an out-of-range offset reset to the earliest): skipped,
    /// never taken twice.
    pub kafka_reread_records: u64,
    /// Streams forgotten after `stream_retention` without a record, holding nothing.
    pub kafka_streams_pruned: u64,
    /// Forgotten streams that sent again (they go on where they were).
    pub kafka_streams_returned: u64,
    /// Agent groups found in a partition other than the one they were read in (a
    /// new epoch after the topic's partitions changed): read as a stream of their
    /// own there.
    pub kafka_streams_moved: u64,
    // Clock errors (see `crate::watermark`).
    /// Lines stamped more than `max_jump` ahead of their file group that the next
    /// line did not confirm: counted in their own windows, ignored by the watermark.
    pub outlier_lines: u64,
    /// Live mode, per group (live path): how far (ms) its lines trailed this
    /// machine's clock when it was last released for it; 0 once they caught up.
    pub clock_lag_ms: BTreeMap<std::path::PathBuf, i64>,
    /// Live mode, per group: how far (ms) the lines it keeps writing trail this
    /// machine's clock, by more than `max_clock_lag`, while their time moves
    /// (not released: it holds the job's windows back); 0 once caught up.
    pub clock_behind_ms: BTreeMap<std::path::PathBuf, i64>,
    /// Lines read after a restart, past where the previous run had read, whose
    /// window that run had already written: not in the output (a finite run
    /// exits 3).
    pub late_after_written: u64,
    /// Each sink's live counters, in the order of the job's sinks.
    pub sink_meters: SinkMeters,
    /// Times the job's sources paused reading because a sink was backlogged
    /// (back-pressure from a slow or down receiver; see `crate::backpressure`).
    pub output_pauses: u64,
    /// How long those pauses lasted in all, ms (a pause counts once it ends).
    pub output_paused_ms: u64,
    /// `[[alert]]` evaluations: one per alert per window (gap windows included).
    pub alerts_evaluated: u64,
    /// Alert instances firing after the last window evaluated (a gauge).
    pub alerts_firing: u64,
    /// Alert instances that started firing or were resolved.
    pub alert_transitions: u64,
    /// Series an alert left out because another series of the same window gave
    /// the same instance (its `labels` overwrote the label that told them apart).
    pub alert_series_collisions: u64,
    /// Per group (live path): its figures as its worker last published them
    /// (about once a second, and when the run stops), for `/metrics`.
    pub groups: BTreeMap<std::path::PathBuf, GroupGauges>,
    /// When the last checkpoint was saved (ms since the epoch), and how long it
    /// took (µs), the sinks' sync included.
    pub last_checkpoint: Option<(i64, u64)>,
    /// The job's metrics, in job file order: `/metrics` shows their per-metric
    /// counters (values not usable, series left out) at 0 before the first event.
    pub metric_names: Vec<String>,
    /// Groups (live paths) found gone since the last fold: their live file no
    /// longer exists and every byte of theirs was read. Never kept: folding it
    /// ([`JobStats::add`]) removes the groups' entries from the per-group maps,
    /// so a run whose files come and go does not keep a series per file ever seen.
    pub gone_groups: Vec<std::path::PathBuf>,
    /// Cluster (process 0's view): each other member's groups as it last
    /// reported them, by process index; `/metrics` shows them with a `member`
    /// label (the same path may be a group on every machine).
    pub member_groups: BTreeMap<usize, BTreeMap<std::path::PathBuf, MemberGroup>>,
    /// Cluster (process 0's view): files the other members cannot open or read now.
    pub member_files_failing: u64,
    /// Cluster (process 0's view): groups of other members not in
    /// `member_groups` (past 1,000 each).
    pub member_groups_left_out: u64,
    /// Cluster: this process's index, shown as the `member` label of its own
    /// groups' series (`None` in a `run`: no `member` label).
    pub member_index: Option<usize>,
    /// Set by the caller before the job starts when someone reads `groups`
    /// (`run --metrics-addr`, a cluster's `/metrics`): only then do the workers
    /// publish their groups' figures (a copy of every group's path each second).
    /// Never folded by [`JobStats::add`].
    pub groups_wanted: bool,
}

/// Every reason a metric may refuse a value (see [`JobStats::value_errors`]): a
/// fixed list, so that each shows at 0 before its first event.
pub const VALUE_ERROR_REASONS: [&str; 5] = [
    "field_missing",
    "not_a_number",
    "not_finite",
    "too_large",
    "negative_histogram_value",
];

impl JobStats {
    /// Adds `o`'s counters to these (per-group maps merge by group), as workers' stats fold
    /// into the job's and jobs' into a total.
    pub fn add(&mut self, o: &JobStats) {
        self.file_groups += o.file_groups;
        self.files_discovered += o.files_discovered;
        self.files_opened += o.files_opened;
        self.split_segments += o.split_segments;
        self.split_rereads += o.split_rereads;
        self.discovery_runs += o.discovery_runs;
        self.file_open_errors += o.file_open_errors;
        self.truncations += o.truncations;
        self.rotations += o.rotations;
        self.copytruncates += o.copytruncates;
        self.deletions += o.deletions;
        self.resume_misses += o.resume_misses;
        for (k, v) in &o.lag_bytes {
            self.lag_bytes.insert(k.clone(), *v);
        }
        self.bytes_read += o.bytes_read;
        self.lines_read += o.lines_read;
        self.oversize_lines += o.oversize_lines;
        self.invalid_utf8_lines += o.invalid_utf8_lines;
        for (k, v) in &o.parse_errors {
            *self.parse_errors.entry(k).or_default() += v;
        }
        for (metric, reasons) in &o.value_errors {
            let mine = self.value_errors.entry(metric.clone()).or_default();
            for (reason, n) in reasons {
                *mine.entry(reason).or_default() += n;
            }
        }
        self.late_lines += o.late_lines;
        self.lines_counted += o.lines_counted;
        self.windows_emitted += o.windows_emitted;
        // A total over jobs names each sink once.
        for sink in &o.sinks {
            if !self.sinks.contains(sink) {
                self.sinks.push(sink.clone());
            }
        }
        self.last_window_ms = self.last_window_ms.max(o.last_window_ms);
        self.frontier_ms = self.frontier_ms.max(o.frontier_ms);
        self.checkpoints_written += o.checkpoints_written;
        self.checkpoint_fd_waits += o.checkpoint_fd_waits;
        for (k, v) in &o.open_files {
            self.open_files.insert(*k, *v);
        }
        self.reopens += o.reopens;
        self.reopen_fd_waits += o.reopen_fd_waits;
        self.lost_while_parked += o.lost_while_parked;
        self.lost_while_paused += o.lost_while_paused;
        self.paced_fd_waits += o.paced_fd_waits;
        self.fd_backoffs += o.fd_backoffs;
        self.windows_open_at_stop += o.windows_open_at_stop;
        self.paced_turns += o.paced_turns;
        self.windows_held_at_stop += o.windows_held_at_stop;
        for (metric, n) in &o.series_limit_dropped {
            *self.series_limit_dropped.entry(metric.clone()).or_default() += n;
        }
        self.series_limited_windows += o.series_limited_windows;
        self.duplicate_paths += o.duplicate_paths;
        self.not_regular_files += o.not_regular_files;
        self.symlink_loops += o.symlink_loops;
        self.damaged_gzip_files += o.damaged_gzip_files;
        for (group, files) in &o.unreadable_files {
            self.unreadable_files.insert(group.clone(), files.clone());
        }
        self.outlier_lines += o.outlier_lines;
        self.kafka_records += o.kafka_records;
        self.kafka_resent_lines += o.kafka_resent_lines;
        self.kafka_lost_lines += o.kafka_lost_lines;
        self.kafka_new_epochs += o.kafka_new_epochs;
        self.kafka_bad_records += o.kafka_bad_records;
        self.kafka_heartbeats_ahead += o.kafka_heartbeats_ahead;
        self.kafka_reread_records += o.kafka_reread_records;
        self.kafka_streams_pruned += o.kafka_streams_pruned;
        self.kafka_streams_returned += o.kafka_streams_returned;
        self.kafka_streams_moved += o.kafka_streams_moved;
        for (k, v) in &o.clock_lag_ms {
            self.clock_lag_ms.insert(k.clone(), *v);
        }
        self.late_after_written += o.late_after_written;
        for (k, v) in &o.clock_behind_ms {
            self.clock_behind_ms.insert(k.clone(), *v);
        }
        self.sink_meters.merge(&o.sink_meters);
        self.output_pauses += o.output_pauses;
        self.output_paused_ms += o.output_paused_ms;
        self.alerts_evaluated += o.alerts_evaluated;
        self.alerts_firing += o.alerts_firing;
        self.alert_transitions += o.alert_transitions;
        self.alert_series_collisions += o.alert_series_collisions;
        for (k, v) in &o.groups {
            self.groups.insert(k.clone(), *v);
        }
        self.last_checkpoint = self.last_checkpoint.max(o.last_checkpoint);
        for (member, groups) in &o.member_groups {
            self.member_groups.insert(*member, groups.clone());
        }
        self.member_files_failing += o.member_files_failing;
        self.member_groups_left_out += o.member_groups_left_out;
        self.member_index = self.member_index.or(o.member_index);
        for m in &o.metric_names {
            if !self.metric_names.contains(m) {
                self.metric_names.push(m.clone());
            }
        }
        // Last: a group found gone in `o` loses what `o` itself said of it too.
        for live in &o.gone_groups {
            self.groups.remove(live);
            self.lag_bytes.remove(live);
            self.clock_lag_ms.remove(live);
            self.clock_behind_ms.remove(live);
            self.unreadable_files.remove(live);
        }
    }

    /// Counts `lines` of `metric` left out by `max_series`, allocating only the
    /// first time.
    pub(crate) fn count_series_dropped(&mut self, metric: &str, lines: u64) {
        match self.series_limit_dropped.get_mut(metric) {
            Some(n) => *n += lines,
            None if lines > 0 => {
                self.series_limit_dropped.insert(metric.to_string(), lines);
            }
            None => {}
        }
    }

    /// Whether `max_series` left any series out.
    pub fn series_limited(&self) -> bool {
        self.series_limited_windows > 0 || !self.series_limit_dropped.is_empty()
    }

    /// The files that could not be opened or read (see
    /// [`JobStats::unreadable_files`]), sorted, each once.
    pub fn unreadable(&self) -> Vec<(&std::path::Path, &str)> {
        let mut all: Vec<(&std::path::Path, &str)> = self
            .unreadable_files
            .values()
            .flatten()
            .map(|(p, e)| (p.as_path(), e.as_str()))
            .collect();
        all.sort();
        all.dedup_by(|a, b| a.0 == b.0);
        all
    }

    /// Groups currently released because their clock trails the wall clock.
    pub fn trailing_clock_groups(&self) -> u64 {
        self.clock_lag_ms.values().filter(|lag| **lag > 0).count() as u64
    }

    /// Counts one value `metric` could not use, allocating only the first time.
    pub(crate) fn count_value_error(&mut self, metric: &str, reason: &'static str) {
        match self.value_errors.get_mut(metric) {
            Some(reasons) => *reasons.entry(reason).or_default() += 1,
            None => {
                self.value_errors
                    .insert(metric.to_string(), BTreeMap::from([(reason, 1)]));
            }
        }
    }

    /// Lines that could not be parsed, over every reason.
    pub fn parse_errors_total(&self) -> u64 {
        self.parse_errors.values().sum()
    }
}

/// Shared between the workers of one process.
pub type SharedStats = Arc<Mutex<JobStats>>;

/// Folds `delta` into `shared` and resets it.
pub fn flush(shared: &SharedStats, delta: &mut JobStats) {
    if *delta == JobStats::default() {
        return;
    }
    if let Ok(mut s) = shared.lock() {
        s.add(delta);
    }
    *delta = JobStats::default();
}

#[cfg(test)]
mod tests;
