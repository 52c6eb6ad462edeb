//! JSON Lines file sink: one record per series per window.
//!
//! Recovery: the file's length after a [`Sink::sync`] is the sink's commit point;
//! its (device, inode) and a checksum of the bytes before it say which file that
//! is. A checkpoint stores all three; on restart [`JsonlSink::open_at`] cuts the
//! file back to it, dropping output of windows the checkpoint does not cover (they
//! are recomputed and written again, identically) — but only if the file at the
//! path is the one the checkpoint names. A file the job did not write is never
//! cut: [`JsonlSink::create`] refuses a non-empty one unless told to replace it,
//! and [`JsonlSink::open_at`] refuses another file put at the path.
//!
//! Every open goes through [`crate::roots::OutputRoots`] (with roots, a cluster's
//! `--output-root`, the file is opened only inside them) and takes the file
//! ([`crate::claim`]): a regular file, locked for the sink's life.

use std::fs::File;
use std::io::{self, ErrorKind, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tidemark_engine::alert_event::AlertUpdate;
use tidemark_engine::checkpoint::{FileIdentity, SinkCommit, TailCheck};
use tidemark_engine::stats::SinkMeter;
use tidemark_engine::ClosedWindow;
use tidemark_jobs::SeriesChoice;

use crate::claim::{self, io_err, Taken};
use crate::drop_behind::DropBehind;
use crate::format::{jsonl_alert, jsonl_head, jsonl_rest_keyed, rfc3339, RenderedNames};
use crate::roots::OutputRoots;
use crate::{wanted, BoxError, Sink, SinkError};
use tidemark_sources::file::EscapedPath;

/// What [`JsonlSink::create`] does with a non-empty file already at its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse: it is not known to be this job's output (the default).
    Refuse,
    /// Replace it (`--overwrite`).
    Replace,
    /// Replace it if it is this file (one the checkpoint names, under
    /// `--reset-checkpoint=beginning`), checked on the file opened; else refuse.
    ReplaceFile(FileIdentity),
}

pub struct JsonlSink {
    path: PathBuf,
    /// The file written, whatever path reaches it.
    id: FileIdentity,
    // No BufWriter: each window is rendered into `buf` and written with one
    // `write_all`, and a BufWriter would retry a failed write's leftovers when
    // dropped, appending past the point we report as written.
    // Locked (flock) for as long as the sink lives.
    out: File,
    series: SeriesChoice,
    /// One window's text, written whole; kept between windows (its capacity is
    /// the largest window's).
    buf: Vec<u8>,
    /// The label names of the last host record read from its key, rendered.
    names: RenderedNames,
    /// Records written (after `series`) and syncs, for `/metrics`.
    meter: Arc<SinkMeter>,
    /// Bytes of whole windows in the file (the file's length, as far as we wrote it).
    len: u64,
    /// The file's last bytes before `len` (at most [`TailCheck::MAX_LEN`]), for
    /// the checksum each commit point carries.
    tail: Vec<u8>,
    /// Set when a write failed: the file may end in part of a window, so nothing
    /// more may be appended (a restart rolls back to the committed length).
    failed: bool,
    /// Also writes the alert transcript (`alerts = true`).
    alerts: bool,
    /// Hands pages written long ago back to the kernel.
    behind: DropBehind,
}

impl JsonlSink {
    /// Creates `path` (and its folder) for a fresh output. A non-empty file already
    /// there is refused ([`SinkError::Exists`]) unless `existing` says to replace it;
    /// an empty one is written.
    pub fn create(
        path: &Path,
        series: SeriesChoice,
        existing: Existing,
        roots: &OutputRoots,
    ) -> Result<JsonlSink, SinkError> {
        let Taken { file, meta } = claim::take(path, true, roots)?;
        if meta.len() > 0 {
            let replace = match existing {
                Existing::Refuse => false,
                Existing::Replace => true,
                Existing::ReplaceFile(id) => id == FileIdentity::of(&meta),
            };
            if !replace {
                return Err(SinkError::Exists {
                    path: path.to_path_buf(),
                    len: meta.len(),
                    hint: crate::ExistsHint::Overwrite,
                });
            }
            file.set_len(0).map_err(|e| io_err(path, e))?;
        }
        Ok(JsonlSink::new(
            path,
            file,
            FileIdentity::of(&meta),
            series,
            0,
            Vec::new(),
        ))
    }

