//! Human-readable table on standard output, one block per window.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tidemark_engine::stats::SinkMeter;
use tidemark_engine::ClosedWindow;
use tidemark_jobs::SeriesChoice;

use crate::format::{labels_text, rfc3339, value};
use crate::{wanted, BoxError, Sink, SinkError};

pub struct TableSink<W: Write + Send> {
    out: W,
    series: SeriesChoice,
    /// Rows written and windows (one write each) as batches, for `/metrics`.
    meter: Arc<SinkMeter>,
}

impl<W: Write + Send> TableSink<W> {
    pub fn new(out: W, series: SeriesChoice) -> TableSink<W> {
        TableSink {
            out,
            series,
            meter: Arc::new(SinkMeter::default()),
        }
    }
}

/// Formats one window as a table block.
pub fn render(w: &ClosedWindow, series: SeriesChoice) -> String {
    let rows: Vec<(String, String, String)> = w
        .series
        .iter()
        .filter(|s| wanted(series, s))
        .map(|s| {
            let mut v = String::new();
            value(s.value, &mut v);
            (s.record.to_string(), labels_text(&s.labels), v)
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(6);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(6);
    let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(0).max(5);
    let mut out = format!(
        "── window {} .. {} ──\n  {:<w0$}  {:<w1$}  {:>w2$}\n",
        rfc3339(w.start_ms),
        rfc3339(w.end_ms),
        "record",
        "labels",
        "value"
    );
    for (r, l, v) in rows {
        out.push_str(&format!("  {r:<w0$}  {l:<w1$}  {v:>w2$}\n"));
    }
    out
}

impl<W: Write + Send> Sink for TableSink<W> {
    fn describe(&self) -> String {
        "stdout table".to_string()
    }

    fn write_window(&mut self, w: &ClosedWindow) -> Result<(), BoxError> {
        let text = render(w, self.series);
        self.out
            .write_all(text.as_bytes())
            .and_then(|_| self.out.flush())
            .map_err(SinkError::Stdout)?;
        let rows = w.series.iter().filter(|s| wanted(self.series, s)).count();
        self.meter
            .records_written
            .fetch_add(rows as u64, Ordering::Relaxed);
        self.meter.batches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Flushes: standard output has nothing to make durable, and no commit point.
    fn finish(&mut self) -> Result<(), BoxError> {
        self.out.flush().map_err(|e| SinkError::Stdout(e).into())
    }

    fn meter(&self) -> Option<Arc<SinkMeter>> {
        Some(self.meter.clone())
    }
}
