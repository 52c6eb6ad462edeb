//! The exit summary of a finite run (and the status line's lines part): one
//! item per line, only what happened.

use tidemark_sources::file::EscapedPath;

use super::JobStats;

impl JobStats {
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
        if self.split_segments > 0 {
            s.push_str(&format!(
                "segments of large files read by several workers: {} ({} read again)\n",
                self.split_segments, self.split_rereads
            ));
        }
        let unreadable = self.unreadable();
        if !unreadable.is_empty() {
            s.push_str(&format!(
                "files that could not be read: {}\n",
                unreadable.len()
            ));
            for (path, error) in unreadable {
                s.push_str(&format!("  {}: {error}\n", EscapedPath(path)));
            }
        }
        if self.duplicate_paths > 0 {
            s.push_str(&format!(
                "paths left out as another path to a file already read: {}\n",
                self.duplicate_paths
            ));
        }
        if self.not_regular_files > 0 {
            s.push_str(&format!(
                "matched paths that are not regular files (not read): {}\n",
                self.not_regular_files
            ));
        }
        if self.symlink_loops > 0 {
            s.push_str(&format!(
                "symbolic link loops not followed: {}\n",
                self.symlink_loops
            ));
        }
        if self.damaged_gzip_files > 0 {
            s.push_str(&format!(
                "damaged compressed files (read up to the damage): {}\n",
                self.damaged_gzip_files
            ));
        }
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
                EscapedPath(live)
            ));
        }
        for (live, lag) in self.clock_lag_ms.iter().filter(|(_, lag)| **lag > 0) {
            s.push_str(&format!(
                "clock behind by {}, not holding windows open (its older lines are late): {}\n",
                crate::watermark::format_span(*lag),
                EscapedPath(live)
            ));
        }
        for (live, lag) in self.clock_behind_ms.iter().filter(|(_, lag)| **lag > 0) {
            s.push_str(&format!(
                "clock behind by {}, its time moving (holds windows open that long): {}\n",
                crate::watermark::format_span(*lag),
                EscapedPath(live)
            ));
        }
        s.push_str(&format!("windows emitted: {}\n", self.windows_emitted));
        if self.alerts_evaluated > 0 {
            s.push_str(&format!(
                "alerts: {} evaluations, {} changes (firing or resolved), {} firing now\n",
                self.alerts_evaluated, self.alert_transitions, self.alerts_firing
            ));
            if self.alert_series_collisions > 0 {
                s.push_str(&format!(
                    "alert series left out (another series gave the same instance labels): {}\n",
                    self.alert_series_collisions
                ));
            }
        }
        if !self.sinks.is_empty() {
            s.push_str(&format!("written to: {}\n", self.sinks.join("; ")));
        }
        // Sinks that send (remote write): what the receiver acknowledged.
        for m in self.sink_meters.snapshot() {
            if m.batches + m.retries + m.failures == 0 {
                continue;
            }
            let mut line = format!(
                "{}: {} {} in {} {} acknowledged, {} retries",
                m.name, m.records_written, m.units.records, m.batches, m.units.batches, m.retries
            );
            for (why, n) in m.rejected.iter().filter(|(_, n)| *n > 0) {
                line.push_str(&format!(", {n} rejected ({})", why.as_str()));
            }
            if m.resent_held > 0 {
                line.push_str(&format!(", {} resent and already held", m.resent_held));
            }
            s.push_str(&line);
            s.push('\n');
        }
        if self.output_pauses > 0 {
            s.push_str(&format!(
                "reads paused for a backlogged sink (back-pressure, nothing dropped): {} times, {} in all\n",
                self.output_pauses,
                crate::watermark::format_span(self.output_paused_ms as i64)
            ));
        }
        if self.checkpoints_written > 0 {
            s.push_str(&format!(
                "checkpoints written: {}\n",
                self.checkpoints_written
            ));
        }
        if !self.open_files.is_empty() {
            let (open, parked) = self
                .open_files
                .values()
                .fold((0, 0), |(o, p), (a, b)| (o + a, p + b));
            s.push_str(&format!(
                "open files: {open}; parked (closed while idle, or mid-read for pacing): \
                 {parked}; reopened: {}; \
                 reopens that waited for a file descriptor: {}\n",
                self.reopens, self.reopen_fd_waits
            ));
        }
        if self.lost_while_parked > 0 {
            s.push_str(&format!(
                "parked files deleted or moved out of their folder before a reopen \
                 (lines written after parking, if any, not read): {}\n",
                self.lost_while_parked
            ));
        }
        if self.lost_while_paused > 0 {
            s.push_str(&format!(
                "files closed mid-read for pacing, then deleted or moved out of their \
                 folder before a reopen (their unread lines lost): {}\n",
                self.lost_while_paused
            ));
        }
        if self.paced_fd_waits > 0 {
            s.push_str(&format!(
                "turns a group waited for a file descriptor that no group ahead could \
                 safely free (pacing did not bound memory then): {}\n",
                self.paced_fd_waits
            ));
        }
        if self.fd_backoffs > 0 {
            s.push_str(&format!(
                "opens that found no file descriptor (the group then waited longer, up to 5 s): {}\n",
                self.fd_backoffs
            ));
        }
        if self.checkpoint_fd_waits > 0 {
            s.push_str(&format!(
                "checkpoint saves delayed, no file descriptor left (tried again): {}\n",
                self.checkpoint_fd_waits
            ));
        }
        if self.windows_open_at_stop > 0 {
            s.push_str(&format!(
                "windows still open at stop (not emitted): {}\n",
                self.windows_open_at_stop
            ));
        }
        if self.windows_held_at_stop > 0 {
            s.push_str(&format!(
                "closed windows held back for a busy sink at stop (not emitted): {}\n",
                self.windows_held_at_stop
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
        if self.kafka_records > 0 {
            s.push_str(&format!(
                "kafka records: {}\nkafka resent lines (dropped): {}\nkafka lost lines (never arrived): {}\nkafka new epochs: {}\nkafka bad records (skipped): {}\n",
                self.kafka_records,
                self.kafka_resent_lines,
                self.kafka_lost_lines,
                self.kafka_new_epochs,
                self.kafka_bad_records
            ));
            if self.kafka_reread_records > 0 {
                s.push_str(&format!(
                    "kafka records read again after a jump back (skipped): {}\n",
                    self.kafka_reread_records
                ));
            }
            if self.kafka_streams_pruned + self.kafka_streams_returned > 0 {
                s.push_str(&format!(
                    "kafka streams forgotten (stream_retention): {}, came back: {}\n",
                    self.kafka_streams_pruned, self.kafka_streams_returned
                ));
            }
            if self.kafka_streams_moved > 0 {
                s.push_str(&format!(
                    "kafka groups moved to another partition (new epoch): {}\n",
                    self.kafka_streams_moved
                ));
            }
            if self.kafka_heartbeats_ahead > 0 {
                s.push_str(&format!(
                    "kafka heartbeats ahead of this clock (time ignored): {}\n",
                    self.kafka_heartbeats_ahead
                ));
            }
        }
        if self.late_after_written > 0 {
            s.push_str(&format!(
                "late after written (new lines of windows an earlier run already wrote; not in the output): {}\n",
                self.late_after_written
            ));
        }
        for (metric, reasons) in &self.value_errors {
            for (reason, n) in reasons {
                s.push_str(&format!("value not usable for {metric} ({reason}): {n}\n"));
            }
        }
        if self.series_limited() {
            s.push_str(&format!(
                "windows that reached max_series: {}\n",
                self.series_limited_windows
            ));
        }
        for (metric, n) in &self.series_limit_dropped {
            s.push_str(&format!(
                "lines of series past max_series (series_limit_dropped) for {metric}: {n}\n"
            ));
        }
        s
    }
}
