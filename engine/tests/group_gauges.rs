//! Each group's figures (`JobStats::groups`, for `/metrics`) are published only
//! when a caller asked for them (`JobStats::groups_wanted`): a run nobody
//! scrapes does not copy every group's path each second.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use common::{job_from, live_options, nginx_line, write_file, Collected};
use tidemark_engine::{fixed_output, run_job, JobStats, RunOptions};

fn run(dir: &std::path::Path, wanted: bool) -> JobStats {
    let job = job_from(
        r#"
name = "g"
[source]
kind = "file"
include = ["logs/*/access.log"]
host = { path_regex = '/logs/(?P<host>[^/]+)/' }
[parse]
format = "nginx"
[[metric]]
name = "reqs"
kind = "counter"
[[rule]]
record = "job:reqs:sum1m"
expr = "sum(reqs)"
"#,
        dir,
    );
    let shared = Arc::new(Mutex::new(JobStats {
        groups_wanted: wanted,
        ..JobStats::default()
    }));
    let opts = RunOptions {
        until_eof: true,
        stats: Some(shared),
        ..live_options(1, Arc::new(AtomicBool::new(false)))
    };
    let out = Collected::default();
    run_job(&job, opts, fixed_output(Box::new(out)))
        .expect("run")
        .stats
}

#[test]
fn group_figures_are_published_only_when_wanted() {
    let d = tempfile::tempdir().unwrap();
    for host in ["web-1", "web-2"] {
        let lines: Vec<String> = (0..5)
            .map(|i| nginx_line(1_795_168_800 + i, "GET", 200, 10, 5))
            .collect();
        write_file(
            &d.path().join(format!("logs/{host}/access.log")),
            &lines,
            false,
        );
    }
    let quiet = run(d.path(), false);
    assert_eq!(quiet.lines_read, 10);
    assert!(quiet.groups.is_empty(), "{:?}", quiet.groups);
    let scraped = run(d.path(), true);
    assert_eq!(scraped.groups.len(), 2, "{:?}", scraped.groups);
    let lines: u64 = scraped.groups.values().map(|g| g.lines_read).sum();
    assert_eq!(lines, 10);
}
