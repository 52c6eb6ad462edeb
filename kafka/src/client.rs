//! librdkafka settings for tidemark's producers and consumers: the user's options passed
//! through (TLS, SASL, timeouts, …), with the few that tidemark's guarantees rest on set by
//! tidemark and refused as overrides.

use std::collections::BTreeMap;

use rdkafka::config::ClientConfig;
use thiserror::Error;

/// What a client is for; each role fixes its own settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The agent's producer: idempotent, `acks=all`, never gives a message up (reads
    /// pause instead while the broker is away).
    AgentProducer,
    /// A sink's producer: idempotent, `acks=all`.
    SinkProducer,
    /// A job's consumer: partitions assigned by tidemark, offsets kept in tidemark's
    /// checkpoint (committed to the group id only so standard tools show the lag).
    Consumer,
    /// A kafka sink's read-back consumer (built from the sink's options): a
    /// consumer's fixed settings, named as the sink's in messages.
    SinkReadBack,
}

impl Role {
    /// The settings tidemark sets for this role, and why each matters.
    pub fn fixed(self) -> &'static [(&'static str, &'static str, &'static str)] {
        const PRODUCER: &[(&str, &str, &str)] = &[
            (
                "enable.idempotence",
                "true",
                "no duplicates or reordering from retries",
            ),
            (
                "acks",
                "all",
                "a line counts as sent once every in-sync replica has it",
            ),
        ];
        const AGENT: &[(&str, &str, &str)] = &[
            (
                "enable.idempotence",
                "true",
                "no duplicates or reordering from retries",
            ),
            (
                "acks",
                "all",
                "a line counts as sent once every in-sync replica has it",
            ),
            // 0 = retry for ever: a message given up would leave a gap behind lines
            // delivered after it.
            (
                "message.timeout.ms",
                "0",
                "a line is never given up while the broker is away",
            ),
        ];
        const CONSUMER: &[(&str, &str, &str)] = &[
            (
                "enable.auto.commit",
                "false",
                "offsets are committed with tidemark's checkpoint",
            ),
            (
                "enable.auto.offset.store",
                "false",
                "offsets are committed with tidemark's checkpoint",
            ),
            (
                "enable.partition.eof",
                "true",
                "a caught-up partition is seen as such",
            ),
            // librdkafka's default, `latest`, would skip to the end of a partition when an
            // offset is refused as out of range — as tansu does briefly after a restart.
            // From the earliest kept record, resends are dropped by sequence instead.
            (
                "auto.offset.reset",
                "earliest",
                "an offset refused as out of range is never skipped past",
            ),
        ];
        match self {
            Role::AgentProducer => AGENT,
            Role::SinkProducer => PRODUCER,
            Role::Consumer | Role::SinkReadBack => CONSUMER,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Role::AgentProducer => "the agent's producer",
            Role::SinkProducer => "a kafka sink's producer",
            Role::Consumer => "a kafka source's consumer",
            Role::SinkReadBack => "a kafka sink's read-back consumer",
        }
    }
}

/// A client's settings that cannot be used.
#[derive(Debug, Error)]
pub enum SettingsError {
    /// No broker to connect to.
    #[error(
        "brokers is empty. hint: give at least one host:port, e.g. brokers = \"kafka-1:9092\""
    )]
    NoBrokers,
    /// The user set an option tidemark sets itself.
    #[error(
        "option {key:?} cannot be set for {role}: tidemark sets it to {value:?} ({why}). \
         hint: remove it from the options"
    )]
    Fixed {
        /// The option.
        key: String,
        /// What tidemark sets it to.
        value: &'static str,
        /// Why.
        why: &'static str,
        /// The client's role, in words.
        role: &'static str,
    },
    /// An option that would make librdkafka load native code or run a program.
    #[error(
        "option {key:?} is refused: it {why}, and a job or agent file must not be able to run \
         code inside tidemark (a job submitted to a cluster member included). hint: remove \
         it; TLS and SASL PLAIN/SCRAM work without it"
    )]
    Unsafe {
        /// The option.
        key: String,
        /// What it would do.
        why: &'static str,
    },
    /// `bootstrap.servers` given as an option (it is the `brokers` key).
    #[error("option {0:?} duplicates brokers. hint: list the brokers in brokers only")]
    Brokers(String),
    /// librdkafka refused an option (unknown name or bad value).
    #[error("librdkafka refuses the options: {0}. hint: check the name and value against librdkafka's CONFIGURATION.md")]
    Refused(#[source] rdkafka::error::KafkaError),
}

