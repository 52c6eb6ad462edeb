//! A job's sinks through the engine's one sink interface: every file sink's commit
//! point is recorded, a resume cuts each back to its own, and the sinks are named.

use std::path::Path;

use tidemark_engine::checkpoint::SinkCommit;
use tidemark_engine::{ClosedWindow, Origin, OutputStart, Series, Value};
use tidemark_jobs::Job;
use tidemark_sinks::{open_with, Existing};

fn window(minute: i64) -> ClosedWindow {
    ClosedWindow {
        start_ms: minute * 60_000,
        end_ms: (minute + 1) * 60_000,
        series: vec![Series {
            record: "all".into(),
            labels: Default::default(),
            value: Value::Int(minute as u64 * 7 + 1),
            origin: Origin::Rule,
        }],
    }
}

/// A job writing to the jsonl files `files` and, between them, standard output.
fn job(files: [&Path; 2]) -> Job {
    let sink = |p: &Path| format!("[[sink]]\nkind = \"jsonl\"\npath = \"{}\"\n", p.display());
    let text = format!(
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
{}[[sink]]
kind = "stdout"
series = "hosts"
{}"#,
        sink(files[0]),
        sink(files[1])
    );
    tidemark_jobs::from_str(&text, "j.toml", Path::new("/")).unwrap()
}

fn len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[test]
fn every_file_sink_records_its_commit_point_and_a_resume_cuts_each_back_to_it() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.jsonl"), d.path().join("b.jsonl"));
    let j = job([&a, &b]);

    let mut sinks = open_with(&j, &OutputStart::Fresh, Existing::Refuse).unwrap();
    assert_eq!(
        sinks.describe(),
        vec![
            format!("jsonl {}", a.display()),
            format!("jsonl {}", b.display()),
            "stdout table".to_string(),
        ]
    );
    for m in 0..3 {
        sinks.write_window(&window(m)).unwrap();
    }
    let commits: Vec<SinkCommit> = sinks.sync(3 * 60_000).unwrap();
    let named: Vec<(&Path, u64)> = commits
        .iter()
        .map(|c| (c.path.as_path(), c.committed_len))
        .collect();
    assert_eq!(named, vec![(a.as_path(), len(&a)), (b.as_path(), len(&b))]);
    assert!(commits.iter().all(|c| c.file.is_some() && c.tail.is_some()));
    // Windows after the checkpoint, then a crash.
    for m in 3..5 {
        sinks.write_window(&window(m)).unwrap();
    }
    drop(sinks);
    assert!(len(&a) > commits[0].committed_len);

    let start = OutputStart::Resume {
        frontier_ms: 3 * 60_000,
        sinks: commits.clone(),
    };
    let mut resumed = open_with(&j, &start, Existing::Refuse).unwrap();
    assert_eq!(len(&a), commits[0].committed_len, "a cut back");
    assert_eq!(len(&b), commits[1].committed_len, "b cut back");
    for m in 3..6 {
        resumed.write_window(&window(m)).unwrap();
    }
    resumed.finish().unwrap();

    // Exactly what one uninterrupted run writes.
    let (wa, wb) = (
        d.path().join("whole-a.jsonl"),
        d.path().join("whole-b.jsonl"),
    );
    let mut whole = open_with(&job([&wa, &wb]), &OutputStart::Fresh, Existing::Refuse).unwrap();
    for m in 0..6 {
        whole.write_window(&window(m)).unwrap();
    }
    whole.finish().unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&wa).unwrap());
    assert_eq!(std::fs::read(&b).unwrap(), std::fs::read(&wb).unwrap());
    assert_eq!(std::fs::read_to_string(&a).unwrap().lines().count(), 6);
}

/// Regression (issue 11 review): the one sink layer called a job's sinks in the
/// order of its job file, where file sinks used to come first; with `stdout`
/// listed first, a closed pipe (`| head`) failed the job before the files got the
/// window. Files come first again, then the others, each in job-file order.
#[test]
fn file_sinks_get_each_window_before_standard_output() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.jsonl"), d.path().join("b.jsonl"));
    // The stdout sink is between the two files in the job file.
    let sinks = open_with(&job([&a, &b]), &OutputStart::Fresh, Existing::Refuse).unwrap();
    let order = sinks.describe();
    assert_eq!(order.len(), 3, "{order:?}");
    assert!(order[0].contains("a.jsonl"), "{order:?}");
    assert!(order[1].contains("b.jsonl"), "{order:?}");
    assert!(order[2].starts_with("stdout"), "{order:?}");
}
