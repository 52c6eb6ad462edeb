//! The job-wide families: reading, what became of the lines, output and checkpoints.

use prometheus_client::registry::Unit;

use super::{job, one, secs, with, Families};
use crate::stats::{JobStats, VALUE_ERROR_REASONS};
use crate::time::EventMs;
use tidemark_sources::parse::LineError;

pub(super) fn reading(f: &mut Families<'_>) {
    f.counter(
        "lines_read",
        "Lines read from the job's files, before parsing",
        None,
        |j, s| one(j, s.lines_read),
    );
    f.counter(
        "read",
        "Bytes read from the job's files",
        Some(Unit::Bytes),
        |j, s| one(j, s.bytes_read),
    );
    f.counter(
        "file_groups_found",
        "File groups found (a live file and its rotated siblings are one group)",
        None,
        |j, s| one(j, s.file_groups),
    );
    f.counter(
        "files_opened",
        "Files opened for reading (a reopen counts again)",
        None,
        |j, s| one(j, s.files_opened),
    );
    f.counter(
        "split_segments",
        "Segments of large files read by several workers at once (--until-eof)",
        None,
        |j, s| one(j, s.split_segments),
    );
    f.counter(
        "split_rereads",
        "Split segments read a second time: a line near their start was judged differently against the lines before it",
        None,
        |j, s| one(j, s.split_rereads),
    );
    f.counter(
        "file_open_errors",
        "Tries to open or read a file that failed, or whose real path is outside the allowed roots",
        None,
        |j, s| one(j, s.file_open_errors),
    );
    f.gauge(
        "files_open",
        "Files held open now, over the job's workers",
        None,
        |j, s| {
            let open: u64 = s.open_files.values().map(|(o, _)| o).sum();
            Some((job(j), open as f64))
        },
    );
    f.gauge(
        "files_parked",
        "Live files closed while idle to keep within max_open_files",
        None,
        |j, s| {
            let parked: u64 = s.open_files.values().map(|(_, p)| p).sum();
            Some((job(j), parked as f64))
        },
    );
    f.gauge(
        "files_failing",
        "Files that cannot be opened or read now (a live run waits for them)",
        None,
        |j, s| {
            let failing = s.unreadable().len() as u64 + s.member_files_failing;
            Some((job(j), failing as f64))
        },
    );
    f.counter(
        "rotations",
        "Live files renamed away and replaced (rename and create rotation)",
        None,
        |j, s| one(j, s.rotations),
    );
    f.counter(
        "copytruncates",
        "Truncations whose old content was read from its copy (copytruncate rotation)",
        None,
        |j, s| one(j, s.copytruncates),
    );
    f.counter(
        "truncations",
        "Live files truncated with no copy of the old content, read again from the start",
        None,
        |j, s| one(j, s.truncations),
    );
    file_edges(f);
    f.counter(
        "read_pauses",
        "Times the job's sources paused reading because a sink was backlogged (back-pressure)",
        None,
        |j, s| one(j, s.output_pauses),
    );
    f.gauge(
        "reads_paused",
        "1 while the job's sources pause reading because a sink is backlogged, else 0",
        None,
        |j, s| Some((job(j), f64::from(u8::from(s.sink_meters.backlogged())))),
    );
}

/// The file source's rarer events, each a counter of its own.
fn file_edges(f: &mut Families<'_>) {
    type Get = fn(&JobStats) -> u64;
    let edges: [(&str, &str, Get); 15] = [
        ("discovery_runs", "Times the include globs were evaluated (live mode: on a file created, moved or deleted, and every few seconds as a safety net; never per write)", |s| s.discovery_runs),
        ("files_deleted_while_open", "Files deleted while open: read to their end, then closed", |s| s.deletions),
        ("resume_misses", "Resume points whose file could not be found again after a restart", |s| s.resume_misses),
        ("file_reopens", "Parked files opened again", |s| s.reopens),
        ("files_lost_while_parked", "Parked files deleted or moved away before a reopen (lines written after parking, if any, not read)", |s| s.lost_while_parked),
        ("files_lost_while_paused", "Files closed mid-read for event-time pacing, then deleted or moved away before a reopen: their unread lines lost", |s| s.lost_while_paused),
        ("paced_fd_waits", "Turns a group waited for a file descriptor that no group ahead could safely free by closing its file mid-read (pacing did not bound memory then)", |s| s.paced_fd_waits),
        ("fd_backoffs", "Tries to open a file that found no file descriptor (EMFILE/ENFILE), after which the group waited longer", |s| s.fd_backoffs),
        ("reopen_fd_waits", "Reopens of parked files that found no file descriptor and waited", |s| s.reopen_fd_waits),
        ("paced_turns", "Group turns ended early or deferred by event-time pacing: the input reached its pacing bound ahead of the slowest one with lines to read (ten windows for file groups, six for replay segments and Kafka partitions)", |s| s.paced_turns),
        ("checkpoint_fd_waits", "Checkpoint saves that found no file descriptor and were tried again", |s| s.checkpoint_fd_waits),
        ("duplicate_paths", "Groups left out as another path (a directory link, a hard link) to files already read", |s| s.duplicate_paths),
        ("not_regular_files", "Matched paths that are not regular files (FIFOs, devices, sockets): not read", |s| s.not_regular_files),
        ("symlink_loops", "Directory links leading back to their own ancestor: not followed", |s| s.symlink_loops),
        ("damaged_gzip_files", "Compressed files whose data ended early or was corrupt (read up to the damage)", |s| s.damaged_gzip_files),
    ];
    for (name, help, get) in edges {
        f.counter(name, help, None, |j, s| one(j, get(s)));
    }
}

