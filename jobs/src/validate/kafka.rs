//! Phase 2 checks of a `[source] kind = "kafka"` (docs/kafka.md): its own keys, and
//! the file source's keys, which mean nothing for a topic and are refused rather than
//! silently ignored.

use std::time::Duration;

use toml::Spanned;

use std::collections::BTreeMap;

use super::diag::Report;
use crate::env::Env;
use crate::job::KafkaSource;
use crate::kafka_options::{expand_option, is_secret_option, redact};
use crate::model::SourceFile;

/// Options with `${NAME}` expanded in each value (secret variables only in the
/// secret options, see [`crate::kafka_options`]); `None` after reporting each
/// problem at its `$`. `what` names the table in messages, e.g. "[source.options]".
pub(crate) fn expand_options(
    r: &mut Report<'_>,
    options: Option<&Spanned<BTreeMap<String, Spanned<String>>>>,
    what: &str,
    env: &Env,
) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (key, value) in options.map(|o| o.get_ref().iter()).into_iter().flatten() {
        match expand_option(key, value.get_ref(), env) {
            Ok(v) => {
                out.insert(key.clone(), v);
            }
            Err(errors) => {
                ok = false;
                for e in errors {
                    let what = format!("{what} {key:?}");
                    let (message, hint) = if is_secret_option(key) {
                        e.describe_secret(&what)
                    } else {
                        e.describe(&what)
                    };
                    r.inside(value, e.offset, message, hint);
                }
            }
        }
    }
    ok.then_some(out)
}

/// Checks a kafka source's keys; `None` when one is wrong (each reported).
pub fn check_kafka(
    r: &mut Report<'_>,
    source: &Spanned<SourceFile>,
    env: &Env,
) -> Option<KafkaSource> {
    let s = source.get_ref();
    refuse_file_keys(r, s);
    let brokers = required(
        r,
        source,
        &s.brokers,
        "brokers",
        "brokers = \"kafka-1:9092\"",
    );
    let topic = required(r, source, &s.topic, "topic", "topic = \"logs\"");
    let options = expand_options(r, s.options.as_ref(), "[source.options]", env);
    let group_id = match &s.group_id {
        Some(g) if g.get_ref().trim().is_empty() => {
            r.on(
                g,
                "group_id is empty",
                "leave it out for the default tidemark-JOB_NAME, or name a group".to_string(),
            );
            None
        }
        Some(g) => Some(Some(g.get_ref().clone())),
        None => Some(None),
    };
    if let (Some(b), Some(options)) = (&brokers, &options) {
        // librdkafka itself judges every option (name and value); no connection is made.
        if let Err(e) = tidemark_kafka::client_config(tidemark_kafka::Role::Consumer, b, options) {
            let at = match (&e, &s.options) {
                (tidemark_kafka::SettingsError::NoBrokers, _) => {
                    s.brokers.as_ref().map(|b| b.span().start)
                }
                (tidemark_kafka::SettingsError::Fixed { key, .. }, Some(o))
                | (tidemark_kafka::SettingsError::Unsafe { key, .. }, Some(o))
                | (tidemark_kafka::SettingsError::Brokers(key), Some(o)) => o
                    .get_ref()
                    .get(key)
                    .map(|v| v.span().start)
                    .or(Some(o.span().start)),
                (_, Some(o)) => Some(o.span().start),
                (_, None) => None,
            };
            r.at(
                at.unwrap_or(source.span().start),
                // librdkafka quotes a value it refuses: never a secret one.
                redact(&format!("the kafka source's settings: {e}"), options),
                None,
            );
            return None;
        }
    }
    let heartbeat_grace = positive(
        r,
        s.heartbeat_grace.as_ref(),
        "heartbeat_grace",
        Duration::from_secs(60),
        "how much earlier than an agent's heartbeat a later line may be stamped; the default is \"1m\"",
    );
    let stream_retention = positive(
        r,
        s.stream_retention.as_ref(),
        "stream_retention",
        Duration::from_secs(24 * 3600),
        "how long a quiet stream is remembered; the default is \"24h\"",
    );
    let broker_timeout = positive(
        r,
        s.broker_timeout.as_ref(),
        "broker_timeout",
        Duration::from_secs(300),
        "how long a finite run waits for brokers that give nothing; the default is \"5m\"",
    );
    Some(KafkaSource {
        brokers: brokers?,
        topic: topic?,
        options: options?,
        group_id: group_id?,
        heartbeat_grace: heartbeat_grace?,
        stream_retention: stream_retention?,
        broker_timeout: broker_timeout?,
    })
}

