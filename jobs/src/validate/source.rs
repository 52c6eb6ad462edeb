//! Phase 2 checks of [source] and [parse].

use std::time::Duration;

use toml::Spanned;

use super::diag::Report;
use super::names::{did_you_mean, quoted_choices, short_list};
use super::paths::{archive_globs, expand_path, globs, Relative};
use super::sizes::{rate_setting, size_setting};
use crate::duration::parse_duration;
use crate::env::Env;
use crate::job::{Format, HostFrom, Parse, Source, TimeFormat, NGINX_FIELDS, NGINX_TIME_FORMAT};
use crate::model::{HostFile, ParseFile, SourceFile};

const FORMATS: &[&str] = &["nginx", "json", "logfmt", "regex"];
const MIN_READ_CHUNK: u64 = 4 * 1024;

/// The fields a line format produces, when they are known before reading any line.
pub enum Fields {
    /// json / logfmt (or a pattern that did not compile): any name may appear.
    Any,
    Known {
        names: KnownNames,
        origin: &'static str,
    },
}

/// Field names in the order they are written, with a set for lookups: a check per
/// label must not scan every capture of a pattern that has thousands.
pub struct KnownNames {
    ordered: Vec<String>,
    set: std::collections::HashSet<String>,
}

impl KnownNames {
    fn new(ordered: Vec<String>) -> KnownNames {
        let set = ordered.iter().cloned().collect();
        KnownNames { ordered, set }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.set.contains(name)
    }

    fn iter(&self) -> std::slice::Iter<'_, String> {
        self.ordered.iter()
    }
}

impl Fields {
    /// Checks that `value` names a field of the format; `role` says what it is used for.
    pub fn check(&self, r: &mut Report<'_>, value: &Spanned<String>, role: &str) {
        if let Fields::Known { names, origin } = self {
            let name = value.get_ref();
            if !names.contains(name) {
                let suggestion = r.did_you_mean(name, names.iter().map(String::as_str));
                r.on(
                    value,
                    format!("{role} `{name}` is not a field of {origin}"),
                    format!(
                        "{suggestion}available fields: {}",
                        short_list(names.iter().map(String::as_str))
                    ),
                );
            }
        }
    }
}

/// A regex compile error as (byte offset inside the pattern, one-line message).
fn regex_error(pattern: &str, err: &regex::Error) -> (usize, String) {
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().collect();
    if let [_, _, carets, last] = lines.as_slice() {
        if let (Some(col), Some(msg)) = (carets.find('^'), last.strip_prefix("error: ")) {
            if !pattern.contains('\n') {
                let chars = col.saturating_sub(4);
                let byte = pattern
                    .char_indices()
                    .nth(chars)
                    .map_or(pattern.len(), |(i, _)| i);
                return (byte, msg.to_string());
            }
        }
    }
    let one_line = lines
        .last()
        .copied()
        .unwrap_or("")
        .trim_start_matches("error: ");
    (0, one_line.to_string())
}

fn compile(r: &mut Report<'_>, value: &Spanned<String>, what: &str) -> Option<regex::Regex> {
    match regex::Regex::new(value.get_ref()) {
        Ok(re) => Some(re),
        Err(e) => {
            let (offset, msg) = regex_error(value.get_ref(), &e);
            r.inside(
                value,
                offset,
                format!("{what} is not a valid regular expression: {msg}"),
                "see https://docs.rs/regex/latest/regex/#syntax for the supported syntax"
                    .to_string(),
            );
            None
        }
    }
}

