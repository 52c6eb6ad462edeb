//! JSON Lines file sink: one record per series per window.
//!
//! Recovery: the file's length after a [`Sink::sync`] is the sink's commit point.
//! A checkpoint stores it; on restart [`JsonlSink::open_at`] cuts the file back to
//! it, dropping output of windows the checkpoint does not cover (they are
//! recomputed and written again, identically).

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tidemark_engine::checkpoint::SinkCommit;
use tidemark_engine::ClosedWindow;
use tidemark_jobs::SeriesChoice;

use crate::format::{jsonl_record, rfc3339};
use crate::{wanted, Sink, SinkError};

pub struct JsonlSink {
    path: PathBuf,
    // No BufWriter: each window is rendered into `buf` and written with one
    // `write_all`, and a BufWriter would retry a failed write's leftovers when
    // dropped, appending past the point we report as written.
    out: File,
    series: SeriesChoice,
    buf: String,
    /// Bytes of whole windows in the file (the file's length, as far as we wrote it).
    len: u64,
    /// Set when a write failed: the file may end in part of a window, so nothing
    /// more may be appended (a restart rolls back to the committed length).
    failed: bool,
}

impl JsonlSink {
    /// Creates (or truncates) `path`, making its folder if needed.
    pub fn create(path: &Path, series: SeriesChoice) -> Result<JsonlSink, SinkError> {
        make_parent(path)?;
        let out = File::create(path).map_err(|e| io_err(path, e))?;
        Ok(JsonlSink::new(path, out, series, 0))
    }

    /// Opens the existing output `path`, truncates it to `committed_len` bytes (a
    /// checkpoint's commit point) and appends from there.
    ///
    /// A missing file is created when `committed_len` is 0 (nothing was committed).
    /// A file shorter than `committed_len` is an error: output the checkpoint says
    /// is durable is gone, so appending would leave a hole.
    pub fn open_at(
        path: &Path,
        series: SeriesChoice,
        committed_len: u64,
    ) -> Result<JsonlSink, SinkError> {
        make_parent(path)?;
        let mut out = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound && committed_len == 0 => {
                File::create(path).map_err(|e| io_err(path, e))?
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(damaged(path, 0, committed_len, "it no longer exists"))
            }
            Err(e) => return Err(io_err(path, e)),
        };
        let actual = out.metadata().map_err(|e| io_err(path, e))?.len();
        if actual < committed_len {
            return Err(damaged(
                path,
                actual,
                committed_len,
                "it was truncated or replaced",
            ));
        }
        if actual > committed_len {
            out.set_len(committed_len).map_err(|e| io_err(path, e))?;
            // Made durable now so a crash right after cannot resurrect the tail
            // behind output written from here on.
            out.sync_data().map_err(|e| io_err(path, e))?;
        }
        out.seek(SeekFrom::Start(committed_len))
            .map_err(|e| io_err(path, e))?;
        Ok(JsonlSink::new(path, out, series, committed_len))
    }

    fn new(path: &Path, out: File, series: SeriesChoice, len: u64) -> JsonlSink {
        JsonlSink {
            path: path.to_path_buf(),
            out,
            series,
            buf: String::new(),
            len,
            failed: false,
        }
    }

    /// Bytes written so far (whole windows only). It is the commit point once
    /// [`Sink::sync`] has returned Ok.
    pub fn committed_len(&self) -> u64 {
        self.len
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_err(&self, e: io::Error) -> SinkError {
        io_err(&self.path, e)
    }
}

impl Sink for JsonlSink {
    fn write_window(&mut self, w: &ClosedWindow) -> Result<(), SinkError> {
        if self.failed {
            return Err(self.io_err(io::Error::other(format!(
                "an earlier write failed; the output is complete only up to byte {}",
                self.len
            ))));
        }
        let (start, end) = (rfc3339(w.start_ms), rfc3339(w.end_ms));
        self.buf.clear();
        for s in w.series.iter().filter(|s| wanted(self.series, s)) {
            jsonl_record(w, s, &start, &end, &mut self.buf);
        }
        // A window is written whole, so a reader never sees half of one (and
        // `len` only ever counts whole windows).
        match self.out.write_all(self.buf.as_bytes()) {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(self.io_err(e))
            }
        }
    }

    fn sync(&mut self) -> Result<(), SinkError> {
        // fdatasync: the data and the file size, which is all a reader needs.
        self.out.sync_data().map_err(|e| io_err(&self.path, e))
    }

    fn commit_point(&self) -> Option<SinkCommit> {
        Some(SinkCommit {
            path: self.path.clone(),
            committed_len: self.len,
        })
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.sync()
    }

    fn describe(&self) -> String {
        format!("jsonl {}", self.path.display())
    }
}

