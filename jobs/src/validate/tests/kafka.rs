//! `[source] kind = "kafka"`: its keys, defaults and refusals.

use super::*;

const KAFKA: &str = r#"
name = "app"
[source]
kind = "kafka"
brokers = "k1:9092,k2:9092"
topic = "logs"
[parse]
format = "nginx"
[[metric]]
name = "lines_total"
kind = "counter"
[[sink]]
kind = "stdout"
series = "hosts"
"#;

/// The kafka job with `extra` lines put in its [source] table.
fn kafka_with(extra: &str) -> String {
    KAFKA.replace(
        "topic = \"logs\"\n",
        &format!("topic = \"logs\"\n{extra}\n"),
    )
}

fn messages(text: &str) -> String {
    errors(text)
        .iter()
        .map(|d| format!("{}:{}: {} ({:?})", d.line, d.column, d.message, d.hint))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_kafka_source_with_its_defaults() {
    let job = ok(KAFKA);
    let k = job.source.kafka.as_ref().expect("a kafka source");
    assert_eq!(k.brokers, "k1:9092,k2:9092");
    assert_eq!(k.topic, "logs");
    assert!(k.options.is_empty());
    assert_eq!(k.group_id_for("app"), "tidemark-app");
    assert!(job.source.include.is_empty());
    // Agents' records carry their host; other records' host is in the `host` header.
    assert!(matches!(&job.source.host, HostFrom::Record { header } if header == "host"));
}

#[test]
fn options_group_and_host_are_taken() {
    let job = ok(&kafka_with(
        "group_id = \"lag\"\nhost = { header = \"hostname\" }\n[source.options]\n\"security.protocol\" = \"ssl\"\n\"fetch.max.bytes\" = \"1048576\"",
    ));
    let k = job.source.kafka.unwrap();
    assert_eq!(k.group_id_for("app"), "lag");
    assert_eq!(k.options["security.protocol"], "ssl");
    assert!(matches!(&job.source.host, HostFrom::Record { header } if header == "hostname"));
    let job = ok(&kafka_with("host = { field = \"remote_addr\" }"));
    assert!(matches!(&job.source.host, HostFrom::Field(f) if f == "remote_addr"));
}

#[test]
fn missing_brokers_or_topic_are_named() {
    let text = KAFKA.replace("brokers = \"k1:9092,k2:9092\"\n", "");
    let m = messages(&text);
    assert!(m.contains("needs `brokers`"), "{m}");
    let text = KAFKA.replace("topic = \"logs\"\n", "");
    let m = messages(&text);
    assert!(m.contains("needs `topic`"), "{m}");
    let m = messages(&KAFKA.replace("topic = \"logs\"", "topic = \" \""));
    assert!(m.contains("`topic` is empty"), "{m}");
}

#[test]
fn options_are_judged_by_librdkafka_and_fixed_ones_refused() {
    let m = messages(&kafka_with("[source.options]\n\"no.such.option\" = \"1\""));
    assert!(m.contains("librdkafka refuses"), "{m}");
    let m = messages(&kafka_with(
        "[source.options]\n\"enable.auto.commit\" = \"true\"",
    ));
    assert!(m.contains("enable.auto.commit"), "{m}");
    // Pointed at the option's value (line 7 of the file: after [source.options]).
    let d = errors(&kafka_with(
        "[source.options]\n\"enable.auto.commit\" = \"true\"",
    ));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].line, 8, "{d:?}");
    let m = messages(&kafka_with(
        "[source.options]\n\"bootstrap.servers\" = \"x:1\"",
    ));
    assert!(m.contains("duplicates brokers"), "{m}");
}

#[test]
fn file_keys_are_refused_for_kafka_and_kafka_keys_for_files() {
    for key in [
        "include = [\"/l/*.log\"]",
        "exclude = [\"/l/x\"]",
        "poll_interval = \"1s\"",
        "rate_limit = \"1MiB/s\"",
        "max_open_files = 10",
        "split_from = \"1MiB\"",
    ] {
        let m = messages(&kafka_with(key));
        let name = key.split(' ').next().unwrap();
        assert!(
            m.contains(&format!("`{name}` is a kind = \"file\" setting")),
            "{key}: {m}"
        );
    }
    let m = messages(&kafka_with("host = { path_regex = \"/(?P<host>x)/\" }"));
    assert!(m.contains("only for kind = \"file\""), "{m}");
    let m = messages(&with("").replace(
        "include = [\"logs/*.log\"]",
        "include = [\"logs/*.log\"]\ntopic = \"t\"\nhost = { header = \"h\" }",
    ));
    assert!(m.contains("`topic` is only for kind = \"kafka\""), "{m}");
    assert!(
        m.contains("only for kind = \"kafka\" (a file has no headers)"),
        "{m}"
    );
    let m = messages(&MINIMAL.replace("include = [\"logs/*.log\"]\n", ""));
    assert!(m.contains("needs `include`"), "{m}");
}

#[test]
fn an_unknown_kind_suggests_both() {
    let m = messages(&KAFKA.replace("kind = \"kafka\"", "kind = \"kafak\""));
    assert!(m.contains("unknown source kind `kafak`"), "{m}");
    assert!(m.contains("kafka"), "{m}");
}

#[test]
fn the_operational_durations_have_defaults_and_are_taken() {
    let k = ok(KAFKA).source.kafka.unwrap();
    assert_eq!(k.heartbeat_grace, std::time::Duration::from_secs(60));
    assert_eq!(k.stream_retention, std::time::Duration::from_secs(86_400));
    assert_eq!(k.broker_timeout, std::time::Duration::from_secs(300));
    let k = ok(&kafka_with(
        "heartbeat_grace = \"2m\"\nstream_retention = \"1h\"\nbroker_timeout = \"30s\"",
    ))
    .source
    .kafka
    .unwrap();
    assert_eq!(k.heartbeat_grace, std::time::Duration::from_secs(120));
    assert_eq!(k.stream_retention, std::time::Duration::from_secs(3600));
    assert_eq!(k.broker_timeout, std::time::Duration::from_secs(30));
    let m = messages(&kafka_with("broker_timeout = \"0s\""));
    assert!(m.contains("broker_timeout must be greater than 0s"), "{m}");
    let m = messages(&kafka_with("heartbeat_grace = \"soon\""));
    assert!(m.contains("invalid heartbeat_grace"), "{m}");
}

#[test]
fn the_kafka_durations_are_refused_for_a_file_source() {
    for key in ["heartbeat_grace", "stream_retention", "broker_timeout"] {
        let m = messages(&with("").replace(
            "include = [\"logs/*.log\"]",
            &format!("include = [\"logs/*.log\"]\n{key} = \"1m\""),
        ));
        assert!(
            m.contains(&format!("`{key}` is only for kind = \"kafka\"")),
            "{key}: {m}"
        );
    }
}
