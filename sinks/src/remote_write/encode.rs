//! A closed window as remote-write requests: one sample per series at the
//! window's sample time, labels sorted with `__name__`, external labels, the
//! staleness markers of series that stopped, split into requests of at most
//! `max_samples_per_send` samples.
//!
//! Deterministic by design: the same window (and the same previous window)
//! gives the same requests, byte for byte. A request never spans two windows,
//! and a big window is split in its sorted order with its staleness markers
//! last. After a crash the engine hands over the windows after the last
//! checkpoint again; each resent request is then either entirely held by the
//! receiver already or entirely new, so the receiver, which applies a request
//! atomically, ends with every sample exactly once (see `mod.rs`).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

#[cfg(test)]
use prost::Message;
use tidemark_engine::{ClosedWindow, Labels, Value};
use tidemark_jobs::{SampleTime, SeriesChoice};

use super::frame::{encode_labels, Batch, Batches};
#[cfg(test)]
use super::proto::WriteRequest;
use super::proto::{Label, STALE_NAN};
use crate::wanted;

/// A series as the engine names it: (record, labels).
type SeriesKey = (Arc<str>, Labels);

/// Fast hashing: it runs once per series per window, on keys from our own
/// engine (not from a client that could pick colliding keys).
type Encoded = HashMap<SeriesKey, Vec<u8>, ahash::RandomState>;

/// Turns windows into [`Batch`]es; remembers the previous window's series for
/// its staleness markers.
pub struct Encoder {
    series: SeriesChoice,
    time: SampleTime,
    /// Sorted by name.
    external: Vec<(String, String)>,
    max_per_send: usize,
    /// The series of the previous window handed over, in its order (empty
    /// after a restart: the sink does not know what was sent before it).
    previous: Vec<SeriesKey>,
    /// Each of those series' labels, protobuf-encoded (the `labels` fields of
    /// its `TimeSeries`): a series keeps its labels from window to window, so
    /// a window costs a lookup and a copy per series, not a string per label.
    encoded: Encoded,
}

impl Encoder {
    pub fn new(
        series: SeriesChoice,
        time: SampleTime,
        external: Vec<(String, String)>,
        max_per_send: usize,
    ) -> Encoder {
        let mut external = external;
        external.sort();
        Encoder {
            series,
            time,
            external,
            max_per_send: max_per_send.max(1),
            previous: Vec::new(),
            encoded: Encoded::default(),
        }
    }

    /// The requests of window `w`, in the order they must be sent.
    pub fn window(&mut self, w: &ClosedWindow) -> Vec<Batch> {
        let t = self.time.of(w.start_ms, w.end_ms);
        let mut batches = Batches::new(w.start_ms, t, self.max_per_send);
        let mut current: Vec<SeriesKey> = Vec::new();
        let mut encoded = Encoded::default();
        encoded.reserve(self.encoded.len());
        for s in w.series.iter().filter(|s| wanted(self.series, s)) {
            // The engine's own (record, labels): cheap to clone and hash.
            let key = (s.record.clone(), s.labels.clone());
            let slot = match encoded.entry(key.clone()) {
                Entry::Vacant(slot) => slot,
                Entry::Occupied(_) => {
                    // The engine makes one record per (record, labels); never
                    // send one series twice at one instant all the same.
                    tracing::warn!(
                        "remote-write: the window of {} holds the series {} twice; only the first is sent",
                        crate::format::rfc3339(w.start_ms),
                        show(&self.labels(&s.record, &s.labels))
                    );
                    continue;
                }
            };
            let labels = match self.encoded.remove(&key) {
                Some(bytes) => bytes,
                None => encode_labels(&self.labels(&s.record, &s.labels)),
            };
            batches.push(&labels, value_of(s.value), false, || {
                show(&self.labels(&key.0, &key.1))
            });
            slot.insert(labels);
            current.push(key);
        }
        // In the previous window's order: deterministic. What is left of the
        // previous window's encodings are exactly the series that stopped.
        for gone in &self.previous {
            if let Some(labels) = self.encoded.get(gone) {
                batches.push(labels, f64::from_bits(STALE_NAN), true, || {
                    show(&self.labels(&gone.0, &gone.1))
                });
            }
        }
        self.previous = current;
        self.encoded = encoded;
        batches.finish()
    }

    /// `__name__` = the record, the series' labels, then each external label
    /// the series does not have; sorted by name in byte order (as the spec
    /// asks: `__name__` sorts before lowercase names). A label with an empty
    /// value is left out: the spec says it MUST NOT be sent, and Prometheus
    /// treats it as absent (so an external label of that name applies).
    fn labels(&self, record: &str, series_labels: &Labels) -> Vec<Label> {
        let mut labels: Vec<Label> = Vec::with_capacity(1 + self.external.len());
        labels.push(Label {
            name: "__name__".into(),
            value: record.to_string(),
        });
        for (name, value) in series_labels.iter().filter(|(_, v)| !v.is_empty()) {
            labels.push(Label {
                name: name.to_string(),
                value: value.to_string(),
            });
        }
        for (name, value) in &self.external {
            if !labels.iter().any(|l| l.name == *name) {
                labels.push(Label {
                    name: name.clone(),
                    value: value.clone(),
                });
            }
        }
        labels.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        labels
    }
}

