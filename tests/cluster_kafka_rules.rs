//! Issue 14, deploy: what a job submitted to a cluster may do with Kafka.
//!
//! - `--allow-kafka-brokers`: a submitted job's kafka source and sinks may connect
//!   only to the listed brokers (none by default), so whoever may submit jobs cannot
//!   make the members open connections anywhere in their network.
//! - `--job-secret-env NAME`: `${NAME}` in a kafka password option, so a password
//!   need not sit in a job file; usable nowhere else, and its value is never shown
//!   in an answer, a status, the member's log, `/metrics` or the state folder.
//!
//! Ports from the OS; the broker is a real tansu (`TIDEMARK_TANSU`).

mod member;

use member::api::{http, member_token, submit, Setup};
use member::{rand_suffix, tidemark};
use std::time::{Duration, Instant};
use tidemark_kafka::testing::Broker;

/// A kafka job reading `brokers` (topic `logs`), with `options` in [source.options]
/// and `host` as its host setting, writing its rollups to `sink` (jsonl).
fn kafka_job(name: &str, brokers: &str, options: &str, host: &str, sink: &str) -> String {
    format!(
        r#"name = "{name}"
[source]
kind = "kafka"
brokers = "{brokers}"
topic = "logs"
{host}
[source.options]
{options}
[parse]
format = "nginx"
[[metric]]
name = "reqs"
kind = "counter"
[[rule]]
record = "r"
expr = "sum(reqs)"
[[sink]]
kind = "jsonl"
path = "{sink}"
series = "rules"
"#
    )
}

/// A port nothing listens on, from the OS (bound, then let go).
fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_submitted_kafka_job_may_connect_only_to_the_allowed_brokers() {
    let s = Setup::new();
    let allowed = format!("127.0.0.1:{}", unused_port());
    let other = format!("127.0.0.1:{}", unused_port());
    let job = |name: &str, brokers: &str| kafka_job(name, brokers, "", "", &s.sink(name));

    // Default: no broker is allowed; the 400 names the flag.
    let mut m = s.start(&[], &[]);
    let (code, body) = submit(&m, &s.state, &job("a", &allowed));
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("--allow-kafka-brokers") && body.contains(&allowed),
        "{body}"
    );
    // `tidemark run`'s own validation does not restrict brokers (the operator's job).
    let file = s.d.join("a.toml");
    std::fs::write(&file, job("a", &allowed)).unwrap();
    let o = tidemark().arg("validate").arg(&file).output().unwrap();
    assert!(o.status.success(), "{}", member::text(&o));
    assert!(m.terminate().success(), "{}", m.log());

    // With the flag: the listed broker is accepted, any other refused (for the
    // source, and for a kafka sink).
    let mut m = s.start(&["--allow-kafka-brokers", &allowed], &[]);
    let (code, body) = submit(&m, &s.state, &job("b", &format!("{allowed},{other}")));
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains(&format!("connects to the broker {other}"))
            && body.contains("--allow-kafka-brokers"),
        "{body}"
    );
    let sink_elsewhere = job("c", &allowed).replace(
        "[[sink]]",
        &format!("[[sink]]\nkind = \"kafka\"\nbrokers = \"{other}\"\ntopic = \"out\"\nseries = \"rules\"\n\n[[sink]]"),
    );
    let (code, body) = submit(&m, &s.state, &sink_elsewhere);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains(&format!("a kafka sink connects to the broker {other}")),
        "{body}"
    );
    let (code, body) = submit(&m, &s.state, &job("d", &allowed));
    assert!((200..300).contains(&code), "{code} {body}");
    assert!(m.terminate().success(), "{}", m.log());

    // A bad entry in the flag stops the member at start (exit 2).
    let (code, log) = member::cluster_exit(
        &[
            "--allow-root",
            s.logs.to_str().unwrap(),
            "--allow-kafka-brokers",
            "kafka-1:notaport",
        ],
        &s.d.join("state-bad"),
    );
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("--allow-kafka-brokers"), "{log}");
}

