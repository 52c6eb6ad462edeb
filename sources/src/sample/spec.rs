//! What a sample data set is made of: its specification, one generated line,
//! and what writing it produced.

use std::path::PathBuf;

/// 2026-11-20T10:00:00Z.
pub const SAMPLE_START_UNIX_SECS: i64 = 1_795_168_800;

/// What to generate. See the field docs; [`SampleSpec::default`] is a small demo set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleSpec {
    /// Number of hosts, named "web-1", "web-2", ... (see [`host_name`](super::host_name)).
    pub hosts: usize,
    /// Nominal time of the first event (unix seconds, UTC).
    pub start_unix_secs: i64,
    /// Length of the data set in minutes.
    pub minutes: u32,
    /// Lines per host per minute (spread evenly over the minute's seconds).
    pub lines_per_minute: u32,
    /// Rotated siblings per host: `access.log.1` .. `access.log.<rotations>`.
    pub rotations: u32,
    /// Siblings numbered `>= gzip_from` are gzip-compressed (`access.log.2.gz`); 0 = none.
    pub gzip_from: u32,
    /// A line's time is never more than this many seconds below the max time seen
    /// before it in the same host's stream (bounded disorder). 0 = sorted.
    pub disorder_secs: u32,
    pub seed: u64,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            hosts: 3,
            start_unix_secs: SAMPLE_START_UNIX_SECS,
            minutes: 10,
            lines_per_minute: 600,
            rotations: 2,
            gzip_from: 2,
            disorder_secs: 3,
            seed: 42,
        }
    }
}

impl SampleSpec {
    /// Lines written per host.
    pub fn lines_per_host(&self) -> u64 {
        u64::from(self.minutes) * u64::from(self.lines_per_minute)
    }
    /// Lines written in total.
    pub fn total_lines(&self) -> u64 {
        self.lines_per_host() * self.hosts as u64
    }
}

/// One generated request. `path` borrows a buffer reused between lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleLine<'a> {
    /// Host index, 0-based; its name is [`host_name`](super::host_name)`(host)`.
    pub host: usize,
    pub event_secs: i64,
    pub remote_addr: [u8; 4],
    pub method: &'static str,
    /// Request URI including any query string, e.g. `/api/users?id=42`.
    pub path: &'a str,
    pub protocol: &'static str,
    pub status: u16,
    pub body_bytes: u64,
    pub referer: &'static str,
    pub user_agent: &'static str,
    pub request_time_ms: u32,
}

/// What [`write_nginx_sample`](super::write_nginx_sample) wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SampleSummary {
    /// All files, host by host, each host's oldest file first.
    pub files: Vec<PathBuf>,
    pub lines: u64,
    /// Uncompressed log bytes (what a reader parses).
    pub bytes: u64,
    /// Bytes on disk (smaller when siblings are gzip-compressed).
    pub disk_bytes: u64,
}
