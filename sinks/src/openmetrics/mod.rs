//! OpenMetrics text file sink, for `tidemark replay --format openmetrics`: a
//! replayed range in the form `promtool tsdb create-blocks-from openmetrics`
//! turns into Prometheus blocks (docs/replay.md, *Backfill into Prometheus*).
//!
//! Each record becomes one sample named exactly as the record, with the record's
//! labels, stamped with its window's end or start ([`SampleTime`], the same
//! choice and default as the remote-write sink, so a backfilled range and live
//! data line up). Every record name is a family of type `gauge` — a window's
//! value, not a running total — including a histogram's `NAME_count`, `NAME_sum`
//! and `NAME{quantile=…}`: under `gauge` Prometheus's parser gives those
//! suffixes and that label no meaning, so the series are named as in the JSONL
//! output.
//!
//! The file appears only when the replay finished: samples are regrouped by
//! family and series ([`sorter`]), written at [`Sink::finish`] to a hidden
//! temporary file next to the output, synced, and renamed into place. A replay
//! that is interrupted or fails leaves no file at the output path, and a
//! `kill -9` before the end leaves nothing at all (the spill file has no name);
//! one during the last copy can leave the hidden `.NAME.*.tmp`.

pub mod sorter;
pub mod text;

use std::fs::Permissions;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;
use tidemark_engine::ClosedWindow;
use tidemark_jobs::{SampleTime, SeriesChoice};
use tidemark_sources::file::EscapedPath;

use crate::{wanted, BoxError, Sink};
use sorter::SeriesSorter;

/// How much of the range is kept in memory before samples spill to disk.
pub const DEFAULT_BUFFER_BYTES: usize = 64 << 20;

/// Why the OpenMetrics output cannot be opened or written.
#[derive(Debug, Error)]
pub enum OpenMetricsError {
    #[error(
        "{} already exists ({len} bytes); tidemark does not overwrite a file it did not \
         write. hint: move it away or give --output another path; or, if it may go, \
         re-run with --overwrite to replace it",
        path.display()
    )]
    Exists { path: PathBuf, len: u64 },
    #[error(
        "{} is {what}, not a regular file: the OpenMetrics output is written to a file \
         of its own and renamed into place. hint: give --output the path of a file",
        path.display()
    )]
    NotAFile { path: PathBuf, what: &'static str },
    #[error(
        "{} is a symbolic link: the finished output is renamed into place, which would \
         replace the link, not the file it points to. hint: give --output the real path",
        path.display()
    )]
    Symlink { path: PathBuf },
    #[error(
        "{}: the finished output could not be put in place, see below; it is complete \
         and kept as {}. hint: once the output path may be replaced, `mv {} {}`; or \
         re-run with --overwrite",
        path.display(),
        kept.display(),
        kept.display(),
        path.display()
    )]
    NotPlaced {
        path: PathBuf,
        /// The synced temporary file, left in the output's folder.
        kept: PathBuf,
        #[source]
        cause: Box<OpenMetricsError>,
    },
    #[error("{}: {what}: {source} (check the folder's permissions and free space)", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
}

impl OpenMetricsError {
    /// Whether the user must choose another path or pass `--overwrite` (exit 2).
    pub fn is_usage(&self) -> bool {
        match self {
            OpenMetricsError::Io { .. } => false,
            OpenMetricsError::NotPlaced { cause, .. } => cause.is_usage(),
            _ => true,
        }
    }
}

/// What an [`OpenMetricsSink`] writes, and how.
#[derive(Debug, Clone)]
pub struct OpenMetricsOptions {
    /// Which records (as a jsonl sink's `series`).
    pub series: SeriesChoice,
    /// Which instant of its window a sample carries.
    pub time: SampleTime,
    /// Labels added to every series, sorted by name, unless the series has the
    /// label itself (as Prometheus's `external_labels`).
    pub external_labels: Vec<(String, String)>,
    /// Replace a non-empty file at the path (`--overwrite`).
    pub overwrite: bool,
    /// How many bytes of samples are regrouped in memory before spilling to an
    /// unnamed file in the output's folder.
    pub buffer_bytes: usize,
}

impl Default for OpenMetricsOptions {
    fn default() -> OpenMetricsOptions {
        OpenMetricsOptions {
            series: SeriesChoice::All,
            time: SampleTime::End,
            external_labels: Vec::new(),
            overwrite: false,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
        }
    }
}

/// Writes the windows it is given as one OpenMetrics text file at `finish`.
pub struct OpenMetricsSink {
    path: PathBuf,
    dir: PathBuf,
    opts: OpenMetricsOptions,
    sorter: Option<SeriesSorter>,
    labels: String,
    sample: String,
}

