//! The job file as written (TOML v1): serde structs only, no I/O, no validation.
//!
//! Every struct denies unknown keys so a typo is an error, not a silently ignored
//! setting. Defaults are documented on each field; `crate::validate` turns a
//! [`JobFile`] into a checked [`crate::Job`].
//!
//! Values are wrapped in [`Spanned`] so validation errors can point at the byte range
//! (and so the line and column) where each value is written.

use serde::Deserialize;
pub use toml::Spanned;

/// The whole job file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// Job name: `[a-zA-Z_][a-zA-Z0-9_-]*`, at most
    /// [`crate::validate::MAX_JOB_NAME_BYTES`] long (state files are named after it).
    pub name: Spanned<String>,
    pub source: Spanned<SourceFile>,
    pub parse: Spanned<ParseFile>,
    /// Defaults: size 1m, max_out_of_orderness 5s, idle_timeout 30s, max_clock_skew 10m,
    /// max_series 100000, max_jump 1m (or max_out_of_orderness if larger),
    /// max_clock_lag 10m.
    #[serde(default)]
    pub window: WindowFile,
    #[serde(default, rename = "metric")]
    pub metrics: Vec<Spanned<MetricFile>>,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Spanned<RuleFile>>,
    #[serde(default, rename = "sink")]
    pub sinks: Vec<Spanned<SinkFile>>,
    #[serde(default, rename = "alert")]
    pub alerts: Vec<Spanned<AlertFile>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    /// `"file"` (local log files) or `"kafka"` (a topic, docs/kafka.md).
    pub kind: Spanned<String>,
    /// kind = "file", required: globs of live files; relative globs resolve against
    /// the job file's folder. Here and in `exclude`, `archive`, a sink's `path` and
    /// `host = { value }`, `${NAME}` is an environment variable and `$$` a literal
    /// `$` (see [`crate::env`]).
    pub include: Option<Spanned<Vec<Spanned<String>>>>,
    /// Globs of paths to leave out (matched against the full path). Default: none.
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    /// Globs of older log files kept elsewhere (e.g. an archive of compressed
    /// files), read only by `tidemark replay`, never by `run`; relative globs resolve
    /// against the job file's folder. Default: none.
    #[serde(default)]
    pub archive: Vec<Spanned<String>>,
    /// Where the `host` label comes from. Default: `{ value = "localhost" }`.
    pub host: Option<Spanned<HostFile>>,
    /// How often live mode looks for appended data. Default "250ms".
    pub poll_interval: Option<Spanned<String>>,
    /// Bytes read from one file group per activation before yielding. Default "1MiB".
    pub read_chunk: Option<Spanned<String>>,
    /// Longer lines are skipped and counted, never held whole. Default "256KiB".
    pub max_line_bytes: Option<Spanned<String>>,
    /// How many leading bytes identify a file (with its inode). Default "1KiB".
    pub fingerprint_bytes: Option<Spanned<String>>,
    /// How long a rotated or deleted file's unterminated last line is waited for
    /// before it is taken as a line. Default "5s".
    pub rotated_tail_wait: Option<Spanned<String>>,
    /// Paces reads (back-pressure, never drops), e.g. "5MiB/s". Default: unlimited.
    pub rate_limit: Option<Spanned<String>>,
    /// Most files the job keeps open at once on a member, split over its workers
    /// there (each gets max(1, budget / workers)); idle live files past it are
    /// closed and reopened by identity on change. Operational (not in the
    /// semantics fingerprint). Default 256.
    pub max_open_files: Option<Spanned<i64>>,
    /// In a finite run (`--until-eof`) without a state folder, a file group whose
    /// files hold at least this many bytes is read as segments by every worker.
    /// Operational (not in the semantics fingerprint). Default "64MiB".
    pub split_from: Option<Spanned<String>>,
    /// kind = "kafka", required: the bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: Option<Spanned<String>>,
    /// kind = "kafka", required: the topic to consume.
    pub topic: Option<Spanned<String>>,
    /// kind = "kafka": librdkafka settings passed through (TLS, SASL, timeouts…),
    /// checked by librdkafka when the job is validated; the few tidemark's
    /// guarantees rest on are refused. Default: none.
    pub options: Option<Spanned<std::collections::BTreeMap<String, Spanned<String>>>>,
    /// kind = "kafka": the consumer group the read offsets are committed to, only so
    /// standard tools show the lag (partitions are assigned by tidemark, never by
    /// the group). Default `tidemark-JOB_NAME`.
    pub group_id: Option<Spanned<String>>,
    /// kind = "kafka": how much earlier than an agent heartbeat's wall time `T` a
    /// line written after the heartbeat may be stamped (a request logged at its end
    /// with its start time, a buffered writer) and still count: a heartbeat moves
    /// its stream's watermark to `T - max(heartbeat_grace, max_out_of_orderness)`.
    /// Operational (not in the semantics fingerprint). Default "1m".
    pub heartbeat_grace: Option<Spanned<String>>,
    /// kind = "kafka": a stream (agent host and group, or a partition of other
    /// records) that had no record for this long and holds no window open is
    /// forgotten (memory, checkpoints); if it comes back it is a new stream.
    /// Operational. Default "24h".
    pub stream_retention: Option<Spanned<String>>,
    /// kind = "kafka": a finite run (`--until-eof`) that could not read anything
    /// from the brokers for this long fails naming them (a live run keeps trying,
    /// warned). Operational. Default "5m".
    pub broker_timeout: Option<Spanned<String>>,
}