pub(super) fn lines(f: &mut Families<'_>) {
    f.counter(
        "lines_counted",
        "Lines added to a window (before max_series)",
        None,
        |j, s| one(j, s.lines_counted),
    );
    f.counter(
        "lines_late",
        "Lines below their group's watermark, not counted in any window",
        None,
        |j, s| one(j, s.late_lines),
    );
    f.counter(
        "lines_malformed",
        "Lines that could not be parsed, by reason (skipped)",
        None,
        |j, s| {
            // Every reason from the start (a fixed list), then any other (`other`
            // from a member of another version).
            let fixed = LineError::ALL.iter().map(|e| e.reason());
            let others = s
                .parse_errors
                .keys()
                .copied()
                .filter(|r| !fixed.clone().any(|f| f == *r));
            fixed
                .clone()
                .chain(others)
                .map(|reason| {
                    let n = s.parse_errors.get(reason).copied().unwrap_or(0);
                    (with(job(j), "reason", reason), n)
                })
                .collect::<Vec<_>>()
        },
    );
    f.counter(
        "lines_too_long",
        "Lines longer than max_line_bytes (skipped)",
        None,
        |j, s| one(j, s.oversize_lines),
    );
    f.counter(
        "lines_invalid_utf8",
        "Lines that are not valid UTF-8 (read with replacement characters if they parsed)",
        None,
        |j, s| one(j, s.invalid_utf8_lines),
    );
    f.counter(
        "kafka_records",
        "Records read from a kafka source's topic",
        None,
        |j, s| one(j, s.kafka_records),
    );
    f.counter("kafka_resent_lines", "Agent lines at or below their group's sequence already taken (resent after an agent restart): dropped", None, |j, s| one(j, s.kafka_resent_lines));
    f.counter(
        "kafka_lost_lines",
        "Agent lines that never arrived (sequence numbers skipped: lost upstream)",
        None,
        |j, s| one(j, s.kafka_lost_lines),
    );
    f.counter(
        "kafka_new_epochs",
        "Agent groups that started a new sequence epoch (the agent lost its state)",
        None,
        |j, s| one(j, s.kafka_new_epochs),
    );
    f.counter("kafka_heartbeats_ahead", "Agent heartbeats stamped further ahead of this machine's clock than max_clock_skew: their time ignored (the agent's clock is wrong)", None, |j, s| one(j, s.kafka_heartbeats_ahead));
    f.counter("kafka_reread_records", "Records below their partition's next offset, read again after the broker sent reading back (offset out of range, reset to the earliest): skipped", None, |j, s| one(j, s.kafka_reread_records));
    f.counter(
        "kafka_streams_pruned",
        "Kafka streams forgotten after stream_retention without a record, holding nothing",
        None,
        |j, s| one(j, s.kafka_streams_pruned),
    );
    f.counter(
        "kafka_streams_returned",
        "Forgotten kafka streams that sent again (they go on where they were)",
        None,
        |j, s| one(j, s.kafka_streams_returned),
    );
    f.counter(
        "kafka_streams_moved",
        "Agent groups read in a second partition (a new epoch after the topic's partitions changed): a stream of their own there",
        None,
        |j, s| one(j, s.kafka_streams_moved),
    );
    f.counter("kafka_bad_records", "Records of a kafka source that could not be used (bad agent headers, no host header): skipped", None, |j, s| one(j, s.kafka_bad_records));
    f.counter("lines_future", "Lines stamped more than max_jump ahead of their group and not confirmed by the next line (clock skew): kept in their windows, ignored by the watermark", None, |j, s| one(j, s.outlier_lines));
    f.counter("lines_late_after_written", "Lines read after a restart whose window an earlier run had already written (not in the output)", None, |j, s| one(j, s.late_after_written));
    f.counter("series_limit_dropped_lines", "Lines of series left out because a window had more series of the metric than max_series allows, by metric", None, |j, s| {
        metrics_of(s)
            .map(|metric| {
                let n = s.series_limit_dropped.get(metric).copied().unwrap_or(0);
                (with(job(j), "metric", metric.to_string()), n)
            })
            .collect::<Vec<_>>()
    });
    f.counter("value_errors", "Values a metric could not use, by metric and reason (the line still counts for the job's other metrics)", None, |j, s| {
        let mut rows = Vec::new();
        for metric in metrics_of(s) {
            let counted = s.value_errors.get(metric);
            let others = counted
                .into_iter()
                .flat_map(|r| r.keys().copied())
                .filter(|r| !VALUE_ERROR_REASONS.contains(r));
            for reason in VALUE_ERROR_REASONS.into_iter().chain(others) {
                let n = counted.and_then(|r| r.get(reason)).copied().unwrap_or(0);
                let labels = with(with(job(j), "metric", metric.to_string()), "reason", reason);
                rows.push((labels, n));
            }
        }
        rows
    });
}