/// Checks [parse]; returns the parse settings and the fields lines will have.
pub fn check_parse(r: &mut Report<'_>, parse: &Spanned<ParseFile>) -> (Option<Parse>, Fields) {
    let p = parse.get_ref();
    let mut fields = Fields::Any;
    let format = match p.format.get_ref().as_str() {
        "nginx" => {
            let names = NGINX_FIELDS.iter().map(|s| s.to_string()).collect();
            fields = Fields::Known {
                names: KnownNames::new(names),
                origin: "the nginx format",
            };
            Some(Format::Nginx)
        }
        "json" => Some(Format::Json),
        "logfmt" => Some(Format::Logfmt),
        "regex" => None, // handled with `pattern` below
        other => {
            r.on(
                &p.format,
                format!("unknown log format `{other}`"),
                format!(
                    "{}use {}",
                    did_you_mean(other, FORMATS.iter().copied()),
                    quoted_choices(FORMATS)
                ),
            );
            None
        }
    };
    let is_regex = p.format.get_ref() == "regex";
    let mut format = format;
    match (&p.pattern, is_regex) {
        (None, true) => r.on(
            parse,
            "format = \"regex\" needs a `pattern`",
            "add pattern = '...' with a named capture for each field, e.g. '^(?P<time>\\S+) (?P<level>\\w+)'".to_string(),
        ),
        (Some(pattern), false) => r.on(
            pattern,
            "`pattern` is only used with format = \"regex\"",
            "remove `pattern`, or set format = \"regex\"".to_string(),
        ),
        (Some(pattern), true) => {
            if let Some(re) = compile(r, pattern, "the [parse] pattern") {
                let names: Vec<String> = re.capture_names().flatten().map(str::to_string).collect();
                if names.is_empty() {
                    r.on(
                        pattern,
                        "the [parse] pattern has no named captures, so lines would have no fields",
                        "name each part you need with (?P<name>...), e.g. '^(?P<time>\\S+) (?P<level>\\w+)'".to_string(),
                    );
                } else {
                    fields = Fields::Known { names: KnownNames::new(names), origin: "the [parse] pattern (its named captures)" };
                    format = Some(Format::Regex(pattern.get_ref().clone()));
                }
            }
        }
        (None, false) => {}
    }

    let preset = if matches!(format, Some(Format::Nginx)) {
        (
            "time_local",
            TimeFormat::Strftime(NGINX_TIME_FORMAT.to_string()),
        )
    } else {
        ("time", TimeFormat::Rfc3339)
    };
    let (timestamp_field, timestamp_format) = match &p.timestamp {
        None => {
            if p.format.get_ref() == "regex" {
                if let Fields::Known { names, .. } = &fields {
                    if !names.contains("time") {
                        r.on(
                            parse,
                            "no `timestamp` is set, and the [parse] pattern has no `time` capture to read the event time from",
                            "add a (?P<time>...) capture, or set timestamp = { field = \"...\", format = \"...\" }".to_string(),
                        );
                    }
                }
            }
            (Some(preset.0.to_string()), Some(preset.1))
        }
        Some(ts) => {
            let ts = ts.get_ref();
            fields.check(r, &ts.field, "timestamp field");
            let format = match &ts.format {
                Some(f) => time_format(r, f),
                // Naming the preset's own field keeps the preset's format.
                None if ts.field.get_ref() == preset.0 => Some(preset.1),
                None => Some(TimeFormat::Rfc3339),
            };
            (Some(ts.field.get_ref().clone()), format)
        }
    };
    let parse = match (format, timestamp_field, timestamp_format) {
        (Some(format), Some(timestamp_field), Some(timestamp_format)) => Some(Parse {
            format,
            timestamp_field,
            timestamp_format,
        }),
        _ => None,
    };
    (parse, fields)
}

fn time_format(r: &mut Report<'_>, value: &Spanned<String>) -> Option<TimeFormat> {
    let s = value.get_ref();
    match s.as_str() {
        "rfc3339" => return Some(TimeFormat::Rfc3339),
        "epoch_seconds" => return Some(TimeFormat::EpochSeconds),
        "epoch_millis" => return Some(TimeFormat::EpochMillis),
        _ => {}
    }
    if !s.contains('%') {
        let suggestion = did_you_mean(s, ["rfc3339", "epoch_seconds", "epoch_millis"]);
        r.on(
            value,
            format!("unknown timestamp format `{s}`"),
            format!("{suggestion}use \"rfc3339\", \"epoch_seconds\", \"epoch_millis\", or a strftime pattern such as \"%Y-%m-%d %H:%M:%S\""),
        );
        return None;
    }
    // Format a known instant and read it back: this catches unknown directives and
    // patterns that lack the date or time of day.
    let sample = jiff::Timestamp::from_second(1_700_000_000)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC))
        .ok();
    let check = sample.as_ref().map(|z| {
        jiff::fmt::strtime::format(s.as_bytes(), z).and_then(|text| {
            let tm = jiff::fmt::strtime::parse(s.as_bytes(), text.as_bytes())?;
            tm.to_timestamp()
                .map(|_| ())
                .or_else(|_| tm.to_datetime().map(|_| ()))
        })
    });
    if let Some(Err(e)) = check {
        r.on(
            value,
            format!("the strftime timestamp format `{s}` cannot be used: {e}"),
            "the pattern must give a full date and time, e.g. \"%Y-%m-%d %H:%M:%S\" (add %z if the text has a UTC offset)".to_string(),
        );
        return None;
    }
    Some(TimeFormat::Strftime(s.clone()))
}

