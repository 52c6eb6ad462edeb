//! Self-metrics a job keeps while it runs; printed on shutdown.

use crate::time::EventMs;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JobStats {
    pub file_groups: u64,
    pub files_discovered: u64,
    pub files_opened: u64,
    pub file_open_errors: u64,
    pub truncations: u64,
    pub rotations: u64,
    pub copytruncates: u64,
    pub deletions: u64,
    /// Resume points whose file could not be found again after a restart.
    pub resume_misses: u64,
    /// Per group (live path): bytes behind the end of its files when last measured.
    pub lag_bytes: BTreeMap<std::path::PathBuf, u64>,
    pub bytes_read: u64,
    pub lines_read: u64,
    pub oversize_lines: u64,
    pub invalid_utf8_lines: u64,
    /// Lines that could not be parsed, by reason.
    pub parse_errors: BTreeMap<&'static str, u64>,
    /// Values a metric could not use: metric → reason → count. The line still counts
    /// for the job's other metrics.
    pub value_errors: BTreeMap<String, BTreeMap<&'static str, u64>>,
    pub late_lines: u64,
    pub windows_emitted: u64,
    /// Start and end of the last window written (for status reports).
    pub last_window_ms: Option<(EventMs, EventMs)>,
    /// Every window before this is written: the job's output frontier.
    pub frontier_ms: Option<EventMs>,
    pub checkpoints_written: u64,
    /// Windows still open when a live run was stopped (not emitted: not final).
    pub windows_open_at_stop: u64,
    // Clock errors (see `crate::watermark`).
    /// Lines stamped more than `max_jump` ahead of their file group that the next
    /// line did not confirm: counted in their own windows, ignored by the watermark.
    pub outlier_lines: u64,
    /// Live mode, per group (live path): how far (ms) its lines trailed this
    /// machine's clock when it was last released for it; 0 once they caught up.
    pub clock_lag_ms: BTreeMap<std::path::PathBuf, i64>,
}

impl JobStats {
    pub fn add(&mut self, o: &JobStats) {
        self.file_groups += o.file_groups;
        self.files_discovered += o.files_discovered;
        self.files_opened += o.files_opened;
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
        self.windows_emitted += o.windows_emitted;
        self.last_window_ms = self.last_window_ms.max(o.last_window_ms);
        self.frontier_ms = self.frontier_ms.max(o.frontier_ms);
        self.checkpoints_written += o.checkpoints_written;
        self.windows_open_at_stop += o.windows_open_at_stop;
        self.outlier_lines += o.outlier_lines;
        for (k, v) in &o.clock_lag_ms {
            self.clock_lag_ms.insert(k.clone(), *v);
        }
    }

    /// Groups currently released because their clock trails the wall clock.
    pub fn trailing_clock_groups(&self) -> u64 {
        self.clock_lag_ms.values().filter(|lag| **lag > 0).count() as u64
    }

    /// Counts one value `metric` could not use, allocating only the first time.
    pub fn count_value_error(&mut self, metric: &str, reason: &'static str) {
        match self.value_errors.get_mut(metric) {
            Some(reasons) => *reasons.entry(reason).or_default() += 1,
            None => {
                self.value_errors
                    .insert(metric.to_string(), BTreeMap::from([(reason, 1)]));
            }
        }
    }

    pub fn parse_errors_total(&self) -> u64 {
        self.parse_errors.values().sum()
    }