    /// Opens the existing output `path` named by a checkpoint's `commit`, truncates
    /// it to `commit.committed_len` bytes and appends from there.
    ///
    /// A file other than the one the checkpoint names (another (device, inode)
    /// whose committed bytes differ too) is refused and left as it is
    /// ([`SinkError::NotTheFile`]), unless it is empty and nothing was committed. A
    /// missing file is created when nothing was committed. A file shorter than its
    /// committed length is an error: output the checkpoint says is durable is
    /// gone, so appending would leave a hole.
    pub fn open_at(
        path: &Path,
        series: SeriesChoice,
        commit: &SinkCommit,
        roots: &OutputRoots,
    ) -> Result<JsonlSink, SinkError> {
        let committed_len = commit.committed_len;
        let taken = match claim::take(path, committed_len == 0, roots) {
            Ok(t) => t,
            Err(SinkError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                return Err(damaged(path, 0, committed_len, "it no longer exists"))
            }
            Err(e) => return Err(e),
        };
        let tail = claim::named(path, &taken, commit)?;
        let Taken {
            file: mut out,
            meta,
        } = taken;
        let actual = meta.len();
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
        let id = FileIdentity::of(&meta);
        Ok(JsonlSink::new(path, out, id, series, committed_len, tail))
    }

    /// Opens `path` to append to what is there (`--reset-checkpoint=end`: the
    /// output is kept), creating it if missing.
    pub fn append(
        path: &Path,
        series: SeriesChoice,
        roots: &OutputRoots,
    ) -> Result<JsonlSink, SinkError> {
        let Taken {
            file: mut out,
            meta,
        } = claim::take(path, true, roots)?;
        let len = meta.len();
        let tail = claim::read_tail(&out, len).map_err(|e| io_err(path, e))?;
        out.seek(SeekFrom::Start(len))
            .map_err(|e| io_err(path, e))?;
        Ok(JsonlSink::new(
            path,
            out,
            FileIdentity::of(&meta),
            series,
            len,
            tail,
        ))
    }

    fn new(
        path: &Path,
        out: File,
        id: FileIdentity,
        series: SeriesChoice,
        len: u64,
        tail: Vec<u8>,
    ) -> JsonlSink {
        JsonlSink {
            path: path.to_path_buf(),
            id,
            out,
            series,
            buf: Vec::new(),
            names: RenderedNames::default(),
            meter: Arc::new(SinkMeter::default()),
            len,
            tail,
            failed: false,
            alerts: false,
            behind: DropBehind::from(len),
        }
    }

    /// Makes it also write the alert transcript: after each window's records, a
    /// line per alert change (docs/alerts.md).
    pub fn with_alerts(mut self, alerts: bool) -> JsonlSink {
        self.alerts = alerts;
        self
    }