/// Every file under `dir`, recursively, that contains `needle`.
fn files_containing(dir: &std::path::Path, needle: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p)
                .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
            {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn a_secret_variable_reaches_the_password_option_and_is_never_shown() {
    let broker = Broker::start();
    broker.create_topic("logs", 2);
    let s = Setup::new();
    let secret = format!("canary-{:x}", rand_suffix());
    let mut m = s.start(
        &[
            "--allow-kafka-brokers",
            &broker.bootstrap(),
            "--job-secret-env",
            "KAFKA_PASSWORD",
        ],
        &[("KAFKA_PASSWORD", secret.as_str())],
    );
    let token = member_token(&s.state).unwrap();
    let sasl = r#""security.protocol" = "sasl_plaintext"
"sasl.mechanisms" = "PLAIN"
"sasl.username" = "tm""#;
    let with_password = format!("{sasl}\n\"sasl.password\" = \"${{KAFKA_PASSWORD}}\"");

    // Outside a password option: refused, naming the variable, not its value.
    let uses_elsewhere = [
        kafka_job(
            "h",
            &broker.bootstrap(),
            "",
            "host = { value = \"${KAFKA_PASSWORD}\" }",
            &s.sink("h"),
        ),
        kafka_job(
            "c",
            &broker.bootstrap(),
            "\"client.id\" = \"${KAFKA_PASSWORD}\"",
            "",
            &s.sink("c"),
        ),
        kafka_job(
            "p",
            &broker.bootstrap(),
            "",
            "",
            &format!(
                "{}/${{KAFKA_PASSWORD}}.jsonl",
                s.state.join("output").display()
            ),
        ),
    ];
    for job in &uses_elsewhere {
        let (code, body) = submit(&m, &s.state, job);
        assert_eq!(code, 400, "{body}");
        assert!(
            body.contains("KAFKA_PASSWORD") && body.contains("secret"),
            "{body}"
        );
        assert!(
            !body.contains(&secret),
            "the secret's value in a 400: {body}"
        );
    }

    // In the password option: accepted; the member runs the job, and its client
    // talks to the broker with it (tansu refuses or ignores SASL: either way the
    // job's kafka client logs what it got back).
    let (code, body) = submit(
        &m,
        &s.state,
        &kafka_job("a", &broker.bootstrap(), &with_password, "", &s.sink("a")),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    assert!(!body.contains(&secret), "{body}");
    // The job runs, and its client has spoken to the broker: its source logs what
    // the broker answered (tansu takes no SASL PLAIN handshake from it).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (code, status) = http(&m.api, "GET", "/jobs/a", Some(&token), "");
        assert_eq!(code, 200, "{status}");
        let log = m.log();
        if log.contains("kafka source of job \"a\"") && status.contains("\"running\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "job a did not run: {status}\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for path in ["/jobs", "/jobs/a", "/metrics", "/healthz"] {
        let (code, body) = http(&m.api, "GET", path, Some(&token), "");
        assert_eq!(code, 200, "{path}: {body}");
        assert!(
            !body.contains(&secret),
            "the secret's value in {path}: {body}"
        );
    }
    let o = m.job(&["status", "a"]);
    assert!(!member::text(&o).contains(&secret), "{}", member::text(&o));
    assert!(m.terminate().success(), "{}", m.log());
    let log = m.log();
    assert!(
        !log.contains(&secret),
        "the secret's value in the member's log:\n{log}"
    );
    // Kept jobs, checkpoints, outputs: the job file is kept as submitted.
    assert_eq!(
        files_containing(&s.d, &secret),
        Vec::<std::path::PathBuf>::new()
    );
}

#[test]
fn a_secret_variable_must_be_allowed_and_cannot_also_be_a_plain_one() {
    let s = Setup::new();
    // Without --job-secret-env the variable is not one the cluster lets jobs use.
    let m = s.start(
        &["--allow-kafka-brokers", "k:9092"],
        &[("KAFKA_PASSWORD", "x")],
    );
    let job = kafka_job(
        "a",
        "k:9092",
        "\"sasl.password\" = \"${KAFKA_PASSWORD}\"",
        "",
        &s.sink("a"),
    );
    let (code, body) = submit(&m, &s.state, &job);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("--job-env KAFKA_PASSWORD"), "{body}");
    drop(m);
    // Both flags for one name would let a job use it anywhere: refused at start.
    let (code, log) = member::cluster_exit(
        &[
            "--allow-root",
            s.logs.to_str().unwrap(),
            "--job-env",
            "KAFKA_PASSWORD",
            "--job-secret-env",
            "KAFKA_PASSWORD",
        ],
        &s.d.join("state-both"),
    );
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("--job-secret-env only"), "{log}");
}

#[test]
fn job_and_agent_files_take_kafka_options_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let agent = d.join("agent.toml");
    std::fs::write(
        &agent,
        format!(
            "[agent]\nhost = \"h\"\nstate_dir = \"{}\"\nbrokers = \"k:9092\"\ntopic = \"logs\"\n\
             [agent.options]\n\"sasl.password\" = \"${{TM_TEST_PW}}\"\n\
             [source]\nkind = \"file\"\ninclude = [\"{}/*.log\"]\n",
            d.join("state").display(),
            d.display()
        ),
    )
    .unwrap();
    let job = d.join("job.toml");
    std::fs::write(
        &job,
        kafka_job(
            "j",
            "k:9092",
            "\"sasl.password\" = \"${TM_TEST_PW}\"",
            "",
            "out.jsonl",
        ),
    )
    .unwrap();
    for file in [&agent, &job] {
        // Unset: an error naming the variable and the option (so it is expanded,
        // not handed to librdkafka as the text `${TM_TEST_PW}`).
        let o = tidemark()
            .arg("validate")
            .arg(file)
            .env_remove("TM_TEST_PW")
            .output()
            .unwrap();
        let t = member::text(&o);
        assert!(!o.status.success(), "{t}");
        assert!(
            t.contains("TM_TEST_PW") && t.contains("sasl.password"),
            "{t}"
        );
        // Set: valid (`tidemark run` and the agent allow any variable).
        let o = tidemark()
            .arg("validate")
            .arg(file)
            .env("TM_TEST_PW", "s3cret")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", member::text(&o));
    }
}

