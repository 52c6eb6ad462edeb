//! The brokers a cluster lets submitted jobs connect to (`--allow-kafka-brokers`).
//!
//! A kafka source or sink makes every member (or process 0, for a sink) connect to
//! the `brokers` the job names: without a limit, anyone who may submit jobs could make
//! the members open connections to any host and port they reach, inside the cluster's
//! network (server-side request forgery). [`check_kafka_brokers`] refuses a submitted
//! job whose brokers are not all in the member's list; with no list, every kafka job
//! is refused. `tidemark run` (the operator's own job) is not checked.
//!
//! Brokers are compared as librdkafka reads `bootstrap.servers`: entries separated by
//! commas, each `[PROTOCOL://]host[:port]` (port 9092 when left out), host names
//! without case, IPv6 addresses in brackets, trailing dots kept (`kafka.` is the
//! absolute name, `kafka` a relative one). Names are not resolved: an allowed name
//! is allowed whatever it resolves to. librdkafka then also connects to the brokers
//! the allowed ones advertise in their metadata (the rest of the Kafka cluster),
//! which is the allowed cluster's choice.
//!
//! The one option that would make librdkafka reach another address than a broker,
//! `sasl.oauthbearer.token.endpoint.url` (OIDC), is refused at validation already:
//! librdkafka is built here without libcurl (a test pins it). `client.dns.lookup =
//! resolve_canonical_bootstrap_servers_only` would make it connect to the names an
//! allowed broker's addresses resolve back to: [`check_kafka_brokers`] refuses it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use thiserror::Error;

use crate::job::{Job, SinkKind};
use crate::validate::{Diagnostic, Diagnostics};

/// The flag, as messages name it.
pub const FLAG: &str = "--allow-kafka-brokers";

/// Kafka's default port, which librdkafka uses for an entry without one.
const DEFAULT_PORT: u16 = 9092;

/// librdkafka's option whose other value, `resolve_canonical_bootstrap_servers_only`,
/// reverse-resolves each bootstrap address and connects to the name it gets back: a
/// host the allow-list never named (review R15d).
const DNS_LOOKUP: &str = "client.dns.lookup";
/// Its default: connect to the addresses of the name as listed.
const DNS_LOOKUP_DEFAULT: &str = "use_all_dns_ips";

/// One broker: a lower-case host (IPv6 without brackets) and a port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Broker {
    host: String,
    port: u16,
}

impl fmt::Display for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// An entry that is not `[PROTOCOL://]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{entry:?} is not a broker address ({why}). hint: write host:port, e.g. kafka-1:9092")]
pub struct BrokerError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl Broker {
    /// Parses one entry of a broker list.
    pub fn parse(entry: &str) -> Result<Broker, BrokerError> {
        let err = |why| BrokerError {
            entry: entry.to_string(),
            why,
        };
        let text = entry.trim();
        let text = match text.split_once("://") {
            Some((_, rest)) => rest,
            None => text,
        };
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| err("no closing `]`"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(p.strip_prefix(':').ok_or_else(|| err("text after `]`"))?),
                ),
            }
        } else if text.matches(':').count() > 1 {
            return Err(err("an IPv6 address goes in brackets, e.g. [::1]:9092"));
        } else {
            match text.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        // Trailing dots stay: `kafka.` is the absolute name, `kafka` a relative one
        // resolved through the search domains first — two names, and the job
        // chooses which one librdkafka resolves.
        let host = host.to_ascii_lowercase();
        if host.trim_matches('.').is_empty() {
            return Err(err("no host"));
        }
        if host
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':')))
        {
            return Err(err("a host is letters, digits, `.`, `-` and `_`"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(err("the port is not a number from 1 to 65535")),
            },
        };
        Ok(Broker { host, port })
    }

    /// Parses a comma-separated list (`bootstrap.servers`); empty entries are skipped.
    pub fn parse_list(list: &str) -> Result<Vec<Broker>, BrokerError> {
        list.split(',')
            .filter(|e| !e.trim().is_empty())
            .map(Broker::parse)
            .collect()
    }
}

