//! What a cluster member tells process 0 about each job it runs: the member's
//! share of the job's counters ([`JobStats`] summed over its workers).

use std::collections::BTreeMap;

use super::{JobStats, MemberGroup, VALUE_ERROR_REASONS};

/// At most this many groups' figures in a member's report: a member with more
/// reports the first ones (by path) and counts the rest in
/// [`MemberStats::groups_left_out`].
pub const MAX_REPORTED_GROUPS: usize = 1000;

/// What a cluster member reports to process 0 about a job it runs, every few
/// seconds: enough for the job's status to count every member's lines and errors.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberStats {
    /// See [`JobStats::file_groups`]; like every counter here, it covers only this
    /// member's workers.
    pub file_groups: u64,
    /// See [`JobStats::files_opened`].
    pub files_opened: u64,
    /// See [`JobStats::file_open_errors`].
    pub file_open_errors: u64,
    /// See [`JobStats::bytes_read`].
    pub bytes_read: u64,
    /// See [`JobStats::lines_read`].
    pub lines_read: u64,
    /// See [`JobStats::late_lines`].
    pub late_lines: u64,
    /// See [`JobStats::oversize_lines`].
    pub oversize_lines: u64,
    /// See [`JobStats::invalid_utf8_lines`].
    pub invalid_utf8_lines: u64,
    /// Lines that could not be parsed, by reason.
    pub parse_errors: BTreeMap<String, u64>,
    /// Per metric, lines of series left out by `max_series` in this member's groups.
    #[serde(default)]
    pub series_limit_dropped: BTreeMap<String, u64>,
    /// See [`JobStats::duplicate_paths`].
    #[serde(default)]
    pub duplicate_paths: u64,
    /// See [`JobStats::not_regular_files`].
    #[serde(default)]
    pub not_regular_files: u64,
    /// See [`JobStats::symlink_loops`].
    #[serde(default)]
    pub symlink_loops: u64,
    /// See [`JobStats::damaged_gzip_files`].
    #[serde(default)]
    pub damaged_gzip_files: u64,
    /// See [`JobStats::outlier_lines`].
    #[serde(default)]
    pub outlier_lines: u64,
    /// File groups whose clock trails the wall clock (see [`JobStats::clock_lag_ms`]).
    #[serde(default)]
    pub trailing_clock_groups: u64,
    /// Files held open now, over this member's workers.
    #[serde(default)]
    pub open_files: u64,
    /// Live files parked now (closed while idle, or mid-read for pacing, to keep
    /// within `max_open_files`), over this member's workers.
    #[serde(default)]
    pub parked_files: u64,
    /// See [`JobStats::reopen_fd_waits`].
    #[serde(default)]
    pub reopen_fd_waits: u64,
    /// See [`JobStats::paced_turns`].
    #[serde(default)]
    pub paced_turns: u64,
    /// See [`JobStats::checkpoint_fd_waits`].
    #[serde(default)]
    pub checkpoint_fd_waits: u64,
    /// See [`JobStats::lost_while_parked`].
    #[serde(default)]
    pub lost_while_parked: u64,
    /// See [`JobStats::lost_while_paused`].
    #[serde(default)]
    pub lost_while_paused: u64,
    /// See [`JobStats::paced_fd_waits`].
    #[serde(default)]
    pub paced_fd_waits: u64,
    /// See [`JobStats::fd_backoffs`].
    #[serde(default)]
    pub fd_backoffs: u64,
    /// See [`JobStats::lines_counted`].
    #[serde(default)]
    pub lines_counted: u64,
    /// See [`JobStats::rotations`].
    #[serde(default)]
    pub rotations: u64,
    /// See [`JobStats::copytruncates`].
    #[serde(default)]
    pub copytruncates: u64,
    /// See [`JobStats::truncations`].
    #[serde(default)]
    pub truncations: u64,
    /// See [`JobStats::deletions`].
    #[serde(default)]
    pub deletions: u64,
    /// See [`JobStats::resume_misses`].
    #[serde(default)]
    pub resume_misses: u64,
    /// See [`JobStats::reopens`].
    #[serde(default)]
    pub reopens: u64,
    /// See [`JobStats::late_after_written`].
    #[serde(default)]
    pub late_after_written: u64,
    /// See [`JobStats::value_errors`]: metric → reason → count.
    #[serde(default)]
    pub value_errors: BTreeMap<String, BTreeMap<String, u64>>,
    /// Files that cannot be opened or read now (see [`JobStats::unreadable`]).
    #[serde(default)]
    pub unreadable_files: u64,
    // A kafka source's counters: like the file source's, summed over members.
    /// See [`JobStats::kafka_records`].
    #[serde(default)]
    pub kafka_records: u64,
    /// See [`JobStats::kafka_resent_lines`].
    #[serde(default)]
    pub kafka_resent_lines: u64,
    /// See [`JobStats::kafka_lost_lines`].
    #[serde(default)]
    pub kafka_lost_lines: u64,
    /// See [`JobStats::kafka_new_epochs`].
    #[serde(default)]
    pub kafka_new_epochs: u64,
    /// See [`JobStats::kafka_bad_records`].
    #[serde(default)]
    pub kafka_bad_records: u64,
    /// See [`JobStats::kafka_heartbeats_ahead`].
    #[serde(default)]
    pub kafka_heartbeats_ahead: u64,
    /// See [`JobStats::kafka_reread_records`].
    #[serde(default)]
    pub kafka_reread_records: u64,
    /// See [`JobStats::kafka_streams_pruned`].
    #[serde(default)]
    pub kafka_streams_pruned: u64,
    /// See [`JobStats::kafka_streams_returned`].
    #[serde(default)]
    pub kafka_streams_returned: u64,
    /// See [`JobStats::kafka_streams_moved`].
    #[serde(default)]
    pub kafka_streams_moved: u64,
    /// This member's groups' figures (see [`JobStats::groups`]), at most
    /// `MAX_REPORTED_GROUPS` (1,000). Not summed: process 0 shows each member's under
    /// a `member` label ([`JobStats::member_groups`]).
    #[serde(default)]
    pub groups: BTreeMap<std::path::PathBuf, MemberGroup>,
    /// Groups past `MAX_REPORTED_GROUPS` (1,000), not in `groups`.
    #[serde(default)]
    pub groups_left_out: u64,
}