    /// Bytes written so far (whole windows only). It is the commit point once
    /// [`Sink::sync`] has returned Ok.
    pub fn committed_len(&self) -> u64 {
        self.len
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file written.
    pub fn identity(&self) -> FileIdentity {
        self.id
    }

    /// Where a restart rolls back to (valid right after [`Sink::sync`]): length,
    /// identity and the checksum of the bytes before the length.
    pub fn commit(&self) -> SinkCommit {
        SinkCommit {
            path: self.path.clone(),
            committed_len: self.len,
            file: Some(self.id),
            tail: Some(TailCheck::of(&self.tail)),
        }
    }

    /// Keeps the last [`TailCheck::MAX_LEN`] bytes written.
    fn keep_tail(&mut self) {
        let max = TailCheck::MAX_LEN as usize;
        let written = &self.buf[..];
        if written.len() >= max {
            self.tail.clear();
            self.tail.extend_from_slice(&written[written.len() - max..]);
        } else {
            let excess = (self.tail.len() + written.len()).saturating_sub(max);
            self.tail.drain(..excess);
            self.tail.extend_from_slice(written);
        }
    }

    fn io_err(&self, e: io::Error) -> SinkError {
        io_err(&self.path, e)
    }
}

impl JsonlSink {
    /// Appends one window's records in one write ([`Sink::write_window`]).
    fn write(&mut self, w: &ClosedWindow) -> Result<(), SinkError> {
        self.check_not_failed()?;
        let (start, end) = (rfc3339(w.start_ms), rfc3339(w.end_ms));
        self.buf.clear();
        let mut records = 0;
        // Records come sorted by record name: each name's head is rendered once.
        let mut head: Vec<u8> = Vec::new();
        let mut head_of: Option<&str> = None;
        for s in w.series.iter().filter(|s| wanted(self.series, s)) {
            if head_of != Some(&*s.record) {
                head.clear();
                jsonl_head(&s.record, &start, &end, &mut head);
                head_of = Some(&s.record);
            }
            self.buf.extend_from_slice(&head);
            jsonl_rest_keyed(s, &mut self.names, &mut self.buf);
            records += 1;
        }
        self.append_buf()?;
        self.meter
            .records_written
            .fetch_add(records, Ordering::Relaxed);
        Ok(())
    }

    /// Appends the alert changes of one window after its records.
    fn write_alert_lines(&mut self, u: &AlertUpdate) -> Result<(), SinkError> {
        if !self.alerts || u.changes.is_empty() {
            return Ok(());
        }
        self.check_not_failed()?;
        let (start, end) = (rfc3339(u.start_ms), rfc3339(u.end_ms));
        self.buf.clear();
        for c in &u.changes {
            jsonl_alert(c, &start, &end, &mut self.buf);
        }
        self.append_buf()
    }

    fn check_not_failed(&self) -> Result<(), SinkError> {
        if self.failed {
            return Err(self.io_err(io::Error::other(format!(
                "an earlier write failed; the output is complete only up to byte {}",
                self.len
            ))));
        }
        Ok(())
    }

    /// Writes `buf` whole.
    fn append_buf(&mut self) -> Result<(), SinkError> {
        // A window is written whole, so a reader never sees half of one (and
        // `len` only ever counts whole windows).
        match self.out.write_all(&self.buf) {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                self.keep_tail();
                self.behind.after_write(&self.out, self.len);
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(self.io_err(e))
            }
        }
    }

    /// Makes the windows written so far durable: fdatasync, the data and the
    /// file size, which is all a reader needs. Its length is then the commit
    /// point ([`JsonlSink::commit`]).
    pub fn sync(&mut self) -> Result<(), SinkError> {
        self.out.sync_data().map_err(|e| io_err(&self.path, e))?;
        // A sync is the file's batch: what it makes durable.
        self.meter.batches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl Sink for JsonlSink {
    fn describe(&self) -> String {
        // Escaped: it goes into log lines and `job status`.
        format!("jsonl {}", EscapedPath(&self.path))
    }

    fn write_window(&mut self, w: &ClosedWindow) -> Result<(), BoxError> {
        Ok(self.write(w)?)
    }

    /// With `alerts = true`: one line per change, after the window's records;
    /// it rolls back with the file, as the windows do.
    fn write_alerts(&mut self, u: &AlertUpdate) -> Result<(), BoxError> {
        Ok(self.write_alert_lines(u)?)
    }

    /// The file needs no frontier: its commit point is its length.
    fn sync(&mut self, _frontier_ms: i64) -> Result<(), BoxError> {
        Ok(JsonlSink::sync(self)?)
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        Ok(JsonlSink::sync(self)?)
    }

    /// The file's length, identity and tail checksum; a resume rolls back to it
    /// in [`JsonlSink::open_at`].
    fn commit_point(&self) -> Option<SinkCommit> {
        Some(self.commit())
    }

    fn meter(&self) -> Option<Arc<SinkMeter>> {
        Some(self.meter.clone())
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
mod tests;
