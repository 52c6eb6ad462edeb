//! Issue 10 §1 follow-up: what a hostile review of the cluster's API found after
//! the token, roots and limits were in. Each test pins one hole: a fake server on
//! the API port receiving the token, `/healthz` naming failed jobs, a failure that
//! only `job status` showed, refused files hidden among zero counts, and a doubled
//! error prefix. (The connection limits are tested on the server itself, in
//! api/tests/connections.rs; the stdout sink in api/tests/server.rs.)
//!
//! The helpers (raw HTTP with the member's token) are shared with cluster_security.rs
//! in member/api.rs.

mod member;

use member::api::{http, job_toml, member_token, submit, token_path, Setup};
use member::{append_host, text, tidemark, Member, T0};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Submits `name` with a sink path that is a folder (the API accepts it; opening
/// the sink fails in the member) and waits until the job is `failed`.
fn submit_failing_job(s: &Setup, m: &Member, name: &str) {
    let folder = s.state.join("output").join(format!("{name}-folder"));
    std::fs::create_dir_all(&folder).unwrap();
    let toml = job_toml(
        name,
        &s.include(),
        folder.to_str().unwrap(),
        "{ value = \"h\" }",
    );
    let (code, body) = submit(m, &s.state, &toml);
    assert_eq!(code, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let token = member_token(&s.state);
        let (code, body) = http(
            &m.api,
            "GET",
            &format!("/jobs/{name}"),
            token.as_deref(),
            "",
        );
        assert_eq!(code, 200, "{body}");
        if body.contains("\"state\":\"failed\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not fail: {body}\n{}",
            m.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `/healthz` needs no token, so anyone who can reach the port read the names of
/// failed jobs there ("failed jobs: payroll-export"). It now counts them only.
#[test]
fn healthz_does_not_name_failed_jobs() {
    let s = Setup::new();
    let m = s.start(&[], &[]);
    submit_failing_job(&s, &m, "payroll-export");
    let (code, body) = http(&m.api, "GET", "/healthz", None, "");
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("payroll"), "/healthz names a job: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["failed_jobs"], 1, "{body}");
    assert_eq!(v["status"], "degraded", "{body}");
    assert_eq!(v["jobs"], 1, "{body}");
}

/// A job that failed while running (its output or checkpoint could no longer be
/// written) was only visible through `job status`: the member's log said nothing.
/// It now logs an error naming the job and the reason.
#[test]
fn a_job_that_fails_while_running_is_logged_at_error_level_with_its_reason() {
    let s = Setup::new();
    let m = s.start(&["--checkpoint-interval", "100ms"], &[]);
    let toml = job_toml(
        "ckpt-lost",
        &s.include(),
        &s.sink("ckpt-lost"),
        "{ value = \"h\" }",
    );
    let (code, body) = submit(&m, &s.state, &toml);
    assert_eq!(code, 201, "{body}");
    // Wait until it runs (it has read lines, so its setup, which checkpoints too,
    // is over), then put a file where its checkpoint folder was: the next
    // checkpoint write fails (ENOTDIR, which root hits too). Renamed, not removed:
    // the job may be writing in it.
    let dir = s.state.join("jobs").join("ckpt-lost");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let token = member_token(&s.state);
        let (_, status) = http(&m.api, "GET", "/jobs/ckpt-lost", token.as_deref(), "");
        let v: serde_json::Value = serde_json::from_str(&status).unwrap();
        if v["lines_read"].as_u64().unwrap_or(0) > 0 && dir.is_dir() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not start: {status}\n{}",
            m.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::rename(&dir, s.state.join("jobs").join("ckpt-lost.moved")).unwrap();
    std::fs::write(&dir, "not a folder").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut t = T0 + 60;
    loop {
        let token = member_token(&s.state);
        let (_, status) = http(&m.api, "GET", "/jobs/ckpt-lost", token.as_deref(), "");
        let log = m.log();
        let logged = log
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("ckpt-lost") && l.contains("failed"));
        if status.contains("\"state\":\"failed\"") {
            assert!(
                logged,
                "the job failed without an error line:\n{status}\n{log}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the job did not fail: {status}\n{log}"
        );
        // New minutes close windows, which the job then checkpoints.
        append_host(&s.logs.join("web-1"), t, 60);
        t += 60;
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A matched file the member refuses (here a link whose real path is outside
/// --allow-root; unreadable files count the same) was only a number among the
/// zeros of `errors`: `job status` now says it in a warning, on stderr too.
#[test]
fn job_status_warns_when_matched_files_were_refused_or_unreadable() {
    let s = Setup::new();
    let secret = s.d.join("secret");
    append_host(&secret, T0, 10);
    std::fs::create_dir_all(s.logs.join("web-2")).unwrap();
    std::os::unix::fs::symlink(secret.join("access.log"), s.logs.join("web-2/access.log")).unwrap();
    let m = s.start(&[], &[]);
    let toml = job_toml(
        "refused",
        &s.include(),
        &s.sink("refused"),
        "{ value = \"h\" }",
    );
    let (code, body) = submit(&m, &s.state, &toml);
    assert_eq!(code, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = m.job(&["status", "refused"]);
        assert!(o.status.success(), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        if err.contains("warning: 1 time a matched file could not be opened or was refused") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no warning: {}\n{}",
            text(&o),
            m.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `tidemark job` found the cluster's token by itself and sent it to whatever
/// listened on the API port: another local user who bound that port while the
/// member was down got the token with the next command. Here that user is
/// `nobody` running a cluster of its own on the port (this needs root to start a
/// process as another user). Its API answers 401 "not accepted" to a wrong token
/// and "requires a token" to none, so what `tidemark job` prints shows whether
/// the token was sent. A listener run by the same user cannot be told apart (see
/// tidemark_api::listener); without root only the same-user path runs here, and
/// the refusal is covered by the listener module's tests on a /proc table.
#[test]
fn a_fake_server_on_the_api_port_does_not_get_the_token() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let state = d.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let token = "0123456789abcdef0123456789abcdef";
    std::fs::write(token_path(&state), token).unwrap();
    std::fs::set_permissions(token_path(&state), std::fs::Permissions::from_mode(0o600)).unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = format!("127.0.0.1:{port}");
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    if !root {
        eprintln!("not root: the squatter runs as this user, which cannot be told apart");
    }
    // The squatter: another user's API on the port (a cluster of its own).
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fake_state = d.join("fake-state");
    std::fs::create_dir_all(&fake_state).unwrap();
    if root {
        std::os::unix::fs::chown(&fake_state, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let log = d.join("fake.log");
    let mut cmd = tidemark();
    cmd.args([
        "cluster",
        "--api",
        &api,
        "--allow-root",
        "/nonexistent-logs",
        "--state-dir",
    ])
    .arg(&fake_state)
    .stdout(std::process::Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap());
    if root {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    let mut fake = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&api).is_err() {
        assert!(
            Instant::now() < deadline && fake.try_wait().unwrap().is_none(),
            "the squatter did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let o = tidemark()
        .args(["job", "list", "--api", &api, "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let _ = fake.kill();
    let _ = fake.wait();
    let err = String::from_utf8_lossy(&o.stderr);
    if root {
        assert!(!o.status.success(), "{}", text(&o));
        assert!(
            !err.contains("not accepted"),
            "the token was sent to the squatter: {err}"
        );
        assert!(
            err.contains("refusing to send the API token") && err.contains("uid 65534"),
            "{err}"
        );
    } else {
        // Same user: sent, and refused by the other cluster as not its token.
        assert!(err.contains("not accepted"), "{err}");
    }
}

/// A sink that cannot be opened was reported as "cannot open the job's sinks:
/// cannot open the job's sinks: …" (the member and the engine both said it).
#[test]
fn a_sink_that_cannot_be_opened_is_reported_once_not_twice() {
    let s = Setup::new();
    let m = s.start(&[], &[]);
    submit_failing_job(&s, &m, "twice");
    let token = member_token(&s.state);
    let (_, body) = http(&m.api, "GET", "/jobs/twice", token.as_deref(), "");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let error = v["last_error"].as_str().unwrap_or_default();
    assert_eq!(
        error.matches("cannot open the job's sinks").count(),
        1,
        "{error}"
    );
}

/// The member's API takes its limits from `--api-request-timeout` and the other
/// `--api-*` flags: a body that never arrives gets 503 after the given timeout
/// (the test's deadline is generous; the server's is short). A zero timeout is
/// refused.
#[test]
fn the_members_api_applies_its_request_timeout_flag() {
    let s = Setup::new();
    let m = s.start(&["--api-request-timeout", "300ms"], &[]);
    let token = member_token(&s.state).unwrap();
    let mut c = TcpStream::connect(&m.api).unwrap();
    write!(
        c,
        "POST /jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 1000\r\nConnection: close\r\n\r\nname = "
    )
    .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");

    let o = tidemark()
        .args([
            "cluster",
            "--api-header-timeout",
            "0s",
            "--allow-root",
            "/tmp",
            "--state-dir",
        ])
        .arg(s.d.join("other"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("more than 0"), "{}", text(&o));
}
