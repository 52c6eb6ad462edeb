//! The validated job: what the engine, sources and sinks are built from.
//!
//! Every reference has been checked, every regex compiled and every duration parsed;
//! consumers never re-validate.

use std::path::PathBuf;
use std::time::Duration;

/// A job that passed validation.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    /// Folder of the job file; relative paths were resolved against it.
    pub base_dir: PathBuf,
    pub source: Source,
    pub parse: Parse,
    pub window: Window,
    pub metrics: Vec<Metric>,
    pub rules: Vec<Rule>,
    pub sinks: Vec<Sink>,
    /// `[[alert]]`s, in file order (docs/alerts.md).
    pub alerts: Vec<crate::alert::Alert>,
    /// The folders this job's sinks may write in; empty = anywhere. Not a job file
    /// setting (validation leaves it empty): set by the cluster (`--output-root`)
    /// after the job passed its lexical checks. A sink file is opened only when its
    /// real path (symlinks resolved) lies under one of these.
    pub output_roots: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Source {
    /// Absolute globs of the live files.
    pub include: Vec<String>,
    /// Absolute globs of paths to leave out (applies to `include` and `archive`).
    pub exclude: Vec<String>,
    /// Absolute globs of older files kept elsewhere, read only by `tidemark replay`
    /// (never by `run`). Empty when the job file sets none. Each is a valid
    /// `glob` pattern.
    pub archive: Vec<String>,
    pub host: HostFrom,
    pub poll_interval: Duration,
    pub read_chunk_bytes: usize,
    /// A finite run without a state folder reads a file group at least this large
    /// as segments on several workers (`split_from`).
    pub split_from_bytes: u64,
    pub max_line_bytes: usize,
    pub fingerprint_bytes: usize,
    pub rotated_tail_wait: Duration,
    /// Bytes per second over the whole job; `None` = unlimited.
    pub rate_limit: Option<u64>,
    /// Most files the job keeps open at once (see the job file's `max_open_files`).
    pub max_open_files: usize,
    /// The folders this job may read files from; empty = any path. Not a job file
    /// setting (validation leaves it empty): set by the cluster after the job passed
    /// [`crate::check_roots`] against its `--allow-root` folders. Every file is read
    /// only when its real path (symlinks resolved) lies under one of these.
    pub allowed_roots: Vec<PathBuf>,
    /// Paths no file of this job is read from, whatever `allowed_roots` says
    /// (checked by real path at every open). Not a job file setting: a cluster
    /// member sets its state folder and API token file here. Operational: what a
    /// window holds does not change, so it is not in the semantics fingerprint.
    pub denied_reads: Vec<PathBuf>,
    /// `kind = "kafka"`: the topic read instead of files (then `include`,
    /// `exclude` and `archive` are empty). `None` for `kind = "file"`.
    pub kafka: Option<KafkaSource>,
}

/// `[source] kind = "kafka"` (docs/kafka.md). `{:?}` shows no secret option's
/// value ([`crate::kafka_options::Redacted`]).
#[derive(Clone)]
pub struct KafkaSource {
    /// `bootstrap.servers`.
    pub brokers: String,
    pub topic: String,
    /// librdkafka options passed through, checked with
    /// `tidemark_kafka::client_config(Role::Consumer, ..)`.
    pub options: std::collections::BTreeMap<String, String>,
    /// Where read offsets are committed for lag tools; `None`: `tidemark-JOB_NAME`.
    pub group_id: Option<String>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("options", &crate::kafka_options::Redacted(&self.options))
            .field("group_id", &self.group_id)
            .finish()
    }
}

impl KafkaSource {
    /// The consumer group offsets are committed to (only for lag tools).
    pub fn group_id_for(&self, job: &str) -> String {
        self.group_id
            .clone()
            .unwrap_or_else(|| format!("tidemark-{job}"))
    }
}

#[derive(Debug, Clone)]
pub enum HostFrom {
    /// Compiled; has a capture group named `host`.
    PathRegex(regex::Regex),
    Field(String),
    Value(String),
    /// kind = "kafka": an agent's record names its host (its `tm-host` header);
    /// any other record's host is in this header.
    Record {
        header: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Nginx,
    Json,
    Logfmt,
    /// The pattern was checked to compile and to have named captures.
    Regex(String),
}

/// Fields of the `nginx` preset, in the order of the combined log format with
/// `$request_time` after it; `request` is the unsplit `$request`. Validation accepts
/// exactly these names and the parser (tidemark-sources) indexes its fields by this
/// order, so both read this one list.
pub const NGINX_FIELDS: [&str; 12] = [
    "remote_addr",
    "remote_user",
    "time_local",
    "method",
    "path",
    "protocol",
    "status",
    "body_bytes_sent",
    "http_referer",
    "http_user_agent",
    "request_time",
    "request",
];

/// nginx's `$time_local`: the `nginx` preset's timestamp format.
pub const NGINX_TIME_FORMAT: &str = "%d/%b/%Y:%H:%M:%S %z";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    Rfc3339,
    EpochSeconds,
    EpochMillis,
    /// A strftime pattern as accepted by `jiff::fmt::strtime`.
    Strftime(String),
}

