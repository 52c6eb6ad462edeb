//! Black-box tests of the control API server on 127.0.0.1:0 with a mock cluster.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{error_text, request, valid_job, TestServer, AUTH};
use tidemark_api::{Auth, ControlError, JobControl, ServeOptions, ServerHandle};

const NO_HEADERS: &[(&str, &str)] = &[];

fn submit(s: &TestServer, toml: &str) -> common::Answer {
    request("POST", &s.url("/jobs"), AUTH, toml.as_bytes())
}

/// What validation of a submitted job prints for `text` named `file`.
fn validate_output(text: &str, file: &str) -> String {
    tidemark_jobs::submitted(text, file, &tidemark_jobs::Env::empty())
        .expect_err("the job should be invalid")
        .to_string()
}

#[test]
fn submitted_job_is_created_listed_and_has_a_status() {
    let s = TestServer::start(common::auth());
    let toml = valid_job("web");
    let a = submit(&s, &toml);
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["name"], "web");
    assert_eq!(a.body["state"], "running");
    let submitted_at = a.body["submitted_at"].as_str().unwrap();
    assert!(
        submitted_at.parse::<jiff::Timestamp>().is_ok(),
        "{submitted_at}"
    );

    // The cluster got the TOML text as sent, to persist it.
    assert_eq!(s.mock.jobs.lock().unwrap()["web"].1, toml);

    let a = request("GET", &s.url("/jobs"), AUTH, b"");
    assert_eq!(a.status, 200);
    let names: Vec<_> = a
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].clone())
        .collect();
    assert_eq!(names, ["web"]);

    let a = request("GET", &s.url("/jobs/web"), AUTH, b"");
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["name"], "web");
    assert_eq!(a.body["state"], "running");
    assert_eq!(a.body["watermark"], "2026-11-20T10:02:03Z");
    assert_eq!(
        a.body["last_closed_window"]["start"],
        "2026-11-20T10:01:00Z"
    );
    assert_eq!(a.body["last_closed_window"]["end"], "2026-11-20T10:02:00Z");
    assert_eq!(a.body["lines_per_sec"], 1234.5);
    assert_eq!(a.body["errors"]["late"], 3);
    assert_eq!(a.body["errors"]["malformed:no_timestamp"], 2);
    assert!(a.body["last_error"].is_null());
    assert_eq!(
        a.body["warnings"],
        serde_json::json!(["include glob `/x/*.log` matches no file on member 0"])
    );
}

#[test]
fn by_default_a_submitted_job_needs_absolute_paths_and_expands_no_variable() {
    let s = TestServer::start(common::auth());
    let relative = valid_job("web").replace("/var/log/web/*/access.log", "web/*/access.log");
    let a = submit(&s, &relative);
    assert_eq!(a.status, 400, "{}", a.body);
    let diagnostics = a.body["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.starts_with(
            "<submitted job>:5:12: error: include glob `web/*/access.log` is a relative path"
        ),
        "{diagnostics}"
    );
    // PATH is set in any environment the tests run in; a job still cannot use it.
    let env = valid_job("web").replace("/var/log/web/", "${PATH}/");
    let a = submit(&s, &env);
    assert_eq!(a.status, 400, "{}", a.body);
    let diagnostics = a.body["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.contains("`PATH`") && diagnostics.contains("--job-env PATH"),
        "{diagnostics}"
    );
    assert!(s.mock.jobs.lock().unwrap().is_empty());
}

/// A member's stdout is its log: a submitted job printing there wrote its series
/// into the operator's log (and could drown it). Refused like any invalid job,
/// with the sink to use instead; so is the implicit stdout sink of a job with no
/// [[sink]].
#[test]
fn a_stdout_sink_is_refused_in_a_submitted_job() {
    let s = TestServer::start(common::auth());
    let jsonl = "kind = \"jsonl\"\npath = \"/srv/tidemark/out/web.jsonl\"\n";
    let stdout = valid_job("web").replace(jsonl, "kind = \"stdout\"\n");
    assert_ne!(stdout, valid_job("web"));
    let a = submit(&s, &stdout);
    assert_eq!(a.status, 400, "{}", a.body);
    let diagnostics = a.body["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.contains("cannot print to stdout")
            && diagnostics.contains("hint: replace it with a jsonl sink"),
        "{diagnostics}"
    );
    let no_sink = valid_job("web")
        .split("[[sink]]")
        .next()
        .unwrap()
        .to_string();
    let a = submit(&s, &no_sink);
    assert_eq!(a.status, 400, "{}", a.body);
    let diagnostics = a.body["diagnostics"].as_str().unwrap();
    assert!(
        diagnostics.contains("cannot print to stdout") && diagnostics.contains("add a [[sink]]"),
        "{diagnostics}"
    );
    assert!(s.mock.jobs.lock().unwrap().is_empty());
}