pub(super) fn duration(
    r: &mut Report<'_>,
    value: Option<&Spanned<String>>,
    key: &str,
    default: Duration,
) -> Option<(Duration, Option<usize>)> {
    let Some(v) = value else {
        return Some((default, None));
    };
    match parse_duration(v.get_ref()) {
        Ok(d) => Some((d, Some(v.span().start))),
        Err(e) => {
            r.on(v, format!("invalid {key} `{}`: {e}", v.get_ref()), None);
            None
        }
    }
}

/// Checks [source].
pub fn check_source(
    r: &mut Report<'_>,
    source: &Spanned<SourceFile>,
    fields: &Fields,
    relative: Relative<'_>,
    env: &Env,
) -> Option<Source> {
    let s = source.get_ref();
    let kafka = match s.kind.get_ref().as_str() {
        "file" => {
            super::kafka::refuse_kafka_keys(r, s);
            None
        }
        "kafka" => Some(super::kafka::check_kafka(r, source, env)),
        other => {
            r.on(
                &s.kind,
                format!("unknown source kind `{other}`"),
                format!(
                    "{}use \"file\" (local log files) or \"kafka\" (a topic)",
                    did_you_mean(other, ["file", "kafka"])
                ),
            );
            None
        }
    };
    let empty = Vec::new();
    let include_list = match (&s.include, &kafka) {
        (Some(include), None) => {
            if include.get_ref().is_empty() {
                r.on(
                    include,
                    "`include` is empty, so the job would read nothing",
                    "list the live log files to read, e.g. include = [\"/var/log/nginx/*/access.log\"]"
                        .to_string(),
                );
            }
            include.get_ref()
        }
        (None, None) => {
            if s.kind.get_ref() == "file" {
                r.on(
                    &s.kind,
                    "a kind = \"file\" source needs `include`",
                    "list the live log files to read, e.g. include = [\"/var/log/nginx/*/access.log\"]"
                        .to_string(),
                );
            }
            &empty
        }
        // check_kafka refused any file key.
        (_, Some(_)) => &empty,
    };
    let include = globs(r, include_list, "include", relative, env);
    let exclude = globs(r, &s.exclude, "exclude", relative, env);
    let archive = archive_globs(r, &s.archive, relative, env);
    let is_kafka = s.kind.get_ref() == "kafka";
    let host = match &s.host {
        None if is_kafka => Some(HostFrom::Record {
            header: "host".to_string(),
        }),
        None => Some(HostFrom::Value("localhost".to_string())),
        Some(h) => host(r, h, fields, env, is_kafka),
    };
    let poll = duration(
        r,
        s.poll_interval.as_ref(),
        "poll_interval",
        Duration::from_millis(250),
    );
    if let Some((d, Some(at))) = poll {
        if d.is_zero() {
            r.at(
                at,
                "poll_interval must be greater than 0s",
                "it is how often live files are checked for new data; the default is \"250ms\""
                    .to_string(),
            );
        }
    }
    let chunk = size_setting(
        r,
        s.read_chunk.as_ref(),
        "read_chunk",
        1 << 20,
        MIN_READ_CHUNK,
        1 << 30,
    );
    let split_from = size_setting(
        r,
        s.split_from.as_ref(),
        "split_from",
        64 << 20,
        1 << 10,
        1 << 50,
    );
    let max_line = size_setting(
        r,
        s.max_line_bytes.as_ref(),
        "max_line_bytes",
        256 << 10,
        256,
        1 << 30,
    );
    let fingerprint = size_setting(
        r,
        s.fingerprint_bytes.as_ref(),
        "fingerprint_bytes",
        1024,
        16,
        1 << 20,
    );
    let tail_wait = duration(
        r,
        s.rotated_tail_wait.as_ref(),
        "rotated_tail_wait",
        Duration::from_secs(5),
    );
    let rate = rate_setting(r, s.rate_limit.as_ref());
    let max_open_files = super::limits::check_max_open_files(r, s.max_open_files.as_ref());
    Some(Source {
        include,
        exclude,
        archive,
        host: host?,
        poll_interval: poll?.0,
        read_chunk_bytes: chunk?,
        split_from_bytes: split_from? as u64,
        max_line_bytes: max_line?,
        fingerprint_bytes: fingerprint?,
        rotated_tail_wait: tail_wait?.0,
        rate_limit: rate?,
        max_open_files: max_open_files?,
        allowed_roots: Vec::new(),
        denied_reads: Vec::new(),
        kafka: match kafka {
            Some(k) => Some(k?),
            None => None,
        },
    })
}

