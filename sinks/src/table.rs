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
        "── window {} .. {} ──\n",
        rfc3339(w.start_ms),
        rfc3339(w.end_ms)
    );
    row(&mut out, ("record", "labels", "value"), (w0, w1, w2));
    for (r, l, v) in &rows {
        row(&mut out, (r, l, v), (w0, w1, w2));
    }
    out
}

/// One line of the table: record and labels left-aligned, value right-aligned.
/// Padded by hand, as `format!`'s `{:<w$}` would pad (by chars): a width
/// argument is at most `u16::MAX`, and a label value of 64 KiB made the
/// formatter panic (review R17e).
fn row(out: &mut String, (r, l, v): (&str, &str, &str), (w0, w1, w2): (usize, usize, usize)) {
    let pad = |out: &mut String, s: &str, w: usize| {
        out.extend(std::iter::repeat_n(
            ' ',
            w.saturating_sub(s.chars().count()),
        ));
    };
    out.push_str("  ");
    out.push_str(r);
    pad(out, r, w0);
    out.push_str("  ");
    out.push_str(l);
    pad(out, l, w1);
    out.push_str("  ");
    pad(out, v, w2);
    out.push_str(v);
    out.push('\n');
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

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_engine::{Labels, Origin, Series, Value};

    fn window(labels: Vec<(String, String)>) -> ClosedWindow {
        ClosedWindow {
            start_ms: 0,
            end_ms: 60_000,
            series: vec![
                Series {
                    record: "requests_total".into(),
                    labels: Labels::from(labels),
                    value: Value::Int(7),
                    origin: Origin::Host,
                },
                Series {
                    record: "r".into(),
                    labels: Labels::default(),
                    value: Value::Int(123_456),
                    origin: Origin::Host,
                },
            ],
        }
    }

    /// Review R17e: a label value past `u16::MAX` chars made `format!`'s width
    /// argument panic, and with `-w 2` the other worker waited for ever.
    #[test]
    fn a_label_value_of_64_kib_renders_without_a_panic() {
        let wide = "y".repeat(70_000);
        let text = render(&window(vec![("s".into(), wide.clone())]), SeriesChoice::All);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{}", &text[..200]);
        assert!(lines[2].contains(&wide));
        // Every row pads its labels to the widest: the value columns line up.
        let ends: Vec<usize> = lines[1..].iter().map(|l| l.chars().count()).collect();
        assert!(ends.windows(2).all(|w| w[0] == w[1]), "{ends:?}");
    }

    /// The hand-made padding is `format!`'s, by chars (multibyte values too).
    #[test]
    fn rows_pad_as_format_would() {
        let w = window(vec![("path".into(), "/é/中".into())]);
        let text = render(&w, SeriesChoice::All);
        let rows: Vec<(String, String, String)> = w
            .series
            .iter()
            .map(|s| {
                let mut v = String::new();
                value(s.value, &mut v);
                (s.record.to_string(), labels_text(&s.labels), v)
            })
            .collect();
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap().max(6);
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap().max(6);
        let w2 = rows.iter().map(|r| r.2.len()).max().unwrap().max(5);
        let mut want = format!(
            "── window {} .. {} ──\n  {:<w0$}  {:<w1$}  {:>w2$}\n",
            rfc3339(0),
            rfc3339(60_000),
            "record",
            "labels",
            "value"
        );
        for (r, l, v) in rows {
            want.push_str(&format!("  {r:<w0$}  {l:<w1$}  {v:>w2$}\n"));
        }
        assert_eq!(text, want);
    }
}
