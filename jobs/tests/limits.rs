//! Limits that keep one job file from hurting the process that checks it (issue 10
//! §1): names the state folder cannot hold, and bodies that would take long to check.

use std::path::Path;

use tidemark_jobs::{from_str_with_env, Env, MAX_JOB_NAME_BYTES};

fn job_named(name: &str) -> String {
    format!(
        "name = \"{name}\"\n[source]\nkind = \"file\"\ninclude = [\"/l/*.log\"]\n\
         [parse]\nformat = \"json\"\n[[metric]]\nname = \"lines\"\nkind = \"counter\"\n\
         [[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n"
    )
}

fn validate(text: &str) -> Result<tidemark_jobs::Job, tidemark_jobs::Diagnostics> {
    from_str_with_env(
        text,
        "job.toml",
        Path::new("/jobs"),
        &Env::from_vars::<&str, &str>([]),
    )
}

#[test]
fn job_name_too_long_for_the_state_folder_is_refused() {
    // A 300-character name passed validation, then the cluster could not create
    // its state files (ENAMETOOLONG) and answered 503.
    let long = "a".repeat(300);
    let diags = validate(&job_named(&long)).expect_err("a 300-character name was accepted");
    assert_eq!(diags.len(), 1, "{diags}");
    let d = &diags[0];
    assert_eq!((d.line, d.column), (1, 8), "{diags}");
    assert_eq!(
        d.message,
        format!("job name is 300 characters long; the limit is {MAX_JOB_NAME_BYTES}")
    );
    assert!(
        d.hint
            .as_deref()
            .is_some_and(|h| h.contains("shorter name")),
        "{diags}"
    );
    // The limit itself is fine, one more is not.
    validate(&job_named(&"b".repeat(MAX_JOB_NAME_BYTES))).expect("a name at the limit");
    validate(&job_named(&"b".repeat(MAX_JOB_NAME_BYTES + 1)))
        .expect_err("a name one past the limit");
    // Room for the longest file tidemark names after a job: `.NAME.toml.tmp`.
    const { assert!(".".len() + MAX_JOB_NAME_BYTES + ".toml.tmp".len() <= 255) };
}

/// CPU time this thread has used, in ns (wall time where the kernel does not say).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            START
                .get_or_init(std::time::Instant::now)
                .elapsed()
                .as_nanos() as u64
        })
}

/// The least CPU time, over `runs` runs, that validating `text` takes.
fn cpu_to_validate(text: &str, runs: usize) -> u64 {
    (0..runs)
        .map(|_| {
            let start = thread_cpu_ns();
            let result = validate(text);
            let spent = thread_cpu_ns() - start;
            drop(result);
            spent
        })
        .min()
        .unwrap_or(0)
}

const HEAD: &str = "name = \"big\"\n[source]\nkind = \"file\"\ninclude = [\"/l/*.log\"]\n[parse]\nformat = \"json\"\n";

