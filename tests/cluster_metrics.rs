//! The cluster serves `GET /metrics` on its API address, behind the API token
//! (its labels name the jobs' files), with every member's counters (issue 12 §3);
//! a real Prometheus scrapes it with deploy/prometheus.yml's token file setup.

mod member;
mod stack;
mod two_members;

use member::api::{http, job_toml, member_token, submit, Setup};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(120);

fn lines_read(body: &str, job: &str) -> Option<f64> {
    let prefix = format!("tidemark_lines_read_total{{tidemark_job=\"{job}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

#[test]
fn the_cluster_serves_metrics_with_the_token_only() {
    let s = Setup::new();
    let m = s.start(&[], &[]);
    let token = member_token(&s.state).expect("the member's token");
    let (code, body) = http(&m.api, "GET", "/metrics", None, "");
    assert_eq!(code, 401, "{body}");
    let (code, body) = http(&m.api, "GET", "/metrics", Some("wrong"), "");
    assert_eq!(code, 401, "{body}");
    let toml = job_toml("web", &s.include(), &s.sink("web"), "{ value = \"h\" }");
    let (code, body) = submit(&m, &s.state, &toml);
    assert_eq!(code, 201, "{body}");
    // Setup's log has 30 lines (one every 2 s for a minute).
    let deadline = Instant::now() + PATIENCE;
    let body = loop {
        let (code, body) = http(&m.api, "GET", "/metrics", Some(&token), "");
        assert_eq!(code, 200, "{body}");
        // The group's own figures follow within about a second.
        let group = format!("group=\"{}/web-1/access.log\"", s.logs.display());
        let group_lines = body
            .lines()
            .filter(|l| l.starts_with("tidemark_group_lines_read_total{") && l.contains(&group))
            .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
        if lines_read(&body, "web") == Some(30.0) && group_lines == Some(30.0) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "never 30 lines read:\n{body}\n{}",
            m.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut promtool = Command::new(stack::promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "{said}\n{body}"
    );
    let group = format!("group=\"{}/web-1/access.log\"", s.logs.display());
    assert!(
        body.lines()
            .any(|l| l.starts_with("tidemark_group_lines_read_total{") && l.contains(&group)),
        "{body}"
    );
}

#[test]
fn prometheus_scrapes_the_cluster_with_the_example_config() {
    let s = Setup::new();
    let m = s.start(&[], &[]);
    let toml = job_toml("web", &s.include(), &s.sink("web"), "{ value = \"h\" }");
    let (code, body) = submit(&m, &s.state, &toml);
    assert_eq!(code, 201, "{body}");
    // deploy/prometheus.yml, with the member's token file and API address, and
    // a scrape every second.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus.yml");
    let config = std::fs::read_to_string(example)
        .unwrap()
        .replace(
            "/etc/prometheus/tidemark-api-token",
            member::api::token_path(&s.state).to_str().unwrap(),
        )
        .replace("127.0.0.1:7070", &m.api)
        .replace("scrape_interval: 15s", "scrape_interval: 1s");
    let prom = stack::prometheus(&config, None, &[]);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = jiff::Timestamp::now().as_second();
        let got = stack::query(
            &prom,
            "tidemark_lines_read_total{job=\"tidemark-cluster\",tidemark_job=\"web\"}",
            now,
        );
        if got.first().map(|(_, v)| v.as_str()) == Some("30") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never saw 30 lines: {got:?}\n{}",
            prom.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn a_two_process_cluster_s_metrics_count_both_members_lines() {
    use two_members::{append, job, start, wait_until, TOKEN};
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    std::fs::write(d.join("token"), TOKEN).unwrap();
    append(d, member::T0, 300); // 150 lines on each machine
    let b = job(d, "b", "1s");
    let c = start(d, "1");
    let o = c.job(&["submit", b.submitted.to_str().unwrap()]);
    assert!(o.status.success(), "{}", member::text(&o));
    let scrape = || {
        let (code, body) = two_members::http_get(&c.zero.api, "/metrics", Some(TOKEN));
        assert_eq!(code, 200, "{body}");
        body
    };
    // Process 0 reads only its own machine's group: the group series are its.
    let group = format!("group=\"{}/machine-0/web-1/access.log\"", d.display());
    wait_until(&c, "/metrics never counted both members' lines", || {
        let body = scrape();
        lines_read(&body, "b") == Some(300.0) && body.contains(&group)
    });
    let body = scrape();
    assert!(!body.contains("machine-1/"), "{body}");
}
