//! Phase 2: an [`AgentFile`] checked into an [`Agent`], or every problem found, each
//! with the file, line and column it is at and a hint (the job file's
//! [`Diagnostic`]s, so `tidemark validate` prints both the same way).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tidemark_jobs::duration::parse_duration;
use tidemark_jobs::env::{expand, Env, ExpandErrorKind};
use tidemark_jobs::{Diagnostic, Diagnostics, Source};
use tidemark_kafka::{client_config, Role};
use toml::Spanned;

use crate::config::{AgentFile, AgentTable, FilterFile};
use crate::filter::Filter;
use limits::{max_in_flight, record_fits};

/// Default `heartbeat_interval`.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);
/// Default `group_retention`.
pub const DEFAULT_GROUP_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Default `max_in_flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 10_000;

/// A checked agent file. `{:?}` shows the secret options' values as `[redacted]`.
#[derive(Clone)]
pub struct Agent {
    /// The host every record carries.
    pub host: String,
    /// The checkpoint's folder (absolute).
    pub state_dir: PathBuf,
    /// Bootstrap servers.
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// librdkafka options passed through.
    pub options: BTreeMap<String, String>,
    /// How often an idle group sends a heartbeat.
    pub heartbeat_interval: Duration,
    /// Lines sent and not yet acknowledged, at most.
    pub max_in_flight: usize,
    /// How long a group whose files are all gone is kept.
    pub group_retention: Duration,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// The files, read as a job reads them (`host` unused).
    pub source: Source,
    /// Which lines are sent.
    pub filter: Filter,
    /// A hash of what decides which lines take sequence numbers: `[filter]` and
    /// `max_line_bytes` (see [`numbering`]).
    pub numbering: u64,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field named, so a new one cannot be left out unnoticed.
        let Agent {
            host,
            state_dir,
            brokers,
            topic,
            options,
            heartbeat_interval,
            max_in_flight,
            group_retention,
            metrics_addr,
            source,
            filter,
            numbering,
        } = self;
        f.debug_struct("Agent")
            .field("host", host)
            .field("state_dir", state_dir)
            .field("brokers", brokers)
            .field("topic", topic)
            .field("options", &tidemark_jobs::kafka_options::Redacted(options))
            .field("heartbeat_interval", heartbeat_interval)
            .field("max_in_flight", max_in_flight)
            .field("group_retention", group_retention)
            .field("metrics_addr", metrics_addr)
            .field("source", source)
            .field("filter", filter)
            .field("numbering", numbering)
            .finish()
    }
}

/// Whether `text` is an agent file (it has a top-level `[agent]` table) rather than
/// a job file. Text that is not TOML is not: the job validator reports why.
pub fn is_agent_file(text: &str) -> bool {
    toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("agent"))
}

/// Reads and checks the agent file at `path`; `${NAME}` is expanded from the process
/// environment and relative paths resolve against the file's folder.
pub fn load(path: &Path) -> Result<Agent, Diagnostics> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: display.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read the agent file: {e}"),
            hint: Some("check that the path names a readable UTF-8 file".to_string()),
        }])
    })?;
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    let base = std::path::absolute(folder.unwrap_or(Path::new(".")))
        .unwrap_or_else(|_| PathBuf::from("."));
    from_str(&text, &display, &base, &Env::process())
}

/// Checks agent file text (`display` names it in diagnostics; relative paths join
/// onto `base_dir`, an absolute folder).
pub fn from_str(
    text: &str,
    display: &str,
    base_dir: &Path,
    env: &Env,
) -> Result<Agent, Diagnostics> {
    let mut r = Report {
        text,
        file: display,
        diags: Vec::new(),
    };
    let file: AgentFile = match toml::from_str(text) {
        Ok(file) => file,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            r.span(
                span,
                format!("invalid agent file: {}", e.message().trim()),
                "an agent file has [agent], [source] and optionally [filter]; see docs/agent.md",
            );
            return Err(r.finish());
        }
    };
    let source = match tidemark_jobs::validate::check_file_source(
        text,
        display,
        &file.source,
        base_dir,
        env,
    ) {
        Ok(source) => Some(source),
        Err(diags) => {
            r.diags.extend(diags.into_vec());
            None
        }
    };
    refuse_job_only_keys(&mut r, &file);
    let a = file.agent.get_ref();
    let host = host(&mut r, a, env);
    let state_dir = expanded(&mut r, &a.state_dir, "state_dir", env)
        .filter(|dir| non_empty(&mut r, &a.state_dir, dir, "state_dir"))
        .map(|dir| base_dir.join(dir));
    let topic = topic(&mut r, &a.topic);
    let heartbeat = positive_duration(
        &mut r,
        a.heartbeat_interval.as_ref(),
        "heartbeat_interval",
        DEFAULT_HEARTBEAT,
    );
    let group_retention = positive_duration(
        &mut r,
        a.group_retention.as_ref(),
        "group_retention",
        DEFAULT_GROUP_RETENTION,
    );
    let max_in_flight = max_in_flight(&mut r, a);
    let metrics_addr = a.metrics_addr.as_ref().and_then(|v| {
        v.get_ref()
            .parse::<SocketAddr>()
            .map_err(|_| {
                r.on(
                    v,
                    format!("metrics_addr `{}` is not an address", v.get_ref()),
                    "write IP:PORT, e.g. \"127.0.0.1:9465\" (port 0 picks a free one)",
                )
            })
            .ok()
    });
    // `${NAME}` in option values too, so a password need not sit in the file.
    let mut options = BTreeMap::new();
    for (k, v) in &a.options {
        match tidemark_jobs::kafka_options::expand_option(k, v.get_ref(), env) {
            Ok(value) => {
                options.insert(k.clone(), value);
            }
            Err(errors) => {
                for e in errors {
                    r.on(
                        v,
                        format!(
                            "options.{k}: {}",
                            expand_problem(
                                &e.kind,
                                tidemark_jobs::kafka_options::is_secret_option(k)
                            )
                        ),
                        "`${NAME}` is an environment variable and `$$` a literal `$`",
                    );
                }
            }
        }
    }
    if let Err(e) = client_config(Role::AgentProducer, a.brokers.get_ref(), &options) {
        // librdkafka quotes a value it refuses: never a secret one.
        let message = tidemark_jobs::kafka_options::redact(&e.to_string(), &options);
        r.on(&file.agent, message, None::<String>);
    }
    if let Some(source) = &source {
        record_fits(&mut r, a, source.max_line_bytes as u64);
    }
    let filter = match &file.filter {
        Some(f) => check_filter(&mut r, f.get_ref()),
        None => Some(Filter::default()),
    };
    let numbering = numbering(
        file.filter.as_ref().map(Spanned::get_ref),
        source.as_ref().map_or(0, |s| s.max_line_bytes),
    );
    match (
        host,
        state_dir,
        topic,
        heartbeat,
        max_in_flight,
        group_retention,
        source,
        filter,
    ) {
        (
            Some(host),
            Some(state_dir),
            Some(topic),
            Some(heartbeat_interval),
            Some(max_in_flight),
            Some(group_retention),
            Some(source),
            Some(filter),
        ) if r.diags.is_empty() => Ok(Agent {
            host,
            state_dir,
            brokers: a.brokers.get_ref().clone(),
            topic,
            options,
            heartbeat_interval,
            max_in_flight,
            group_retention,
            metrics_addr,
            source,
            filter,
            numbering,
        }),
        _ => {
            if r.diags.is_empty() {
                r.at(
                    0,
                    "internal error: the agent file was rejected without a reason",
                    None::<String>,
                );
            }
            Err(r.finish())
        }
    }
}

/// Keys of a job's `[source]` that mean nothing to the agent: refused rather than
/// silently ignored.
fn refuse_job_only_keys(r: &mut Report<'_>, file: &AgentFile) {
    let s = file.source.get_ref();
    let refused: [(&str, Option<Range<usize>>, &str); 4] = [
        (
            "host",
            s.host.as_ref().map(Spanned::span),
            "the agent's host is [agent] host (default: the machine's host name)",
        ),
        (
            "archive",
            (!s.archive.is_empty()).then(|| s.archive[0].span()),
            "archives are read by `tidemark replay` on the cluster, not shipped",
        ),
        (
            "split_from",
            s.split_from.as_ref().map(Spanned::span),
            "the agent reads each group as one ordered stream",
        ),
        (
            "max_open_files",
            s.max_open_files.as_ref().map(Spanned::span),
            "the agent keeps each group's current file open",
        ),
    ];
    for (key, span, why) in refused {
        if let Some(span) = span {
            r.span(
                span,
                format!("[source] {key} is not used by the agent"),
                format!("remove it: {why}"),
            );
        }
    }
}

fn host(r: &mut Report<'_>, a: &AgentTable, env: &Env) -> Option<String> {
    match &a.host {
        Some(v) => {
            let host = expanded(r, v, "host", env)?;
            non_empty(r, v, &host, "host").then_some(host)
        }
        None => match machine_host_name() {
            Some(host) => Some(host),
            None => {
                r.on(
                    &a.state_dir,
                    "this machine's host name cannot be read, and [agent] sets no host",
                    "set host = \"web-1\" (or host = \"${HOSTNAME}\") in [agent]",
                );
                None
            }
        },
    }
}

/// The kernel's host name (what `uname -n` prints), read without `unsafe`.
fn machine_host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

fn expanded(r: &mut Report<'_>, v: &Spanned<String>, key: &str, env: &Env) -> Option<String> {
    match expand(v.get_ref(), env) {
        Ok(e) => Some(e.text),
        Err(errors) => {
            for e in errors {
                r.on(
                    v,
                    format!("{key}: {}", expand_problem(&e.kind, false)),
                    "`${NAME}` is an environment variable and `$$` a literal `$`",
                );
            }
            None
        }
    }
}

/// What is wrong with one `$`; `secret`: the value is a secret option's, so no piece
/// of it (a bad `${...}` name) is quoted.
fn expand_problem(kind: &ExpandErrorKind, secret: bool) -> String {
    match kind {
        ExpandErrorKind::BadName(_) if secret => {
            "a `${...}` that is not a variable name (the value is a secret: not shown)".to_string()
        }
        ExpandErrorKind::Unterminated => "`${` without a closing `}`".to_string(),
        ExpandErrorKind::EmptyName => "`${}` names no variable".to_string(),
        ExpandErrorKind::BadName(n) => format!("`${{{n}}}` is not a variable name"),
        ExpandErrorKind::LoneDollar(_) => "a `$` not followed by `{` or `$`".to_string(),
        ExpandErrorKind::Unset(n) => format!("the environment variable {n} is not set"),
        ExpandErrorKind::Empty(n) => format!("the environment variable {n} is empty"),
        ExpandErrorKind::NotUnicode(n) => format!("the environment variable {n} is not UTF-8"),
        ExpandErrorKind::NotAllowed(n) | ExpandErrorKind::SecretOnly(n) => {
            format!("the environment variable {n} may not be used here")
        }
    }
}

fn non_empty(r: &mut Report<'_>, v: &Spanned<String>, value: &str, key: &str) -> bool {
    if value.trim().is_empty() {
        r.on(v, format!("{key} is empty"), format!("set {key}"));
        return false;
    }
    true
}

/// Kafka's rule for topic names.
fn topic(r: &mut Report<'_>, v: &Spanned<String>) -> Option<String> {
    let t = v.get_ref();
    let legal = t
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if t.is_empty() || t.len() > 249 || !legal || t == "." || t == ".." {
        r.on(
            v,
            format!("topic `{t}` is not a Kafka topic name"),
            "use 1 to 249 of a-z, A-Z, 0-9, `.`, `_` and `-`, e.g. \"logs\"",
        );
        return None;
    }
    Some(t.clone())
}

fn positive_duration(
    r: &mut Report<'_>,
    v: Option<&Spanned<String>>,
    key: &str,
    default: Duration,
) -> Option<Duration> {
    let Some(v) = v else {
        return Some(default);
    };
    match parse_duration(v.get_ref()) {
        Ok(d) if d.is_zero() => {
            r.on(v, format!("{key} must be more than 0s"), "e.g. \"5s\"");
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            r.on(v, format!("invalid {key} `{}`: {e}", v.get_ref()), None);
            None
        }
    }
}

/// A hash of the settings that decide which lines take sequence numbers: the
/// filter's lists (a line left out takes none) and `max_line_bytes` (a longer line
/// is skipped). The checkpoint keeps it per group: a restart under other settings
/// would number the lines after the checkpoint differently from the copies the
/// broker may hold, so it starts a new epoch instead. FNV-1a over length-prefixed
/// fields: stable across builds, unlike std's hasher.
pub fn numbering(filter: Option<&FilterFile>, max_line_bytes: usize) -> u64 {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    let mut field = |bytes: &[u8]| {
        h.write(&(bytes.len() as u64).to_le_bytes());
        h.write(bytes);
    };
    field(&(max_line_bytes as u64).to_le_bytes());
    let default = FilterFile::default();
    let f = filter.unwrap_or(&default);
    for list in [&f.include, &f.include_regex, &f.exclude, &f.exclude_regex] {
        field(&(list.len() as u64).to_le_bytes());
        for v in list {
            field(v.get_ref().as_bytes());
        }
    }
    h.finish()
}

fn check_filter(r: &mut Report<'_>, f: &FilterFile) -> Option<Filter> {
    let mut ok = true;
    let mut regexes = |list: &[Spanned<String>], key: &str| -> Vec<regex::bytes::Regex> {
        list.iter()
            .filter_map(|v| match regex::bytes::Regex::new(v.get_ref()) {
                Ok(re) => Some(re),
                Err(e) => {
                    ok = false;
                    let msg = e.to_string();
                    let last = msg
                        .lines()
                        .last()
                        .unwrap_or("")
                        .trim_start_matches("error: ");
                    r.on(
                        v,
                        format!("[filter] {key} is not a valid regular expression: {last}"),
                        "see https://docs.rs/regex/latest/regex/#syntax".to_string(),
                    );
                    None
                }
            })
            .collect()
    };
    let include_regex = regexes(&f.include_regex, "include_regex");
    let exclude_regex = regexes(&f.exclude_regex, "exclude_regex");
    for v in f.include.iter().chain(&f.exclude) {
        if v.get_ref().is_empty() {
            ok = false;
            r.on(
                v,
                "an empty keyword matches every line",
                "remove it, or write the text to look for",
            );
        }
    }
    let words = |list: &[Spanned<String>]| list.iter().map(|v| v.get_ref().clone()).collect();
    ok.then(|| {
        Filter::new(
            words(&f.include),
            include_regex,
            words(&f.exclude),
            exclude_regex,
        )
    })
}

/// Diagnostics at byte offsets of the agent file.
struct Report<'a> {
    text: &'a str,
    file: &'a str,
    diags: Vec<Diagnostic>,
}

impl Report<'_> {
    fn at(&mut self, offset: usize, message: impl Into<String>, hint: impl Into<Option<String>>) {
        let (line, column) = position(self.text, offset);
        self.diags.push(Diagnostic {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
            hint: hint.into(),
        });
    }

    fn span(&mut self, span: Range<usize>, message: impl Into<String>, hint: impl IntoHint) {
        self.at(span.start, message, hint.into_hint());
    }

    fn on<T>(&mut self, v: &Spanned<T>, message: impl Into<String>, hint: impl IntoHint) {
        self.at(v.span().start, message, hint.into_hint());
    }

    fn finish(mut self) -> Diagnostics {
        self.diags.sort_by_key(|d| (d.line, d.column));
        Diagnostics(self.diags)
    }
}

/// A hint as a string literal, a `String`, or none.
trait IntoHint {
    fn into_hint(self) -> Option<String>;
}
impl IntoHint for &str {
    fn into_hint(self) -> Option<String> {
        Some(self.to_string())
    }
}
impl IntoHint for String {
    fn into_hint(self) -> Option<String> {
        Some(self)
    }
}
impl IntoHint for Option<String> {
    fn into_hint(self) -> Option<String> {
        self
    }
}

/// 1-based line and character column of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

mod limits;

#[cfg(test)]
mod tests;