/// Job bodies of `n` units, each shape growing one thing a check loops over.
fn shape(kind: &str, n: usize) -> String {
    let mut s = String::from(HEAD);
    match kind {
        // Valid metrics and rules: duplicate checks, positions, lookups.
        "metrics and rules" => {
            for i in 0..n {
                s.push_str(&format!(
                    "[[metric]]\nname = \"m_{i}\"\nkind = \"counter\"\nlabels = [\"a\", \"b\"]\n\
                     [[rule]]\nrecord = \"r:m_{i}\"\nexpr = \"sum by (a) (m_{i})\"\n"
                ));
            }
        }
        // Rules naming metrics that do not exist: every one is an error whose hint
        // could list and compare every defined metric.
        "undefined metrics" => {
            for i in 0..n {
                s.push_str(&format!(
                    "[[metric]]\nname = \"m_{i}\"\nkind = \"counter\"\n\
                     [[rule]]\nrecord = \"r:{i}\"\nexpr = \"sum(x_{i})\"\n"
                ));
            }
        }
        // One metric with `n` labels, and a rule grouping by all of them.
        "wide labels" => {
            let labels: Vec<String> = (0..n).map(|i| format!("\"l{i}\"")).collect();
            let by: Vec<String> = (0..n).map(|i| format!("l{i}")).collect();
            s.push_str(&format!(
                "[[metric]]\nname = \"m\"\nkind = \"counter\"\nlabels = [{}]\n\
                 [[rule]]\nrecord = \"r:m\"\nexpr = \"sum by ({}) (m)\"\n",
                labels.join(", "),
                by.join(", ")
            ));
        }
        // One metric with `n` labels and `n` rules, each grouping on one of them:
        // each rule's grouping built the metric's whole label set.
        "rules grouping on many labels" => {
            let labels: Vec<String> = (0..n).map(|i| format!("\"l{i}\"")).collect();
            s.push_str(&format!(
                "[[metric]]\nname = \"m\"\nkind = \"counter\"\nlabels = [{}]\n",
                labels.join(", ")
            ));
            for i in 0..n {
                s.push_str(&format!(
                    "[[rule]]\nrecord = \"r:{i}\"\nexpr = \"sum by (l{i}) (m)\"\n"
                ));
            }
        }
        // `n` include globs and `n` jsonl sinks: each sink path was matched against
        // every glob (compiling it each time) to refuse a sink that is an input.
        "sinks times include globs" => {
            let globs: Vec<String> = (0..n).map(|i| format!("\"/l/{i}/*.log\"")).collect();
            s = s.replace("[\"/l/*.log\"]", &format!("[{}]", globs.join(", ")));
            s.push_str("[[metric]]\nname = \"m\"\nkind = \"counter\"\n");
            for i in 0..n {
                s.push_str(&format!(
                    "[[sink]]\nkind = \"jsonl\"\npath = \"/out/{i}.jsonl\"\nseries = \"hosts\"\n"
                ));
            }
        }
        // `n` jsonl sinks, each checked against the others for a shared path.
        "sinks" => {
            s.push_str("[[metric]]\nname = \"m\"\nkind = \"counter\"\n");
            for i in 0..n {
                s.push_str(&format!(
                    "[[sink]]\nkind = \"jsonl\"\npath = \"/out/{i}.jsonl\"\nseries = \"hosts\"\n"
                ));
            }
        }
        // One path with `n` bad `$`s: each is reported at its place in the file.
        "dollars" => {
            s = s.replace("\"/l/*.log\"", &format!("\"/l/{}\"", "$a".repeat(n)));
            s.push_str("[[metric]]\nname = \"m\"\nkind = \"counter\"\n");
            s.push_str("[[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n");
        }
        other => panic!("unknown shape {other}"),
    }
    s
}

/// A 1 MiB body with 24k metrics took 17 s of CPU: every position and every
/// duplicate check scanned from the start. Linear work grows 4x when the job does;
/// quadratic work 16x. This compares the CPU time (not wall time: the machine may
/// be loaded) of a job and one 4 times as big, with room for noise.
fn assert_linear(kind: &str, n: usize) {
    let small = cpu_to_validate(&shape(kind, n), 3);
    let big = cpu_to_validate(&shape(kind, 4 * n), 2);
    eprintln!(
        "{kind}: n = {n}: {:.1} ms, 4n: {:.1} ms",
        small as f64 / 1e6,
        big as f64 / 1e6
    );
    assert!(
        big <= 8 * small + 50_000_000,
        "{kind}: validating 4x the job took {:.1}x the CPU time ({} ms vs {} ms): not linear",
        big as f64 / small.max(1) as f64,
        big / 1_000_000,
        small / 1_000_000
    );
}

#[test]
fn validation_is_not_quadratic_in_metrics_and_rules() {
    assert_linear("metrics and rules", 3_000);
}

#[test]
fn validation_is_not_quadratic_in_undefined_metric_errors() {
    assert_linear("undefined metrics", 1_000);
}

#[test]
fn validation_is_not_quadratic_in_labels() {
    assert_linear("wide labels", 5_000);
}

#[test]
fn validation_is_not_quadratic_in_rules_grouping_on_many_labels() {
    assert_linear("rules grouping on many labels", 2_000);
}

#[test]
fn validation_is_not_quadratic_in_sinks_times_include_globs() {
    assert_linear("sinks times include globs", 1_000);
}

#[test]
fn validation_is_not_quadratic_in_sinks() {
    assert_linear("sinks", 2_000);
}

#[test]
fn validation_is_not_quadratic_in_problems_inside_one_value() {
    assert_linear("dollars", 40_000);
}

#[test]
fn problems_past_a_thousand_are_counted_not_listed() {
    // Every problem of a 1 MiB body was listed: half a million `$` errors made
    // tens of megabytes of output (and of API response).
    let diags = validate(&shape("dollars", 5_000)).unwrap_err();
    assert_eq!(diags.len(), 1_001);
    assert_eq!(diags[0].line, 4, "{}", diags[0]);
    let last = diags.last().unwrap();
    assert_eq!(last.message, "4000 more problems are not shown");
    assert_eq!(last.line, 0);
}
