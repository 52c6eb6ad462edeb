//! Issue 10 §1: a cluster nobody else on the machine can drive. Each test pins one
//! way in that used to be open: no token on loopback, no read roots, sinks anywhere,
//! the member's whole environment, relative paths resolved against `/`, no limit on
//! the number of jobs, and a job whose include matches nothing looking healthy.
//!
//! The requests go over raw HTTP with the token the member keeps in its state
//! folder (when there is one), so each test also ran against the binary from
//! before these fixes and failed there on its assertion.

mod member;

use member::api::{http, job_toml, member_token, submit, token_path, Setup};
use member::{cluster_exit, text, tidemark};
use std::time::{Duration, Instant};

#[test]
fn a_cluster_started_without_a_token_still_refuses_unauthenticated_requests() {
    let s = Setup::new();
    let mut m = s.start(&[], &[]);
    // Loopback, no --token-file, no TIDEMARK_API_TOKEN: still 401 without a token.
    let (code, body) = http(&m.api, "GET", "/jobs", None, "");
    assert_eq!(code, 401, "{body}");
    let toml = job_toml("a", &s.include(), &s.sink("a"), "{ value = \"h\" }");
    let (code, body) = http(&m.api, "POST", "/jobs", None, &toml);
    assert_eq!(code, 401, "{body}");
    // /healthz stays open (read-only).
    let (code, body) = http(&m.api, "GET", "/healthz", None, "");
    assert_eq!(code, 200, "{body}");

    // The member made a random token, readable by its user only, and says where.
    let path = token_path(&s.state);
    let token = member_token(&s.state).expect("no token file in the state folder");
    assert!(token.len() >= 32, "a short token: {token:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", path.display());
    assert!(m.log().contains(&path.display().to_string()), "{}", m.log());
    let (code, body) = http(&m.api, "GET", "/jobs", Some(&token), "");
    assert_eq!(code, 200, "{body}");

    // `tidemark job` finds it through --state-dir.
    let o = tidemark()
        .args(["job", "list", "--api", &m.api, "--state-dir"])
        .arg(&s.state)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // ... or TIDEMARK_STATE_DIR.
    let o = tidemark()
        .args(["job", "list", "--api", &m.api])
        .env("TIDEMARK_STATE_DIR", &s.state)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // No token anywhere: a clear error with a hint, before any request.
    let o = tidemark()
        .args(["job", "list", "--api", &m.api, "--state-dir"])
        .arg(s.d.join("not-a-state-folder"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("api-token") && text(&o).contains("hint:"),
        "{}",
        text(&o)
    );

    // A restart keeps the same token.
    assert!(m.terminate().success(), "{}", m.log());
    let m = s.start(&[], &[]);
    assert_eq!(member_token(&s.state).as_deref(), Some(token.as_str()));
    let (code, _) = http(&m.api, "GET", "/jobs", Some(&token), "");
    assert_eq!(code, 200);
}

#[test]
fn a_token_file_planted_as_a_symlink_is_not_followed() {
    let s = Setup::new();
    std::fs::create_dir_all(&s.state).unwrap();
    let elsewhere = s.d.join("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, token_path(&s.state)).unwrap();
    let (code, log) = cluster_exit(&["--allow-root", s.logs.to_str().unwrap()], &s.state);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("api-token"), "{log}");
    assert!(!elsewhere.exists(), "the member wrote through the link");
}

#[test]
fn a_cluster_without_allow_root_refuses_to_start() {
    let d = tempfile::tempdir().unwrap();
    let (code, log) = cluster_exit(&[], &d.path().join("state"));
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("--allow-root") && log.contains("hint:"),
        "{log}"
    );
}

#[test]
fn an_output_root_holding_the_state_folder_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let root = d.path().to_str().unwrap().to_string();
    let (code, log) = cluster_exit(&["--allow-root", &root, "--output-root", &root], &state);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("state folder"), "{log}");
}

