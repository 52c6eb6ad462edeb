//! A sink that fails stops the job with an error that names it and keeps its
//! reason; the sinks before it in the job's list got the window, none after.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use common::{job_from, live_options, nginx_line, write_file, Collected};
use tidemark_engine::sink::{BoxError, Sink, Sinks};
use tidemark_engine::{run_job, ClosedWindow, RunOptions};

const T0: i64 = 1_795_168_800;

#[derive(Debug, thiserror::Error)]
#[error("disk full after {0} windows (test)")]
struct Full(usize);

/// Takes `cap` windows, then fails.
struct Failing {
    taken: usize,
    cap: usize,
}

impl Sink for Failing {
    fn describe(&self) -> String {
        "failing test sink".to_string()
    }
    fn write_window(&mut self, _: &ClosedWindow) -> Result<(), BoxError> {
        if self.taken == self.cap {
            return Err(Full(self.cap).into());
        }
        self.taken += 1;
        Ok(())
    }
}

#[test]
fn a_failing_sink_is_named_in_the_jobs_error_with_its_reason() {
    let d = tempfile::tempdir().unwrap();
    // Five minutes of data: five windows at the end of input.
    let lines: Vec<String> = (0..300)
        .map(|i| nginx_line(T0 + i, "GET", 200, 1, 1))
        .collect();
    write_file(&d.path().join("h/access.log"), &lines, false);
    let job = job_from(
        r#"
name = "fails"
[source]
kind = "file"
include = ["*/access.log"]
[parse]
format = "nginx"
[[metric]]
name = "reqs"
kind = "counter"
[[rule]]
record = "total"
expr = "sum(reqs)"
[[sink]]
kind = "stdout"
"#,
        d.path(),
    );
    let before = Collected::default();
    let after = Collected::default();
    let sinks = {
        let (before, after) = (before.clone(), after.clone());
        move |_: &_| {
            Ok(Sinks::new(vec![
                Box::new(before),
                Box::new(Failing { taken: 0, cap: 2 }),
                Box::new(after),
            ]))
        }
    };
    let opts = RunOptions {
        until_eof: true,
        ..live_options(1, Arc::new(AtomicBool::new(false)))
    };
    let err = run_job(&job, opts, Box::new(sinks)).expect_err("the sink failed");
    let text = err.to_string();
    assert!(text.contains("the sink failing test sink failed"), "{text}");
    assert!(text.contains("disk full after 2 windows (test)"), "{text}");
    // The third window (10:02) is the one it failed on.
    assert!(text.contains("2026-11-20T10:02:00Z"), "{text}");
    assert_eq!(before.0.lock().unwrap().len(), 3, "the sink before it");
    assert_eq!(after.0.lock().unwrap().len(), 2, "the sink after it");
}
