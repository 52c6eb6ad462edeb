//! Which files a jsonl sink takes, through the public API: never a device or a
//! FIFO, never a file another writer holds, never one file twice in one job; a
//! checkpoint's output is found by identity under another path, and after a
//! restore from backup by the checksum of its committed bytes.

use std::path::{Path, PathBuf};

use tidemark_engine::checkpoint::SinkCommit;
use tidemark_engine::{ClosedWindow, Origin, OutputStart, Series, Value};
use tidemark_jobs::{Job, SeriesChoice};
use tidemark_sinks::{open, open_with, Existing, JsonlSink, OutputRoots, Sink};

fn window(minute: i64) -> ClosedWindow {
    ClosedWindow {
        start_ms: minute * 60_000,
        end_ms: (minute + 1) * 60_000,
        series: vec![Series {
            record: "r".into(),
            labels: Default::default(),
            value: Value::Int(minute as u64 + 1),
            origin: Origin::Rule,
        }],
    }
}

/// A job whose jsonl sinks are `sinks` (each printing every series).
fn job(sinks: &[&Path]) -> Job {
    let mut text = String::from(
        r#"name = "j"
[source]
kind = "file"
include = ["/nowhere/*.log"]
[parse]
format = "nginx"
[window]
size = "1m"
[[metric]]
name = "reqs"
kind = "counter"
[[rule]]
record = "all"
expr = "sum(reqs)"
"#,
    );
    for s in sinks {
        text.push_str(&format!(
            "[[sink]]\nkind = \"jsonl\"\npath = \"{}\"\nseries = \"all\"\n",
            s.display()
        ));
    }
    tidemark_jobs::from_str(&text, "j.toml", Path::new("/")).unwrap()
}

fn create(path: &Path) -> Result<JsonlSink, tidemark_sinks::SinkError> {
    JsonlSink::create(
        path,
        SeriesChoice::All,
        Existing::Refuse,
        &OutputRoots::any(),
    )
}

/// Without spawning `mkfifo`: a child forked meanwhile would hold the other
/// tests' output files (and their locks) until it execs.
fn mkfifo(path: &Path) {
    use rustix::fs::{mknodat, FileType, Mode, CWD};
    mknodat(CWD, path, FileType::Fifo, Mode::from_raw_mode(0o600), 0).expect("mkfifo");
}

#[test]
fn a_device_or_fifo_is_not_taken_for_an_empty_output() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("pipe.jsonl");
    mkfifo(&fifo);
    // /proc/self/comm is a regular file of a kernel file system: 0 bytes long, and
    // writing it renames this thread.
    for path in [
        Path::new("/dev/null"),
        fifo.as_path(),
        Path::new("/proc/self/comm"),
    ] {
        let nothing = SinkCommit {
            path: path.to_path_buf(),
            committed_len: 0,
            file: None,
            tail: None,
        };
        let attempts = [
            ("create", create(path).err()),
            (
                "create --overwrite",
                JsonlSink::create(
                    path,
                    SeriesChoice::All,
                    Existing::Replace,
                    &OutputRoots::any(),
                )
                .err(),
            ),
            (
                "open_at",
                JsonlSink::open_at(path, SeriesChoice::All, &nothing, &OutputRoots::any()).err(),
            ),
            (
                "append",
                JsonlSink::append(path, SeriesChoice::All, &OutputRoots::any()).err(),
            ),
        ];
        for (how, err) in attempts {
            let err = err.unwrap_or_else(|| panic!("{how} took {}", path.display()));
            let msg = err.to_string();
            assert!(msg.contains("not a regular file"), "{how}: {msg}");
            assert!(msg.contains("kind = \"stdout\""), "{how}: {msg}");
        }
    }
}

#[test]
fn two_writers_on_one_sink_file_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("o.jsonl");
    let mut first = create(&p).unwrap();
    // Still empty: without a lock the second writer would take it.
    let err = create(&p).err().expect("a second writer was let in");
    let msg = err.to_string();
    assert!(msg.contains("another tidemark"), "{msg}");
    assert!(msg.contains("hint:"), "{msg}");
    // Nor may a resume (another job's checkpoint naming it) cut it back.
    first.write_window(&window(0)).unwrap();
    first.sync().unwrap();
    let commit = first.commit_point().unwrap();
    first.write_window(&window(1)).unwrap();
    first.sync().unwrap();
    let before = std::fs::read(&p).unwrap();
    let err = JsonlSink::open_at(&p, SeriesChoice::All, &commit, &OutputRoots::any())
        .err()
        .expect("a resume cut a file another writer holds");
    assert!(err.to_string().contains("another tidemark"), "{err}");
    assert_eq!(std::fs::read(&p).unwrap(), before, "cut");
    // The lock goes with the writer.
    drop(first);
    JsonlSink::open_at(&p, SeriesChoice::All, &commit, &OutputRoots::any()).unwrap();
}