fn host(
    r: &mut Report<'_>,
    h: &Spanned<HostFile>,
    fields: &Fields,
    env: &Env,
    kafka: bool,
) -> Option<HostFrom> {
    let hf = h.get_ref();
    let set: Vec<(&str, &Spanned<String>)> = [
        ("path_regex", &hf.path_regex),
        ("field", &hf.field),
        ("value", &hf.value),
        ("header", &hf.header),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    .collect();
    let hint = if kafka {
        "set exactly one of: host = { header = \"host\" }, host = { field = \"hostname\" } or host = { value = \"web-1\" }"
    } else {
        "set exactly one of: host = { path_regex = \"/logs/(?P<host>[^/]+)/\" }, host = { field = \"hostname\" } or host = { value = \"web-1\" }"
    }
    .to_string();
    match set.as_slice() {
        [] => {
            r.on(
                h,
                "`host` is empty: it needs one of path_regex, field or value",
                hint,
            );
            None
        }
        [("header", v)] => {
            if !kafka {
                r.on(
                    *v,
                    "host = { header } is only for kind = \"kafka\" (a file has no headers)",
                    hint,
                );
                return None;
            }
            if v.get_ref().is_empty() {
                r.on(*v, "the host header name is empty", hint);
                return None;
            }
            Some(HostFrom::Record {
                header: v.get_ref().clone(),
            })
        }
        [("path_regex", v)] if kafka => {
            r.on(
                *v,
                "host = { path_regex } is only for kind = \"file\" (a kafka record has no path)",
                hint,
            );
            None
        }
        [("path_regex", v)] => {
            let re = compile(r, v, "the host path_regex")?;
            if !re.capture_names().flatten().any(|n| n == "host") {
                r.on(
                    v,
                    "the host path_regex has no capture group named `host`",
                    "capture the host part of the file path with (?P<host>...), e.g. \"/logs/(?P<host>[^/]+)/\"".to_string(),
                );
                return None;
            }
            Some(HostFrom::PathRegex(re))
        }
        [("field", v)] => {
            fields.check(r, v, "host field");
            Some(HostFrom::Field(v.get_ref().clone()))
        }
        [(_, v)] => {
            if v.get_ref().trim().is_empty() {
                r.on(
                    *v,
                    "the host value is empty",
                    "write the host name, e.g. value = \"web-1\"".to_string(),
                );
                return None;
            }
            // `${NAME}` as in paths: each cluster member labels its lines with its
            // own host (e.g. value = "${HOST_LABEL}").
            let expanded = expand_path(r, v, "the host value", env)?;
            if expanded.text.trim().is_empty() {
                r.on(
                    *v,
                    format!(
                        "the host value `{}` expands to `{}`, which is blank",
                        v.get_ref(),
                        expanded.text
                    ),
                    "set the environment variable to the host name, or write the host name out"
                        .to_string(),
                );
                return None;
            }
            Some(HostFrom::Value(expanded.text))
        }
        [(first, _), (second, v), ..] => {
            r.on(
                *v,
                format!("`host` sets both `{first}` and `{second}`, but takes exactly one"),
                hint,
            );
            None
        }
    }
}