impl OpenMetricsSink {
    /// A sink that will write `path` (absolute) when the replay finished. A
    /// non-empty file already there is refused unless `opts.overwrite`, and so
    /// is anything but a regular file (a symbolic link included); the folder is
    /// created.
    pub fn create(
        path: &Path,
        mut opts: OpenMetricsOptions,
    ) -> Result<OpenMetricsSink, OpenMetricsError> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        check_target(path, opts.overwrite)?;
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, "cannot create the folder", e))?;
        opts.external_labels.sort();
        Ok(OpenMetricsSink {
            path: path.to_path_buf(),
            sorter: Some(SeriesSorter::new(&dir, opts.buffer_bytes)),
            dir,
            opts,
            labels: String::new(),
            sample: String::new(),
        })
    }

    fn write(&mut self, w: &ClosedWindow) -> Result<(), OpenMetricsError> {
        let Some(sorter) = self.sorter.as_mut() else {
            let e = io::Error::other("a window after the end of the replay");
            return Err(io_err(&self.path, "already written", e));
        };
        let at = self.opts.time.of(w.start_ms, w.end_ms);
        for s in w.series.iter().filter(|s| wanted(self.opts.series, s)) {
            self.labels.clear();
            text::labels_with(&s.labels, &self.opts.external_labels, &mut self.labels);
            self.sample.clear();
            text::value(s.value, &mut self.sample);
            self.sample.push(' ');
            text::timestamp(at, &mut self.sample);
            self.sample.push('\n');
            sorter
                .push(&s.record, &self.labels, &self.sample)
                .map_err(|e| io_err(&self.dir, "cannot write the temporary spill file", e))?;
        }
        Ok(())
    }

    /// Writes the file under a temporary name, syncs it, and renames it to the
    /// output path.
    fn finish_file(&mut self) -> Result<(), OpenMetricsError> {
        let Some(sorter) = self.sorter.take() else {
            return Ok(());
        };
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            // As a jsonl output: label values can be anything the logs hold, so
            // the file is not for every user of the machine to read.
            .permissions(Permissions::from_mode(0o640))
            .tempfile_in(&self.dir)
            .map_err(|e| io_err(&self.dir, "cannot create the temporary output", e))?;
        let tmp_path = tmp.path().to_path_buf();
        let werr = |e| io_err(&tmp_path, "cannot write the temporary output", e);
        let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
        sorter.write_to(&mut out).map_err(werr)?;
        out.flush().map_err(werr)?;
        drop(out);
        tmp.as_file().sync_all().map_err(werr)?;
        // Checked again: a file may have appeared since the replay started. The
        // finished output is not lost then: kept under its temporary name.
        if let Err(cause) = check_target(&self.path, self.opts.overwrite) {
            return Err(self.keep(tmp, cause));
        }
        let placed = if self.opts.overwrite || std::fs::symlink_metadata(&self.path).is_ok() {
            // --overwrite, or an empty regular file (checked just above).
            tmp.persist(&self.path).map(|_| ())
        } else {
            tmp.persist_noclobber(&self.path).map(|_| ())
        };
        if let Err(e) = placed {
            let cause = if e.error.kind() == io::ErrorKind::AlreadyExists {
                OpenMetricsError::Exists {
                    path: self.path.clone(),
                    len: std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0),
                }
            } else {
                io_err(
                    &self.path,
                    "cannot rename the finished output into place",
                    e.error,
                )
            };
            return Err(self.keep(e.file, cause));
        }
        // The rename itself made durable.
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(&self.dir, "cannot sync the folder", e))
    }
}

impl OpenMetricsSink {
    /// Keeps the synced temporary file `tmp` (which would be deleted when
    /// dropped) after `cause` stopped it from being renamed into place.
    fn keep(&self, tmp: tempfile::NamedTempFile, cause: OpenMetricsError) -> OpenMetricsError {
        match tmp.keep() {
            Ok((_, kept)) => OpenMetricsError::NotPlaced {
                path: self.path.clone(),
                kept,
                cause: Box::new(cause),
            },
            // Not kept (it is deleted): the cause alone is the error.
            Err(_) => cause,
        }
    }
}

impl Sink for OpenMetricsSink {
    fn describe(&self) -> String {
        format!("openmetrics {}", EscapedPath(&self.path))
    }

    fn write_window(&mut self, window: &ClosedWindow) -> Result<(), BoxError> {
        Ok(self.write(window)?)
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        Ok(self.finish_file()?)
    }
}

/// Refuses what must not be replaced at `path`: anything but a regular file,
/// and a non-empty one unless `overwrite`.
fn check_target(path: &Path, overwrite: bool) -> Result<(), OpenMetricsError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(path, "cannot look at the output path", e)),
    };
    let t = meta.file_type();
    let what = if t.is_symlink() {
        return Err(OpenMetricsError::Symlink {
            path: path.to_path_buf(),
        });
    } else if t.is_file() {
        if meta.len() > 0 && !overwrite {
            return Err(OpenMetricsError::Exists {
                path: path.to_path_buf(),
                len: meta.len(),
            });
        }
        return Ok(());
    } else if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a device"
    };
    Err(OpenMetricsError::NotAFile {
        path: path.to_path_buf(),
        what,
    })
}

fn io_err(path: &Path, what: &'static str, source: io::Error) -> OpenMetricsError {
    OpenMetricsError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

#[cfg(test)]
mod tests;
