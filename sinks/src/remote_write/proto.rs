//! The Remote-Write 1.0 protobuf messages (prometheus/prompb `remote.proto` and
//! `types.proto`), written out with prost's derive: the four messages and the
//! field numbers the spec fixes, no code generation, no protoc.

/// One request: `prometheus.WriteRequest`. The encoder frames its
/// `timeseries` by hand around cached label bytes (`encode.rs`); the tests
/// decode every request with it and check prost writes the same bytes.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// One series and its samples, in time order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name; `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Prometheus's staleness marker: a NaN with this exact bit pattern tells the
/// receiver the series ended (a plain NaN is a value).
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
