//! Checkpoints through the CLI: resuming after a finished run adds nothing, a
//! damaged checkpoint stops with a clear choice instead of silently starting over
//! (exit 2: the user must choose; see also `checkpoint_refusals.rs`), and both
//! `--reset-checkpoint` choices do what they say.

use std::path::Path;
use std::process::{Command, Output};

fn tidemark(args: &[&str], job: &Path, state: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("run")
        .arg(job)
        .args(["--until-eof", "--state-dir"])
        .arg(state)
        .args(args)
        .env("TIDEMARK_LOG", "warn")
        .output()
        .expect("spawn tidemark")
}

/// The demo's data and job, with a state folder next to it.
fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["demo", "--dir"])
        .arg(d.path())
        .env("TIDEMARK_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success());
    // The runs below write their own output, named by their checkpoint; the
    // demo's (written without one) would be refused as someone else's file.
    std::fs::remove_file(d.path().join("out/nginx.jsonl")).unwrap();
    let job = d.path().join("nginx.toml");
    let state = d.path().join("state");
    (d, job, state)
}

#[test]
fn a_second_run_resumes_and_writes_nothing_twice() {
    let (d, job, state) = setup();
    let out_file = d.path().join("out/nginx.jsonl");
    let first = tidemark(&[], &job, &state);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let once = std::fs::read(&out_file).unwrap();
    assert!(String::from_utf8_lossy(&first.stderr).contains("checkpoints written"));
    let again = tidemark(&[], &job, &state);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        once,
        "nothing re-emitted"
    );
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("lines read: 0"), "resumed at the end: {err}");
}

#[test]
fn nul_filled_checkpoint_stops_with_a_clear_choice_and_reset_beginning_recovers() {
    let (d, job, state) = setup();
    let out_file = d.path().join("out/nginx.jsonl");
    assert!(tidemark(&[], &job, &state).status.success());
    let good = std::fs::read(&out_file).unwrap();
    let ck = state.join("nginx/checkpoint");
    let len = std::fs::metadata(&ck).unwrap().len() as usize;
    std::fs::write(&ck, vec![0u8; len]).unwrap();

    let refused = tidemark(&[], &job, &state);
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("NUL"), "{err}");
    assert!(err.contains("--reset-checkpoint=beginning"), "{err}");
    assert!(err.contains("--reset-checkpoint=end"), "{err}");
    assert_eq!(std::fs::read(&out_file).unwrap(), good, "output untouched");

    // The damaged checkpoint cannot say which file is the job's output, so a
    // reset replaces it only when told to.
    let reset = tidemark(&["--reset-checkpoint=beginning"], &job, &state);
    let err = String::from_utf8_lossy(&reset.stderr);
    assert_eq!(reset.status.code(), Some(2), "{err}");
    assert!(err.contains("--overwrite"), "{err}");
    assert_eq!(std::fs::read(&out_file).unwrap(), good, "output untouched");
    let reset = tidemark(
        &["--reset-checkpoint=beginning", "--overwrite"],
        &job,
        &state,
    );
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        good,
        "re-read from the start"
    );
    // And the state is healthy again.
    assert!(tidemark(&[], &job, &state).status.success());
}

#[test]
fn reset_end_skips_to_the_end_of_each_file_and_keeps_the_output() {
    let (d, job, state) = setup();
    let out_file = d.path().join("out/nginx.jsonl");
    assert!(tidemark(&[], &job, &state).status.success());
    let good = std::fs::read(&out_file).unwrap();
    std::fs::remove_file(state.join("nginx/checkpoint")).unwrap();
    let refused = tidemark(&[], &job, &state);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--reset-checkpoint"));

    let reset = tidemark(&["--reset-checkpoint=end"], &job, &state);
    assert!(
        reset.status.success(),
        "{}",
        String::from_utf8_lossy(&reset.stderr)
    );
    let err = String::from_utf8_lossy(&reset.stderr);
    assert!(err.contains("lines read: 0"), "started at the end: {err}");
    assert_eq!(
        std::fs::read(&out_file).unwrap(),
        good,
        "existing output kept"
    );
}

