//! The state folder and the files a member keeps in it, as a hostile local user
//! would attack them: a folder others can write or own, a second member on a
//! locked folder, a planted `output` link. Each test ran against the binary from
//! before these fixes and failed there.

mod member;

use member::{cluster_exit, Member};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// A user id that is not ours (tests run as root here: `nobody`).
fn another_user() -> u32 {
    let me = std::fs::metadata("/proc/self").unwrap();
    use std::os::unix::fs::MetadataExt;
    if me.uid() == 65534 {
        0
    } else {
        65534
    }
}

#[test]
fn a_state_folder_other_users_can_write_or_own_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let logs = d.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let state = d.path().join("state");
    let args = ["--allow-root", logs.to_str().unwrap()];

    // A new folder is created private.
    let m = Member::start_with(&state, &d.path().join("m.log"), &args, &[], true);
    drop(m);
    assert_eq!(mode(&state), 0o700);
    std::fs::remove_dir_all(&state).unwrap();

    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, log) = cluster_exit(&args, &state);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("0777") && log.contains("chmod 700"), "{log}");
    assert!(!state.join("api-token").exists(), "{log}");

    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&state, Some(another_user()), None).unwrap();
    let (code, log) = cluster_exit(&args, &state);
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("owned by user id") && log.contains("chown"),
        "{log}"
    );
    assert!(!state.join("api-token").exists(), "{log}");
}

#[test]
fn a_second_member_on_a_locked_state_folder_creates_no_token() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    // The first member: it holds the lock (a member given its token elsewhere
    // keeps none in the folder).
    let lock = std::fs::File::create(state.join("lock")).unwrap();
    lock.try_lock().unwrap();
    let (code, log) = cluster_exit(&["--allow-root", "/nowhere"], &state);
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("another tidemark member"), "{log}");
    assert!(
        !state.join("api-token").exists(),
        "the second member created a token in a folder it could not lock: {log}"
    );
    assert!(!state.join("member").exists(), "{log}");
}

#[test]
fn a_planted_output_symlink_in_the_state_folder_is_not_followed() {
    let d = tempfile::tempdir().unwrap();
    let logs = d.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let state = d.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let elsewhere = d.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, state.join("output")).unwrap();
    let args = ["--allow-root", logs.to_str().unwrap()];
    let (code, log) = cluster_exit(&args, &state);
    assert_eq!(code, Some(2), "{log}");
    assert!(
        log.contains("symbolic link") && log.contains("--output-root"),
        "{log}"
    );

    // Without the link, the member creates the folder itself, 0750.
    std::fs::remove_file(state.join("output")).unwrap();
    let m = Member::start_with(&state, &d.path().join("m.log"), &args, &[], true);
    drop(m);
    let meta = std::fs::symlink_metadata(state.join("output")).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o777, 0o750);
}

#[test]
fn a_world_readable_token_file_is_warned_about() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("token");
    std::fs::write(&file, "a-shared-token\n").unwrap();
    let run = || {
        // No member listens on port 1: only what is said before the request counts.
        let o = member::tidemark()
            .args(["job", "list", "--api", "127.0.0.1:1", "--token-file"])
            .arg(&file)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = run();
    assert!(
        err.contains("can be read by every user of this machine (mode 0644)")
            && err.contains("chmod 600"),
        "{err}"
    );
    // Private, or shared with a group only (deploy/README.md's setup): no warning.
    for mode in [0o600, 0o640] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = run();
        assert!(!err.contains("can be read by every user"), "{err}");
    }
}

/// `GET path` with the member's token; the body.
fn get(m: &Member, path: &str) -> String {
    use std::io::{Read, Write};
    let token = std::fs::read_to_string(m.state.join("api-token")).unwrap();
    let mut s = std::net::TcpStream::connect(&m.api).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        token.trim()
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    r.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
}

#[test]
fn a_job_cannot_read_the_members_token_whatever_its_roots() {
    let d = tempfile::tempdir().unwrap();
    let d = std::fs::canonicalize(d.path()).unwrap();
    let logs = d.join("logs");
    member::append_host(&logs.join("web-1"), member::T0, 60);
    let lines = std::fs::read_to_string(logs.join("web-1/access.log"))
        .unwrap()
        .lines()
        .count() as u64;
    let state = d.join("state");
    // The roots cover the state folder (as `--allow-root /` would).
    let m = Member::start_with(
        &state,
        &d.join("m.log"),
        &["--allow-root", d.to_str().unwrap()],
        &[],
        true,
    );
    let toml = format!(
        r#"name = "peek"
[source]
kind = "file"
include = ["{}/*/access.log", "{}/api-*", "{}/submitted/*"]
host = {{ value = "h" }}
poll_interval = "50ms"
[parse]
format = "nginx"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "jsonl"
path = "{}/output/peek.jsonl"
series = "hosts"
"#,
        logs.display(),
        state.display(),
        state.display(),
        state.display()
    );
    let file = d.join("peek.toml");
    std::fs::write(&file, &toml).unwrap();
    let o = m.job(&["submit", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", member::text(&o));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let v = loop {
        let v: serde_json::Value = serde_json::from_str(&get(&m, "/jobs/peek")).unwrap();
        let read = v["lines_read"].as_u64().unwrap_or(0);
        let warned = v["warnings"].to_string().contains("api-*");
        if (read >= lines && warned) || read > lines || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(
        v["lines_read"].as_u64(),
        Some(lines),
        "the job read more than its log: {v}\n{}",
        m.log()
    );
    assert!(
        v["warnings"]
            .to_string()
            .contains("matches no file inside the allowed roots"),
        "{v}"
    );
    assert!(m.log().contains("which no job may read"), "{}", m.log());
}