#[test]
fn a_submitted_job_cannot_write_outside_the_output_roots() {
    let s = Setup::new();
    let m = s.start(&[], &[]);
    // A sink anywhere else: a shell start-up file, the member's own submitted jobs.
    let victim = s.d.join("profile");
    std::fs::write(&victim, "untouched\n").unwrap();
    let submitted = s.state.join("submitted/evil.toml");
    for (name, sink) in [
        ("evil", victim.display().to_string()),
        ("evil", submitted.display().to_string()),
        (
            "evil",
            format!("{}/output/../submitted/x.toml", s.state.display()),
        ),
    ] {
        let toml = job_toml(name, &s.include(), &sink, "{ value = \"h\" }");
        let (code, body) = submit(&m, &s.state, &toml);
        assert_eq!(code, 400, "{sink}: {body}");
        assert!(body.contains(&sink) && body.contains("output"), "{body}");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
    // Inside the default output root (STATE/output, created): accepted and written.
    let toml = job_toml("ok", &s.include(), &s.sink("ok"), "{ value = \"h\" }");
    let (code, body) = submit(&m, &s.state, &toml);
    assert_eq!(code, 201, "{body}");
}

#[test]
fn a_submitted_job_cannot_read_the_members_environment() {
    let s = Setup::new();
    let m = s.start(
        &["--job-env", "LOG_ROOT"],
        &[
            ("SECRET", "hunter2"),
            ("LOG_ROOT", s.logs.to_str().unwrap()),
        ],
    );
    let toml = job_toml(
        "leak",
        &s.include(),
        &s.sink("leak"),
        "{ value = \"${SECRET}\" }",
    );
    let (code, body) = submit(&m, &s.state, &toml);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("SECRET") && body.contains("--job-env") && !body.contains("hunter2"),
        "{body}"
    );
    // The token is in the member's environment only when given there; either way a
    // job cannot name it.
    let toml = job_toml(
        "leak",
        &s.include(),
        &s.sink("leak"),
        "{ value = \"${TIDEMARK_API_TOKEN}\" }",
    );
    let (code, body) = submit(&m, &s.state, &toml);
    assert_eq!(code, 400, "{body}");
    // An allowed variable expands.
    let toml = job_toml(
        "ok",
        "${LOG_ROOT}/*/access.log",
        &s.sink("ok"),
        "{ value = \"h\" }",
    );
    let (code, body) = submit(&m, &s.state, &toml);
    assert_eq!(code, 201, "{body}");
}

#[test]
fn a_submitted_job_with_relative_paths_is_refused_not_resolved_against_root() {
    let s = Setup::new();
    let m = s.start(&[], &[]);
    // include is on line 4, column 12; the sink path on line 14, column 8.
    let toml = job_toml(
        "rel",
        "logs/*/access.log",
        &s.sink("rel"),
        "{ value = \"h\" }",
    );
    let (code, body) = submit(&m, &s.state, &toml);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("<submitted job>:4:12") && body.contains("logs/*/access.log"),
        "{body}"
    );
    assert!(
        body.contains("hint:") && body.contains("absolute"),
        "{body}"
    );
    let toml = job_toml("rel", &s.include(), "out/x.jsonl", "{ value = \"h\" }");
    let (code, body) = submit(&m, &s.state, &toml);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("<submitted job>:14:8") && body.contains("out/x.jsonl"),
        "{body}"
    );
    let toml = job_toml("rel", &s.include(), &s.sink("rel"), "{ value = \"h\" }").replace(
        "[parse]",
        "exclude = [\"x/*\"]\narchive = [\"old/*.gz\"]\n[parse]",
    );
    let (code, body) = submit(&m, &s.state, &toml);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("x/*") && body.contains("old/*.gz"), "{body}");
}

#[test]
fn submits_past_max_jobs_are_refused_with_the_limit_and_the_flag() {
    let s = Setup::new();
    let m = s.start(&["--max-jobs", "2"], &[]);
    for name in ["a", "b"] {
        let toml = job_toml(name, &s.include(), &s.sink(name), "{ value = \"h\" }");
        let (code, body) = submit(&m, &s.state, &toml);
        assert_eq!(code, 201, "{body}");
    }
    let toml = job_toml("c", &s.include(), &s.sink("c"), "{ value = \"h\" }");
    let (code, body) = submit(&m, &s.state, &toml);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("--max-jobs") && body.contains('2'), "{body}");
}

#[test]
fn job_status_warns_when_an_include_glob_matches_nothing() {
    let s = Setup::new();
    let m = s.start(&[], &[]);
    let typo = format!("{}/*/acces.log", s.logs.display());
    let toml = job_toml("typo", &typo, &s.sink("typo"), "{ value = \"h\" }");
    let (code, body) = submit(&m, &s.state, &toml);
    assert_eq!(code, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, body) = http(
            &m.api,
            "GET",
            "/jobs/typo",
            member_token(&s.state).as_deref(),
            "",
        );
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let warnings = v["warnings"].to_string();
        if warnings.contains(&typo) && warnings.contains("matches no file") {
            break;
        }
        assert!(Instant::now() < deadline, "no warning: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A glob that matches has no warning.
    let toml = job_toml("fine", &s.include(), &s.sink("fine"), "{ value = \"h\" }");
    let (code, body) = submit(&m, &s.state, &toml);
    assert_eq!(code, 201, "{body}");
    let (_, body) = http(
        &m.api,
        "GET",
        "/jobs/fine",
        member_token(&s.state).as_deref(),
        "",
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["warnings"], serde_json::json!([]), "{body}");
}
