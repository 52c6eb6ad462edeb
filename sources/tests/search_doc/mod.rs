//! What the replay search tests share: parsers, line makers, and `Doc`, a file
//! on disk with its lines split and parsed independently of the search (the
//! oracle the tests check answers against).

// Each test file uses a different part of it.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

use tidemark_jobs::{Format, Parse, TimeFormat};
use tidemark_sources::parse::LineParser;
use tidemark_sources::replay::TimeIndex;

pub const T0: i64 = 1_795_168_800_000; // 2026-11-20T10:00:00Z
pub const SEC: i64 = 1000;

pub fn logfmt() -> LineParser {
    let cfg = Parse {
        format: Format::Logfmt,
        timestamp_field: "ts".into(),
        timestamp_format: TimeFormat::EpochMillis,
    };
    LineParser::new(&cfg, &[]).unwrap()
}

pub fn nginx() -> LineParser {
    let cfg = Parse {
        format: Format::Nginx,
        timestamp_field: "time_local".into(),
        timestamp_format: TimeFormat::Strftime("%d/%b/%Y:%H:%M:%S %z".into()),
    };
    LineParser::new(&cfg, &[]).unwrap()
}

pub fn nginx_line(ms: i64, i: usize) -> String {
    let ts = jiff::Timestamp::from_millisecond(ms).unwrap();
    format!(
        "10.0.{}.{} - - [{}] \"GET /api/items/{i} HTTP/1.1\" 200 {} \"-\" \"curl/8.5\" 0.{:03}\n",
        i % 200,
        i % 250,
        ts.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        100 + i % 5000,
        i % 1000
    )
}

pub fn logfmt_line(ms: i64) -> String {
    format!("ts={ms} level=info msg=\"ok\"\n")
}

/// One line of a file, as the oracle sees it.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    pub start: u64,
    pub t: Option<i64>,
}

/// A file on disk and its lines, split and parsed independently of the search.
pub struct Doc {
    pub _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub lines: Vec<Line>,
}

impl Doc {
    pub fn new(bytes: Vec<u8>, parser: &mut LineParser) -> Doc {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&bytes)
            .unwrap();
        let mut lines = Vec::new();
        let mut s = 0;
        while s < bytes.len() {
            let end = bytes[s..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(bytes.len(), |i| s + i);
            let line = &bytes[s..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let t = parser.parse(line).ok().map(|p| p.event_ms());
            lines.push(Line { start: s as u64, t });
            s = end + 1;
        }
        Doc {
            _dir: dir,
            path,
            bytes,
            lines,
        }
    }

    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub fn is_boundary(&self, off: u64) -> bool {
        off == 0 || off == self.len() || (off < self.len() && self.bytes[off as usize - 1] == b'\n')
    }

    pub fn times(&self) -> Vec<i64> {
        self.lines.iter().filter_map(|l| l.t).collect()
    }

    /// Start of the first line with time >= t (or the length), for sorted files.
    pub fn first_at_or_after(&self, t: i64) -> u64 {
        self.lines
            .iter()
            .find(|l| l.t.is_some_and(|x| x >= t))
            .map_or(self.len(), |l| l.start)
    }

    /// The first parseable time at or after `off` (a line start).
    pub fn time_at(&self, off: u64) -> Option<i64> {
        self.lines
            .iter()
            .filter(|l| l.start >= off)
            .find_map(|l| l.t)
    }

    /// Every line with time >= t starts at or after `off`.
    pub fn check_seek(&self, off: u64, t: i64) -> Result<(), String> {
        if !self.is_boundary(off) {
            return Err(format!("seek {off} is not a line start"));
        }
        match self
            .lines
            .iter()
            .find(|l| l.start < off && l.t.is_some_and(|x| x >= t))
        {
            Some(l) => Err(format!(
                "seek({t}) = {off} skips line at {} ({:?})",
                l.start, l.t
            )),
            None => Ok(()),
        }
    }

    /// Every line with time < t starts before `off`.
    pub fn check_end(&self, off: u64, t: i64) -> Result<(), String> {
        if !self.is_boundary(off) {
            return Err(format!("end {off} is not a line start"));
        }
        match self
            .lines
            .iter()
            .find(|l| l.start >= off && l.t.is_some_and(|x| x < t))
        {
            Some(l) => Err(format!(
                "end({t}) = {off} cuts line at {} ({:?})",
                l.start, l.t
            )),
            None => Ok(()),
        }
    }

    /// The largest number of bytes a probe may need to read to reach a
    /// conclusion (see the probe in search.rs): from the start of line k-1 to
    /// the end of the first parseable line at or after line k (or to EOF).
    pub fn max_stretch(&self) -> u64 {
        let mut worst = 0;
        // k == lines.len(): a probe past the last line start must reach EOF.
        for k in 0..=self.lines.len() {
            let from = if k == 0 { 0 } else { self.lines[k - 1].start };
            let reach = self.lines[k..]
                .iter()
                .enumerate()
                .find(|(_, l)| l.t.is_some())
                .map_or(self.len(), |(j, _)| {
                    self.lines.get(k + j + 1).map_or(self.len(), |n| n.start)
                });
            worst = worst.max(reach - from);
        }
        worst
    }
}

pub fn from_lines(lines: &[String], parser: &mut LineParser) -> Doc {
    Doc::new(lines.concat().into_bytes(), parser)
}

pub fn seek(doc: &Doc, p: &mut LineParser, t: i64, d: i64, probe: usize) -> u64 {
    let mut ix = TimeIndex::open(&doc.path, p)
        .unwrap()
        .with_probe_bytes(probe);
    let off = ix.seek_to_time(t, d).unwrap();
    doc.check_seek(off, t).unwrap();
    off
}

pub fn end(doc: &Doc, p: &mut LineParser, t: i64, d: i64, probe: usize) -> u64 {
    let mut ix = TimeIndex::open(&doc.path, p)
        .unwrap()
        .with_probe_bytes(probe);
    let off = ix.end_offset(t, d).unwrap();
    doc.check_end(off, t).unwrap();
    off
}

pub const PROBES: [usize; 4] = [64, 256, 4096, 65536];
/// Nginx lines are about 100 bytes: a probe must hold two of them for the
/// searches to be exact (shorter probes stay correct, see
/// `probes_shorter_than_a_line_stay_correct`).
pub const NGINX_PROBES: [usize; 3] = [256, 4096, 65536];