impl MemberStats {
    /// Adds `o`'s counters to these: process 0 sums every member's report into the job's
    /// status.
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
        for (k, v) in &o.series_limit_dropped {
            *self.series_limit_dropped.entry(k.clone()).or_default() += v;
        }
        self.duplicate_paths += o.duplicate_paths;
        self.not_regular_files += o.not_regular_files;
        self.symlink_loops += o.symlink_loops;
        self.damaged_gzip_files += o.damaged_gzip_files;
        self.outlier_lines += o.outlier_lines;
        self.trailing_clock_groups += o.trailing_clock_groups;
        self.open_files += o.open_files;
        self.parked_files += o.parked_files;
        self.reopen_fd_waits += o.reopen_fd_waits;
        self.paced_turns += o.paced_turns;
        self.checkpoint_fd_waits += o.checkpoint_fd_waits;
        self.lost_while_parked += o.lost_while_parked;
        self.lost_while_paused += o.lost_while_paused;
        self.paced_fd_waits += o.paced_fd_waits;
        self.fd_backoffs += o.fd_backoffs;
        self.lines_counted += o.lines_counted;
        self.rotations += o.rotations;
        self.copytruncates += o.copytruncates;
        self.truncations += o.truncations;
        self.deletions += o.deletions;
        self.resume_misses += o.resume_misses;
        self.reopens += o.reopens;
        self.late_after_written += o.late_after_written;
        for (metric, reasons) in &o.value_errors {
            let mine = self.value_errors.entry(metric.clone()).or_default();
            for (reason, n) in reasons {
                *mine.entry(reason.clone()).or_default() += n;
            }
        }
        self.unreadable_files += o.unreadable_files;
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
        self.groups_left_out += o.groups_left_out;
    }

    /// `own` (process 0's stats of a job) with these counters, every member's,
    /// in place of its own: what the cluster's `/metrics` shows. What members do
    /// not report (their groups' figures, their sinks) stays process 0's.
    pub fn over(&self, own: &JobStats) -> JobStats {
        let mut s = own.clone();
        s.file_groups = self.file_groups;
        s.files_opened = self.files_opened;
        s.file_open_errors = self.file_open_errors;
        s.bytes_read = self.bytes_read;
        s.lines_read = self.lines_read;
        s.lines_counted = self.lines_counted;
        s.late_lines = self.late_lines;
        s.oversize_lines = self.oversize_lines;
        s.invalid_utf8_lines = self.invalid_utf8_lines;
        s.parse_errors = BTreeMap::new();
        for (reason, n) in &self.parse_errors {
            // The reasons are the sources' fixed names; a name this build does
            // not know (another version) still counts, as `other`.
            let known = tidemark_sources::parse::LineError::ALL
                .iter()
                .map(|e| e.reason())
                .find(|r| r == reason)
                .unwrap_or("other");
            *s.parse_errors.entry(known).or_default() += n;
        }
        s.series_limit_dropped = self.series_limit_dropped.clone();
        s.duplicate_paths = self.duplicate_paths;
        s.not_regular_files = self.not_regular_files;
        s.symlink_loops = self.symlink_loops;
        s.damaged_gzip_files = self.damaged_gzip_files;
        s.outlier_lines = self.outlier_lines;
        s.open_files = BTreeMap::from([(0, (self.open_files, self.parked_files))]);
        s.reopen_fd_waits = self.reopen_fd_waits;
        s.paced_turns = self.paced_turns;
        s.checkpoint_fd_waits = self.checkpoint_fd_waits;
        s.lost_while_parked = self.lost_while_parked;
        s.lost_while_paused = self.lost_while_paused;
        s.paced_fd_waits = self.paced_fd_waits;
        s.fd_backoffs = self.fd_backoffs;
        s.rotations = self.rotations;
        s.copytruncates = self.copytruncates;
        s.truncations = self.truncations;
        s.deletions = self.deletions;
        s.resume_misses = self.resume_misses;
        s.reopens = self.reopens;
        s.late_after_written = self.late_after_written;
        s.kafka_records = self.kafka_records;
        s.kafka_resent_lines = self.kafka_resent_lines;
        s.kafka_lost_lines = self.kafka_lost_lines;
        s.kafka_new_epochs = self.kafka_new_epochs;
        s.kafka_bad_records = self.kafka_bad_records;
        s.kafka_heartbeats_ahead = self.kafka_heartbeats_ahead;
        s.kafka_reread_records = self.kafka_reread_records;
        s.kafka_streams_pruned = self.kafka_streams_pruned;
        s.kafka_streams_returned = self.kafka_streams_returned;
        s.kafka_streams_moved = self.kafka_streams_moved;
        s.value_errors = BTreeMap::new();
        for (metric, reasons) in &self.value_errors {
            let mine = s.value_errors.entry(metric.clone()).or_default();
            for (reason, n) in reasons {
                // As for parse errors: a reason this build does not know is `other`.
                let known = VALUE_ERROR_REASONS
                    .iter()
                    .find(|r| **r == reason.as_str())
                    .copied()
                    .unwrap_or("other");
                *mine.entry(known).or_default() += n;
            }
        }
        // The others' failing files, on top of process 0's own (listed by group).
        s.member_files_failing = self
            .unreadable_files
            .saturating_sub(own.unreadable().len() as u64);
        s
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
            series_limit_dropped: s.series_limit_dropped.clone(),
            duplicate_paths: s.duplicate_paths,
            not_regular_files: s.not_regular_files,
            symlink_loops: s.symlink_loops,
            damaged_gzip_files: s.damaged_gzip_files,
            outlier_lines: s.outlier_lines,
            trailing_clock_groups: s.trailing_clock_groups(),
            open_files: s.open_files.values().map(|(o, _)| o).sum(),
            parked_files: s.open_files.values().map(|(_, p)| p).sum(),
            reopen_fd_waits: s.reopen_fd_waits,
            paced_turns: s.paced_turns,
            checkpoint_fd_waits: s.checkpoint_fd_waits,
            lost_while_parked: s.lost_while_parked,
            lost_while_paused: s.lost_while_paused,
            paced_fd_waits: s.paced_fd_waits,
            fd_backoffs: s.fd_backoffs,
            lines_counted: s.lines_counted,
            rotations: s.rotations,
            copytruncates: s.copytruncates,
            truncations: s.truncations,
            deletions: s.deletions,
            resume_misses: s.resume_misses,
            reopens: s.reopens,
            late_after_written: s.late_after_written,
            kafka_records: s.kafka_records,
            kafka_resent_lines: s.kafka_resent_lines,
            kafka_lost_lines: s.kafka_lost_lines,
            kafka_new_epochs: s.kafka_new_epochs,
            kafka_bad_records: s.kafka_bad_records,
            kafka_heartbeats_ahead: s.kafka_heartbeats_ahead,
            kafka_reread_records: s.kafka_reread_records,
            kafka_streams_pruned: s.kafka_streams_pruned,
            kafka_streams_returned: s.kafka_streams_returned,
            kafka_streams_moved: s.kafka_streams_moved,
            value_errors: s
                .value_errors
                .iter()
                .map(|(m, reasons)| {
                    let reasons = reasons.iter().map(|(r, n)| (r.to_string(), *n));
                    (m.clone(), reasons.collect())
                })
                .collect(),
            unreadable_files: s.unreadable().len() as u64,
            groups: s
                .groups
                .iter()
                .take(MAX_REPORTED_GROUPS)
                .map(|(live, gauges)| {
                    let group = MemberGroup {
                        gauges: *gauges,
                        files_failing: s.unreadable_files.get(live).map(|f| f.len() as u64),
                        clock_behind_ms: s.clock_behind_of(live),
                    };
                    (live.clone(), group)
                })
                .collect(),
            groups_left_out: s.groups.len().saturating_sub(MAX_REPORTED_GROUPS) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn every_members_counters_go_over_process_0s_stats() {
        let mut own = JobStats {
            lines_read: 10,
            lines_counted: 9,
            windows_emitted: 4,
            ..JobStats::default()
        };
        own.parse_errors.insert("bad_json", 1);
        own.groups.insert(
            PathBuf::from("/l/a.log"),
            crate::stats::GroupGauges::default(),
        );
        let mut all = MemberStats::from(&own);
        let mut other = MemberStats {
            lines_read: 5,
            lines_counted: 5,
            open_files: 2,
            ..MemberStats::default()
        };
        other.parse_errors.insert("bad_json".into(), 2);
        other.parse_errors.insert("from_a_newer_member".into(), 3);
        other.rotations = 1;
        other.copytruncates = 2;
        other.truncations = 3;
        other.deletions = 4;
        other.resume_misses = 5;
        other.reopens = 6;
        other.late_after_written = 7;
        other.unreadable_files = 2;
        other.value_errors.insert(
            "bytes".into(),
            BTreeMap::from([("not_a_number".into(), 8), ("newer".into(), 1)]),
        );
        all.add(&other);
        let view = all.over(&own);
        assert_eq!((view.lines_read, view.lines_counted), (15, 14));
        assert_eq!(view.parse_errors.get("bad_json"), Some(&3));
        assert_eq!(view.parse_errors.get("other"), Some(&3));
        assert_eq!(view.open_files.values().map(|(o, _)| o).sum::<u64>(), 2);
        let edges = (
            view.rotations,
            view.copytruncates,
            view.truncations,
            view.deletions,
            view.resume_misses,
            view.reopens,
            view.late_after_written,
        );
        assert_eq!(edges, (1, 2, 3, 4, 5, 6, 7));
        let bytes = &view.value_errors["bytes"];
        assert_eq!((bytes["not_a_number"], bytes["other"]), (8, 1));
        assert_eq!(view.member_files_failing, 2);
        // What members do not report stays process 0's.
        assert_eq!(view.windows_emitted, 4);
        assert_eq!(view.groups.len(), 1);
    }

    /// A cluster's kafka counters are every member's, not process 0's alone
    /// (docs/cluster.md: counters are summed over every member).
    #[test]
    fn every_members_kafka_counters_are_summed() {
        // Distinct powers of ten per counter and member, so a counter left out, or
        // taken from the wrong field, shows in the sum.
        fn kafka(base: u64) -> JobStats {
            JobStats {
                kafka_records: base,
                kafka_resent_lines: base * 10,
                kafka_lost_lines: base * 100,
                kafka_new_epochs: base * 1_000,
                kafka_bad_records: base * 10_000,
                kafka_heartbeats_ahead: base * 100_000,
                kafka_reread_records: base * 1_000_000,
                kafka_streams_pruned: base * 10_000_000,
                kafka_streams_returned: base * 100_000_000,
                kafka_streams_moved: base * 1_000_000_000,
                ..JobStats::default()
            }
        }
        fn counters(s: &JobStats) -> [u64; 10] {
            [
                s.kafka_records,
                s.kafka_resent_lines,
                s.kafka_lost_lines,
                s.kafka_new_epochs,
                s.kafka_bad_records,
                s.kafka_heartbeats_ahead,
                s.kafka_reread_records,
                s.kafka_streams_pruned,
                s.kafka_streams_returned,
                s.kafka_streams_moved,
            ]
        }
        let own = kafka(1);
        let mut all = MemberStats::from(&own);
        // The other member's report crosses the wire as JSON.
        let wire = serde_json::to_string(&MemberStats::from(&kafka(2))).unwrap();
        all.add(&serde_json::from_str(&wire).unwrap());
        let expected = counters(&kafka(3));
        assert_eq!(counters(&all.over(&own)), expected);
    }

    /// Every kafka counter of [`JobStats`] is carried in a member's report: one
    /// added to the source later and forgotten here would show process 0's alone.
    #[test]
    fn a_member_report_carries_every_kafka_counter() {
        fn kafka_fields(debug: &str) -> std::collections::BTreeSet<String> {
            debug
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("kafka_"))
                .map(str::to_string)
                .collect()
        }
        let job = kafka_fields(&format!("{:?}", JobStats::default()));
        assert!(job.contains("kafka_records"), "{job:?}");
        assert_eq!(kafka_fields(&format!("{:?}", MemberStats::default())), job);
    }
}
