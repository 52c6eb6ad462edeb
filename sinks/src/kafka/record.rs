//! What one Kafka record of the sink holds: its key (the series), its value (the
//! series' JSON Lines record, byte for byte the jsonl sink's line without its
//! newline) and the headers that name the job and the window, which the read-back
//! of a resumed run goes by.

use tidemark_engine::Series;

use crate::format::{json_str, jsonl_head, jsonl_rest};

/// The header names.
pub mod header {
    /// The job that wrote the record (its name).
    pub const JOB: &str = "tm-job";
    /// The window's start, ms since the Unix epoch, in decimal.
    pub const WINDOW: &str = "tm-window";
}

/// The record key of `s`: `{"record":R,"labels":{…}}`, the series' identity in
/// the JSON forms of its line, so that a consumer can read it and two series
/// never share a key.
pub fn key(s: &Series, out: &mut String) {
    out.clear();
    out.push_str("{\"record\":");
    json_str(&s.record, out);
    out.push_str(",\"labels\":{");
    for (i, (k, v)) in s.labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(k, out);
        out.push(':');
        json_str(v, out);
    }
    out.push_str("}}");
}

/// The record value of `s` in the window `[start, end)`: its jsonl line without
/// the newline.
pub fn value(s: &Series, start: &str, end: &str, out: &mut String) {
    out.clear();
    jsonl_head(&s.record, start, end, out);
    jsonl_rest(s, out);
    if out.ends_with('\n') {
        out.pop();
    }
}

/// What the read-back makes of a record's headers.
#[derive(Debug, PartialEq, Eq)]
pub enum Origin {
    /// Written by the job the read-back is for, for the window starting then.
    Ours { window_ms: i64 },
    /// Claims to be ours but its window header is missing or not a number: not
    /// written by this sink (counted and logged, never taken as a window).
    Unreadable,
    /// Another job's, or not tidemark's.
    Other,
}

/// Reads the headers `(name, value)` of a record for `job`.
pub fn origin<'a>(
    job: &str,
    headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
) -> Origin {
    let mut ours = false;
    let mut window = None;
    for (name, value) in headers {
        match name {
            header::JOB => ours = value == Some(job.as_bytes()),
            header::WINDOW => {
                window = value
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse::<i64>().ok())
            }
            _ => {}
        }
    }
    match (ours, window) {
        (false, _) => Origin::Other,
        (true, Some(window_ms)) => Origin::Ours { window_ms },
        (true, None) => Origin::Unreadable,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tidemark_engine::{ClosedWindow, Labels, Origin as SeriesOrigin, Value};

    use super::*;
    use crate::format::{jsonl_record, rfc3339};

    fn series(labels: &[(&str, &str)]) -> Series {
        Series {
            record: Arc::from("status:hits"),
            labels: Labels::from_pairs(labels),
            value: Value::Float(1.5),
            origin: SeriesOrigin::Rule,
        }
    }

    #[test]
    fn the_value_is_the_jsonl_line_and_the_key_names_the_series() {
        let s = series(&[("path", "/a\"b"), ("status", "200")]);
        let w = ClosedWindow {
            start_ms: 1_764_892_800_000,
            end_ms: 1_764_892_860_000,
            series: vec![s.clone()],
        };
        let (start, end) = (rfc3339(w.start_ms), rfc3339(w.end_ms));
        let mut line = String::new();
        jsonl_record(&w, &s, &start, &end, &mut line);
        let mut v = String::new();
        value(&s, &start, &end, &mut v);
        assert_eq!(format!("{v}\n"), line);
        let mut k = String::new();
        key(&s, &mut k);
        assert_eq!(
            k,
            r#"{"record":"status:hits","labels":{"path":"/a\"b","status":"200"}}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&k).unwrap();
        assert_eq!(parsed["labels"]["status"], "200");
    }

    #[test]
    fn headers_tell_our_records_from_others() {
        let h = |job: &'static str, w: &'static str| {
            vec![
                (header::JOB, Some(job.as_bytes())),
                (header::WINDOW, Some(w.as_bytes())),
            ]
        };
        assert_eq!(
            origin("j", h("j", "60000")),
            Origin::Ours { window_ms: 60_000 }
        );
        assert_eq!(origin("j", h("k", "60000")), Origin::Other);
        assert_eq!(origin("j", h("j", "x")), Origin::Unreadable);
        assert_eq!(origin("j", vec![]), Origin::Other);
        assert_eq!(origin("j", vec![(header::JOB, None)]), Origin::Other);
    }
}