/// Exactly one of the keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFile {
    /// kind = "file" only: a regex with a named capture `host`, matched against
    /// the live file's path.
    pub path_regex: Option<Spanned<String>>,
    /// A parsed field that holds the host name.
    pub field: Option<Spanned<String>>,
    /// A fixed host name. `${NAME}` is replaced by the environment variable `NAME`
    /// of the validating process, so each cluster member can label its lines with
    /// its own host (`value = "${HOST_LABEL}"`); `$$` is a literal `$`, and any other
    /// `$` is an error (see [`crate::env`]).
    pub value: Option<Spanned<String>>,
    /// kind = "kafka" only: a record header that holds the host name, for records
    /// not written by a tidemark agent (an agent's record carries its own host).
    /// The kafka source's default is `header = "host"`.
    pub header: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseFile {
    /// `nginx | json | logfmt | regex`.
    pub format: Spanned<String>,
    /// Required for `regex`: a regex with named captures; forbidden otherwise.
    pub pattern: Option<Spanned<String>>,
    /// Where the event time comes from. The nginx preset defaults to
    /// `{ field = "time_local", format = "%d/%b/%Y:%H:%M:%S %z" }`; other formats
    /// default to `{ field = "time", format = "rfc3339" }`.
    pub timestamp: Option<Spanned<TimestampFile>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampFile {
    pub field: Spanned<String>,
    /// `rfc3339`, `epoch_seconds`, `epoch_millis`, or a strftime pattern (contains `%`).
    /// A strftime pattern without `%z` is read as UTC. Default: the preset's format when
    /// `field` is the preset's timestamp field (nginx: `time_local`), else `rfc3339`.
    pub format: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowFile {
    /// Tumbling window size; must divide one hour. Default "1m".
    pub size: Option<Spanned<String>>,
    /// Default "5s".
    pub max_out_of_orderness: Option<Spanned<String>>,
    /// Default "30s".
    pub idle_timeout: Option<Spanned<String>>,
    /// How far ahead of this machine's clock a line's timestamp may be; later lines
    /// are dropped and counted (one bad clock must not push the watermark into the
    /// future and make every later line late). Default "10m".
    pub max_clock_skew: Option<Spanned<String>>,
    /// The most per-host series one window may hold over the whole job, shared
    /// equally by the job's metrics; series past a metric's share are not created
    /// and their lines are counted. At least the number of metrics. Default 100000.
    pub max_series: Option<Spanned<i64>>,
    /// A line stamped more than this ahead of the latest time its file group has
    /// confirmed is a suspect: it counts in its own window, but moves the watermark
    /// only if the next line is not more than `max_jump` behind it. A lone line
    /// stamped hours ahead then cannot make the rest of its host late; it is
    /// counted as an outlier. At least `max_out_of_orderness`. Default "1m", or
    /// `max_out_of_orderness` if larger.
    pub max_jump: Option<Spanned<String>>,
    /// Live mode: a file group that has caught up with its files and keeps
    /// writing, but whose latest time has not moved for this long and is more than
    /// this behind this machine's clock (a frozen clock), stops holding windows
    /// open: its watermark then follows the wall clock like an idle group's, and
    /// its lines are late. Default "10m".
    pub max_clock_lag: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricFile {
    pub name: Spanned<String>,
    /// `counter | sum | gauge | histogram`.
    pub kind: Spanned<String>,
    /// The numeric field; required for sum, gauge and histogram, forbidden for counter.
    pub field: Option<Spanned<String>>,
    /// Label names; each is also the parsed field it is read from. Default: none.
    #[serde(default)]
    pub labels: Vec<Spanned<String>>,
    /// Histogram only: quantiles printed for per-host series. Default [0.5, 0.9, 0.99].
    pub quantiles: Option<Spanned<Vec<Spanned<f64>>>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub record: Spanned<String>,
    pub expr: Spanned<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkFile {
    /// `jsonl | stdout | prometheus_remote_write | alertmanager | kafka`.
    pub kind: Spanned<String>,
    /// Required for jsonl (relative to the job file's folder).
    pub path: Option<Spanned<String>>,
    /// `rules | hosts | all`, or `none` (a jsonl sink that writes only the alert
    /// transcript). Default `rules`.
    pub series: Option<Spanned<String>>,
    /// jsonl only: also write the alert transcript (one line per alert change,
    /// after the window's records). Default false.
    pub alerts: Option<Spanned<bool>>,
    /// prometheus_remote_write only, required: the receiver's endpoint, `http://`
    /// only (e.g. `http://prometheus:9090/api/v1/write`). alertmanager, required:
    /// the Alertmanager's base URL (e.g. `http://alertmanager:9093`).
    pub url: Option<Spanned<String>>,
    /// prometheus_remote_write only: which instant of its window a sample
    /// carries, `end | start`. Default `end`.
    pub timestamp: Option<Spanned<String>>,
    /// prometheus_remote_write only: labels added to every series that does not
    /// have them already. Default: none.
    pub external_labels: Option<Spanned<std::collections::BTreeMap<String, Spanned<String>>>>,
    /// prometheus_remote_write and alertmanager: a file holding a bearer token (one trailing
    /// newline is dropped), read when the sink opens. Not with `basic_auth`.
    pub bearer_token_file: Option<Spanned<String>>,
    /// prometheus_remote_write and alertmanager: HTTP basic auth. Not with `bearer_token_file`.
    pub basic_auth: Option<Spanned<BasicAuthFile>>,
    /// prometheus_remote_write and alertmanager: how long one request may take.
    /// Default "30s" (remote-write), "10s" (alertmanager).
    pub timeout: Option<Spanned<String>>,
    /// prometheus_remote_write only: most samples in one request. Default 2000.
    pub max_samples_per_send: Option<Spanned<i64>>,
    /// prometheus_remote_write: samples queued before the sink asks the job
    /// to pause reading. kafka: records sent and not yet acknowledged before it
    /// does. Default 100000.
    pub queue_capacity: Option<Spanned<i64>>,
    /// kafka only, required: the brokers to bootstrap from, `host:port`, several
    /// separated by commas.
    pub brokers: Option<Spanned<String>>,
    /// kafka only, required: the topic written to (it must exist).
    pub topic: Option<Spanned<String>>,
    /// kafka only: librdkafka client options passed through (TLS, SASL,
    /// compression…), e.g. `options = { "security.protocol" = "ssl" }`. Default: none.
    pub options: Option<Spanned<std::collections::BTreeMap<String, Spanned<String>>>>,
    /// prometheus_remote_write only: first wait before a retry, doubling up to
    /// `max_backoff`. Default "30ms".
    pub min_backoff: Option<Spanned<String>>,
    /// prometheus_remote_write only: longest wait between retries. Default "5s".
    pub max_backoff: Option<Spanned<String>>,
    /// alertmanager only: how often active alerts are re-sent (wall clock).
    /// Default "1m".
    pub resend_interval: Option<Spanned<String>>,
    /// alertmanager only: every alert's `generatorURL`, an absolute URI.
    /// Default `tidemark://HOST/jobs/JOB` (this machine's name, the job's).
    pub generator_url: Option<Spanned<String>>,
}

/// A remote-write sink's `basic_auth`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthFile {
    pub username: Spanned<String>,
    /// A file holding the password (one trailing newline is dropped), read when
    /// the sink opens.
    pub password_file: Spanned<String>,
}

/// One `[[alert]]` (docs/alerts.md). Durations are multiples of the window size.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertFile {
    /// `[A-Za-z_][A-Za-z0-9_]*`, unique in the job.
    pub name: Spanned<String>,
    /// `SERIES{matchers} CMP NUMBER`, e.g. `status:http_requests:sum1m{status=~"5.."} > 100`.
    pub expr: Spanned<String>,
    /// How long the condition must hold (consecutive windows) before it fires.
    /// Default "0s": it fires at the first window where it holds.
    #[serde(rename = "for")]
    pub for_: Option<Spanned<String>>,
    /// How long it keeps firing after the condition stopped holding. Default "0s".
    pub keep_firing_for: Option<Spanned<String>>,
    /// For `>` / `>=` (at most the threshold): once firing, it stays firing while
    /// `value CMP resolve_below` holds — with `>` it resolves at or below this, with
    /// `>=` only below it. Default: the threshold.
    pub resolve_below: Option<Spanned<f64>>,
    /// For `<` / `<=` (at least the threshold): once firing, it stays firing while
    /// `value CMP resolve_above` holds — with `<` it resolves at or above this, with
    /// `<=` only above it. Default: the threshold.
    pub resolve_above: Option<Spanned<f64>>,
    /// Compare the average of the series' values in the last windows of this
    /// span (windows without a value are left out). Default: none (the window's
    /// own value).
    pub average_over: Option<Spanned<String>>,
    /// Labels added to every instance (they win over the series' own). Default: none.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<Spanned<String>, Spanned<String>>,
    /// Texts sent with the alert; may hold `{{ $value }}` and `{{ $labels.NAME }}`.
    /// Default: none.
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<Spanned<String>, Spanned<String>>,
}