    /// A short human summary, one item per line.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "file groups: {}\nfiles read: {} ({} could not be opened)\n",
            self.file_groups, self.files_opened, self.file_open_errors,
        );
        s.push_str(&self.lines_summary());
        s.push_str(&format!(
            "files discovered: {}; rotations: {} (rename), {} (copytruncate); truncations: {}; deletions: {}\n",
            self.files_discovered, self.rotations, self.copytruncates, self.truncations, self.deletions
        ));
        if self.resume_misses > 0 {
            s.push_str(&format!(
                "resume points not found after restart: {}\n",
                self.resume_misses
            ));
        }
        for (live, lag) in &self.lag_bytes {
            s.push_str(&format!(
                "lag behind end of file: {} bytes ({})\n",
                lag,
                live.display()
            ));
        }
        for (live, lag) in self.clock_lag_ms.iter().filter(|(_, lag)| **lag > 0) {
            s.push_str(&format!(
                "clock behind by {}, not holding windows open (its older lines are late): {}\n",
                crate::watermark::format_span(*lag),
                live.display()
            ));
        }
        s.push_str(&format!("windows emitted: {}\n", self.windows_emitted));
        if self.checkpoints_written > 0 {
            s.push_str(&format!(
                "checkpoints written: {}\n",
                self.checkpoints_written
            ));
        }
        if self.windows_open_at_stop > 0 {
            s.push_str(&format!(
                "windows still open at stop (not emitted): {}\n",
                self.windows_open_at_stop
            ));
        }
        s
    }

    /// What was read and what could not be used: bytes, lines, late, oversize,
    /// invalid UTF-8 and malformed lines (by reason), unusable values.
    pub fn lines_summary(&self) -> String {
        let mut s = format!(
            "bytes read: {}\nlines read: {}\nlate lines (dropped): {}\noversize lines (skipped): {}\ninvalid UTF-8 lines (read lossily): {}\nmalformed lines (skipped): {}\n",
            self.bytes_read,
            self.lines_read,
            self.late_lines,
            self.oversize_lines,
            self.invalid_utf8_lines,
            self.parse_errors_total()
        );
        for (reason, n) in &self.parse_errors {
            s.push_str(&format!("  {reason}: {n}\n"));
        }
        if self.outlier_lines > 0 {
            s.push_str(&format!(
                "outlier lines (stamped ahead, not confirmed by the next line; kept in their windows): {}\n",
                self.outlier_lines
            ));
        }
        for (metric, reasons) in &self.value_errors {
            for (reason, n) in reasons {
                s.push_str(&format!("value not usable for {metric} ({reason}): {n}\n"));
            }
        }
        s
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

/// What a cluster member reports to process 0 about a job it runs, every few
/// seconds: enough for the job's status to count every member's lines and errors.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberStats {
    pub file_groups: u64,
    pub files_opened: u64,
    pub file_open_errors: u64,
    pub bytes_read: u64,
    pub lines_read: u64,
    pub late_lines: u64,
    pub oversize_lines: u64,
    pub invalid_utf8_lines: u64,
    /// Lines that could not be parsed, by reason.
    pub parse_errors: BTreeMap<String, u64>,
    /// See [`JobStats::outlier_lines`].
    #[serde(default)]
    pub outlier_lines: u64,
    /// File groups whose clock trails the wall clock (see [`JobStats::clock_lag_ms`]).
    #[serde(default)]
    pub trailing_clock_groups: u64,
}

impl MemberStats {
    pub fn add(&mut self, o: &MemberStats) {
        self.file_groups += o.file_groups;
        self.files_opened += o.files_opened;
        self.file_open_errors += o.file_open_errors;
        self.bytes_read += o.bytes_read;
        self.lines_read += o.lines_read;
        self.late_lines += o.late_lines;
        self.oversize_lines += o.oversize_lines;
        self.invalid_utf8_lines += o.invalid_utf8_lines;
        for (k, v) in &o.parse_errors {
            *self.parse_errors.entry(k.clone()).or_default() += v;
        }
        self.outlier_lines += o.outlier_lines;
        self.trailing_clock_groups += o.trailing_clock_groups;
    }
}

impl From<&JobStats> for MemberStats {
    fn from(s: &JobStats) -> MemberStats {
        MemberStats {
            file_groups: s.file_groups,
            files_opened: s.files_opened,
            file_open_errors: s.file_open_errors,
            bytes_read: s.bytes_read,
            lines_read: s.lines_read,
            late_lines: s.late_lines,
            oversize_lines: s.oversize_lines,
            invalid_utf8_lines: s.invalid_utf8_lines,
            parse_errors: s
                .parse_errors
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            outlier_lines: s.outlier_lines,
            trailing_clock_groups: s.trailing_clock_groups(),
        }
    }
}