/// The brokers a cluster's submitted jobs may connect to. Empty: none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerAllowList(BTreeSet<Broker>);

impl BrokerAllowList {
    /// From the flag's values (each may hold several, separated by commas).
    pub fn parse<S: AsRef<str>>(
        values: impl IntoIterator<Item = S>,
    ) -> Result<BrokerAllowList, BrokerError> {
        let mut set = BTreeSet::new();
        for v in values {
            set.extend(Broker::parse_list(v.as_ref())?);
        }
        Ok(BrokerAllowList(set))
    }

    /// Whether `broker` may be connected to.
    pub fn allows(&self, broker: &Broker) -> bool {
        self.0.contains(broker)
    }

    fn shown(&self) -> String {
        self.0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Checks that every kafka client of `job` (its source, its kafka sinks) connects
/// only to brokers of `allowed`; else one diagnostic per problem, each naming the
/// flag. `file` names the job in them.
pub fn check_kafka_brokers(
    job: &Job,
    allowed: &BrokerAllowList,
    file: &str,
) -> Result<(), Diagnostics> {
    let mut clients: Vec<(&str, &str, &BTreeMap<String, String>)> = Vec::new();
    if let Some(k) = &job.source.kafka {
        clients.push(("the kafka source", &k.brokers, &k.options));
    }
    for sink in &job.sinks {
        if let SinkKind::Kafka(k) = &sink.kind {
            clients.push(("a kafka sink", &k.brokers, &k.options));
        }
    }
    let mut problems = Vec::new();
    for (what, _, options) in &clients {
        for (key, value) in options.iter() {
            if key.trim().eq_ignore_ascii_case(DNS_LOOKUP)
                && !value.trim().eq_ignore_ascii_case(DNS_LOOKUP_DEFAULT)
            {
                problems.push((
                    format!("{what}'s option {key:?} = {value:?} is refused for a submitted job: librdkafka would connect to the names the allowed brokers' addresses resolve back to, which {FLAG} does not list"),
                    format!("remove {key:?} (the default, {DNS_LOOKUP_DEFAULT}, connects to the listed names only)"),
                ));
            }
        }
    }
    let hint = |broker: &str| {
        if allowed.0.is_empty() {
            format!(
                "this cluster lets submitted jobs connect to no broker: start every member with {FLAG} {broker} (host:port, several separated by commas) to allow it"
            )
        } else {
            format!(
                "this cluster's members connect only to the brokers of {FLAG}: {}; use those, or start every member with {broker} added",
                allowed.shown()
            )
        }
    };
    for (what, brokers, _) in clients {
        match Broker::parse_list(brokers) {
            Err(e) => problems.push((format!("{what}'s brokers: {e}"), hint("HOST:PORT"))),
            Ok(list) => {
                for b in list.iter().filter(|b| !allowed.allows(b)) {
                    let shown = b.to_string();
                    problems.push((
                        format!("{what} connects to the broker {shown}, which this cluster does not allow ({FLAG})"),
                        hint(&shown),
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Diagnostics(
        problems
            .into_iter()
            .map(|(message, hint)| Diagnostic {
                file: file.to_string(),
                line: 0,
                column: 0,
                message,
                hint: Some(hint),
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Broker {
        Broker::parse(s).unwrap()
    }

    #[test]
    fn entries_are_read_as_librdkafka_reads_them() {
        assert_eq!(b("Kafka-1:9093"), b("kafka-1:9093"));
        assert_eq!(b("kafka-1"), b("kafka-1:9092"));
        assert_eq!(b(" SASL_SSL://kafka-1:9093 "), b("kafka-1:9093"));
        // An absolute name is not the relative one (search domains apply to the latter).
        assert_ne!(b("kafka-1.example.:9092"), b("kafka-1.example:9092"));
        assert_ne!(b("kafka.:9092"), b("kafka:9092"));
        assert_eq!(b("Kafka.:9092"), b("kafka.:9092"));
        assert_eq!(b("[::1]:9093").to_string(), "[::1]:9093");
        assert_eq!(b("[::1]"), b("[::1]:9092"));
        assert_ne!(b("kafka-1:9093"), b("kafka-1:9092"));
        for bad in [
            "", ":9092", ".:9092", "k:0", "k:x", "k:70000", "::1:9092", "[::1", "k/x:1", "[::1]x",
        ] {
            assert!(Broker::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Broker::parse_list("a:1, b:2,").unwrap(),
            vec![b("a:1"), b("b:2")]
        );
    }

    fn kafka_job(
        source_brokers: &str,
        sink_brokers: &str,
        extra_option: &str,
    ) -> Result<Job, String> {
        let text = format!(
            r#"name = "k"
[source]
kind = "kafka"
brokers = "{source_brokers}"
topic = "logs"
options = {{ {extra_option} }}
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
brokers = "{sink_brokers}"
topic = "out"
"#
        );
        crate::from_str_with_env(
            &text,
            "k.toml",
            std::path::Path::new("/"),
            &crate::Env::empty(),
        )
        .map_err(|d| d.to_string())
    }

    #[test]
    fn only_allowed_brokers_pass() {
        let allowed = BrokerAllowList::parse(["kafka-1:9092,kafka-2:9092", "sink:9093"]).unwrap();
        let ok = kafka_job("kafka-1:9092,KAFKA-2", "sink:9093", "").unwrap();
        assert!(check_kafka_brokers(&ok, &allowed, "k.toml").is_ok());

        let bad = kafka_job("kafka-1:9092,evil:9092", "sink:9094", "").unwrap();
        let d = check_kafka_brokers(&bad, &allowed, "k.toml")
            .unwrap_err()
            .to_string();
        assert!(
            d.contains("the kafka source connects to the broker evil:9092"),
            "{d}"
        );
        assert!(
            d.contains("a kafka sink connects to the broker sink:9094"),
            "{d}"
        );
        assert!(
            d.contains(FLAG) && d.contains("kafka-1:9092,kafka-2:9092,sink:9093"),
            "{d}"
        );
        assert!(!d.contains("kafka-1:9092 "), "{d}");
    }

    #[test]
    fn reverse_resolving_the_brokers_is_refused_for_a_submitted_job() {
        let allowed = BrokerAllowList::parse(["k:9092"]).unwrap();
        let job = kafka_job(
            "k:9092",
            "k:9092",
            r#""client.dns.lookup" = "resolve_canonical_bootstrap_servers_only""#,
        )
        .unwrap();
        let d = check_kafka_brokers(&job, &allowed, "k.toml")
            .unwrap_err()
            .to_string();
        assert!(d.contains("client.dns.lookup") && d.contains(FLAG), "{d}");
        let job = kafka_job(
            "k:9092",
            "k:9092",
            r#""client.dns.lookup" = "use_all_dns_ips""#,
        )
        .unwrap();
        assert!(check_kafka_brokers(&job, &allowed, "k.toml").is_ok());
    }

    #[test]
    fn no_list_refuses_every_kafka_job_and_names_the_flag() {
        let job = kafka_job("kafka-1:9092", "kafka-1:9092", "").unwrap();
        let d = check_kafka_brokers(&job, &BrokerAllowList::default(), "k.toml")
            .unwrap_err()
            .to_string();
        assert!(d.contains("--allow-kafka-brokers kafka-1:9092"), "{d}");
    }

    #[test]
    fn the_oauth_token_endpoint_which_would_reach_any_url_is_not_built_in() {
        // If librdkafka is ever built with libcurl, a submitted job could make the
        // members POST to any url: refuse this option for submitted jobs then.
        let e = kafka_job(
            "k:9092",
            "k:9092",
            r#""sasl.oauthbearer.token.endpoint.url" = "http://169.254.169.254/""#,
        )
        .unwrap_err();
        assert!(e.contains("not supported in this build"), "{e}");
    }
}
