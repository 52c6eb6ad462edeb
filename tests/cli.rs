//! The `tidemark` binary, black-box: demo golden output, determinism across worker
//! counts and runs, validate's exit codes, and a live run stopped by SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tidemark() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    c.env("TIDEMARK_LOG", "warn");
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn tidemark")
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares with a golden file; `UPDATE_GOLDEN=1` rewrites it.
fn check_golden(name: &str, actual: &[u8]) {
    let path = golden_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let want = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        want == actual,
        "{} differs from the output (run with UPDATE_GOLDEN=1 to accept a deliberate change)",
        path.display()
    );
}

fn demo(dir: &Path, workers: usize) -> Output {
    let out = run(tidemark()
        .args(["demo", "--dir"])
        .arg(dir)
        .args(["-w", &workers.to_string()]));
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn demo_output_matches_golden_and_prints_a_table() {
    let d = tempfile::tempdir().unwrap();
    let out = demo(d.path(), 2);
    let jsonl = std::fs::read(d.path().join("out/nginx.jsonl")).unwrap();
    check_golden("demo.jsonl", &jsonl);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("── window 2026-11-20T10:00:00Z .. 2026-11-20T10:01:00Z ──"));
    assert!(table.contains("status:http_requests:sum1m"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("out/nginx.jsonl"),
        "says where the JSONL went: {err}"
    );
}

#[test]
fn output_is_byte_identical_across_worker_counts_and_runs() {
    let d = tempfile::tempdir().unwrap();
    demo(d.path(), 1);
    let job = d.path().join("nginx.toml");
    let out_file = d.path().join("out/nginx.jsonl");
    let reference = std::fs::read(&out_file).unwrap();
    assert!(!reference.is_empty());
    for workers in [1, 2, 4, 2] {
        let out =
            run(tidemark()
                .arg("run")
                .arg(&job)
                .args(["--until-eof", "-w", &workers.to_string()]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = std::fs::read(&out_file).unwrap();
        assert!(got == reference, "-w {workers} output differs from -w 1");
    }
}

#[test]
fn validate_says_ok_or_lists_errors_with_positions_and_exits_2() {
    let d = tempfile::tempdir().unwrap();
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/examples/nginx.toml");
    let out = run(tidemark().arg("validate").arg(&good));
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");

    let bad = d.path().join("bad.toml");
    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace(
            "sum by (status) (http_requests_total)",
            "sum by (status) (http_request_total)",
        )
        .replace("size = \"1m\"", "size = \"7m\"");
    std::fs::write(&bad, text).unwrap();
    let out = run(tidemark().arg("validate").arg(&bad));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let shown = bad.display().to_string();
    assert!(err.contains(&format!("{shown}:")), "{err}");
    assert!(
        err.contains("http_requests_total"),
        "did-you-mean hint: {err}"
    );
    assert!(err.contains("7m"), "window error: {err}");
    assert_eq!(err.matches(": error: ").count(), 2, "both errors: {err}");

    // `run` refuses an invalid job with the same messages and exit code.
    let out = run(tidemark().arg("run").arg(&bad).arg("--until-eof"));
    assert_eq!(out.status.code(), Some(2));
    // A missing file is an error too, not a panic.
    let out = run(tidemark().arg("validate").arg(d.path().join("nope.toml")));
    assert_eq!(out.status.code(), Some(2));
    // Bad usage is exit 2.
    let out = run(tidemark().arg("run"));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn validate_warns_when_an_include_glob_matches_no_file() {
    // A job whose glob matches nothing validated as a plain `ok`, and a run of it
    // silently read nothing.
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("logs")).unwrap();
    std::fs::write(d.path().join("logs/a.log"), "").unwrap();
    let job = d.path().join("job.toml");
    std::fs::write(
        &job,
        "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [\"logs/*.log\", \"logz/*.log\"]\n\
         [parse]\nformat = \"json\"\n[[metric]]\nname = \"lines\"\nkind = \"counter\"\n\
         [[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n",
    )
    .unwrap();
    let out = run(tidemark().arg("validate").arg(&job));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "still valid: {err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    let missing = d.path().join("logz/*.log").display().to_string();
    assert!(
        err.contains(&format!(
            "warning: include glob `{missing}` matches no file"
        )),
        "{err}"
    );
    assert!(err.contains("\n  hint: "), "{err}");
    assert_eq!(
        err.matches("warning:").count(),
        1,
        "only the empty glob: {err}"
    );
}

#[test]
fn worker_count_beyond_the_limit_is_refused_not_an_allocation_abort() {
    // `-w 100000` aborted with "memory allocation failed" (or ran the machine out
    // of memory): timely's channels grow with the square of the worker count.
    let d = tempfile::tempdir().unwrap();
    let job = Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs/examples/nginx.toml");
    let state = d.path().join("state");
    let demo_dir = d.path().join("demo");
    let cases: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["run".into(), job.clone().into(), "--until-eof".into()],
        vec![
            "replay".into(),
            job.clone().into(),
            "--from".into(),
            "2026-11-20T10:00:00Z".into(),
            "--to".into(),
            "2026-11-20T11:00:00Z".into(),
        ],
        vec!["demo".into(), "--dir".into(), demo_dir.clone().into()],
        vec![
            "cluster".into(),
            "--state-dir".into(),
            state.clone().into(),
            "--api".into(),
            "127.0.0.1:0".into(),
        ],
    ];
    for args in &cases {
        for w in ["257", "100000", "0"] {
            let mut cmd = tidemark();
            cmd.args(args).args(["-w", w]);
            let mut child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // A process that started instead of refusing would run on: stop it.
            let deadline = Instant::now() + Duration::from_secs(60);
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if Instant::now() > deadline {
                    child.kill().unwrap();
                    panic!("{args:?} -w {w} was not refused");
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            assert_eq!(status.code(), Some(2), "{args:?} -w {w}: {err}");
            assert!(err.contains("between 1 and 256"), "{args:?} -w {w}: {err}");
        }
    }
    assert!(!demo_dir.exists() && !state.exists(), "nothing was started");
}

#[test]
fn live_run_closes_idle_windows_and_stops_cleanly_on_sigterm() {
    let d = tempfile::tempdir().unwrap();
    demo(d.path(), 1);
    let out_file = d.path().join("out/nginx.jsonl");
    let finite = std::fs::read(&out_file).unwrap();
    // Same job, but idle for 1 s is enough to close every window of this old data.
    let job = d.path().join("nginx.toml");
    let text = std::fs::read_to_string(&job)
        .unwrap()
        .replace("idle_timeout = \"30s\"", "idle_timeout = \"1s\"");
    std::fs::write(&job, text).unwrap();
    std::fs::remove_file(&out_file).unwrap();
    let child = tidemark()
        .arg("run")
        .arg(&job)
        .args(["-w", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read(&out_file).map(|b| b.len()).unwrap_or(0) < finite.len()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit after SIGTERM: {:?} {err}",
        out.status
    );
    assert!(
        err.contains("lines read: 1800"),
        "prints its self-metrics: {err}"
    );
    assert!(err.contains("files discovered: 9"), "{err}");
    assert!(err.contains("windows emitted: 5"), "{err}");
    // Caught up before the stop: every group is 0 bytes behind its files.
    assert_eq!(
        err.matches("lag behind end of file: 0 bytes").count(),
        3,
        "{err}"
    );
    assert!(
        std::fs::read(&out_file).unwrap() == finite,
        "live output after idle equals the finite run's"
    );
}