#[test]
fn toml_syntax_error_gets_400_with_validate_diagnostics() {
    let s = TestServer::start(common::auth());
    let text = "name = \"web\"\n[source\nkind = \"file\"\n";
    let a = submit(&s, text);
    assert_eq!(a.status, 400, "{}", a.body);
    let error = error_text(&a);
    assert!(error.contains("the job is invalid"), "{error}");
    assert!(error.contains("tidemark validate"), "{error}");
    let diagnostics = a.body["diagnostics"].as_str().unwrap();
    assert_eq!(diagnostics, validate_output(text, "<submitted job>"));
    assert!(
        diagnostics.starts_with("<submitted job>:2:"),
        "{diagnostics}"
    );
    assert!(s.mock.jobs.lock().unwrap().is_empty());
}

#[test]
fn invalid_job_gets_400_with_every_problem_and_its_hint() {
    let s = TestServer::start(common::auth());
    // A bad name and an unknown metric kind: two problems, each with a hint.
    let text = valid_job("9lives").replace("kind = \"counter\"", "kind = \"countr\"");
    let a = submit(&s, &text);
    assert_eq!(a.status, 400, "{}", a.body);
    let diagnostics = a.body["diagnostics"].as_str().unwrap();
    assert_eq!(diagnostics, validate_output(&text, "<submitted job>"));
    assert!(
        diagnostics.contains("<submitted job>:1:8: error: job name `9lives` is not valid"),
        "{diagnostics}"
    );
    assert!(diagnostics.contains("\n  hint: "), "{diagnostics}");
    assert!(error_text(&a).contains("problems"), "{}", a.body);

    // `?file=` names the file, so the text equals `tidemark validate jobs/web.toml`.
    let url = s.url("/jobs?file=jobs%2Fweb.toml");
    let a = request("POST", &url, AUTH, text.as_bytes());
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body["diagnostics"].as_str().unwrap(),
        validate_output(&text, "jobs/web.toml")
    );
}

#[test]
fn empty_and_non_utf8_bodies_get_400() {
    let s = TestServer::start(common::auth());
    let a = submit(&s, "  \n");
    assert_eq!(a.status, 400);
    assert!(error_text(&a).contains("body is empty"), "{}", a.body);

    let a = request("POST", &s.url("/jobs"), AUTH, b"name = \"\xff\"");
    assert_eq!(a.status, 400);
    assert!(error_text(&a).contains("UTF-8"), "{}", a.body);
}

#[test]
fn duplicate_name_gets_409() {
    let s = TestServer::start(common::auth());
    assert_eq!(submit(&s, &valid_job("web")).status, 201);
    let a = submit(&s, &valid_job("web"));
    assert_eq!(a.status, 409, "{}", a.body);
    let error = error_text(&a);
    assert!(error.contains("`web` is already running"), "{error}");
    assert!(error.contains("tidemark job stop web"), "{error}");
}

#[test]
fn unknown_job_status_and_stop_get_404() {
    let s = TestServer::start(common::auth());
    for method in ["GET", "DELETE"] {
        let a = request(method, &s.url("/jobs/nope"), AUTH, b"");
        assert_eq!(a.status, 404, "{method}: {}", a.body);
        let error = error_text(&a);
        assert!(error.contains("no job named `nope`"), "{error}");
        assert!(error.contains("tidemark job list"), "{error}");
    }
}

#[test]
fn stopped_job_is_gone_from_list_and_status() {
    let s = TestServer::start(common::auth());
    assert_eq!(submit(&s, &valid_job("web")).status, 201);
    assert_eq!(submit(&s, &valid_job("api")).status, 201);
    let a = request("DELETE", &s.url("/jobs/web"), AUTH, b"");
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["name"], "web");
    assert_eq!(a.body["stopped"], true);

    let a = request("GET", &s.url("/jobs"), AUTH, b"");
    let names: Vec<_> = a
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].clone())
        .collect();
    assert_eq!(names, ["api"]);
    assert_eq!(request("GET", &s.url("/jobs/web"), AUTH, b"").status, 404);
    // Stopping twice: the second finds nothing.
    assert_eq!(
        request("DELETE", &s.url("/jobs/web"), AUTH, b"").status,
        404
    );
}

