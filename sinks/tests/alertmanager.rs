//! The alertmanager sink against a real Alertmanager (tests/stack): what it
//! sends is taken, shows in `GET /api/v2/alerts` as sent, and a resolution
//! takes the alert out of the active list long before its `endsAt` would have.

#[path = "../../tests/stack/mod.rs"]
mod stack;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tidemark_engine::alert_event::{AlertChange, AlertInstance, AlertState, AlertUpdate};
use tidemark_engine::stats::sink::SinkState;
use tidemark_engine::Labels;
use tidemark_sinks::alertmanager::{
    default_generator_url, AlertmanagerConfig, AlertmanagerSink, Credentials,
};
use tidemark_sinks::Sink;

const AM_CONFIG: &str = "route:\n  receiver: none\nreceivers:\n  - name: none\n";

fn config(url: String, generator_url: String) -> AlertmanagerConfig {
    AlertmanagerConfig {
        url,
        resend_interval: Duration::from_secs(60),
        eval_interval: Duration::from_secs(60),
        timeout: Duration::from_secs(10),
        generator_url,
        auth: None,
    }
}

fn instance(value: f64, since_ms: i64) -> AlertInstance {
    AlertInstance {
        alert: Arc::from("HighErrorRate"),
        labels: Labels::from_pairs(&[("severity", "page"), ("status", "503")]),
        annotations: vec![
            ("runbook".into(), "https://runbooks.example/5xx".into()),
            ("summary".into(), format!("503 errors at {value}/min")),
        ],
        value,
        firing_since_ms: since_ms,
    }
}

fn update(end_ms: i64, state: AlertState, i: AlertInstance) -> AlertUpdate {
    AlertUpdate {
        start_ms: end_ms - 60_000,
        end_ms,
        firing: if state == AlertState::Firing {
            vec![i.clone()]
        } else {
            vec![]
        },
        changes: vec![AlertChange { instance: i, state }],
    }
}