/// A kind = "file" source must not set the kafka keys.
pub fn refuse_kafka_keys(r: &mut Report<'_>, s: &SourceFile) {
    let keys = [
        ("brokers", s.brokers.as_ref().map(|v| v.span().start)),
        ("topic", s.topic.as_ref().map(|v| v.span().start)),
        ("options", s.options.as_ref().map(|v| v.span().start)),
        ("group_id", s.group_id.as_ref().map(|v| v.span().start)),
        (
            "heartbeat_grace",
            s.heartbeat_grace.as_ref().map(|v| v.span().start),
        ),
        (
            "stream_retention",
            s.stream_retention.as_ref().map(|v| v.span().start),
        ),
        (
            "broker_timeout",
            s.broker_timeout.as_ref().map(|v| v.span().start),
        ),
    ];
    for (key, at) in keys {
        if let Some(at) = at {
            r.at(
                at,
                format!("`{key}` is only for kind = \"kafka\""),
                "remove it, or set kind = \"kafka\"".to_string(),
            );
        }
    }
}

fn required(
    r: &mut Report<'_>,
    source: &Spanned<SourceFile>,
    value: &Option<Spanned<String>>,
    key: &str,
    example: &str,
) -> Option<String> {
    match value {
        None => {
            r.on(
                source,
                format!("a kind = \"kafka\" source needs `{key}`"),
                format!("add {example}"),
            );
            None
        }
        Some(v) if v.get_ref().trim().is_empty() => {
            r.on(v, format!("`{key}` is empty"), format!("e.g. {example}"));
            None
        }
        Some(v) => Some(v.get_ref().trim().to_string()),
    }
}

/// The file source's keys, which a topic has no use for.
fn refuse_file_keys(r: &mut Report<'_>, s: &SourceFile) {
    let keys = [
        ("include", s.include.as_ref().map(|v| v.span().start)),
        ("exclude", s.exclude.first().map(|v| v.span().start)),
        ("archive", s.archive.first().map(|v| v.span().start)),
        (
            "poll_interval",
            s.poll_interval.as_ref().map(|v| v.span().start),
        ),
        ("read_chunk", s.read_chunk.as_ref().map(|v| v.span().start)),
        (
            "fingerprint_bytes",
            s.fingerprint_bytes.as_ref().map(|v| v.span().start),
        ),
        (
            "rotated_tail_wait",
            s.rotated_tail_wait.as_ref().map(|v| v.span().start),
        ),
        ("rate_limit", s.rate_limit.as_ref().map(|v| v.span().start)),
        (
            "max_open_files",
            s.max_open_files.as_ref().map(|v| v.span().start),
        ),
        ("split_from", s.split_from.as_ref().map(|v| v.span().start)),
    ];
    for (key, at) in keys {
        if let Some(at) = at {
            r.at(
                at,
                format!("`{key}` is a kind = \"file\" setting; a kafka source does not use it"),
                "remove it (a kafka source reads the topic in brokers and topic)".to_string(),
            );
        }
    }
}

/// A duration key that must be more than zero.
fn positive(
    r: &mut Report<'_>,
    value: Option<&Spanned<String>>,
    key: &str,
    default: Duration,
    hint: &str,
) -> Option<Duration> {
    let (d, at) = super::source::duration(r, value, key, default)?;
    if let (true, Some(at)) = (d.is_zero(), at) {
        r.at(
            at,
            format!("{key} must be greater than 0s"),
            hint.to_string(),
        );
        return None;
    }
    Some(d)
}