fn make_parent(path: &Path) -> Result<(), SinkError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|e| io_err(path, e))
        }
        _ => Ok(()),
    }
}

fn io_err(path: &Path, e: io::Error) -> SinkError {
    SinkError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// The output is shorter than its committed length: say what happened and what to do.
fn damaged(path: &Path, actual: u64, committed: u64, what: &str) -> SinkError {
    io_err(
        path,
        io::Error::new(
            ErrorKind::InvalidData,
            format!(
                "the output is damaged: the checkpoint says its first {committed} bytes are \
                 committed, but it has {actual} bytes ({what} after the checkpoint was \
                 written). Restore the file, or re-run with --reset-checkpoint=beginning to \
                 rewrite it from the start"
            ),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_engine::{Origin, Series, Value};

    fn window(start_min: i64, n: u64) -> ClosedWindow {
        ClosedWindow {
            start_ms: start_min * 60_000,
            end_ms: (start_min + 1) * 60_000,
            series: vec![Series {
                record: "status:http_requests:sum1m".into(),
                labels: tidemark_engine::Labels::from_pairs(&[("status", "200")]),
                value: Value::Int(n),
                origin: Origin::Rule,
            }],
        }
    }

    fn write(sink: &mut JsonlSink, windows: std::ops::Range<i64>) {
        for m in windows {
            sink.write_window(&window(m, m as u64 * 10)).unwrap();
        }
    }

    #[test]
    fn rollback_then_rewrite_equals_an_uninterrupted_run() {
        let tmp = tempfile::tempdir().unwrap();
        let (whole, resumed) = (tmp.path().join("whole.jsonl"), tmp.path().join("r.jsonl"));
        let mut a = JsonlSink::create(&whole, SeriesChoice::All).unwrap();
        write(&mut a, 0..6);
        a.finish().unwrap();

        let mut b = JsonlSink::create(&resumed, SeriesChoice::All).unwrap();
        write(&mut b, 0..3);
        b.sync().unwrap();
        let commit = b.commit_point().unwrap();
        assert_eq!(commit.committed_len, b.committed_len());
        assert_eq!(
            commit.committed_len,
            std::fs::metadata(&resumed).unwrap().len()
        );
        // Windows written after the checkpoint, then a crash.
        write(&mut b, 3..5);
        drop(b);

        let mut c = JsonlSink::open_at(&resumed, SeriesChoice::All, commit.committed_len).unwrap();
        assert_eq!(c.committed_len(), commit.committed_len);
        write(&mut c, 3..6);
        c.finish().unwrap();
        assert_eq!(
            std::fs::read(&whole).unwrap(),
            std::fs::read(&resumed).unwrap()
        );
        assert_eq!(
            c.committed_len(),
            std::fs::metadata(&resumed).unwrap().len()
        );
    }

    #[test]
    fn open_at_the_current_length_appends() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("o.jsonl");
        let mut a = JsonlSink::create(&p, SeriesChoice::All).unwrap();
        write(&mut a, 0..2);
        let len = a.committed_len();
        drop(a);
        let mut b = JsonlSink::open_at(&p, SeriesChoice::All, len).unwrap();
        write(&mut b, 2..3);
        b.finish().unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().nth(2).unwrap().contains("00:02:00Z"));
    }

    #[test]
    fn output_shorter_than_committed_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("o.jsonl");
        std::fs::write(&p, b"{\"x\":1}\n").unwrap();
        let msg = JsonlSink::open_at(&p, SeriesChoice::All, 100)
            .err()
            .expect("shorter output must be refused")
            .to_string();
        assert!(msg.contains("damaged"), "{msg}");
        assert!(msg.contains("100 bytes"), "{msg}");
        assert!(msg.contains("has 8 bytes"), "{msg}");
        assert!(msg.contains("--reset-checkpoint=beginning"), "{msg}");
        // Refusing must not have touched the file.
        assert_eq!(std::fs::read(&p).unwrap(), b"{\"x\":1}\n");

        let gone = tmp.path().join("gone.jsonl");
        let msg = JsonlSink::open_at(&gone, SeriesChoice::All, 5)
            .err()
            .expect("missing committed output must be refused")
            .to_string();
        assert!(msg.contains("no longer exists"), "{msg}");
    }

    #[test]
    fn open_at_zero_creates_a_missing_file() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("sub/o.jsonl");
        let mut s = JsonlSink::open_at(&p, SeriesChoice::All, 0).unwrap();
        write(&mut s, 0..1);
        s.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 1);
    }

    #[test]
    fn committed_len_counts_only_selected_series() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("o.jsonl");
        let mut s = JsonlSink::create(&p, SeriesChoice::Hosts).unwrap();
        write(&mut s, 0..3);
        s.sync().unwrap();
        assert_eq!(s.committed_len(), 0);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
    }
}
