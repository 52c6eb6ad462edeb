use std::path::Path;

use tidemark_jobs::env::Env;

use super::*;

const GOOD: &str = r#"
[agent]
host = "web-1"
state_dir = "state"
brokers = "k1:9092"
topic = "logs"

[source]
kind = "file"
include = ["logs/*.log"]
"#;

fn check(text: &str) -> Result<Agent, Diagnostics> {
    from_str(text, "agent.toml", Path::new("/etc/tm"), &Env::process())
}

fn errors(text: &str) -> String {
    match check(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn a_minimal_file_gets_the_documented_defaults() {
    let a = check(GOOD).unwrap();
    assert_eq!(a.host, "web-1");
    assert_eq!(a.state_dir, Path::new("/etc/tm/state"));
    assert_eq!(a.source.include, vec!["/etc/tm/logs/*.log".to_string()]);
    assert_eq!(a.heartbeat_interval, DEFAULT_HEARTBEAT);
    assert_eq!(a.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
    assert_eq!(a.group_retention, Duration::from_secs(24 * 3600));
    assert_eq!(a.metrics_addr, None);
    assert!(a.filter.is_empty());
    assert!(is_agent_file(GOOD));
    assert!(!is_agent_file(
        "name = \"job\"\n[source]\nkind = \"file\"\n"
    ));
    assert!(!is_agent_file("not toml ["));
}

#[test]
fn every_key_is_read() {
    let text = format!(
        "{GOOD}rate_limit = \"1MiB/s\"\nmax_line_bytes = \"64KiB\"\n\n[filter]\ninclude = [\"ERROR\"]\n\
         exclude_regex = [\"^DEBUG\"]\n"
    )
    .replace(
        "topic = \"logs\"",
        "topic = \"logs\"\nheartbeat_interval = \"2s\"\nmax_in_flight = 500\n\
         group_retention = \"90m\"\n\
         metrics_addr = \"127.0.0.1:0\"\n[agent.options]\n\"linger.ms\" = \"5\"",
    );
    let a = check(&text).unwrap();
    assert_eq!(a.heartbeat_interval, Duration::from_secs(2));
    assert_eq!(a.max_in_flight, 500);
    assert_eq!(a.group_retention, Duration::from_secs(90 * 60));
    assert_eq!(a.options.get("linger.ms").map(String::as_str), Some("5"));
    assert_eq!(a.source.rate_limit, Some(1 << 20));
    assert_eq!(a.source.max_line_bytes, 64 << 10);
    assert!(a.filter.keeps(b"an ERROR") && !a.filter.keeps(b"DEBUG ERROR"));
    assert!(!a.filter.keeps(b"INFO"));
}

#[test]
fn mistakes_are_reported_with_line_and_column() {
    let e = errors(&GOOD.replace("topic = \"logs\"", "topic = \"logs\"\ntopik = \"x\""));
    assert!(e.contains("agent.toml:7:1") && e.contains("topik"), "{e}");
    let e = errors(&GOOD.replace("\"logs\"", "\"no spaces\""));
    assert!(
        e.contains("agent.toml:6:9") && e.contains("not a Kafka topic"),
        "{e}"
    );
    let e = errors(&format!(
        "{GOOD}host = {{ value = \"x\" }}\narchive = [\"/a/*.gz\"]\n"
    ));
    assert!(e.contains("[source] host is not used by the agent"), "{e}");
    assert!(
        e.contains("[source] archive is not used by the agent"),
        "{e}"
    );
    let e = errors(&format!(
        "{GOOD}[filter]\ninclude_regex = [\"(\"]\ninclude = [\"\"]\n"
    ));
    assert!(e.contains("not a valid regular expression"), "{e}");
    assert!(e.contains("empty keyword"), "{e}");
}

#[test]
fn producer_settings_are_checked_with_librdkafka() {
    let with = |opts: &str| {
        GOOD.replace(
            "topic = \"logs\"",
            &format!("topic = \"logs\"\n[agent.options]\n{opts}"),
        )
    };
    let e = errors(&with("acks = \"1\""));
    assert!(e.contains("cannot be set") && e.contains("acks"), "{e}");
    let e = errors(&with("\"no.such.option\" = \"1\""));
    assert!(e.contains("librdkafka refuses"), "{e}");
    // A line of max_line_bytes must fit in a record.
    let e = errors(&with("\"message.max.bytes\" = \"100000\""));
    assert!(e.contains("message.max.bytes"), "{e}");
    let e = errors(&GOOD.replace("topic = \"logs\"", "topic = \"logs\"\nmax_in_flight = 0"));
    assert!(e.contains("max_in_flight = 0 is out of range"), "{e}");
    let e = errors(&GOOD.replace(
        "topic = \"logs\"",
        "topic = \"logs\"\nheartbeat_interval = \"0s\"",
    ));
    assert!(e.contains("heartbeat_interval must be more than 0s"), "{e}");
}

#[test]
fn the_source_is_checked_as_a_jobs() {
    let e = errors(&GOOD.replace("kind = \"file\"", "kind = \"file\"\nrate_limit = \"fast\""));
    assert!(e.contains("rate_limit"), "{e}");
    let e = errors(&GOOD.replace("include = [\"logs/*.log\"]", "include = []"));
    assert!(e.contains("`include` is empty"), "{e}");
}

#[test]
fn debug_output_never_shows_a_secret_option() {
    let text = GOOD.replace(
        "topic = \"logs\"",
        "topic = \"logs\"\n[agent.options]\n\"sasl.password\" = \"hunter2-pw\"\n\"linger.ms\" = \"5\"",
    );
    let shown = format!("{:?}", check(&text).unwrap());
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("[redacted]") && shown.contains("\"linger.ms\": \"5\""),
        "{shown}"
    );
}

#[test]
fn group_retention_must_be_a_positive_duration() {
    for bad in ["0s", "soon"] {
        let text = GOOD.replace(
            "topic = \"logs\"",
            &format!("topic = \"logs\"\ngroup_retention = \"{bad}\""),
        );
        assert!(errors(&text).contains("group_retention"), "{bad}");
    }
}

#[test]
fn the_numbering_hash_changes_with_the_filter_and_max_line_bytes_only() {
    let base = check(GOOD).unwrap().numbering;
    assert_eq!(check(GOOD).unwrap().numbering, base, "stable");
    let filtered = format!("{GOOD}\n[filter]\nexclude = [\"x\"]\n");
    let other = format!("{GOOD}\n[filter]\nexclude = [\"y\"]\n");
    let moved = format!("{GOOD}\n[filter]\ninclude = [\"x\"]\n");
    let longer = format!("{GOOD}max_line_bytes = \"64KiB\"\n");
    let hashes: Vec<u64> = [&filtered, &other, &moved, &longer]
        .iter()
        .map(|t| check(t).unwrap().numbering)
        .collect();
    for (i, h) in hashes.iter().enumerate() {
        assert_ne!(*h, base, "{i}");
        for h2 in &hashes[i + 1..] {
            assert_ne!(h, h2);
        }
    }
    // What does not change numbering does not change it.
    let beat = GOOD.replace(
        "topic = \"logs\"",
        "topic = \"logs\"\nheartbeat_interval = \"1s\"",
    );
    assert_eq!(check(&beat).unwrap().numbering, base);
}
