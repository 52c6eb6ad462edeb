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
    // A scrape-only token: GET /metrics and nothing else.
    let scrape_token = s.d.join("metrics-token");
    std::fs::write(&scrape_token, "scrape-only-token\n").unwrap();
    let m = s.start(
        &["--metrics-token-file", scrape_token.to_str().unwrap()],
        &[],
    );
    let only = Some("scrape-only-token");
    assert_eq!(http(&m.api, "GET", "/metrics", only, "").0, 200);
    for (method, path) in [("POST", "/jobs"), ("GET", "/jobs"), ("DELETE", "/jobs/web")] {
        let (code, body) = http(&m.api, method, path, only, "");
        assert_eq!(code, 401, "{method} {path}: {body}");
    }
    let admin = member_token(&s.state).expect("the member's token");
    assert_eq!(http(&m.api, "GET", "/metrics", Some(&admin), "").0, 200);
    let toml = job_toml("web", &s.include(), &s.sink("web"), "{ value = \"h\" }");
    let (code, body) = submit(&m, &s.state, &toml);
    assert_eq!(code, 201, "{body}");
    // deploy/prometheus.yml, with the scrape-only token file and the API
    // address, and a scrape every second.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus.yml");
    let config = std::fs::read_to_string(example)
        .unwrap()
        .replace(
            "/etc/prometheus/tidemark-metrics-token",
            scrape_token.to_str().unwrap(),
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
    // Each member reads its own machine's group; both are shown, each with
    // its member's index (the same path may be a group on every machine).
    let group = |m: u32| {
        format!(
            "group=\"{}/machine-{m}/web-{}/access.log\",member=\"{m}\"",
            d.display(),
            m + 1
        )
    };
    wait_until(&c, "/metrics never counted both members' lines", || {
        let body = scrape();
        lines_read(&body, "b") == Some(300.0)
            && body.contains(&group(0))
            && body.contains(&group(1))
    });
    // A rotation on member 1's machine only: process 0's /metrics counts it
    // (before: only process 0's own rotations were shown).
    let web2 = d.join("machine-1/web-2");
    std::fs::rename(web2.join("access.log"), web2.join("access.log.1")).unwrap();
    append(d, member::T0 + 300, 20); // 10 more lines on each machine
    let rotations = |body: &str| {
        let prefix = "tidemark_rotations_total{tidemark_job=\"b\"} ";
        body.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.parse::<f64>().ok())
    };
    wait_until(&c, "/metrics never counted member 1's rotation", || {
        let body = scrape();
        rotations(&body) == Some(1.0) && lines_read(&body, "b") == Some(320.0)
    });
    let body = scrape();
    let line_of = |m: u32| {
        body.lines()
            .find(|l| l.starts_with("tidemark_group_lines_read_total{") && l.contains(&group(m)))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    wait_until(&c, "member 1's group never showed its 160 lines", || {
        let body = scrape();
        body.lines().any(|l| {
            l.starts_with("tidemark_group_lines_read_total{")
                && l.contains(&group(1))
                && l.ends_with(" 160")
        })
    });
    assert!(line_of(0).is_some(), "{body}");
}