#[test]
fn reset_without_a_state_dir_is_a_usage_error() {
    let (_d, job, _state) = setup();
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("run")
        .arg(&job)
        .args(["--until-eof", "--reset-checkpoint=end"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--state-dir"));
}

/// Regression: finishing an `--until-eof` run committed "every window is written,
/// forever", so the next run with the same state dir skipped all new data.
#[test]
fn data_appended_after_a_finished_run_is_read_by_the_next_run() {
    let (d, job, state) = setup();
    let out_file = d.path().join("out/nginx.jsonl");
    assert!(tidemark(&[], &job, &state).status.success());
    let before = std::fs::read_to_string(&out_file).unwrap();
    let live = d.path().join("sample/web-1/access.log");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&live)
        .unwrap();
    use std::io::Write;
    writeln!(
        f,
        "10.0.0.9 - - [20/Nov/2026:10:07:30 +0000] \"GET /new HTTP/1.1\" 200 42 \"-\" \"t\" 0.010"
    )
    .unwrap();
    drop(f);
    let again = tidemark(&[], &job, &state);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("lines read: 1\n"),
        "only the new line is read: {err}"
    );
    let after = std::fs::read_to_string(&out_file).unwrap();
    assert!(after.starts_with(&before), "earlier output kept as it was");
    let added = &after[before.len()..];
    assert!(
        added.contains("\"start\":\"2026-11-20T10:07:00Z\"")
            && added.contains("\"record\":\"job:http_requests:sum1m\",\"labels\":{},\"value\":1}"),
        "the new line's window is emitted: {added}"
    );
}

#[test]
fn a_second_process_on_the_same_state_dir_is_refused() {
    let (_d, job, state) = setup();
    let mut first = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("run")
        .arg(&job)
        .arg("--state-dir")
        .arg(&state)
        .env("TIDEMARK_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the live run holds its state folder (its first checkpoint).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !state.join("nginx/checkpoint").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = tidemark(&[], &job, &state);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("another tidemark process"), "{err}");
}

// ---- no clobbered file, no silent loss on resume (issue 10 §4, §2b) ------------

#[test]
fn resume_refuses_to_cut_a_different_file_at_the_sink_path() {
    let (d, job, state) = setup();
    let out_file = d.path().join("out/nginx.jsonl");
    assert!(tidemark(&[], &job, &state).status.success());
    // Someone moves the output away and puts another (longer) file in its place.
    std::fs::rename(&out_file, d.path().join("out/kept.jsonl")).unwrap();
    let other = "someone else's data\n".repeat(10_000);
    std::fs::write(&out_file, &other).unwrap();
    for args in [&[][..], &["--overwrite"][..]] {
        let o = tidemark(args, &job, &state);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("not the file"), "{err}");
        assert!(err.contains("--reset-checkpoint=beginning"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&out_file).unwrap(),
            other,
            "the other file was cut"
        );
    }
}

#[test]
fn resuming_with_a_changed_window_size_is_refused_and_names_it() {
    let (d, job, state) = setup();
    let out_file = d.path().join("out/nginx.jsonl");
    assert!(tidemark(&[], &job, &state).status.success());
    let good = std::fs::read(&out_file).unwrap();
    let text = std::fs::read_to_string(&job).unwrap();

    // Settings that only pace the reading do not matter: it resumes.
    let paced = text.replace(
        "[parse]",
        "poll_interval = \"1s\"\nread_chunk = \"64KiB\"\nrate_limit = \"100MiB/s\"\n\n[parse]",
    );
    std::fs::write(&job, &paced).unwrap();
    let o = tidemark(&[], &job, &state);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("lines read: 0"), "resumed at the end: {err}");

    // A different window size changes what every window holds: refused.
    std::fs::write(&job, paced.replace("size = \"1m\"", "size = \"5m\"")).unwrap();
    let o = tidemark(&[], &job, &state);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("window.size"), "names the setting: {err}");
    assert!(
        err.contains("1m") && err.contains("5m"),
        "old and new: {err}"
    );
    assert!(err.contains("--reset-checkpoint=beginning"), "{err}");
    assert!(err.contains("--reset-checkpoint=end"), "{err}");
    assert_eq!(std::fs::read(&out_file).unwrap(), good, "output untouched");

    // So is another metric label (and both changes are named).
    let relabelled = paced
        .replace("size = \"1m\"", "size = \"5m\"")
        .replace("labels = [\"status\", \"method\"]", "labels = [\"status\"]");
    std::fs::write(&job, relabelled).unwrap();
    let o = tidemark(&[], &job, &state);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("window.size"), "{err}");
    assert!(err.contains("http_requests_total.labels"), "{err}");

    // Choosing to recompute with the new settings works.
    let o = tidemark(&["--reset-checkpoint=beginning"], &job, &state);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(tidemark(&[], &job, &state).status.success());
}

mod member;