/// `GET /api/v2/alerts` (the default filters: active, silenced, inhibited,
/// unprocessed — every alert that is not resolved).
fn alerts(am: &stack::Component) -> Vec<Value> {
    let (status, body) = am.get("/api/v2/alerts");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Polls until `done` holds for the alert list (generous: a loaded machine).
fn wait_until(am: &stack::Component, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = alerts(am);
        if done(&list) {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: Alertmanager lists {list:?}\n{}",
            am.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn minute(ms: i64) -> i64 {
    ms - ms.rem_euclid(60_000)
}

#[test]
fn a_fired_alert_shows_in_alertmanager_as_sent_and_a_resolution_takes_it_out() {
    let am = stack::alertmanager(AM_CONFIG);
    let now = jiff::Timestamp::now().as_millisecond();
    let since = minute(now) - 10 * 60_000;
    let mut sink = AlertmanagerSink::start(config(
        am.url(),
        "http://tidemark.example/jobs/nginx".into(),
    ))
    .unwrap();
    sink.write_alerts(&update(since, AlertState::Firing, instance(120.0, since)))
        .unwrap();
    let list = wait_until(&am, "the fired alert", |l| !l.is_empty());
    assert_eq!(list.len(), 1, "{list:?}");
    let a = &list[0];
    assert_eq!(
        a["labels"],
        serde_json::json!({"alertname": "HighErrorRate", "severity": "page", "status": "503"})
    );
    assert_eq!(
        a["annotations"],
        serde_json::json!({"runbook": "https://runbooks.example/5xx", "summary": "503 errors at 120/min"})
    );
    assert_eq!(a["generatorURL"], "http://tidemark.example/jobs/nginx");
    assert_eq!(a["status"]["state"], "active");
    let at = |k: &str| -> i64 {
        a[k].as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond()
    };
    assert_eq!(at("startsAt"), since);
    // Valid four resend intervals past the sending time: well after now.
    let ends = at("endsAt");
    assert!(
        ends >= now + 4 * 60_000 && ends <= jiff::Timestamp::now().as_millisecond() + 4 * 60_000,
        "endsAt {ends}, now {now}"
    );

    // Resolved with the end of its last window: no longer listed, minutes
    // before the endsAt it had would have let it expire.
    let end = minute(now);
    sink.write_alerts(&update(end, AlertState::Resolved, instance(2.0, since)))
        .unwrap();
    wait_until(&am, "the resolution", |l| l.is_empty());
    assert!(jiff::Timestamp::now().as_millisecond() < ends);
    sink.finish().unwrap();
    let m = sink.meter().unwrap().snapshot();
    assert_eq!((m.batches, m.failures, m.state), (2, 0, SinkState::Ok));
}

#[test]
fn the_default_generator_url_and_basic_auth_are_taken_by_alertmanager() {
    // Alertmanager refuses (422) a generatorURL that is not a URI: the
    // default must be one. It ignores an Authorization header it does not need.
    let am = stack::alertmanager(AM_CONFIG);
    let now = minute(jiff::Timestamp::now().as_millisecond());
    let mut cfg = config(am.url() + "/", default_generator_url("nginx"));
    cfg.auth = Some(Credentials::Basic {
        username: "u".into(),
        password: "p".into(),
    });
    let mut sink = AlertmanagerSink::start(cfg).unwrap();
    sink.write_alerts(&update(now, AlertState::Firing, instance(1.0, now)))
        .unwrap();
    let list = wait_until(&am, "the fired alert", |l| !l.is_empty());
    let url = list[0]["generatorURL"].as_str().unwrap();
    assert!(
        url.starts_with("tidemark://") && url.ends_with("/jobs/nginx"),
        "{url}"
    );
    sink.finish().unwrap();
}

#[test]
fn a_wrong_url_fails_the_sink_with_the_status_and_a_hint() {
    let am = stack::alertmanager(AM_CONFIG);
    let now = minute(jiff::Timestamp::now().as_millisecond());
    let mut sink = AlertmanagerSink::start(config(
        format!("{}/not-here", am.url()),
        "http://tidemark.example/jobs/nginx".into(),
    ))
    .unwrap();
    sink.write_alerts(&update(now, AlertState::Firing, instance(1.0, now)))
        .unwrap();
    let err = sink.finish().unwrap_err().to_string();
    assert!(err.contains("HTTP 404"), "{err}");
    assert!(err.contains("/not-here/api/v2/alerts"), "{err}");
    assert!(err.contains("hint: check the sink's url"), "{err}");
    assert_eq!(sink.meter().unwrap().snapshot().state, SinkState::Failed);
    assert!(alerts(&am).is_empty());
}

/// A job with one alertmanager sink, reading from `dir`, its token file `token`.
fn job_reading(dir: &std::path::Path, token: &std::path::Path) -> tidemark_jobs::Job {
    let text = format!(
        r#"name = "j"
[source]
kind = "file"
include = ["{dir}/*.log"]
[parse]
format = "nginx"
[[metric]]
name = "reqs"
kind = "counter"
[[alert]]
name = "Many"
expr = "reqs > 10"
[[sink]]
kind = "alertmanager"
url = "http://127.0.0.1:9"
bearer_token_file = "{token}"
"#,
        dir = dir.display(),
        token = token.display()
    );
    tidemark_jobs::from_str(&text, "j.toml", dir).unwrap()
}

#[test]
fn a_secret_is_read_inside_the_read_roots_only_and_never_from_a_denied_path() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("logs");
    std::fs::create_dir_all(&root).unwrap();
    let outside = d.path().join("elsewhere-token");
    std::fs::write(&outside, "outside\n").unwrap();
    let inside = root.join("token");
    std::fs::write(&inside, "inside\r\n").unwrap();
    let link = root.join("link-token");
    std::os::unix::fs::symlink(&outside, &link).unwrap();

    // Outside a cluster: any path; one trailing newline dropped.
    let job = job_reading(&root, &outside);
    assert_eq!(
        tidemark_sinks::read_secret(&job, "bearer_token_file", &outside).unwrap(),
        "outside"
    );
    // A cluster's job: inside its read roots, by real path.
    let mut job = job_reading(&root, &inside);
    job.source.allowed_roots = vec![root.clone()];
    assert_eq!(
        tidemark_sinks::read_secret(&job, "bearer_token_file", &inside).unwrap(),
        "inside"
    );
    for refused in [&outside, &link] {
        let err = tidemark_sinks::read_secret(&job, "bearer_token_file", refused).unwrap_err();
        assert!(err.is_usage(), "{err}");
        assert!(
            err.to_string()
                .contains("cannot read the sink's bearer_token_file"),
            "{err}"
        );
        assert!(!err.to_string().contains("outside\n"), "{err}");
    }
    // A denied path (a member's API token file) even inside the roots.
    job.source.denied_reads = vec![inside.clone()];
    assert!(tidemark_sinks::read_secret(&job, "bearer_token_file", &inside).is_err());
    // Two lines would break the header they go into.
    std::fs::write(root.join("two"), "a\nb\n").unwrap();
    let err =
        tidemark_sinks::read_secret(&job, "bearer_token_file", &root.join("two")).unwrap_err();
    assert!(err.to_string().contains("more than one line"), "{err}");
    // Empty is no secret.
    std::fs::write(root.join("empty"), "\n").unwrap();
    job.source.denied_reads.clear();
    let err =
        tidemark_sinks::read_secret(&job, "bearer_token_file", &root.join("empty")).unwrap_err();
    assert!(err.to_string().contains("it is empty"), "{err}");
    // A byte order mark is dropped; a token byte a header cannot carry fails
    // here, not on every send (where it was retried forever).
    std::fs::write(root.join("bom"), "\u{feff}t0k\n").unwrap();
    assert_eq!(
        tidemark_sinks::read_secret(&job, "bearer_token_file", &root.join("bom")).unwrap(),
        "t0k"
    );
    std::fs::write(root.join("latin"), "t\u{f6}k\n").unwrap();
    let err =
        tidemark_sinks::read_secret(&job, "bearer_token_file", &root.join("latin")).unwrap_err();
    assert!(err.to_string().contains("not a visible ASCII"), "{err}");
    assert!(err.is_usage(), "{err}");
    // A password is base64-encoded: any text will do.
    assert_eq!(
        tidemark_sinks::read_secret(&job, "basic_auth password_file", &root.join("latin")).unwrap(),
        "t\u{f6}k"
    );
}

#[test]
fn resends_keep_a_firing_alert_alive_in_alertmanager() {
    // Resent every second, each send valid 4 × 10 s: Alertmanager's endsAt for
    // the alert moves forward with the resends (the alert cannot expire meanwhile).
    let am = stack::alertmanager(AM_CONFIG);
    let now = minute(jiff::Timestamp::now().as_millisecond());
    let mut cfg = config(am.url(), "http://tidemark.example/jobs/nginx".into());
    cfg.resend_interval = Duration::from_secs(1);
    cfg.eval_interval = Duration::from_secs(10);
    let mut sink = AlertmanagerSink::start(cfg).unwrap();
    sink.write_alerts(&update(now, AlertState::Firing, instance(1.0, now)))
        .unwrap();
    let ends = |l: &[Value]| -> Option<i64> {
        let s = l.first()?["endsAt"].as_str()?;
        Some(s.parse::<jiff::Timestamp>().ok()?.as_millisecond())
    };
    let first = ends(&wait_until(&am, "the fired alert", |l| !l.is_empty())).unwrap();
    let later = wait_until(&am, "a resend moving endsAt", |l| {
        ends(l).is_some_and(|e| e >= first + 2_000)
    });
    assert_eq!(later.len(), 1);
    assert_eq!(
        later[0]["startsAt"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond(),
        now
    );
    let m = sink.meter().unwrap().snapshot();
    assert!(m.batches >= 3, "{m:?}");
    // No change in what fires since the first send: resends only.
    sink.finish().unwrap();
}

#[test]
fn an_alert_stamped_ahead_of_the_clock_is_taken() {
    // A host whose clock is ahead (lines up to max_clock_skew, 10m, ahead are
    // counted) fires an alert that starts after the sending time + 4 × 1m:
    // its endsAt must still come after its startsAt, or Alertmanager answers 400.
    let am = stack::alertmanager(AM_CONFIG);
    let ahead = minute(jiff::Timestamp::now().as_millisecond()) + 8 * 60_000;
    let mut sink = AlertmanagerSink::start(config(
        am.url(),
        "http://tidemark.example/jobs/nginx".into(),
    ))
    .unwrap();
    sink.write_alerts(&update(ahead, AlertState::Firing, instance(1.0, ahead)))
        .unwrap();
    sink.finish().unwrap();
    let list = wait_until(&am, "the alert from the future", |l| !l.is_empty());
    assert_eq!(list.len(), 1);
}
