//! One window's requests, framed: each `TimeSeries` written around its
//! cached label bytes and its one sample, `max_samples_per_send` per request,
//! snappy block-compressed.

use prost::encoding::WireType;
use prost::Message;

use super::proto::{Label, Sample, TimeSeries};

/// One request, ready to send: a part of one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The window's start (for logs and errors).
    pub window_start_ms: i64,
    /// The instant its samples carry.
    pub sample_ms: i64,
    /// Samples in it (one per series, markers included).
    pub samples: u64,
    /// Staleness markers among them.
    pub stale: u64,
    /// The first series, as `name{a="b"}`, to name in logs.
    pub first_series: String,
    /// The protobuf `WriteRequest`, snappy block-compressed.
    pub body: Vec<u8>,
}

/// A series' labels as the `labels` fields of a `TimeSeries` (prost's
/// encoding of a `TimeSeries` without samples).
pub fn encode_labels(labels: &[Label]) -> Vec<u8> {
    TimeSeries {
        labels: labels.to_vec(),
        samples: Vec::new(),
    }
    .encode_to_vec()
}

/// Builds one window's requests, `max` samples each: each `TimeSeries` is
/// framed by hand around its cached label bytes and its one sample, exactly
/// as prost frames a repeated message field (the tests decode them with
/// prost).
pub struct Batches {
    window_start_ms: i64,
    t: i64,
    max: usize,
    out: Vec<Batch>,
    /// The `WriteRequest` being built.
    raw: Vec<u8>,
    samples: u64,
    stale: u64,
    first: String,
    sample: Vec<u8>,
}

impl Batches {
    pub fn new(window_start_ms: i64, t: i64, max: usize) -> Batches {
        Batches {
            window_start_ms,
            t,
            max,
            out: Vec::new(),
            raw: Vec::new(),
            samples: 0,
            stale: 0,
            first: String::new(),
            sample: Vec::new(),
        }
    }

    pub fn push(&mut self, labels: &[u8], value: f64, stale: bool, show: impl FnOnce() -> String) {
        if self.samples == 0 {
            self.first = show();
        }
        self.sample.clear();
        Sample {
            value,
            timestamp: self.t,
        }
        .encode_raw(&mut self.sample);
        let mut ts_len =
            labels.len() + 1 + prost::encoding::encoded_len_varint(self.sample.len() as u64);
        ts_len += self.sample.len();
        // WriteRequest.timeseries = 1, TimeSeries.samples = 2, both messages.
        prost::encoding::encode_key(1, WireType::LengthDelimited, &mut self.raw);
        prost::encoding::encode_varint(ts_len as u64, &mut self.raw);
        self.raw.extend_from_slice(labels);
        prost::encoding::encode_key(2, WireType::LengthDelimited, &mut self.raw);
        prost::encoding::encode_varint(self.sample.len() as u64, &mut self.raw);
        self.raw.extend_from_slice(&self.sample);
        self.samples += 1;
        self.stale += u64::from(stale);
        if self.samples as usize >= self.max {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.samples == 0 {
            return;
        }
        self.out.push(Batch {
            window_start_ms: self.window_start_ms,
            sample_ms: self.t,
            samples: self.samples,
            stale: self.stale,
            first_series: std::mem::take(&mut self.first),
            body: compress(&self.raw),
        });
        self.raw.clear();
        self.samples = 0;
        self.stale = 0;
    }

    pub fn finish(mut self) -> Vec<Batch> {
        self.flush();
        self.out
    }
}

/// An encoded message, snappy block-compressed (not framed).
pub fn compress(raw: &[u8]) -> Vec<u8> {
    // Only fails for inputs over ~4 GiB, which max_samples_per_send rules out;
    // never panic on it all the same: an empty body is refused by the receiver
    // with a 400, which fails the sink with a message.
    snap::raw::Encoder::new()
        .compress_vec(raw)
        .unwrap_or_default()
}
