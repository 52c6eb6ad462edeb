//! A job submitted to a cluster pages through its alertmanager sink like a
//! `run` does (the same opener): its token file, inside the member's read
//! roots, is read and sent; its alert shows in a real Alertmanager.

mod member;
mod stack;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use member::api::{submit, Setup};
use serde_json::Value;

/// 2026-11-20T10:00:00Z.
const BASE: i64 = 1_795_168_800;

#[test]
fn a_submitted_job_pages_alertmanager_with_its_token() {
    let am = stack::alertmanager("route:\n  receiver: none\nreceivers:\n  - name: none\n");
    let s = Setup::new();
    // Five minutes of 503s; the alert fires after two and is still firing.
    let api = s.logs.join("api");
    std::fs::create_dir_all(&api).unwrap();
    let mut text = String::new();
    for m in 0..5 {
        for i in 0..12 {
            let t = jiff::Timestamp::from_second(BASE + m * 60 + i * 5).unwrap();
            let status = if i < 8 { 503 } else { 200 };
            writeln!(text, r#"{{"time":"{t}","status":"{status}"}}"#).unwrap();
        }
    }
    std::fs::write(api.join("app.log"), text).unwrap();
    let token = s.logs.join("am-token");
    std::fs::write(&token, "cluster-t0ken\n").unwrap();
    let toml = format!(
        r#"name = "paging"
[source]
kind = "file"
include = ["{api}/*.log"]
host = {{ value = "api-1" }}
poll_interval = "50ms"
[parse]
format = "json"
[window]
idle_timeout = "1h"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status"]
[[rule]]
record = "status:reqs:sum1m"
expr = "sum by (status) (reqs)"
[[alert]]
name = "HighErrorRate"
expr = 'status:reqs:sum1m{{status="503"}} > 5'
for = "2m"
[[sink]]
kind = "alertmanager"
url = "{url}"
bearer_token_file = "{token}"
"#,
        api = api.display(),
        url = am.url(),
        token = token.display(),
    );
    let m = s.start(&[], &[]);
    let (code, body) = submit(&m, &s.state, &toml);
    assert_eq!(code, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let list = loop {
        let (status, body) = am.get("/api/v2/alerts");
        assert_eq!(status, 200, "{body}");
        let list: Vec<Value> = serde_json::from_str(&body).unwrap();
        if !list.is_empty() {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "no alert reached Alertmanager:\n{}",
            std::fs::read_to_string(&m.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(list[0]["labels"]["alertname"], "HighErrorRate");
    assert_eq!(list[0]["labels"]["status"], "503");
    assert_eq!(list[0]["startsAt"], "2026-11-20T10:02:00.000Z");
    let url = list[0]["generatorURL"].as_str().unwrap();
    assert!(url.ends_with("/jobs/paging"), "{url}");
    let log = std::fs::read_to_string(&m.log).unwrap_or_default();
    assert!(!log.contains("cluster-t0ken"), "{log}");
}