fn value_of(v: Value) -> f64 {
    match v {
        Value::Int(n) => n as f64,
        Value::Float(f) => f,
    }
}

/// `name{a="b",c="d"}`, for log lines.
pub fn show(labels: &[Label]) -> String {
    let name = labels
        .iter()
        .find(|l| l.name == "__name__")
        .map_or("", |l| l.value.as_str());
    let rest: Vec<String> = labels
        .iter()
        .filter(|l| l.name != "__name__")
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{name}{{{}}}", rest.join(","))
}

#[cfg(test)]
pub(crate) fn decode(body: &[u8]) -> WriteRequest {
    let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
    WriteRequest::decode(raw.as_slice()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote_write::proto::{Sample, TimeSeries};
    use tidemark_engine::{Origin, Series};

    fn series(record: &str, labels: &[(&str, &str)], v: Value, origin: Origin) -> Series {
        Series {
            record: record.into(),
            labels: Labels::from_pairs(labels),
            value: v,
            origin,
        }
    }

    fn window(start_min: i64, series: Vec<Series>) -> ClosedWindow {
        ClosedWindow {
            start_ms: start_min * 60_000,
            end_ms: (start_min + 1) * 60_000,
            series,
        }
    }

    fn pairs(ts: &TimeSeries) -> Vec<(&str, &str)> {
        ts.labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect()
    }

    #[test]
    fn a_window_round_trips_with_sorted_labels_and_external_labels_not_overriding() {
        let mut e = Encoder::new(
            SeriesChoice::All,
            SampleTime::End,
            vec![
                ("zone".into(), "z1".into()),
                ("cluster".into(), "eu1".into()),
            ],
            100,
        );
        let w = window(
            10,
            vec![
                series(
                    "status:http_requests:sum1m",
                    &[("status", "200"), ("cluster", "mine")],
                    Value::Int(42),
                    Origin::Rule,
                ),
                series(
                    "lat",
                    &[("Host", "a"), ("quantile", "0.5")],
                    Value::Float(0.25),
                    Origin::Host,
                ),
            ],
        );
        let batches = e.window(&w);
        assert_eq!(batches.len(), 1);
        let b = &batches[0];
        assert_eq!(
            (b.samples, b.stale, b.window_start_ms, b.sample_ms),
            (2, 0, 600_000, 660_000)
        );
        let req = decode(&b.body);
        assert_eq!(req.timeseries.len(), 2);
        assert_eq!(
            pairs(&req.timeseries[0]),
            [
                ("__name__", "status:http_requests:sum1m"),
                ("cluster", "mine"),
                ("status", "200"),
                ("zone", "z1")
            ]
        );
        // Byte order: `Host` < `__name__` < `cluster`.
        assert_eq!(
            pairs(&req.timeseries[1]),
            [
                ("Host", "a"),
                ("__name__", "lat"),
                ("cluster", "eu1"),
                ("quantile", "0.5"),
                ("zone", "z1")
            ]
        );
        assert_eq!(
            req.timeseries[0].samples,
            vec![Sample {
                value: 42.0,
                timestamp: 660_000
            }]
        );
        assert_eq!(req.timeseries[1].samples[0].value, 0.25);
        assert_eq!(
            b.first_series,
            "status:http_requests:sum1m{cluster=\"mine\",status=\"200\",zone=\"z1\"}"
        );
        // Start instead of end.
        let mut s = Encoder::new(SeriesChoice::All, SampleTime::Start, vec![], 100);
        assert_eq!(
            decode(&s.window(&w)[0].body).timeseries[0].samples[0].timestamp,
            600_000
        );
    }

    #[test]
    fn empty_label_values_are_not_sent() {
        let mut e = Encoder::new(
            SeriesChoice::All,
            SampleTime::End,
            vec![("zone".into(), "z1".into())],
            100,
        );
        let w = window(
            1,
            vec![series(
                "reqs",
                &[("method", ""), ("status", "200"), ("zone", "")],
                Value::Int(1),
                Origin::Host,
            )],
        );
        let req = decode(&e.window(&w)[0].body);
        assert_eq!(
            pairs(&req.timeseries[0]),
            [("__name__", "reqs"), ("status", "200"), ("zone", "z1")]
        );
    }

    #[test]
    fn the_hand_framed_requests_are_byte_for_byte_what_prost_writes() {
        let mut e = Encoder::new(
            SeriesChoice::All,
            SampleTime::End,
            vec![("cluster".into(), "eu1".into())],
            3,
        );
        let w = |start, n: u64| {
            window(
                start,
                (0..n)
                    .map(|i| {
                        let v = if i % 2 == 0 {
                            Value::Int(i)
                        } else {
                            Value::Float(-0.5 * i as f64)
                        };
                        series("x", &[("i", &i.to_string()), ("e", "")], v, Origin::Rule)
                    })
                    .collect(),
            )
        };
        // Window 1 encodes every series' labels; window 2 reuses them and
        // marks the ones that stopped.
        for b in e.window(&w(0, 5)).iter().chain(&e.window(&w(1, 2))) {
            let raw = snap::raw::Decoder::new().decompress_vec(&b.body).unwrap();
            let req = WriteRequest::decode(raw.as_slice()).unwrap();
            assert_eq!(req.encode_to_vec(), raw);
            assert_eq!(req.timeseries.len() as u64, b.samples);
        }
    }

    #[test]
    fn the_series_choice_filters_like_jsonl() {
        let w = window(
            0,
            vec![
                series("r", &[], Value::Int(1), Origin::Rule),
                series("h", &[("host", "a")], Value::Int(2), Origin::Host),
            ],
        );
        let names = |choice| {
            let mut e = Encoder::new(choice, SampleTime::End, vec![], 10);
            e.window(&w)
                .iter()
                .flat_map(|b| decode(&b.body).timeseries)
                .map(|t| show(&t.labels))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(SeriesChoice::Rules), ["r{}"]);
        assert_eq!(names(SeriesChoice::Hosts), ["h{host=\"a\"}"]);
        assert_eq!(names(SeriesChoice::All), ["r{}", "h{host=\"a\"}"]);
    }

    #[test]
    fn a_series_that_stops_gets_one_staleness_marker() {
        let mut e = Encoder::new(SeriesChoice::All, SampleTime::End, vec![], 100);
        let a = || series("x", &[("k", "a")], Value::Int(1), Origin::Rule);
        let b = || series("x", &[("k", "b")], Value::Int(2), Origin::Rule);
        assert_eq!(e.window(&window(0, vec![a(), b()]))[0].stale, 0);
        let batches = e.window(&window(1, vec![b()]));
        let req = decode(&batches[0].body);
        assert_eq!(batches[0].stale, 1);
        assert_eq!(req.timeseries.len(), 2);
        // The live series first, the marker last, at this window's sample time.
        assert_eq!(pairs(&req.timeseries[0]), [("__name__", "x"), ("k", "b")]);
        assert_eq!(pairs(&req.timeseries[1]), [("__name__", "x"), ("k", "a")]);
        let marker = &req.timeseries[1].samples[0];
        assert_eq!(
            (marker.value.to_bits(), marker.timestamp),
            (STALE_NAN, 120_000)
        );
        // Once marked, not again; and a series that comes back is live again.
        assert_eq!(e.window(&window(2, vec![b()]))[0].stale, 0);
        let back = e.window(&window(3, vec![a(), b()]));
        assert_eq!((back[0].samples, back[0].stale), (2, 0));
        // A window without any series marks every series of the one before.
        let empty = e.window(&window(4, vec![]));
        assert_eq!((empty[0].samples, empty[0].stale), (2, 2));
        assert!(e.window(&window(5, vec![])).is_empty());
    }

    #[test]
    fn a_big_window_splits_in_sorted_order_with_markers_last_and_deterministically() {
        let make = |n: usize, start| {
            window(
                start,
                (0..n)
                    .map(|i| {
                        series(
                            "x",
                            &[("i", &format!("{i:03}"))],
                            Value::Int(i as u64),
                            Origin::Rule,
                        )
                    })
                    .collect(),
            )
        };
        let run = || {
            let mut e = Encoder::new(SeriesChoice::All, SampleTime::End, vec![], 4);
            let first = e.window(&make(10, 0));
            let second = e.window(&make(7, 1));
            (first, second)
        };
        let (first, second) = run();
        assert_eq!(
            first.iter().map(|b| b.samples).collect::<Vec<_>>(),
            [4, 4, 2]
        );
        // 7 live series, then the 3 that stopped, in chunks of 4.
        assert_eq!(
            second
                .iter()
                .map(|b| (b.samples, b.stale))
                .collect::<Vec<_>>(),
            [(4, 0), (4, 1), (2, 2)]
        );
        let order: Vec<String> = first
            .iter()
            .flat_map(|b| decode(&b.body).timeseries)
            .map(|t| t.labels[1].value.clone())
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
        // No request spans two windows, and the same input gives the same bytes.
        assert!(second.iter().all(|b| b.window_start_ms == 60_000));
        assert_eq!(run(), (first, second));
    }
}
