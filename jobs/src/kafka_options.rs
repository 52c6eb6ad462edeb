//! `${NAME}` in kafka client options (a source's `[source.options]`, a kafka sink's
//! `options`, the agent's `[agent.options]`), and keeping the values of secret options
//! out of sight.
//!
//! Every option value is expanded like a path ([`crate::env`]): `${NAME}` is an
//! environment variable, `$$` a literal `$`, any other `$` an error. The options
//! whose value is itself a secret ([`SECRET_OPTIONS`]) are expanded at
//! [`Place::SecretOption`], the only place where a cluster's secret variables
//! (`--job-secret-env NAME`) may be used: librdkafka keeps those values to itself
//! (its debug dumps print them as `[redacted]`), and tidemark never shows them —
//! [`redact`] takes them out of the error texts that could quote them, and
//! [`Redacted`] out of `{:?}`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::env::{expand_in, Env, ExpandError, Place};

/// librdkafka options whose value is a secret (they are marked sensitive in
/// librdkafka's own configuration table), lower case. Not the `*.location` and
/// `*.file` ones: those are paths, which librdkafka's errors quote. Not
/// `sasl.oauthbearer.config` either, though librdkafka marks it sensitive: it is
/// parsed in pieces, and the errors about it quote a piece ("non-integral
/// 'lifeSeconds=': VALUE"), which [`redact`] cannot recognise (review R15d). A
/// value is only here if librdkafka never quotes part of it.
pub const SECRET_OPTIONS: &[&str] = &[
    "sasl.password",
    "sasl.username",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
];

/// Whether option `key` holds a secret (spelling as librdkafka reads it: case and
/// surrounding spaces do not matter).
pub fn is_secret_option(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    SECRET_OPTIONS.contains(&key.as_str())
}

/// Where `${NAME}` in option `key`'s value is used.
pub fn place_of(key: &str) -> Place {
    if is_secret_option(key) {
        Place::SecretOption
    } else {
        Place::Text
    }
}

/// Option `key`'s `value` with `${NAME}` and `$$` expanded from `env`.
pub fn expand_option(key: &str, value: &str, env: &Env) -> Result<String, Vec<ExpandError>> {
    expand_in(value, env, place_of(key)).map(|e| e.text)
}

/// What replaces a secret option's value in a message.
pub const REDACTED: &str = "[redacted]";

/// `message` with every secret option's value of `options` replaced by
/// [`REDACTED`]: librdkafka quotes a value it refuses, and a value may hold a
/// password even when written in the file.
pub fn redact(message: &str, options: &BTreeMap<String, String>) -> String {
    let mut secrets: Vec<&str> = options
        .iter()
        .filter(|(k, v)| is_secret_option(k) && !v.is_empty())
        .map(|(_, v)| v.as_str())
        .collect();
    // The longest first, so a secret that contains another goes whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = message.to_string();
    for s in secrets {
        out = out.replace(s, REDACTED);
    }
    out
}

/// Shortest secret value [`SecretScrubber`] takes out of a text: a shorter one
/// (`ab`, `1`) would match inside ordinary words and numbers and garble every
/// message, and is no secret worth the name.
pub const MIN_SCRUBBED_LEN: usize = 4;

/// The values of a cluster's secret variables (`--job-secret-env NAME`), taken out
/// of every text a member shows or logs about its jobs (`last_error`, warnings, its
/// log, librdkafka's lines included): the second layer under [`redact`], for
/// messages tidemark does not write itself and that could quote a piece of an
/// option's value. Values shorter than [`MIN_SCRUBBED_LEN`] bytes are left alone.
#[derive(Clone, Default)]
pub struct SecretScrubber(Arc<[String]>);

impl SecretScrubber {
    /// Scrubs `values` (empty and too short ones are ignored).
    pub fn new<S: Into<String>>(values: impl IntoIterator<Item = S>) -> Self {
        let mut values: Vec<String> = values
            .into_iter()
            .map(Into::into)
            .filter(|v| v.len() >= MIN_SCRUBBED_LEN)
            .collect();
        // The longest first, so a secret that contains another goes whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        SecretScrubber(values.into())
    }

    /// The values of `env`'s secret variables that are set.
    pub fn of_env(env: &Env) -> Self {
        Self::new(env.secret_values())
    }

    /// Whether there is nothing to scrub.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every secret value replaced by [`REDACTED`].
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for v in self.0.iter() {
            if out.contains(v.as_str()) {
                out = Cow::Owned(out.replace(v.as_str(), REDACTED));
            }
        }
        out
    }
}

/// The count only: the values are the secrets.
impl fmt::Debug for SecretScrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretScrubber({} value(s))", self.0.len())
    }
}

