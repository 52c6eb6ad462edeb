//! JSON Lines file sink: one record per series per window.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tidemark_engine::ClosedWindow;
use tidemark_jobs::SeriesChoice;

use crate::format::{jsonl_record, rfc3339};
use crate::{wanted, Sink, SinkError};

pub struct JsonlSink {
    path: PathBuf,
    out: BufWriter<File>,
    series: SeriesChoice,
    buf: String,
}

impl JsonlSink {
    /// Creates (or truncates) `path`, making its folder if needed.
    pub fn create(path: &Path, series: SeriesChoice) -> Result<JsonlSink, SinkError> {
        let io_err = |e: io::Error| SinkError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(io_err)?;
            }
        }
        let file = File::create(path).map_err(io_err)?;
        Ok(JsonlSink {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(256 * 1024, file),
            series,
            buf: String::new(),
        })
    }
}

impl Sink for JsonlSink {
    fn write_window(&mut self, w: &ClosedWindow) -> Result<(), SinkError> {
        let (start, end) = (rfc3339(w.start_ms), rfc3339(w.end_ms));
        self.buf.clear();
        for s in w.series.iter().filter(|s| wanted(self.series, s)) {
            jsonl_record(w, s, &start, &end, &mut self.buf);
        }
        // A window is written whole and flushed, so a reader never sees half of one.
        self.out
            .write_all(self.buf.as_bytes())
            .and_then(|_| self.out.flush())
            .map_err(|e| SinkError::Io {
                path: self.path.clone(),
                source: e,
            })
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.out
            .flush()
            .and_then(|_| self.out.get_ref().sync_data())
            .map_err(|e| SinkError::Io {
                path: self.path.clone(),
                source: e,
            })
    }

    fn describe(&self) -> String {
        format!("jsonl {}", self.path.display())
    }
}