#[test]
fn two_sinks_of_one_job_reaching_one_file_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(d.path()).unwrap();
    let out = base.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("x.jsonl"), b"").unwrap();
    std::os::unix::fs::symlink(&out, base.join("alias")).unwrap();
    std::os::unix::fs::symlink(out.join("x.jsonl"), out.join("link.jsonl")).unwrap();
    std::fs::hard_link(out.join("x.jsonl"), out.join("hard.jsonl")).unwrap();
    for other in [
        base.join("alias/x.jsonl"),
        out.join("link.jsonl"),
        out.join("hard.jsonl"),
    ] {
        let j = job(&[&out.join("x.jsonl"), &other]);
        let err = open_with(&j, &OutputStart::Fresh, Existing::Refuse)
            .err()
            .unwrap_or_else(|| panic!("{} and x.jsonl both opened", other.display()));
        let msg = err.to_string();
        assert!(msg.contains("same file"), "{}: {msg}", other.display());
    }
}

/// Writes windows `0..n` through the job's sinks and returns their commit points.
fn written(j: &Job, n: i64) -> Vec<SinkCommit> {
    let mut o = open_with(j, &OutputStart::Fresh, Existing::Refuse).unwrap();
    for m in 0..n {
        o.write_window(&window(m)).unwrap();
    }
    let commits = o.sync(n * 60_000).unwrap();
    // Windows after the checkpoint, then a crash.
    o.write_window(&window(n)).unwrap();
    commits
}

#[test]
fn a_checkpoint_finds_its_output_by_identity_under_another_path() {
    let d = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(d.path()).unwrap();
    std::fs::create_dir_all(base.join("tm/out")).unwrap();
    std::os::unix::fs::symlink(base.join("tm"), base.join("etc-tm")).unwrap();
    let first = base.join("tm/jobs.d/../out/x.jsonl");
    std::fs::create_dir_all(base.join("tm/jobs.d")).unwrap();
    let commits = written(&job(&[&first]), 3);
    let committed = commits[0].committed_len;
    assert!(std::fs::metadata(&first).unwrap().len() > committed);
    // The same job file reached by another path: the sink path is spelled otherwise.
    for again in [base.join("tm/out/x.jsonl"), base.join("etc-tm/out/x.jsonl")] {
        let j = job(&[&again]);
        let start = OutputStart::Resume {
            frontier_ms: 180_000,
            sinks: commits.clone(),
        };
        let resumed = open_with(&j, &start, Existing::Refuse);
        assert!(
            resumed.is_ok(),
            "{}: {}",
            again.display(),
            resumed.err().unwrap()
        );
        assert_eq!(std::fs::metadata(&again).unwrap().len(), committed);
    }
}

#[test]
fn a_restored_output_with_another_inode_resumes() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("o.jsonl");
    let mut a = create(&p).unwrap();
    for m in 0..200 {
        a.write_window(&window(m)).unwrap();
    }
    a.sync().unwrap();
    let commit = a.commit_point().unwrap();
    a.write_window(&window(200)).unwrap();
    drop(a);
    assert!(
        commit.committed_len > 4096,
        "covers more than the checked tail"
    );
    // Restored from a backup (or the same file on a remounted device): same bytes,
    // another (device, inode).
    let bytes = std::fs::read(&p).unwrap();
    let restored: PathBuf = d.path().join("restored");
    std::fs::write(&restored, &bytes).unwrap();
    std::fs::rename(&restored, &p).unwrap();
    let s = JsonlSink::open_at(&p, SeriesChoice::All, &commit, &OutputRoots::any());
    assert!(s.is_ok(), "{}", s.err().unwrap());
    assert_eq!(
        std::fs::read(&p).unwrap(),
        bytes[..commit.committed_len as usize]
    );
    drop(s);
    // Another file of the same length is still not the output.
    let mut other = bytes.clone();
    let at = commit.committed_len as usize - 10;
    other[at] ^= 1;
    std::fs::write(&restored, &other).unwrap();
    std::fs::rename(&restored, &p).unwrap();
    let err = JsonlSink::open_at(&p, SeriesChoice::All, &commit, &OutputRoots::any())
        .err()
        .expect("another file was taken");
    // Another inode, or (the original's number reused for it) the same one with
    // other bytes: either way, not the output.
    assert!(
        err.to_string()
            .contains("does not cut back a file it did not write"),
        "{err}"
    );
    assert_eq!(std::fs::read(&p).unwrap(), other, "cut");
}

#[test]
fn a_submitted_jobs_exists_hint_does_not_offer_overwrite() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.jsonl");
    std::fs::write(&p, b"someone's\n").unwrap();
    // `open` opens a submitted job's sinks: `job submit` has no --overwrite.
    let err = open(&job(&[&p]), &OutputStart::Fresh)
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(!msg.contains("--overwrite"), "{msg}");
    assert!(msg.contains("submit"), "{msg}");
    assert!(msg.contains("move it away"), "{msg}");
}