/// Review R15d: librdkafka quotes *part* of `sasl.oauthbearer.config` when it cannot
/// build the unsecured token from it ("non-integral 'lifeSeconds=': VALUE",
/// "Unrecognized sasl.oauthbearer.config beginning at: REST"). The option is one
/// where a `--job-secret-env` variable expands, and [`redact`] only replaces the
/// option's whole value, so a submitted job can make the member print the secret:
/// in the job's `last_error` (kafka sink: an authentication error fails the job)
/// and in the member's log (source and sink).
///
/// The fix (adapted here, as the review allowed): the option takes no secret
/// variable any more, and the member scrubs its secret variables' values from the
/// job's status and its log, however they got into a message.
#[test]
fn a_secret_variable_in_the_oauthbearer_config_is_never_shown() {
    let broker = Broker::start();
    broker.create_topic("logs", 1);
    broker.create_topic("out", 1);
    let s = Setup::new();
    let secret = format!("canary-{:x}", rand_suffix());
    let mut m = s.start(
        &[
            "--allow-kafka-brokers",
            &broker.bootstrap(),
            "--job-secret-env",
            "KAFKA_PASSWORD",
        ],
        &[("KAFKA_PASSWORD", secret.as_str())],
    );
    let token = member_token(&s.state).unwrap();
    // Fix R15d, first layer: the option no longer takes a secret variable, so the
    // submit is refused, naming the variable and never its value.
    let job_with = |name: &str, config: &str| {
        let oauth = format!(
            r#""security.protocol" = "sasl_plaintext", "sasl.mechanisms" = "OAUTHBEARER", "enable.sasl.oauthbearer.unsecure.jwt" = "true", "sasl.password" = "${{KAFKA_PASSWORD}}", "sasl.oauthbearer.config" = "{config}""#
        );
        format!(
            r#"name = "{name}"
[source]
kind = "file"
include = ["{}"]
poll_interval = "50ms"
[parse]
format = "nginx"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "kafka"
brokers = "{}"
topic = "out"
series = "hosts"
options = {{ {oauth} }}
"#,
            s.include(),
            broker.bootstrap()
        )
    };
    let (code, body) = submit(
        &m,
        &s.state,
        &job_with("v", "principal=tm lifeSeconds=${KAFKA_PASSWORD}"),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("KAFKA_PASSWORD") && body.contains("sasl.oauthbearer.config"),
        "{body}"
    );
    assert!(!body.contains(&secret), "{body}");
    // Second layer: the secret's value reaches librdkafka in a piece of an option
    // all the same (here written out in the file), and librdkafka quotes it; the
    // member scrubs the values of its --job-secret-env variables from the job's
    // status and from every line it logs.
    let (code, body) = submit(
        &m,
        &s.state,
        &job_with("o", &format!("principal=tm lifeSeconds={secret}")),
    );
    assert!((200..300).contains(&code), "{code} {body}");
    assert!(!body.contains(&secret), "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    while Instant::now() < deadline {
        let (_, status) = http(&m.api, "GET", "/jobs/o", Some(&token), "");
        seen = format!("{status}\n--- log:\n{}", m.log());
        if status.contains("\"failed\"") || seen.contains("OAUTHBEARER") {
            std::thread::sleep(Duration::from_secs(2));
            let (_, status) = http(&m.api, "GET", "/jobs/o", Some(&token), "");
            seen = format!("{status}\n--- log:\n{}", m.log());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        seen.contains("OAUTHBEARER"),
        "librdkafka never said why the token failed:\n{seen}"
    );
    m.terminate();
    assert!(
        !seen.contains(&secret),
        "the secret's value in the job's status or the member's log:\n{seen}"
    );
}

/// Review R15d: a `$` in a password written in the file (`"pa$Zq9xK"`, valid before
/// `${NAME}` expansion came to options) is now an error — fine, and the message says
/// `$$` — but its hint quotes the text after the `$`, a piece of the password:
/// ``write `${Zq9xK}` to use an environment variable``. `validate` prints it, the
/// agent logs it at start, a member returns it in the 400. The redaction rule of
/// this change is that a secret option's value is never shown, even one written in
/// the file.
#[test]
fn a_dollar_in_a_written_password_is_refused_without_quoting_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let job = d.join("job.toml");
    std::fs::write(
        &job,
        kafka_job(
            "j",
            "k:9092",
            "\"sasl.password\" = \"pa$Zq9xK\"",
            "",
            "out.jsonl",
        ),
    )
    .unwrap();
    let agent = d.join("agent.toml");
    std::fs::write(
        &agent,
        format!(
            "[agent]\nhost = \"h\"\nstate_dir = \"{}\"\nbrokers = \"k:9092\"\ntopic = \"logs\"\n\
             [agent.options]\n\"sasl.password\" = \"pa${{Zq-9xK}}\"\n\
             [source]\nkind = \"file\"\ninclude = [\"{}/*.log\"]\n",
            d.join("state").display(),
            d.display()
        ),
    )
    .unwrap();
    for file in [&job, &agent] {
        let o = tidemark().arg("validate").arg(file).output().unwrap();
        let t = member::text(&o);
        assert!(!o.status.success(), "{t}");
        assert!(t.contains("sasl.password") && t.contains("$$"), "{t}");
        assert!(
            !t.contains("Zq9xK") && !t.contains("Zq-9xK"),
            "a piece of the password in the error:\n{t}"
        );
    }
}