/// Options shown by `{:?}` with the secret ones' values as [`REDACTED`].
pub struct Redacted<'a>(pub &'a BTreeMap<String, String>);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| {
                let shown = if is_secret_option(k) {
                    REDACTED
                } else {
                    v.as_str()
                };
                (k, shown)
            }))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::ExpandErrorKind;

    fn cluster_env() -> Env {
        Env::from_vars([("PW", "hunter2-secret"), ("CA", "/etc/ca.pem")])
            .allowing_with_secrets(["CA"], ["PW"])
    }

    #[test]
    fn a_secret_variable_expands_only_in_a_secret_option() {
        let env = cluster_env();
        assert_eq!(
            expand_option("sasl.password", "${PW}", &env).unwrap(),
            "hunter2-secret"
        );
        assert_eq!(
            expand_option(" SASL.Password ", "${PW}", &env).unwrap(),
            "hunter2-secret"
        );
        for key in ["client.id", "ssl.ca.location", "sasl.mechanisms"] {
            let errors = expand_option(key, "x${PW}", &env).unwrap_err();
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].kind, ExpandErrorKind::SecretOnly("PW".into()));
            let (message, hint) = errors[0].describe(&format!("options.{key}"));
            assert!(!message.contains("hunter2") && !hint.contains("hunter2"));
            assert!(hint.contains("sasl.password"), "{hint}");
        }
        // The plain allowed variable works in any option, a secret one too.
        assert_eq!(
            expand_option("ssl.ca.location", "${CA}", &env).unwrap(),
            "/etc/ca.pem"
        );
        assert_eq!(
            expand_option("sasl.password", "${CA}", &env).unwrap(),
            "/etc/ca.pem"
        );
        // Neither allowed: refused as before.
        let errors = expand_option("sasl.password", "${HOME}", &env).unwrap_err();
        assert_eq!(errors[0].kind, ExpandErrorKind::NotAllowed("HOME".into()));
        // `$$` is a literal `$`; a lone `$` is an error, as in paths.
        assert_eq!(expand_option("sasl.password", "a$$b", &env).unwrap(), "a$b");
        assert!(expand_option("sasl.password", "a$b", &env).is_err());
    }

    #[test]
    fn outside_a_cluster_every_variable_expands_everywhere() {
        let env = Env::from_vars([("PW", "pw")]);
        assert_eq!(expand_option("client.id", "${PW}", &env).unwrap(), "pw");
        assert_eq!(expand_option("sasl.password", "${PW}", &env).unwrap(), "pw");
    }

    #[test]
    fn secret_values_are_redacted_from_messages_and_debug() {
        let options = BTreeMap::from([
            ("sasl.password".to_string(), "hunter2".to_string()),
            ("ssl.key.password".to_string(), "hunter2-long".to_string()),
            ("client.id".to_string(), "tm".to_string()),
        ]);
        let m = redact(
            "bad value \"hunter2-long\" and hunter2 for client tm",
            &options,
        );
        assert_eq!(m, "bad value \"[redacted]\" and [redacted] for client tm");
        let shown = format!("{:?}", Redacted(&options));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("\"client.id\": \"tm\""), "{shown}");
    }

    #[test]
    fn the_scrubber_takes_out_secret_values_of_four_bytes_or_more() {
        let env = Env::from_vars([("PW", "hunter2-secret"), ("PIN", "12"), ("CA", "/etc/ca")])
            .allowing_with_secrets(["CA"], ["PW", "PIN", "UNSET"]);
        let s = SecretScrubber::of_env(&env);
        assert_eq!(
            s.scrub("non-integral 'lifeSeconds=': hunter2-secret x hunter2-secretx 12 /etc/ca"),
            "non-integral 'lifeSeconds=': [redacted] x [redacted]x 12 /etc/ca"
        );
        assert!(matches!(s.scrub("nothing here"), Cow::Borrowed(_)));
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(SecretScrubber::of_env(&Env::from_vars([("PW", "hunter2")])).is_empty());
        let nested = SecretScrubber::new(["abcd", "abcdefgh"]);
        assert_eq!(nested.scrub("abcdefgh abcd"), "[redacted] [redacted]");
    }

    #[test]
    fn the_oauthbearer_config_takes_no_secret_variable() {
        // librdkafka quotes pieces of it: a secret there could not be redacted.
        let errors = expand_option(
            "sasl.oauthbearer.config",
            "principal=tm lifeSeconds=${PW}",
            &cluster_env(),
        )
        .unwrap_err();
        assert_eq!(errors[0].kind, ExpandErrorKind::SecretOnly("PW".into()));
    }

    fn submitted(source_extra: &str, sink_options: &str) -> Result<crate::Job, String> {
        let text = format!(
            r#"name = "k"
[source]
kind = "kafka"
brokers = "k:9092"
topic = "logs"
{source_extra}
[parse]
format = "nginx"
[[metric]]
name = "reqs"
kind = "counter"
[[rule]]
record = "r"
expr = "sum(reqs)"
[[sink]]
kind = "kafka"
brokers = "k:9092"
topic = "out"
options = {{ {sink_options} }}
"#
        );
        crate::submitted(&text, "k.toml", &cluster_env()).map_err(|d| d.to_string())
    }

    #[test]
    fn a_submitted_job_gets_the_secret_in_its_password_options_only() {
        let job = submitted(
            "options = { \"sasl.password\" = \"${PW}\", \"ssl.ca.location\" = \"${CA}\" }",
            "\"sasl.password\" = \"${PW}\"",
        )
        .unwrap();
        let source = job.source.kafka.as_ref().unwrap();
        assert_eq!(source.options["sasl.password"], "hunter2-secret");
        assert_eq!(source.options["ssl.ca.location"], "/etc/ca.pem");
        match &job.sinks[0].kind {
            crate::SinkKind::Kafka(k) => assert_eq!(k.options["sasl.password"], "hunter2-secret"),
            other => panic!("{other:?}"),
        }
        // Nothing prints it.
        let shown = format!("{job:?}");
        assert!(!shown.contains("hunter2"), "{shown}");

        // Elsewhere: refused, the name shown, never the value.
        for (source_extra, sink_options) in [
            ("host = { value = \"${PW}\" }", ""),
            ("options = { \"client.id\" = \"${PW}\" }", ""),
            ("", "\"client.id\" = \"${PW}\""),
        ] {
            let e = submitted(source_extra, sink_options).unwrap_err();
            assert!(e.contains("`PW`") && e.contains("secret"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
