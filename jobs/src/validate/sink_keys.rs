//! The optional keys of the network sinks (HTTP and Kafka), which kinds take each, and the error for a
//! key set on a sink of another kind: one table for every kind, so that a new key or
//! a new kind is one row, and every kind refuses the others' keys the same way.

use toml::Spanned;

use super::alertmanager::KIND as ALERTMANAGER;
use super::diag::Report;
use super::kafka_sink::KIND as KAFKA;
use super::remote_write::KIND as REMOTE_WRITE;
use crate::model::SinkFile;

/// Where a key is written in a sink, if it is.
type SpanOf = fn(&SinkFile) -> Option<std::ops::Range<usize>>;

fn span<T>(v: &Option<Spanned<T>>) -> Option<std::ops::Range<usize>> {
    v.as_ref().map(Spanned::span)
}

/// Each network sink key, where it is written, and the kinds that take it (the first
/// is the one an error names).
const KEYS: [(&str, SpanOf, &[&str]); 15] = [
    ("url", |s| span(&s.url), &[REMOTE_WRITE, ALERTMANAGER]),
    ("timestamp", |s| span(&s.timestamp), &[REMOTE_WRITE]),
    (
        "external_labels",
        |s| span(&s.external_labels),
        &[REMOTE_WRITE],
    ),
    (
        "bearer_token_file",
        |s| span(&s.bearer_token_file),
        &[REMOTE_WRITE, ALERTMANAGER],
    ),
    (
        "basic_auth",
        |s| span(&s.basic_auth),
        &[REMOTE_WRITE, ALERTMANAGER],
    ),
    (
        "timeout",
        |s| span(&s.timeout),
        &[REMOTE_WRITE, ALERTMANAGER],
    ),
    (
        "max_samples_per_send",
        |s| span(&s.max_samples_per_send),
        &[REMOTE_WRITE],
    ),
    (
        "queue_capacity",
        |s| span(&s.queue_capacity),
        &[REMOTE_WRITE, KAFKA],
    ),
    ("min_backoff", |s| span(&s.min_backoff), &[REMOTE_WRITE]),
    ("max_backoff", |s| span(&s.max_backoff), &[REMOTE_WRITE]),
    (
        "resend_interval",
        |s| span(&s.resend_interval),
        &[ALERTMANAGER],
    ),
    ("generator_url", |s| span(&s.generator_url), &[ALERTMANAGER]),
    ("brokers", |s| span(&s.brokers), &[KAFKA]),
    ("topic", |s| span(&s.topic), &[KAFKA]),
    ("options", |s| span(&s.options), &[KAFKA]),
];

/// Reports each network sink key set on a sink of `kind` that does not take it. On
/// a jsonl or stdout sink the hint offers the kind that does; on a network sink
/// (whose kind was chosen for its destination) only its removal.
pub fn refuse_foreign_keys(r: &mut Report<'_>, s: &SinkFile, kind: &str) {
    let http = [REMOTE_WRITE, ALERTMANAGER, KAFKA].contains(&kind);
    for (key, span_of, owners) in KEYS {
        let Some(at) = span_of(s) else { continue };
        if owners.contains(&kind) {
            continue;
        }
        let owner = owners[0];
        let hint = if http {
            format!("remove `{key}`")
        } else {
            format!("remove `{key}`, or use kind = \"{owner}\"")
        };
        r.span(
            at,
            format!(
                "`{key}` is a setting of {} {owner} sink, not of {} {kind} sink",
                article(owner),
                article(kind)
            ),
            hint,
        );
    }
}

/// `a` or `an` before a sink kind.
fn article(kind: &str) -> &'static str {
    match kind.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => "an",
        _ => "a",
    }
}