/// librdkafka options that load native code or run a program. librdkafka acts on
/// `plugin.library.paths` as soon as the option is set (a `dlopen` during validation), so
/// these are refused before anything reaches librdkafka (review R14k).
const UNSAFE: &[(&str, &str)] = &[
    (
        "plugin.library.paths",
        "loads shared libraries into the process",
    ),
    (
        "ssl.engine.location",
        "loads an OpenSSL engine, a shared library",
    ),
    ("ssl.providers", "loads OpenSSL providers, shared libraries"),
    ("sasl.kerberos.kinit.cmd", "runs a shell command"),
];

/// librdkafka settings for `role`: `brokers`, the user's `options`, then the role's fixed
/// settings. Checks every option with librdkafka itself (no connection is made).
pub fn client_config(
    role: Role,
    brokers: &str,
    options: &BTreeMap<String, String>,
) -> Result<ClientConfig, SettingsError> {
    if brokers.trim().is_empty() {
        return Err(SettingsError::NoBrokers);
    }
    let fixed = role.fixed();
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in options {
        let lower = key.trim().to_ascii_lowercase();
        if let Some((_, why)) = UNSAFE.iter().find(|(k, _)| *k == lower) {
            return Err(SettingsError::Unsafe {
                key: key.clone(),
                why,
            });
        }
        if matches!(key.as_str(), "bootstrap.servers" | "metadata.broker.list") {
            return Err(SettingsError::Brokers(key.clone()));
        }
        if let Some((_, fixed_value, why)) = fixed.iter().find(|(k, _, _)| same_option(k, key)) {
            return Err(SettingsError::Fixed {
                key: key.clone(),
                value: fixed_value,
                why,
                role: role.name(),
            });
        }
        config.set(key, value);
    }
    for (key, value, _) in fixed {
        config.set(*key, *value);
    }
    config
        .create_native_config()
        .map_err(SettingsError::Refused)?;
    Ok(config)
}

/// librdkafka aliases a few names (`acks` is `request.required.acks`).
fn same_option(fixed: &str, given: &str) -> bool {
    let canonical = |k: &str| {
        match k {
            "request.required.acks" => "acks",
            "delivery.timeout.ms" => "message.timeout.ms",
            other => other,
        }
        .to_owned()
    };
    canonical(fixed) == canonical(given)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_fixed_settings_win_and_options_pass_through() {
        let config = client_config(
            Role::AgentProducer,
            "k1:9092",
            &opts(&[("security.protocol", "ssl"), ("linger.ms", "20")]),
        )
        .unwrap();
        assert_eq!(config.get("bootstrap.servers"), Some("k1:9092"));
        assert_eq!(config.get("security.protocol"), Some("ssl"));
        assert_eq!(config.get("enable.idempotence"), Some("true"));
        assert_eq!(config.get("message.timeout.ms"), Some("0"));
        let consumer = client_config(Role::Consumer, "k1:9092", &opts(&[])).unwrap();
        assert_eq!(consumer.get("auto.offset.reset"), Some("earliest"));
    }

    #[test]
    fn overriding_a_fixed_setting_is_refused_by_name_and_alias() {
        for key in [
            "acks",
            "request.required.acks",
            "delivery.timeout.ms",
            "enable.idempotence",
        ] {
            let err = client_config(Role::AgentProducer, "k:1", &opts(&[(key, "1")])).unwrap_err();
            assert!(matches!(err, SettingsError::Fixed { .. }), "{key}: {err}");
        }
        let err = client_config(
            Role::Consumer,
            "k:1",
            &opts(&[("enable.auto.commit", "true")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("enable.auto.commit"), "{err}");
    }

    #[test]
    fn options_that_load_code_or_run_programs_are_refused_for_every_role() {
        for role in [
            Role::AgentProducer,
            Role::SinkProducer,
            Role::Consumer,
            Role::SinkReadBack,
        ] {
            for key in [
                "plugin.library.paths",
                " Plugin.Library.Paths",
                "ssl.engine.location",
                "ssl.providers",
                "sasl.kerberos.kinit.cmd",
            ] {
                let err = client_config(role, "k:1", &opts(&[(key, "/tmp/x.so")])).unwrap_err();
                assert!(matches!(err, SettingsError::Unsafe { .. }), "{key}: {err}");
            }
        }
    }

    #[test]
    fn unknown_options_and_missing_brokers_are_refused() {
        let err =
            client_config(Role::Consumer, "k:1", &opts(&[("no.such.option", "1")])).unwrap_err();
        assert!(matches!(err, SettingsError::Refused(_)), "{err}");
        assert!(matches!(
            client_config(Role::Consumer, " ", &opts(&[])),
            Err(SettingsError::NoBrokers)
        ));
        assert!(matches!(
            client_config(
                Role::Consumer,
                "k:1",
                &opts(&[("bootstrap.servers", "x:1")])
            ),
            Err(SettingsError::Brokers(_))
        ));
    }
}