#[test]
fn control_errors_map_to_statuses_with_their_message() {
    let s = TestServer::start(common::auth());
    let cases = [
        (
            ControlError::NotAllowed("`/etc/*.log` is outside the allowed roots (/var/log)".into()),
            403,
            "outside the allowed roots",
        ),
        (
            ControlError::JobLimit { limit: 100 },
            409,
            "--max-jobs (now 100)",
        ),
        (
            ControlError::OverLimit("only 0 of this member's cap of 40 are left".into()),
            400,
            "cap of 40",
        ),
        (
            ControlError::Unavailable("member 1 is not connected".into()),
            503,
            "GET /healthz",
        ),
        (
            ControlError::Internal("cannot write the state dir".into()),
            500,
            "cluster's log",
        ),
    ];
    for (e, status, needle) in cases {
        *s.mock.submit_error.lock().unwrap() = Some(e);
        let a = submit(&s, &valid_job("web"));
        assert_eq!(a.status, status, "{}", a.body);
        assert!(error_text(&a).contains(needle), "{}", a.body);
    }
}

#[test]
fn healthz_answers_without_token_and_503_when_unhealthy() {
    let s = TestServer::start(Auth::bearer("s3cret").unwrap());
    let a = request("GET", &s.url("/healthz"), NO_HEADERS, b"");
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["ok"], true);
    assert_eq!(a.body["members"], 2);

    *s.mock.healthy.lock().unwrap() = false;
    let a = request("GET", &s.url("/healthz"), NO_HEADERS, b"");
    assert_eq!(a.status, 503);
    assert_eq!(a.body["ok"], false);
    assert_eq!(a.body["detail"], "member 1 is not connected");
}

#[test]
fn bearer_token_is_required_on_every_other_route() {
    let s = TestServer::start(Auth::bearer("s3cret").unwrap());
    let routes = [
        ("POST", "/jobs"),
        ("GET", "/jobs"),
        ("GET", "/jobs/web"),
        ("DELETE", "/jobs/web"),
        ("GET", "/metrics"),
        ("GET", "/nowhere"),
    ];
    let job = valid_job("web");
    for (method, path) in routes {
        for headers in [
            &[][..],
            &[("authorization", "Bearer wrong")][..],
            &[("authorization", "Bearer s3cre")][..],
            &[("authorization", "Basic s3cret")][..],
        ] {
            let a = request(method, &s.url(path), headers, job.as_bytes());
            assert_eq!(a.status, 401, "{method} {path} {headers:?}: {}", a.body);
            assert_eq!(a.www_authenticate.as_deref(), Some("Bearer"));
            let error = error_text(&a);
            assert!(error.contains("Authorization: Bearer <token>"), "{error}");
            assert!(error.contains("TIDEMARK_API_TOKEN"), "{error}");
        }
    }
    assert!(s.mock.jobs.lock().unwrap().is_empty());

    let good = [("authorization", "Bearer s3cret")];
    assert_eq!(
        request("POST", &s.url("/jobs"), &good, job.as_bytes()).status,
        201
    );
    assert_eq!(request("GET", &s.url("/jobs"), &good, b"").status, 200);
    assert_eq!(request("GET", &s.url("/jobs/web"), &good, b"").status, 200);
    assert_eq!(
        request("DELETE", &s.url("/jobs/web"), &good, b"").status,
        200
    );
}

#[test]
fn body_over_one_mib_gets_413() {
    let s = TestServer::start(common::auth());
    let mut text = valid_job("web");
    text.push_str(&format!("# {}\n", "x".repeat(1024 * 1024)));
    let a = submit(&s, &text);
    assert_eq!(a.status, 413, "{}", a.body);
    let error = error_text(&a);
    assert!(error.contains("larger than 1 MiB"), "{error}");
    assert!(s.mock.jobs.lock().unwrap().is_empty());
}

#[test]
fn unknown_route_is_404_and_wrong_method_405_both_json() {
    let s = TestServer::start(common::auth());
    let a = request("GET", &s.url("/nowhere"), AUTH, b"");
    assert_eq!(a.status, 404);
    let error = error_text(&a);
    assert!(error.contains("no endpoint `GET /nowhere`"), "{error}");
    assert!(error.contains("POST /jobs"), "{error}");

    for (method, path) in [
        ("PUT", "/jobs"),
        ("POST", "/jobs/web"),
        ("DELETE", "/healthz"),
    ] {
        let a = request(method, &s.url(path), AUTH, b"");
        assert_eq!(a.status, 405, "{method} {path}: {}", a.body);
        let error = error_text(&a);
        assert!(
            error.contains(&format!("`{method}` is not allowed on `{path}`")),
            "{error}"
        );
    }
}