/// The same check in a cluster: a kept job whose window was changed while the
/// member was down (by hand, or by a tool redeploying it) is refused at install
/// with the same message, instead of resuming into the wrong windows.
#[test]
fn a_cluster_job_whose_window_changed_is_refused_after_a_restart() {
    use member::{append_host, out_dir, text, Member, T0};
    use std::time::{Duration, Instant};
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let out = out_dir(&state).join("a.jsonl");
    append_host(&d.path().join("logs/web-1"), T0, 200);
    let toml = |size: &str| {
        format!(
            r#"name = "a"
[source]
kind = "file"
include = ["{}/logs/*/access.log"]
host = {{ path_regex = '/logs/(?P<host>[^/]+)/' }}
[parse]
format = "nginx"
[window]
size = "{size}"
idle_timeout = "1h"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "jsonl"
path = "{}"
series = "hosts"
"#,
            d.path().display(),
            out.display()
        )
    };
    let job = d.path().join("a.toml");
    std::fs::write(&job, toml("1m")).unwrap();
    let root = d.path().to_str().unwrap().to_string();
    let checkpoint = state.join("jobs/a/checkpoint");
    {
        let m = Member::start(
            &state,
            &d.path().join("m1.log"),
            &["--allow-root", &root, "--checkpoint-interval", "50ms"],
        );
        let o = m.job(&["submit", job.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::metadata(&out).map_or(0, |m| m.len()) == 0 {
            assert!(Instant::now() < deadline, "no output: {}", m.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300)); // a checkpoint after it
        assert!(checkpoint.exists(), "{}", m.log());
    } // SIGKILL
    let written = std::fs::read(&out).unwrap();
    std::fs::write(state.join("submitted/a.toml"), toml("5m")).unwrap();
    let m = Member::start(&state, &d.path().join("m2.log"), &["--allow-root", &root]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let o = m.job(&["status", "a"]);
        let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        if s["state"] == "failed" {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "job a did not fail: {} {}",
            text(&o),
            m.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let why = status["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("window.size"), "{status}");
    assert!(why.contains("--reset-checkpoint"), "{status}");
    assert_eq!(std::fs::read(&out).unwrap(), written, "output untouched");
    assert!(checkpoint.exists(), "the checkpoint is kept");
}

/// CRC-32 (IEEE), as the checkpoint header has it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Rewrites the checkpoint at `ck` as the release before fingerprints wrote it
/// (format 1: no semantics, no sink identity).
fn downgrade_to_format_1(ck: &Path) {
    let bytes = std::fs::read(ck).unwrap();
    assert_eq!(bytes[8..12], 2u32.to_le_bytes());
    let mut v: serde_json::Value = serde_json::from_slice(&bytes[24..]).unwrap();
    v.as_object_mut().unwrap().remove("semantics").unwrap();
    for s in v["sinks"].as_array_mut().unwrap() {
        let s = s.as_object_mut().unwrap();
        s.remove("file").unwrap();
        s.remove("tail");
    }
    let mut payload = serde_json::to_vec_pretty(&v).unwrap();
    payload.push(b'\n');
    let mut old = b"TDMKCKPT".to_vec();
    old.extend_from_slice(&1u32.to_le_bytes());
    old.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    old.extend_from_slice(&crc32(&payload).to_le_bytes());
    old.extend_from_slice(&payload);
    std::fs::write(ck, old).unwrap();
}

/// A checkpoint from the release before fingerprints (format 1: no semantics, no
/// sink identity) is resumed, with a warning, and the next one records them.
#[test]
fn an_old_checkpoint_without_a_fingerprint_resumes_with_a_warning() {
    let (_d, job, state) = setup();
    assert!(tidemark(&[], &job, &state).status.success());
    let ck = state.join("nginx/checkpoint");
    downgrade_to_format_1(&ck);

    let o = tidemark(&[], &job, &state);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("written by an older tidemark"), "{err}");
    assert!(err.contains("lines read: 0"), "resumed: {err}");
    let bytes = std::fs::read(&ck).unwrap();
    assert_eq!(bytes[8..12], 2u32.to_le_bytes(), "rewritten as format 2");
    let v: serde_json::Value = serde_json::from_slice(&bytes[24..]).unwrap();
    assert!(v["semantics"]["sections"]["window"].is_string(), "{v}");
    assert!(v["sinks"][0]["file"]["ino"].is_u64(), "{v}");
}

#[test]
fn a_format_1_resume_warns_before_cutting_an_output_it_cannot_identify() {
    let (d, job, state) = setup();
    let out_file = d.path().join("out/nginx.jsonl");
    assert!(tidemark(&[], &job, &state).status.success());
    let good = std::fs::read(&out_file).unwrap();
    downgrade_to_format_1(&state.join("nginx/checkpoint"));
    // Output past the checkpoint (a crash), which the resume cuts.
    let mut longer = good.clone();
    longer.extend_from_slice(b"{\"start\":\"2026-11-20T10:09:00Z\"}\n");
    std::fs::write(&out_file, &longer).unwrap();
    let o = tidemark(&[], &job, &state);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("does not say which file") && err.contains("cut"),
        "no warning before cutting a file the checkpoint does not identify: {err}"
    );
    // What the warning about the settings says must be true: they are recorded
    // as this run starts, not "by the next checkpoint".
    assert!(!err.contains("The next checkpoint records them"), "{err}");
    assert!(err.contains("recorded now"), "{err}");
    assert_eq!(std::fs::read(&out_file).unwrap(), good);
}

#[test]
fn a_restart_through_another_path_to_the_job_file_resumes() {
    // `tidemark run /etc/tm/nginx.toml`, then `cd /etc/tm/sample && tidemark run
    // ../nginx.toml` with the same state: the same job, the same output.
    let (d, _, state) = setup();
    let dir = std::fs::canonicalize(d.path()).unwrap();
    let out_file = dir.join("out/nginx.jsonl");
    assert!(tidemark(&[], &dir.join("nginx.toml"), &state)
        .status
        .success());
    let good = std::fs::read(&out_file).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .current_dir(dir.join("sample"))
        .args(["run", "../nginx.toml", "--until-eof", "--state-dir"])
        .arg(&state)
        .env("TIDEMARK_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("lines read: 0"), "resumed: {err}");
    assert_eq!(std::fs::read(&out_file).unwrap(), good);
}

#[test]
fn a_new_sink_on_resume_says_what_overwrite_would_lose() {
    // A sink path the checkpoint does not name, with a file there: --overwrite
    // would replace it, but the resumed run writes only windows from the
    // checkpoint's frontier on. The hint must say so.
    let (d, job, state) = setup();
    assert!(tidemark(&[], &job, &state).status.success());
    let text = std::fs::read_to_string(&job).unwrap();
    std::fs::write(&job, text.replace("out/nginx.jsonl", "out/other.jsonl")).unwrap();
    std::fs::write(d.path().join("out/other.jsonl"), "older output\n").unwrap();
    let o = tidemark(&[], &job, &state);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--overwrite"), "{err}");
    assert!(
        err.contains("windows before 2026-11-20T10:"),
        "does not say what --overwrite loses: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("out/other.jsonl")).unwrap(),
        "older output\n"
    );
}

#[test]
fn reset_beginning_replaces_only_the_outputs_its_checkpoint_names() {
    let (d, job, state) = setup();
    let out_file = d.path().join("out/nginx.jsonl");
    assert!(tidemark(&[], &job, &state).status.success());
    let good = std::fs::read(&out_file).unwrap();
    // The job now points its sink at someone's file.
    let text = std::fs::read_to_string(&job).unwrap();
    let foreign = d.path().join("out/report.jsonl");
    std::fs::write(&foreign, "someone's report\n").unwrap();
    std::fs::write(&job, text.replace("out/nginx.jsonl", "out/report.jsonl")).unwrap();
    let o = tidemark(&["--reset-checkpoint=beginning"], &job, &state);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--overwrite"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&foreign).unwrap(),
        "someone's report\n",
        "a file the checkpoint does not name was replaced"
    );
    // Its own output, named by the checkpoint (which the refused run kept), is
    // rewritten without --overwrite.
    std::fs::write(&job, text).unwrap();
    std::fs::write(&out_file, [good.as_slice(), b"junk"].concat()).unwrap();
    let o = tidemark(&["--reset-checkpoint=beginning"], &job, &state);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&out_file).unwrap(), good);
}

#[test]
fn a_second_run_with_another_state_dir_does_not_write_the_same_output() {
    let (d, job, state) = setup();
    let out_file = d.path().join("out/nginx.jsonl");
    let mut live = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("run")
        .arg(&job)
        .arg("--state-dir")
        .arg(&state)
        .env("TIDEMARK_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The live run has opened its output once its first checkpoint exists.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !state.join("nginx/checkpoint").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let other = tidemark(&["--overwrite"], &job, &d.path().join("other-state"));
    let before_kill = std::fs::read(&out_file).unwrap_or_default();
    let _ = live.kill();
    let _ = live.wait();
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success(), "two runs wrote one output: {err}");
    assert!(err.contains("another tidemark"), "{err}");
    // What the live run wrote is its own: no other run's windows in between.
    let text = String::from_utf8_lossy(&before_kill);
    let starts: Vec<&str> = text.lines().filter_map(|l| l.split('"').nth(3)).collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted, "windows out of order: two writers");
}