#[derive(Debug, Clone)]
pub struct Parse {
    pub format: Format,
    pub timestamp_field: String,
    pub timestamp_format: TimeFormat,
}

#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Divides one hour.
    pub size: Duration,
    pub max_out_of_orderness: Duration,
    pub idle_timeout: Duration,
    /// Lines stamped further than this ahead of the wall clock are dropped and counted.
    pub max_clock_skew: Duration,
    /// The most per-host series a window holds over the whole job; each metric may
    /// hold `max_series / metrics` of them. At least the number of metrics.
    pub max_series: usize,
    /// A line stamped further than this ahead of its file group's latest time moves
    /// the group's watermark only once the next line confirms the jump; at least
    /// `max_out_of_orderness`.
    pub max_jump: Duration,
    /// Live mode: a file group that keeps writing lines whose time has not moved
    /// for this long, and is further than this behind the wall clock, stops
    /// holding windows open.
    pub max_clock_lag: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Sum,
    Gauge,
    Histogram,
}

#[derive(Debug, Clone)]
pub struct Metric {
    pub name: String,
    pub kind: MetricKind,
    /// `None` only for counters.
    pub field: Option<String>,
    pub labels: Vec<String>,
    /// Histogram only (empty otherwise); each in [0, 1], ascending, no duplicates.
    pub quantiles: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    Sum,
    Min,
    Max,
    Avg,
    Count,
}

/// Which labels a rule keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    /// `by (a, b)`: keep exactly these (sorted, deduplicated). `by ()` / no clause: none.
    By(Vec<String>),
    /// `without (a, b)`: keep every label of the input series except these.
    Without(Vec<String>),
}

/// What a rule reads: a metric, or for histograms one of its derived series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesSelector {
    /// The metric's own value (counter, sum, gauge).
    Value,
    /// `NAME_count` of a histogram: number of observations.
    HistogramCount,
    /// `NAME_sum` of a histogram: sum of observations.
    HistogramSum,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuleExpr {
    /// `op by|without (labels) (metric)`; `metric` indexes `Job::metrics`.
    Aggregate {
        op: AggOp,
        grouping: Grouping,
        metric: usize,
        selector: SeriesSelector,
    },
    /// `histogram_quantile(q, metric)` or `histogram_quantile(q, sum by|without (..) (metric))`.
    /// Merges the exact per-host histograms of each group, then takes the quantile.
    HistogramQuantile {
        q: f64,
        grouping: Grouping,
        metric: usize,
    },
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub record: String,
    pub expr: RuleExpr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesChoice {
    Rules,
    Hosts,
    All,
    /// No series: a jsonl sink that writes only the alert transcript.
    None,
}

#[derive(Debug, Clone)]
pub enum SinkKind {
    /// Absolute path.
    Jsonl(PathBuf),
    Stdout,
    /// Prometheus remote-write 1.0 (boxed: it is much larger than the others).
    RemoteWrite(Box<RemoteWrite>),
    /// Alertmanager's API v2: the job's alerts, not its windows.
    Alertmanager(Box<Alertmanager>),
    /// A Kafka topic, one record per series per window (docs/kafka.md, "Kafka sink").
    Kafka(Box<KafkaSinkConfig>),
}

impl SinkKind {
    /// The credentials this sink reads from files and sends to its url, if any.
    pub fn auth(&self) -> Option<&RemoteWriteAuth> {
        match self {
            SinkKind::RemoteWrite(rw) => rw.auth.as_ref(),
            SinkKind::Alertmanager(am) => am.auth.as_ref(),
            SinkKind::Jsonl(_) | SinkKind::Stdout | SinkKind::Kafka(_) => None,
        }
    }
}

/// An `alertmanager` sink's settings, checked. All operational (not in the
/// semantics fingerprint): where alerts are sent changes no window.
#[derive(Debug, Clone, PartialEq)]
pub struct Alertmanager {
    /// The Alertmanager's base URL, `http://host[:port][/prefix]`, without user
    /// info or a trailing `/`; alerts go to `{url}/api/v2/alerts`.
    pub url: String,
    /// How often active alerts are re-sent (wall clock). At least 1s.
    pub resend_interval: Duration,
    /// Per request.
    pub timeout: Duration,
    /// Every alert's `generatorURL`; `None`: the sink's default, which names the
    /// machine and the job (docs/alerts.md).
    pub generator_url: Option<String>,
    /// The same credentials as a remote-write sink's.
    pub auth: Option<RemoteWriteAuth>,
}

impl Alertmanager {
    /// Defaults of the optional keys (docs/alerts.md, "Alertmanager"):
    /// Prometheus's `resend_delay` and Alertmanager client timeout.
    pub const DEFAULT_RESEND_INTERVAL: Duration = Duration::from_secs(60);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
}

/// A `kafka` sink's settings, checked. All operational: where the records go
/// changes no window. `{:?}` shows no secret option's value.
#[derive(Clone, PartialEq)]
pub struct KafkaSinkConfig {
    /// `bootstrap.servers`: `host:port[,host:port…]`, not empty.
    pub brokers: String,
    /// The topic, which must exist (the sink does not create it).
    pub topic: String,
    /// librdkafka options passed through (TLS, SASL, linger, compression…);
    /// checked with librdkafka, without those tidemark sets itself.
    pub options: std::collections::BTreeMap<String, String>,
    /// Records sent and not yet acknowledged before the sink asks the job to
    /// pause (at least 1).
    pub queue_capacity: usize,
}

impl std::fmt::Debug for KafkaSinkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSinkConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("options", &crate::kafka_options::Redacted(&self.options))
            .field("queue_capacity", &self.queue_capacity)
            .finish()
    }
}