#[test]
fn shutdown_waits_for_the_request_in_flight() {
    let mut s = TestServer::start(common::auth());
    let (entered, release) = s.mock.arm_slow();
    let url = s.url("/jobs/slow");
    let in_flight = std::thread::spawn(move || request("GET", &url, AUTH, b""));
    entered
        .recv_timeout(Duration::from_secs(10))
        .expect("the request should reach the cluster");

    s.signal_shutdown();
    // No new connections once shutdown has begun: wait for the listener to close (an
    // event, however slow the machine) rather than for a fixed 200 ms.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(s.addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting connections 60 s after the shutdown signal"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The listener is closed, yet serve waits: the request is still held.
    assert!(
        !s.finished(),
        "serve returned while a request was in flight"
    );

    release.send(()).unwrap();
    let a = in_flight.join().unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["name"], "slow");
    s.join().expect("serve should return Ok");
}

#[test]
fn server_handle_serves_on_its_own_thread_and_shuts_down() {
    let mock = common::Mock::new();
    let control: Arc<dyn JobControl> = mock.clone();
    let options = ServeOptions::new(Auth::bearer("t").unwrap());
    let handle = ServerHandle::start("127.0.0.1:0".parse().unwrap(), control, options).unwrap();
    let addr = handle.local_addr();
    assert_ne!(addr.port(), 0);
    let url = format!("http://{addr}/jobs");
    let a = request(
        "POST",
        &url,
        &[("authorization", "Bearer t")],
        valid_job("web").as_bytes(),
    );
    assert_eq!(a.status, 201, "{}", a.body);
    handle.shutdown().unwrap();
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn a_custom_validator_decides_and_its_diagnostics_reach_the_user() {
    let mock = common::Mock::new();
    let control: Arc<dyn JobControl> = mock.clone();
    // E.g. a cluster's allowed-roots check, reported like any validation problem.
    let validate: tidemark_api::Validator = Arc::new(|text, file| {
        let job = tidemark_jobs::submitted(text, file, &tidemark_jobs::Env::empty())?;
        Err(tidemark_jobs::Diagnostics(vec![
            tidemark_jobs::Diagnostic {
                file: file.to_string(),
                line: 6,
                column: 11,
                message: format!("job `{}` reads outside the allowed roots", job.name),
                hint: Some("allowed: /srv/logs".to_string()),
            },
        ]))
    });
    let options = ServeOptions {
        validate,
        ..ServeOptions::new(common::auth())
    };
    let handle = ServerHandle::start("127.0.0.1:0".parse().unwrap(), control, options).unwrap();
    let url = format!("http://{}/jobs?file=web.toml", handle.local_addr());
    let a = request("POST", &url, AUTH, valid_job("web").as_bytes());
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(
        a.body["diagnostics"],
        "web.toml:6:11: error: job `web` reads outside the allowed roots\n  hint: allowed: /srv/logs"
    );
    assert!(mock.jobs.lock().unwrap().is_empty());
}

#[test]
fn metrics_with_the_token_are_the_clusters_text() {
    let s = TestServer::start(Auth::bearer("s3cret").unwrap());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .get(s.url("/metrics"))
        .header("authorization", "Bearer s3cret")
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    // What JobControl::metrics rendered, for the Accept header it was handed.
    assert_eq!(
        r.body_mut().read_to_string().unwrap(),
        "mock_scrape{accept=\"application/openmetrics-text; version=1.0.0\"} 1\n"
    );
}

/// The scrape-only token opens `GET /metrics` and nothing else; the admin
/// token still opens it too.
#[test]
fn the_metrics_token_opens_get_metrics_only() {
    let options = ServeOptions {
        metrics_auth: Some(Auth::bearer("scrape-only").unwrap()),
        ..ServeOptions::new(Auth::bearer("s3cret").unwrap())
    };
    let s = TestServer::start_with(options);
    let scraper = [("authorization", "Bearer scrape-only")];
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    for token in ["Bearer scrape-only", "Bearer s3cret"] {
        let r = agent
            .get(s.url("/metrics"))
            .header("authorization", token)
            .call()
            .unwrap();
        assert_eq!(r.status(), 200, "{token}");
    }
    let job = valid_job("web");
    for (method, path) in [
        ("POST", "/jobs"),
        ("GET", "/jobs"),
        ("GET", "/jobs/web"),
        ("DELETE", "/jobs/web"),
        ("POST", "/metrics"),
        ("GET", "/metrics/"),
        ("GET", "/nowhere"),
    ] {
        let a = request(method, &s.url(path), &scraper, job.as_bytes());
        assert_eq!(a.status, 401, "{method} {path}: {}", a.body);
    }
    assert!(s.mock.jobs.lock().unwrap().is_empty());
}
