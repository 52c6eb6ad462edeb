//! Regression (found by review): `tidemark replay --output` pointing at one of the job's own input logs emptied it.

use std::path::Path;
use std::process::Command;

fn line(t: i64) -> String {
    let ts = jiff::Timestamp::from_second(t).unwrap();
    format!(
        "10.0.0.1 - - [{}] \"GET /x HTTP/1.1\" 200 1 \"-\" \"t\" 0.001\n",
        ts.strftime("%d/%b/%Y:%H:%M:%S +0000")
    )
}

const T0: i64 = 1_795_168_800; // 2026-11-20T10:00:00Z

fn write_job(dir: &Path) -> std::path::PathBuf {
    let job = dir.join("job.toml");
    std::fs::write(
        &job,
        r#"name = "web"
[source]
kind = "file"
include = ["logs/*/access.log"]
host = { path_regex = '/(?P<host>web-[0-9]+)/' }
[parse]
format = "nginx"
[window]
size = "1m"
max_out_of_orderness = "5s"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "jsonl"
path = "out/live.jsonl"
series = "hosts"
"#,
    )
    .unwrap();
    job
}

#[test]
fn output_equal_to_an_input_log_is_refused_and_the_log_kept() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs/web-1/access.log.1");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let text: String = (0..600).map(|s| line(T0 + s)).collect();
    std::fs::write(&log, &text).unwrap();
    std::fs::write(dir.path().join("logs/web-1/access.log"), line(T0 + 601)).unwrap();
    let job = write_job(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .env("TIDEMARK_LOG", "warn")
        .current_dir(dir.path())
        .args(["replay"])
        .arg(&job)
        .args([
            "--from",
            "2026-11-20T10:00:00Z",
            "--to",
            "2026-11-20T10:10:00Z",
            "--progress",
            "none",
            "--output",
            "logs/web-1/access.log.1",
        ])
        .output()
        .unwrap();
    let after = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!(
        "exit {:?}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(after.len(), text.len(), "the input log was overwritten");
    assert_eq!(out.status.code(), Some(2));
}

/// Regression: replay's warnings (a skipped line, an outlier, a damaged gzip
/// file) printed file names raw, so a newline in one could forge a log line;
/// they now go through `EscapedPath`, as the live run's do.
#[test]
fn a_newline_in_a_file_name_cannot_forge_a_replay_warning() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir
        .path()
        .join("logs/web-1\n2026-01-01T00:00:00Z ERROR forged");
    std::fs::create_dir_all(&host).unwrap();
    let mut text: String = (0..300).map(|s| line(T0 + s)).collect();
    text.push_str("not a log line\n");
    text.push_str(&line(T0 + 5 * 3600)); // far ahead, not confirmed by the next
    text.extend((300..600).map(|s| line(T0 + s)));
    std::fs::write(host.join("access.log"), &text).unwrap();
    // A gzip header, then garbage.
    std::fs::write(host.join("access.log.1.gz"), b"\x1f\x8b\x08\x00garbage").unwrap();
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        r#"name = "web"
[source]
kind = "file"
include = ["logs/*/access.log*"]
host = { value = "web-1" }
[parse]
format = "nginx"
[window]
size = "1m"
max_out_of_orderness = "5s"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "jsonl"
path = "out/live.jsonl"
series = "hosts"
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .env("TIDEMARK_LOG", "warn")
        .current_dir(dir.path())
        .arg("replay")
        .arg(&job)
        .args([
            "--from",
            "2026-11-20T10:00:00Z",
            "--to",
            "2026-11-20T10:10:00Z",
        ])
        .args(["--progress", "none", "--output", "replay.jsonl"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00Z ERROR forged")),
        "a forged line: {err}"
    );
    let escaped = "web-1\\n2026-01-01T00:00:00Z ERROR forged/access.log";
    for warning in [
        ":301: skipped line",
        " (a line after byte 0): an earlier line stamped",
        ".1.gz: cannot decompress its start",
        ".1.gz: decompression failed",
    ] {
        assert!(
            err.contains(&format!("{escaped}{warning}")),
            "{warning:?} names the path, escaped: {err}"
        );
    }
}