/// Review R15d: `kafka:9092` and `kafka.:9092` are different DNS names — the first
/// is resolved through the member's search domains (in Kubernetes:
/// `kafka.<namespace>.svc.cluster.local` first), the second is the absolute name
/// `kafka.` — but the allow-list takes them as one (it trims trailing dots). The
/// same for `kafka-1.corp` (relative) against `kafka-1.corp.` (absolute): the job
/// chooses which one librdkafka resolves.
#[test]
fn an_absolute_broker_name_is_not_the_allowed_relative_one() {
    let s = Setup::new();
    let m = s.start(&["--allow-kafka-brokers", "kafka:9092"], &[]);
    let (code, body) = submit(
        &m,
        &s.state,
        &kafka_job("dot", "kafka.:9092", "", "", &s.sink("dot")),
    );
    assert_eq!(code, 400, "kafka.:9092 accepted under kafka:9092: {body}");
}

/// Review R15d (pre-existing, found on the way): a kafka sink's options are checked
/// for its producer only, one at a time, but the sink also builds its read-back
/// consumer from them (`client_config(Role::Consumer, ..)`), which refuses the
/// consumer's fixed settings. A sink option such as `enable.partition.eof` passes
/// `validate` and the submit (201), and the job then fails when its sink opens.
#[test]
fn a_kafka_sink_option_its_read_back_consumer_refuses_is_refused_at_submit() {
    let broker = Broker::start();
    broker.create_topic("logs", 1);
    broker.create_topic("out", 1);
    let s = Setup::new();
    let m = s.start(&["--allow-kafka-brokers", &broker.bootstrap()], &[]);
    let token = member_token(&s.state).unwrap();
    let job = format!(
        r#"name = "eof"
[source]
kind = "file"
include = ["{}"]
poll_interval = "50ms"
[parse]
format = "nginx"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "kafka"
brokers = "{}"
topic = "out"
series = "hosts"
options = {{ "enable.partition.eof" = "false" }}
"#,
        s.include(),
        broker.bootstrap()
    );
    let (code, body) = submit(&m, &s.state, &job);
    if (200..300).contains(&code) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut status = String::new();
        while Instant::now() < deadline && !status.contains("\"failed\"") {
            std::thread::sleep(Duration::from_millis(200));
            status = http(&m.api, "GET", "/jobs/eof", Some(&token), "").1;
        }
        panic!("accepted ({code}), then:\n{status}");
    }
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("enable.partition.eof"), "{body}");
}
