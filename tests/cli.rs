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
        let out = run(tidemark().arg("run").arg(&job).args([
            "--until-eof",
            "--overwrite",
            "-w",
            &workers.to_string(),
        ]));
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
        // Its allocator's settings, printed at exit.
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
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
    // A live run gives freed memory back (src/alloc_decay.rs is for finite runs).
    assert!(err.contains("(arenas.dirty_decay_ms: 1000)"), "{err:.3000}");
}

// ---- no clobbered file (issue 10 §4) -----------------------------------------

/// One nginx line at 10:MM:SS on 2026-11-20.
fn nginx_line(min: u32, sec: u32) -> String {
    format!(
        "10.0.0.1 - - [20/Nov/2026:10:{min:02}:{sec:02} +0000] \"GET /x HTTP/1.1\" 200 1 \"-\" \"t\" 0.001\n"
    )
}

/// `dir/logs/app.log` (2 minutes of lines) and `dir/job.toml` reading `logs/*.log`
/// into a jsonl sink at `sink` (relative to `dir`). Returns (job, log, log bytes).
fn small_job(dir: &Path, sink: &str) -> (PathBuf, PathBuf, Vec<u8>) {
    let log = dir.join("logs/app.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let text: String = (0..120).map(|s| nginx_line(s / 60, s % 60)).collect();
    std::fs::write(&log, &text).unwrap();
    let job = dir.join("job.toml");
    std::fs::write(
        &job,
        format!(
            r#"name = "small"
[source]
kind = "file"
include = ["logs/*.log"]
[parse]
format = "nginx"
[window]
size = "1m"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "jsonl"
path = "{sink}"
series = "hosts"
"#
        ),
    )
    .unwrap();
    (job, log, text.into_bytes())
}

fn stderr_text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_refuses_a_sink_that_is_its_own_input_log() {
    // Lexically: the sink path is a file the include glob matches, or a rotated
    // sibling of one; `validate` and `run` both refuse it (exit 2).
    for sink in [
        "logs/app.log",
        "logs/other.log",
        "logs/app.log.1",
        "logs/app.log.2.gz",
    ] {
        let d = tempfile::tempdir().unwrap();
        let (job, log, text) = small_job(d.path(), sink);
        let o = run(tidemark().arg("validate").arg(&job));
        let err = stderr_text(&o);
        assert_eq!(o.status.code(), Some(2), "validate with sink {sink}: {err}");
        assert!(err.contains("input"), "{sink}: {err}");
        assert!(err.contains("hint:"), "{sink}: {err}");
        let o = run(tidemark().arg("run").arg(&job).arg("--until-eof"));
        assert_eq!(
            o.status.code(),
            Some(2),
            "run with sink {sink}: {}",
            stderr_text(&o)
        );
        assert_eq!(
            std::fs::read(&log).unwrap(),
            text,
            "{sink}: the input log was cut"
        );
    }
    // By real path: a symbolic link to the input log, which no glob matches.
    let d = tempfile::tempdir().unwrap();
    let (job, log, text) = small_job(d.path(), "out/alias.jsonl");
    std::fs::create_dir_all(d.path().join("out")).unwrap();
    std::os::unix::fs::symlink(&log, d.path().join("out/alias.jsonl")).unwrap();
    let o = run(tidemark().arg("validate").arg(&job));
    assert_eq!(o.status.code(), Some(2), "{}", stderr_text(&o));
    assert!(
        stderr_text(&o).contains("input file"),
        "{}",
        stderr_text(&o)
    );
    let o = run(tidemark().arg("run").arg(&job).arg("--until-eof"));
    let err = stderr_text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("input file"), "{err}");
    assert_eq!(std::fs::read(&log).unwrap(), text, "the input log was cut");
    // Not even --overwrite writes over an input.
    let o = run(tidemark()
        .arg("run")
        .arg(&job)
        .args(["--until-eof", "--overwrite"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr_text(&o));
    assert_eq!(std::fs::read(&log).unwrap(), text, "the input log was cut");
}

#[test]
fn run_refuses_a_sink_that_is_the_job_file_or_in_the_state_folder() {
    let d = tempfile::tempdir().unwrap();
    let (job, _, _) = small_job(d.path(), "job.toml");
    let before = std::fs::read(&job).unwrap();
    let o = run(tidemark().arg("validate").arg(&job));
    assert_eq!(o.status.code(), Some(2), "{}", stderr_text(&o));
    assert!(stderr_text(&o).contains("job file"), "{}", stderr_text(&o));
    let o = run(tidemark()
        .arg("run")
        .arg(&job)
        .args(["--until-eof", "--overwrite"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr_text(&o));
    assert_eq!(
        std::fs::read(&job).unwrap(),
        before,
        "the job file was overwritten"
    );

    // A link to the job file.
    let d = tempfile::tempdir().unwrap();
    let (job, _, _) = small_job(d.path(), "out/j.jsonl");
    let before = std::fs::read(&job).unwrap();
    std::fs::create_dir_all(d.path().join("out")).unwrap();
    std::os::unix::fs::symlink(&job, d.path().join("out/j.jsonl")).unwrap();
    let o = run(tidemark()
        .arg("run")
        .arg(&job)
        .args(["--until-eof", "--overwrite"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr_text(&o));
    assert!(stderr_text(&o).contains("job file"), "{}", stderr_text(&o));
    assert_eq!(
        std::fs::read(&job).unwrap(),
        before,
        "the job file was overwritten"
    );

    // Inside the state folder (another job's checkpoint, say).
    let d = tempfile::tempdir().unwrap();
    let (job, _, _) = small_job(d.path(), "state/other/checkpoint");
    std::fs::create_dir_all(d.path().join("state/other")).unwrap();
    std::fs::write(d.path().join("state/other/checkpoint"), b"not yours").unwrap();
    let o = run(tidemark()
        .arg("run")
        .arg(&job)
        .args(["--until-eof", "--overwrite", "--state-dir"])
        .arg(d.path().join("state")));
    let err = stderr_text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("state folder"), "{err}");
    assert_eq!(
        std::fs::read(d.path().join("state/other/checkpoint")).unwrap(),
        b"not yours"
    );
}

#[test]
fn run_does_not_clobber_an_existing_file_without_overwrite() {
    let d = tempfile::tempdir().unwrap();
    let (job, _, _) = small_job(d.path(), "report.txt");
    let precious = d.path().join("report.txt");
    std::fs::write(&precious, "my notes\n").unwrap();
    // A file the user must move or let go is a usage problem: exit 2, as in replay.
    let o = run(tidemark().arg("run").arg(&job).arg("--until-eof"));
    let err = stderr_text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert!(err.contains("--overwrite"), "hint: {err}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "my notes\n");
    // With a state folder too: no checkpoint names the file as this job's output.
    let o = run(tidemark()
        .arg("run")
        .arg(&job)
        .args(["--until-eof", "--state-dir"])
        .arg(d.path().join("state")));
    assert_eq!(o.status.code(), Some(2), "{}", stderr_text(&o));
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "my notes\n");
    // An empty file has nothing to lose: it is simply written.
    std::fs::write(&precious, "").unwrap();
    let o = run(tidemark().arg("run").arg(&job).arg("--until-eof"));
    assert!(o.status.success(), "{}", stderr_text(&o));
    let written = std::fs::read_to_string(&precious).unwrap();
    assert_eq!(written.lines().count(), 2, "{written}");
    // --overwrite replaces a full one.
    std::fs::write(&precious, "my notes\n").unwrap();
    let o = run(tidemark()
        .arg("run")
        .arg(&job)
        .args(["--until-eof", "--overwrite"]));
    assert!(o.status.success(), "{}", stderr_text(&o));
    let text = std::fs::read_to_string(&precious).unwrap();
    assert!(
        text.starts_with("{\"start\":\"2026-11-20T10:00:00Z\""),
        "{text}"
    );
    assert_eq!(text, written);
}

#[test]
fn a_sink_at_dev_null_is_refused_with_a_hint_to_use_stdout() {
    // /dev/null reports 0 bytes: it used to pass for an empty output file.
    let d = tempfile::tempdir().unwrap();
    let (job, _, _) = small_job(d.path(), "/dev/null");
    let o = run(tidemark().arg("run").arg(&job).arg("--until-eof"));
    let err = stderr_text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    assert!(err.contains("kind = \"stdout\""), "{err}");
}

#[test]
fn demo_overwrites_only_a_folder_it_made_itself() {
    // A folder holding someone else's nginx.toml: refused, nothing touched.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("nginx.toml"), "mine\n").unwrap();
    let o = run(tidemark().args(["demo", "--dir"]).arg(d.path()));
    let err = stderr_text(&o);
    // Files the user must move: a usage problem, exit 2.
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("nginx.toml"), "{err}");
    assert_eq!(
        std::fs::read_to_string(d.path().join("nginx.toml")).unwrap(),
        "mine\n"
    );
    assert!(!d.path().join("sample").exists());
    // Its own folder: run again, same output.
    let d = tempfile::tempdir().unwrap();
    demo(d.path(), 1);
    let first = std::fs::read(d.path().join("out/nginx.jsonl")).unwrap();
    demo(d.path(), 2);
    assert!(std::fs::read(d.path().join("out/nginx.jsonl")).unwrap() == first);
}

#[test]
fn the_binary_allocates_with_jemalloc_and_its_decay_settings() {
    // The global allocator (src/main.rs) and its settings (.cargo/config.toml) are what
    // issue 13's item 2 was measured with; jemalloc prints its options at exit when asked.
    let out = run(tidemark()
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true"));
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for opt in [
        "opt.dirty_decay_ms: 1000 (arenas.dirty_decay_ms: 1000)",
        "opt.muzzy_decay_ms: 0",
    ] {
        assert!(
            err.contains(opt),
            "no {opt:?} in jemalloc's statistics: {err:.2000}"
        );
    }
}

#[test]
fn finite_runs_keep_freed_pages_until_they_exit() {
    // src/alloc_decay.rs: `run --until-eof` and `replay` end soon, so jemalloc keeps
    // what they free for reuse (dirty decay -1) instead of handing it back after ~1 s
    // (the binary's default, which `--version` above still shows).
    let dir = tempfile::tempdir().unwrap();
    let (job, _, _) = small_job(dir.path(), "out/a.jsonl");
    let stats = "(arenas.dirty_decay_ms: -1)";
    let out = run(tidemark()
        .args(["run", job.to_str().unwrap(), "--until-eof", "-w", "2"])
        .env("_RJEM_MALLOC_CONF", "stats_print:true"));
    assert!(out.status.success(), "{}", stderr_text(&out));
    assert!(
        stderr_text(&out).contains(stats),
        "run --until-eof: {:.3000}",
        stderr_text(&out)
    );
    let out = run(tidemark()
        .args([
            "replay",
            job.to_str().unwrap(),
            "--from",
            "2026-11-20T10:00:00Z",
        ])
        .args(["--to", "2026-11-20T10:02:00Z", "--output"])
        .arg(dir.path().join("out/replay.jsonl"))
        .env("_RJEM_MALLOC_CONF", "stats_print:true"));
    assert!(out.status.success(), "{}", stderr_text(&out));
    assert!(
        stderr_text(&out).contains(stats),
        "replay: {:.3000}",
        stderr_text(&out)
    );
    // Unless the user set a decay of their own.
    let out = run(tidemark()
        .args(["run", job.to_str().unwrap(), "--until-eof", "--overwrite"])
        .env("_RJEM_MALLOC_CONF", "stats_print:true,dirty_decay_ms:500"));
    assert!(out.status.success(), "{}", stderr_text(&out));
    let own = "(arenas.dirty_decay_ms: 500)";
    assert!(
        stderr_text(&out).contains(own),
        "{:.3000}",
        stderr_text(&out)
    );
}
