//! Phase 2 checks of a `kafka` [[sink]]'s own keys (docs/kafka.md, "Kafka sink").

use std::collections::BTreeMap;

use toml::Spanned;

use super::diag::Report;
use crate::env::Env;
use crate::job::KafkaSinkConfig;
use crate::kafka_options::redact;
use crate::model::SinkFile;
use tidemark_kafka::{client_config, Role, SettingsError};

/// The sink's kind as written in a job file.
pub const KIND: &str = "kafka";

/// Largest `queue_capacity`: more unacknowledged records would hold gigabytes; a
/// typo, not a setting.
const MAX_QUEUE_CAPACITY: i64 = 10_000_000;

/// Kafka's own limit on a topic name's length.
const MAX_TOPIC_LEN: usize = 249;

/// Checks the keys of a kafka sink; `None` after reporting a problem.
pub fn check(r: &mut Report<'_>, sink: &Spanned<SinkFile>, env: &Env) -> Option<KafkaSinkConfig> {
    let s = sink.get_ref();
    let before = r.diags.len();
    if let Some(p) = &s.path {
        r.on(
            p,
            "a kafka sink does not take a `path`",
            "name the topic with topic = \"tidemark-rollups\" and the brokers with brokers = \"kafka-1:9092\"".to_string(),
        );
    }
    let brokers = match &s.brokers {
        Some(b) if b.get_ref().trim().is_empty() => {
            r.on(
                b,
                "the kafka sink's brokers is empty",
                "give at least one host:port, e.g. brokers = \"kafka-1:9092,kafka-2:9092\""
                    .to_string(),
            );
            None
        }
        Some(b) => Some(b),
        None => {
            r.on(
                sink,
                "a kafka sink needs `brokers`",
                "add brokers = \"kafka-1:9092\" (several: separated by commas)".to_string(),
            );
            None
        }
    };
    let topic = match &s.topic {
        Some(t) => check_topic(r, t),
        None => {
            r.on(
                sink,
                "a kafka sink needs a `topic`",
                "add topic = \"tidemark-rollups\" (the topic must exist: the sink does not create it)"
                    .to_string(),
            );
            None
        }
    };
    let options =
        super::kafka::expand_options(r, s.options.as_ref(), "the kafka sink's options", env);
    if let (Some(b), Some(o), Some(expanded)) = (brokers, &s.options, &options) {
        check_options(r, b.get_ref(), o, expanded);
    }
    let queue_capacity = match &s.queue_capacity {
        None => Some(KafkaSinkConfig::DEFAULT_QUEUE_CAPACITY),
        Some(v) if (1..=MAX_QUEUE_CAPACITY).contains(v.get_ref()) => {
            usize::try_from(*v.get_ref()).ok()
        }
        Some(v) => {
            r.on(
                v,
                format!("queue_capacity = {} is out of range", v.get_ref()),
                format!(
                    "use a number from 1 to {MAX_QUEUE_CAPACITY}; the default is {}",
                    KafkaSinkConfig::DEFAULT_QUEUE_CAPACITY
                ),
            );
            None
        }
    };
    if r.diags.len() != before {
        return None;
    }
    Some(KafkaSinkConfig {
        brokers: brokers?.get_ref().trim().to_string(),
        topic: topic?,
        options: options?,
        queue_capacity: queue_capacity?,
    })
}

/// A legal Kafka topic name: 1 to 249 of `[A-Za-z0-9._-]`, not `.` or `..`.
fn check_topic(r: &mut Report<'_>, t: &Spanned<String>) -> Option<String> {
    let name = t.get_ref();
    let bad = name
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
    let problem = if name.is_empty() {
        Some("the kafka sink's topic is empty".to_string())
    } else if let Some((i, c)) = bad {
        r.inside(
            t,
            i,
            format!("a Kafka topic name cannot contain {c:?}"),
            "use letters, digits, `.`, `_` and `-` only".to_string(),
        );
        return None;
    } else if name.len() > MAX_TOPIC_LEN {
        Some(format!(
            "the topic name is {} bytes long; Kafka allows at most {MAX_TOPIC_LEN}",
            name.len()
        ))
    } else if name == "." || name == ".." {
        Some(format!("{name:?} is not a legal Kafka topic name"))
    } else {
        None
    };
    match problem {
        Some(message) => {
            r.on(
                t,
                message,
                "name the topic, e.g. topic = \"tidemark-rollups\"".to_string(),
            );
            None
        }
        None => Some(name.clone()),
    }
}