impl KafkaSinkConfig {
    /// Default of `queue_capacity` (docs/kafka.md, "Kafka sink").
    pub const DEFAULT_QUEUE_CAPACITY: usize = 100_000;
    /// librdkafka options the sink sets itself, on top of those of every
    /// tidemark producer (`tidemark_kafka::Role::SinkProducer`), and why: the
    /// read-back of a resumed run is exact only with them. Refused as options.
    pub const FIXED: [(&'static str, &'static str, &'static str); 3] = [
        (
            "message.timeout.ms",
            "0",
            "a record is never given up while the broker is away: the job pauses instead",
        ),
        (
            "delivery.timeout.ms",
            "0",
            "a record is never given up while the broker is away: the job pauses instead",
        ),
        (
            "enable.gapless.guarantee",
            "true",
            "no record of a partition lands after one that was lost",
        ),
    ];
}

/// A `prometheus_remote_write` sink's settings, checked. All operational: none
/// changes what a window holds, so none is in the semantics fingerprint.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWrite {
    /// `http://host[:port]/path`, without user info (validation refuses it).
    pub url: String,
    /// Which instant of its window a sample carries.
    pub timestamp: SampleTime,
    /// Added to every series that lacks them; sorted by name, names valid label
    /// names other than `__name__`.
    pub external_labels: Vec<(String, String)>,
    pub auth: Option<RemoteWriteAuth>,
    /// Per request.
    pub timeout: Duration,
    /// At least 1.
    pub max_samples_per_send: usize,
    /// At least 1.
    pub queue_capacity: usize,
    pub min_backoff: Duration,
    /// At least `min_backoff`.
    pub max_backoff: Duration,
}

/// How a remote-write sink authenticates. Only paths here: the secrets are read
/// when the sink opens, and never printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteWriteAuth {
    /// `Authorization: Bearer <the file's contents>`; absolute path.
    BearerTokenFile(PathBuf),
    /// `Authorization: Basic`; absolute path of the password file.
    Basic {
        username: String,
        password_file: PathBuf,
    },
}

impl RemoteWrite {
    /// Defaults of the optional keys (docs/prometheus.md, "Remote write").
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_MAX_SAMPLES_PER_SEND: usize = 2000;
    pub const DEFAULT_QUEUE_CAPACITY: usize = 100_000;
    pub const DEFAULT_MIN_BACKOFF: Duration = Duration::from_millis(30);
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);
}

#[derive(Debug, Clone)]
pub struct Sink {
    pub kind: SinkKind,
    pub series: SeriesChoice,
    /// jsonl only: also write the alert transcript.
    pub alerts: bool,
}

/// Which instant of its window a sample sent to Prometheus carries (a
/// remote-write sink's `timestamp`, `replay --format openmetrics --timestamp`).
/// The same choice on both gives the same samples, so a backfilled range and a
/// live one line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SampleTime {
    /// The window's end: the sample of `[10:01, 10:02)` is stamped 10:02, as a
    /// Prometheus recording rule over `[1m]` evaluated at 10:02 would be — so
    /// `increase(x[1m])` and a tidemark rollup line up on a graph. The default.
    #[default]
    End,
    /// The window's start: the timestamp the JSONL output leads with.
    Start,
}

impl SampleTime {
    /// The instant of the window `[start_ms, end_ms)` a sample carries.
    pub fn of(self, start_ms: i64, end_ms: i64) -> i64 {
        match self {
            SampleTime::End => end_ms,
            SampleTime::Start => start_ms,
        }
    }

    /// Reads `end` or `start`; `None` for anything else.
    pub fn parse(s: &str) -> Option<SampleTime> {
        match s {
            "end" => Some(SampleTime::End),
            "start" => Some(SampleTime::Start),
            _ => None,
        }
    }
}