/// The job's metrics (from the start, each at 0), then any other a counter
/// names (a job's stats filled in by hand, as in a total over jobs).
fn metrics_of(s: &JobStats) -> impl Iterator<Item = &str> {
    let named = s.metric_names.iter().map(String::as_str);
    let counted = s
        .series_limit_dropped
        .keys()
        .chain(s.value_errors.keys())
        .map(String::as_str)
        .filter(|m| !s.metric_names.iter().any(|n| n == m));
    let mut all: Vec<&str> = named.chain(counted).collect();
    // Dedup without reordering the job's own.
    let mut seen = std::collections::HashSet::new();
    all.retain(|m| seen.insert(*m));
    all.into_iter()
}

pub(super) fn output(f: &mut Families<'_>, wall_ms: EventMs) {
    f.counter(
        "series_limited_windows",
        "Windows that lost series to max_series (with those of the runs this one resumed after)",
        None,
        |j, s| one(j, s.series_limited_windows),
    );
    // Before the first window, or at the very start (MIN), there is no
    // watermark to show: no series rather than a nonsense value.
    let frontier = |s: &JobStats| s.frontier_ms.filter(|ms| *ms > EventMs::MIN);
    f.counter(
        "windows_emitted",
        "Windows handed to the sinks",
        None,
        |j, s| one(j, s.windows_emitted),
    );
    f.gauge(
        "watermark_timestamp",
        "The job's output frontier: every window that ends by then is written (Unix seconds)",
        Some(Unit::Seconds),
        |j, s| frontier(s).map(|ms| (job(j), secs(ms))),
    );
    f.gauge(
        "watermark_lag",
        "How far the job's output frontier trails the wall clock",
        Some(Unit::Seconds),
        |j, s| frontier(s).map(|ms| (job(j), secs(wall_ms.saturating_sub(ms)))),
    );
    f.counter("checkpoints", "Checkpoints saved", None, |j, s| {
        one(j, s.checkpoints_written)
    });
    f.gauge(
        "checkpoint_age",
        "Time since the last checkpoint was saved",
        Some(Unit::Seconds),
        |j, s| {
            s.last_checkpoint
                .map(|(at, _)| (job(j), secs(wall_ms.saturating_sub(at).max(0))))
        },
    );
    f.gauge(
        "checkpoint_duration",
        "How long the last checkpoint took, the sinks' sync included",
        Some(Unit::Seconds),
        |j, s| {
            s.last_checkpoint
                .map(|(_, us)| (job(j), us as f64 / 1_000_000.0))
        },
    );
    alerts(f);
}

/// The `[[alert]]` evaluator's figures (docs/alerts.md).
fn alerts(f: &mut Families<'_>) {
    f.counter(
        "alert_evaluations",
        "Alert evaluations: one per [[alert]] per window, windows without records included",
        None,
        |j, s| one(j, s.alerts_evaluated),
    );
    f.counter(
        "alert_transitions",
        "Alert instances that started firing or were resolved",
        None,
        |j, s| one(j, s.alert_transitions),
    );
    f.gauge(
        "alerts_firing",
        "Alert instances firing after the last window evaluated",
        None,
        |j, s| Some((job(j), s.alerts_firing as f64)),
    );
    f.counter(
        "alert_series_collisions",
        "Series an alert left out because another series of the same window gave the same instance labels",
        None,
        |j, s| one(j, s.alert_series_collisions),
    );
}