/// Checks the options with librdkafka itself (names and values), refusing those
/// tidemark sets; the error points at the option. `expanded`: the values after
/// `${NAME}`, what librdkafka is given.
fn check_options(
    r: &mut Report<'_>,
    brokers: &str,
    options: &Spanned<BTreeMap<String, Spanned<String>>>,
    expanded: &BTreeMap<String, String>,
) {
    // One option at a time, so that the error points at the one refused.
    for (key, value) in options.get_ref() {
        if let Some((_, fixed, why)) = KafkaSinkConfig::FIXED.iter().find(|(k, _, _)| k == key) {
            r.on(
                value,
                format!("options.{key} cannot be set for a kafka sink: tidemark sets it to {fixed:?} ({why})"),
                format!("remove {key:?} from the options"),
            );
            continue;
        }
        let Some(v) = expanded.get(key) else {
            continue;
        };
        let one = BTreeMap::from([(key.clone(), v.clone())]);
        // The sink builds its producer and its read-back consumer from the same
        // options: each must take them, or the job would fail when the sink opens.
        let Some(e) = [Role::SinkProducer, Role::SinkReadBack]
            .into_iter()
            .find_map(|role| client_config(role, brokers, &one).err())
        else {
            continue;
        };
        let (message, hint) = match e {
            SettingsError::Fixed {
                value, why, role, ..
            } => (
                format!("options.{key} cannot be set: tidemark sets it to {value:?} for {role} ({why})"),
                format!("remove {key:?} from the options"),
            ),
            SettingsError::Unsafe { why, .. } => (
                format!("options.{key} is refused: it {why}, and a job file must not run code inside tidemark"),
                format!("remove {key:?} from the options"),
            ),
            SettingsError::Brokers(_) => (
                format!("options.{key} duplicates `brokers`"),
                "list the brokers in `brokers` only".to_string(),
            ),
            SettingsError::Refused(k) => (
                // librdkafka quotes a value it refuses: never a secret one.
                redact(&format!("options.{key}: librdkafka refuses it ({k})"), &one),
                "check the name and value against librdkafka's CONFIGURATION.md".to_string(),
            ),
            // `brokers` was checked before.
            SettingsError::NoBrokers => continue,
        };
        r.on(value, message, hint);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::job::{KafkaSinkConfig, SinkKind};

    fn job(sink: &str) -> Result<crate::Job, String> {
        let text = format!(
            r#"name = "j"
[source]
kind = "file"
include = ["/logs/*.log"]
[parse]
format = "nginx"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "kafka"
series = "hosts"
{sink}
"#
        );
        crate::from_str(&text, "j.toml", Path::new("/srv")).map_err(|d| d.to_string())
    }

    fn kafka(j: &crate::Job) -> &KafkaSinkConfig {
        match &j.sinks[0].kind {
            SinkKind::Kafka(k) => k,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_every_key() {
        let j = job(r#"brokers = "k1:9092,k2:9092"
topic = "rollups""#)
        .unwrap();
        assert_eq!(
            *kafka(&j),
            KafkaSinkConfig {
                brokers: "k1:9092,k2:9092".into(),
                topic: "rollups".into(),
                options: Default::default(),
                queue_capacity: 100_000,
            }
        );
        let j = job(r#"brokers = "k1:9092"
topic = "a.b_c-1"
options = { "security.protocol" = "ssl", "linger.ms" = "20" }
queue_capacity = 7"#)
        .unwrap();
        let k = kafka(&j);
        assert_eq!(k.queue_capacity, 7);
        assert_eq!(k.options["linger.ms"], "20");
        assert_eq!(k.options["security.protocol"], "ssl");
    }

    #[test]
    fn missing_and_bad_keys_are_named() {
        let e = job(r#"topic = "t""#).unwrap_err();
        assert!(e.contains("a kafka sink needs `brokers`"), "{e}");
        let e = job(r#"brokers = "k:1""#).unwrap_err();
        assert!(e.contains("a kafka sink needs a `topic`"), "{e}");
        let e = job(r#"brokers = " "
topic = "t""#)
        .unwrap_err();
        assert!(e.contains("brokers is empty"), "{e}");
        for (topic, says) in [
            ("a/b", "cannot contain '/'"),
            ("", "topic is empty"),
            ("..", "not a legal Kafka topic name"),
        ] {
            let e = job(&format!("brokers = \"k:1\"\ntopic = \"{topic}\"")).unwrap_err();
            assert!(e.contains(says), "{topic}: {e}");
        }
        let long = "t".repeat(250);
        let e = job(&format!("brokers = \"k:1\"\ntopic = \"{long}\"")).unwrap_err();
        assert!(e.contains("at most 249"), "{e}");
        let e = job("brokers = \"k:1\"\ntopic = \"t\"\nqueue_capacity = 0").unwrap_err();
        assert!(e.contains("queue_capacity = 0 is out of range"), "{e}");
        let e = job("brokers = \"k:1\"\ntopic = \"t\"\npath = \"x\"").unwrap_err();
        assert!(e.contains("does not take a `path`"), "{e}");
    }

    #[test]
    fn options_are_checked_by_librdkafka_and_fixed_ones_refused() {
        let e = job(r#"brokers = "k:1"
topic = "t"
options = { "no.such.option" = "1" }"#)
        .unwrap_err();
        assert!(e.contains("options.no.such.option"), "{e}");
        assert!(e.contains("j.toml:15"), "points at the option: {e}");
        let e = job(r#"brokers = "k:1"
topic = "t"
options = { acks = "1" }"#)
        .unwrap_err();
        assert!(
            e.contains("options.acks") && e.contains("tidemark sets it"),
            "{e}"
        );
        for key in ["message.timeout.ms", "enable.gapless.guarantee"] {
            let e = job(&format!(
                "brokers = \"k:1\"\ntopic = \"t\"\noptions = {{ \"{key}\" = \"1\" }}"
            ))
            .unwrap_err();
            assert!(e.contains(&format!("options.{key} cannot be set")), "{e}");
        }
        // The read-back consumer is built from the same options.
        let e = job(r#"brokers = "k:1"
topic = "t"
options = { "enable.partition.eof" = "false" }"#)
        .unwrap_err();
        assert!(
            e.contains("options.enable.partition.eof cannot be set")
                && e.contains("a kafka sink's read-back consumer"),
            "{e}"
        );
        let e = job(r#"brokers = "k:1"
topic = "t"
options = { "bootstrap.servers" = "x:1" }"#)
        .unwrap_err();
        assert!(e.contains("duplicates `brokers`"), "{e}");
    }

    #[test]
    fn two_kafka_sinks_of_a_job_may_not_share_a_topic() {
        let e = job("brokers = \"k:1\"\ntopic = \"t\"\n[[sink]]\nkind = \"kafka\"\nseries = \"all\"\nbrokers = \"k:1\"\ntopic = \"t\"")
            .unwrap_err();
        assert!(
            e.contains("two kafka sinks of this job write the topic t (the first on line 10)"),
            "{e}"
        );
        job("brokers = \"k:1\"\ntopic = \"t\"\n[[sink]]\nkind = \"kafka\"\nseries = \"all\"\nbrokers = \"k:1\"\ntopic = \"u\"")
            .unwrap();
    }

    #[test]
    fn other_kinds_keys_are_refused_and_kafka_keys_elsewhere() {
        let e = job("brokers = \"k:1\"\ntopic = \"t\"\nurl = \"http://x/y\"").unwrap_err();
        assert!(
            e.contains("`url` is a setting of a prometheus_remote_write sink"),
            "{e}"
        );
        let text = r#"name = "j"
[source]
kind = "file"
include = ["/logs/*.log"]
[parse]
format = "nginx"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "jsonl"
path = "out.jsonl"
series = "hosts"
topic = "t"
"#;
        let e = crate::from_str(text, "j.toml", Path::new("/srv"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`topic` is a setting of a kafka sink, not of a jsonl sink"),
            "{e}"
        );
    }
}
