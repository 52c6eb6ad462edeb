//! The file source at its edges, through the binary: files that cannot be read,
//! one file reached by several paths, FIFOs, hostile file names.
//!
//! Unreadable files: the test makes a file mode 000. Root reads it anyway, so as
//! root (as in CI) tidemark runs under `setpriv` without the capabilities that
//! bypass file permissions (`CAP_DAC_OVERRIDE`, `CAP_DAC_READ_SEARCH`): still
//! root, still owner of everything else the test made.

#[path = "file_edges/support.rs"]
mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Regression (issue 10 §2a): a matched file that could not be opened was left out
/// without a word, and `--until-eof` said `files read: 2 (0 could not be opened)`
/// and exited 0 while one of three hosts was missing from every window.
#[test]
fn unreadable_file_is_not_skipped_silently() {
    let (d, job) = setup(&["web-1", "web-2", "web-3"], "30s");
    let bad = d.path().join("logs/web-3/app.log");
    make_unreadable(&bad);
    let out = run(tidemark().arg("run").arg(&job).arg("--until-eof"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit 1: {err}");
    let shown = bad.display().to_string();
    // Logged with its path, the error and a hint...
    let warning = err
        .lines()
        .find(|l| l.contains(&shown) && l.contains("ermission denied"))
        .unwrap_or_else(|| panic!("no warning naming {shown} and the error: {err}"));
    assert!(warning.contains("hint:"), "{warning}");
    // ...counted...
    assert!(
        err.contains("files read: 2 (1 could not be opened)"),
        "{err}"
    );
    // ...and listed at exit.
    assert!(err.contains("files that could not be read"), "{err}");
    assert!(
        err.lines().filter(|l| l.contains(&shown)).count() >= 2,
        "listed at exit: {err}"
    );
    // The other hosts are complete.
    let c = counts(&d.path().join("out.jsonl"));
    assert_eq!(c.len(), 6, "{c:?}");
}

/// Regression (issue 10 §2a): in a live run, a group whose file could not be
/// opened counted as idle, so its windows closed without it, and once the file
/// became readable its whole backlog was late and dropped.
#[test]
fn unreadable_file_holds_its_windows_until_it_can_be_read() {
    let (d, job) = setup(&["web-1", "web-2", "web-3"], "1s");
    let bad = d.path().join("logs/web-3/app.log");
    make_unreadable(&bad);
    let out_file = d.path().join("out.jsonl");
    let child = tidemark()
        .arg("run")
        .arg(&job)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Well past idle_timeout: the readable hosts are idle, web-3 is not.
    std::thread::sleep(Duration::from_secs(4));
    let held = counts(&out_file);
    make_readable(&bad);
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts(&out_file).len() < 9 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = stop(child);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        held.is_empty(),
        "windows closed without web-3: {held:?}\n{err}"
    );
    let c = counts(&out_file);
    let want: Vec<(String, String, u64)> = (0..3)
        .flat_map(|m| {
            ["web-1", "web-2", "web-3"]
                .map(|h| (format!("2026-01-01T00:{m:02}:00Z"), h.to_string(), 10))
        })
        .collect();
    assert_eq!(c, want, "{err}");
    assert!(err.contains("late lines (dropped): 0"), "{err}");
    assert!(err.contains(&bad.display().to_string()), "warned: {err}");
}

/// Regression (issue 10 §3): one file reached by several paths (a directory
/// link, `..`, a hard link) was read and counted once per path.
#[test]
fn a_file_reached_by_several_paths_is_counted_once() {
    let (d, job) = setup(&["web-1", "web-2"], "30s");
    let logs = d.path().join("logs");
    std::os::unix::fs::symlink("web-1", logs.join("web-9")).unwrap();
    std::fs::create_dir_all(logs.join("web-7")).unwrap();
    std::fs::hard_link(logs.join("web-2/app.log"), logs.join("web-7/app.log")).unwrap();
    let text = std::fs::read_to_string(&job).unwrap().replace(
        r#"include = ["logs/*/app.log"]"#,
        r#"include = ["logs/*/app.log", "logs/web-1/../web-1/app.log"]"#,
    );
    std::fs::write(&job, text).unwrap();
    let out = run(tidemark().arg("run").arg(&job).arg("--until-eof"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let c = counts(&d.path().join("out.jsonl"));
    let want: Vec<(String, String, u64)> = (0..3)
        .flat_map(|m| {
            ["web-1", "web-2"].map(|h| (format!("2026-01-01T00:{m:02}:00Z"), h.to_string(), 10))
        })
        .collect();
    assert_eq!(c, want, "{err}");
    assert!(err.contains("lines read: 60"), "{err}");
    assert!(
        err.contains("paths left out as another path to a file already read: 3"),
        "{err}"
    );
    assert!(err.contains("web-9/app.log: the same file as"), "{err}");
}

/// Regression (issue 10 §6): a FIFO matched by a glob was skipped without a
/// word. It is warned about, counted, never opened (a reader would block), and a
/// finite run says its input was incomplete.
#[test]
fn a_fifo_matched_by_a_glob_is_not_skipped_silently() {
    let (d, job) = setup(&["web-1"], "30s");
    let fifo_dir = d.path().join("logs/web-2");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    let made = Command::new("mkfifo")
        .arg(fifo_dir.join("app.log"))
        .status()
        .unwrap();
    assert!(made.success());
    let out = run_with_deadline(tidemark().arg("run").arg(&job).arg("--until-eof"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("web-2/app.log: matched by an include glob, but it is a FIFO"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert!(
        err.contains("matched paths that are not regular files (not read): 1"),
        "{err}"
    );
    assert_eq!(counts(&d.path().join("out.jsonl")).len(), 3, "{err}");
}

/// Regression (issue 10 §6): a newline in a file name let whoever can create a
/// file in a watched folder write log lines of their own.
#[test]
fn a_newline_in_a_file_name_cannot_forge_a_log_line() {
    let (d, job) = setup(
        &["web-1", "web-2\n2026-01-01T00:00:00Z ERROR forged"],
        "30s",
    );
    let bad = d
        .path()
        .join("logs/web-2\n2026-01-01T00:00:00Z ERROR forged/app.log");
    make_unreadable(&bad);
    let out = run(tidemark().arg("run").arg(&job).arg("--until-eof"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00Z ERROR forged")),
        "a forged line: {err}"
    );
    assert!(
        err.contains("web-2\\n2026-01-01T00:00:00Z ERROR forged/app.log: cannot be read"),
        "the path is named, escaped: {err}"
    );
}

/// Regression: the warning about an outlier (a line far ahead that the next line
/// does not confirm) printed its file name raw, so a newline in it could forge a
/// log line, as `a_newline_in_a_file_name_cannot_forge_a_log_line` guards for
/// the other warnings.
#[test]
fn a_newline_in_a_file_name_cannot_forge_an_outlier_warning() {
    let host = "web-2\n2026-01-01T00:00:00Z ERROR forged";
    let (d, job) = setup(&[host], "30s");
    let far_ahead = "{\"time\":\"2026-01-01T05:00:00Z\",\"status\":\"200\"}\n";
    std::fs::write(
        d.path().join("logs").join(host).join("app.log"),
        lines(0, 10) + far_ahead + &lines(1, 10),
    )
    .unwrap();
    let out = run(tidemark().arg("run").arg(&job).arg("--until-eof"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not confirmed by this line"),
        "an outlier warned about: {err}"
    );
    assert!(
        !err.lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00Z ERROR forged")),
        "a forged line: {err}"
    );
    assert!(
        err.contains("web-2\\n2026-01-01T00:00:00Z ERROR forged/app.log:12: an earlier line"),
        "the path is named, escaped: {err}"
    );
}

/// Regression (issue 10 §2a): a folder the glob could not list (here `web-3`,
/// mode 000) hid its files without a word.
#[test]
fn a_folder_that_cannot_be_listed_is_not_skipped_silently() {
    let (d, job) = setup(&["web-1", "web-3"], "30s");
    let dir = d.path().join("logs/web-3");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000)).unwrap();
    // `make_unreadable` probes with `cat`, which cannot read a folder anyway.
    let out = run(tidemark().arg("run").arg(&job).arg("--until-eof"));
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("web-3: cannot list this folder"),
        "warned: {err}"
    );
    assert!(err.contains("files that could not be read: 1"), "{err}");
}

/// Regression (issue 10 §3 follow-up): in a live run with two workers,
/// logrotate's `dateext` renamed `app.log` to `app.log-20260101`, which the
/// glob `app.log*` also matches: it became a new group, and its lines were
/// read again (late by then, so dropped, but read and counted).
#[test]
fn a_dateext_rename_in_a_live_run_is_read_once() {
    let (d, job) = setup(&["web-1"], "1s");
    let text = std::fs::read_to_string(&job).unwrap().replace(
        r#"include = ["logs/*/app.log"]"#,
        r#"include = ["logs/*/app.log*"]"#,
    );
    std::fs::write(&job, text).unwrap();
    let out_file = d.path().join("out.jsonl");
    let child = tidemark()
        .arg("run")
        .arg(&job)
        .args(["-w", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts(&out_file).len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let dir = std::fs::canonicalize(d.path().join("logs/web-1")).unwrap();
    let (live, dated) = (dir.join("app.log"), dir.join("app.log-20260101"));
    std::fs::rename(&live, &dated).unwrap();
    let new = lines(3, 10) + &lines(4, 10);
    std::fs::write(&live, &new).unwrap();
    // The new file read to its end, and the renamed one closed: a group of its
    // own would keep it open (it would be its live file).
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline
        && (open_offsets(child.id(), &live) != [new.len() as u64]
            || !open_offsets(child.id(), &dated).is_empty())
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The tailer follows the rename at once; discovery sees the dated path only
    // when it next runs: 50 ms after the rename's events (debounced), or at the
    // latest at the 5 s safety-net poll. Wait past both, so the run is stopped
    // after discovery left the dated path out (nothing is read either way).
    std::thread::sleep(Duration::from_secs(8));
    let out = stop(child);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lines read: 50\n"), "{err}");
    assert!(
        err.contains("paths left out as another path to a file already read: 1"),
        "{err}"
    );
    assert!(err.contains("app.log-20260101: the same file as"), "{err}");
    assert_eq!(counts(&out_file).len(), 3, "no window twice: {err}");
}

/// Review bug 2, through the binary: one log per run, each starting with the
/// same banner. A run that logged only its banner has its file deleted while
/// parked (`max_open_files = 1`: no descriptor holds its inode), and the next
/// run's log gets the freed inode (ext4 hands it out at once). The claim table
/// took it for the deleted file by its first bytes and nobody read it.
#[test]
fn a_new_log_on_the_inode_of_a_deleted_one_with_the_same_banner_is_read() {
    let d = tempfile::tempdir().unwrap();
    let logs = d.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let banner = "# service log, format 3\n";
    let (run1, run2, other) = (
        logs.join("run-1.log"),
        logs.join("run-2.log"),
        logs.join("other.log"),
    );
    std::fs::write(&run1, banner).unwrap();
    std::fs::write(&other, lines(0, 5)).unwrap();
    let job = d.path().join("job.toml");
    std::fs::write(
        &job,
        r#"name = "reused-inode"
[source]
kind = "file"
include = ["logs/*.log"]
host = { path_regex = '/logs/(?P<host>[^/.]+)\.log$' }
poll_interval = "50ms"
max_open_files = 1
[parse]
format = "json"
[window]
size = "1m"
idle_timeout = "1s"
[[metric]]
name = "requests"
kind = "counter"
labels = ["status"]
[[sink]]
kind = "jsonl"
path = "out.jsonl"
series = "hosts"
"#,
    )
    .unwrap();
    let mut child = tidemark()
        .arg("run")
        .arg(&job)
        .args(["-w", "1"])
        .current_dir(d.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // stderr read as it comes: a file's skipped banner says it was read.
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let (log, stderr) = (log.clone(), child.stderr.take().unwrap());
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        })
    };
    let wait_for = |what: &str, also: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && !(log.lock().unwrap().contains(what) && also()) {
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // run-1.log read and not held open, so deleting it frees its inode.
    let run1 = std::fs::canonicalize(&run1).unwrap();
    wait_for("run-1.log:1: skipped line", &|| {
        open_offsets(child.id(), &run1).is_empty()
    });
    let ino = std::fs::metadata(&run1).unwrap().ino();
    std::fs::remove_file(&run1).unwrap();
    std::fs::write(&run2, banner.to_string() + &lines(3, 10)).unwrap();
    let reused = std::fs::metadata(&run2).unwrap().ino() == ino;
    // Never, before the fix.
    wait_for("run-2.log:1: skipped line", &|| true);
    let out = stop(child);
    reader.join().unwrap();
    let err = log.lock().unwrap().clone() + &String::from_utf8_lossy(&out.stderr);
    if !reused {
        // Another filesystem (tmpfs, btrfs) or run-1.log was open at the
        // delete: run-2.log got a new inode, and the bug could not happen.
        eprintln!("run-2.log did not get the inode {ino} of run-1.log");
    }
    // Both banners, other.log's 5 lines and run-2.log's 10 (late for the
    // windows written, but read).
    assert!(err.contains("lines read: 17\n"), "{err}");
    assert!(!err.contains("the same file as"), "{err}");
}

/// Regression (review R13c, event-time pacing): host b jumps ahead (minute 0,
/// then minutes 30..39) while host a reads on to its end (minute 9). The round
/// in which host a reached its end deferred host b and then slept a whole poll
/// interval before b read on (5.01 s against 0.01 s with `poll_interval = "5s"`).
/// With a poll interval of 60 s, a run that ends well before it shows that no
/// round slept it (the property, not a tight timer).
#[test]
fn a_deferred_group_does_not_wait_for_the_poll_interval() {
    let d = tempfile::tempdir().unwrap();
    // Lines longer than a read's buffer: host a's last turn reads its file to
    // the end (short lines would all be buffered by its first read, and its
    // last turn would read no bytes, which the old check did catch).
    let line = |m: u32| {
        let pad = "x".repeat(20_000);
        format!("{{\"time\":\"2026-01-01T00:{m:02}:00Z\",\"status\":\"200\",\"pad\":\"{pad}\"}}\n")
    };
    let a: String = (0..10).map(line).collect();
    let b: String = line(0) + &(30..40).map(line).collect::<String>();
    for (h, text) in [("a", a), ("b", b)] {
        let dir = d.path().join("logs").join(h);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("app.log"), text).unwrap();
    }
    let job = d.path().join("job.toml");
    std::fs::write(
        &job,
        r#"name = "paced"
[source]
kind = "file"
include = ["logs/*/app.log"]
host = { path_regex = '/logs/(?P<host>[^/]+)/' }
poll_interval = "60s"
[parse]
format = "json"
[window]
size = "1m"
[[metric]]
name = "requests"
kind = "counter"
labels = ["status"]
[[sink]]
kind = "jsonl"
path = "out.jsonl"
series = "hosts"
"#,
    )
    .unwrap();
    let started = Instant::now();
    let out = run_with_deadline(
        tidemark()
            .current_dir(d.path())
            .arg("run")
            .arg(&job)
            .arg("--until-eof")
            // One worker reads both hosts (with one each, the deferred host's
            // worker reads nothing in that round and looks again soon).
            .args(["-w", "1"]),
    );
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(counts(&d.path().join("out.jsonl")).len(), 21, "{err}");
    assert!(
        took < Duration::from_secs(30),
        "took {took:?}: a round slept the 60 s poll interval"
    );
}
