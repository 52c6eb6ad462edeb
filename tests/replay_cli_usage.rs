//! `tidemark replay`, black-box: bad usage is exit 2 with a clear message, and
//! no file is clobbered (the job file, the live output, an existing output
//! without `--overwrite`, a future rotated sibling).

mod replay_fixture;

use replay_fixture::*;
use std::path::Path;

#[test]
fn replay_refuses_to_overwrite_the_jobs_jsonl_unless_given_output() {
    let f = Fixture::new(Spec {
        minutes: 10,
        ..THREE_HOSTS
    });
    let live_path = f.path("out/live.jsonl");
    let (from, to) = ("2026-11-20T10:02:00Z", "2026-11-20T10:05:00Z");
    let o = replay_cmd(&f.job, from, to, &["--progress", "none"])
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&live_path.display().to_string()),
        "names the file: {err}"
    );
    assert!(err.contains("--output"), "suggests --output: {err}");
    assert!(
        std::fs::read(&live_path).unwrap() == f.live,
        "the live output was changed"
    );

    // An empty file, or none, is not the live run's output: replay writes there.
    for empty in [true, false] {
        if empty {
            std::fs::write(&live_path, b"").unwrap();
        } else {
            std::fs::remove_file(&live_path).unwrap();
        }
        let o = replay_cmd(&f.job, from, to, &["--progress", "none"])
            .output()
            .unwrap();
        assert!(o.status.success(), "empty={empty}: {}", stderr_of(&o));
        assert_same_bytes(
            &format!("into the job's own (empty={empty}) JSONL path"),
            &std::fs::read(&live_path).unwrap(),
            &f.live_range(from, to),
        );
    }
}

#[test]
fn bad_usage_and_invalid_jobs_exit_2_with_a_clear_message() {
    let d = tempfile::tempdir().unwrap();
    let job = d.path().join("job.toml");
    std::fs::write(&job, job_toml("")).unwrap();
    let out = d.path().join("never.jsonl");
    let ok_from = "2026-11-20T10:00:00Z";
    let ok_to = "2026-11-20T10:10:00Z";
    let usage = |job: &Path, from: &str, to: &str, extra: &[&str]| -> String {
        let o = replay_cmd(job, from, to, extra)
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap();
        let err = stderr_of(&o);
        assert_eq!(
            o.status.code(),
            Some(2),
            "replay --from {from} --to {to} {extra:?}: {err}"
        );
        assert!(!out.exists(), "a refused replay created its output file");
        assert!(!err.contains("panicked"), "{err}");
        err
    };

    // --from not RFC 3339: names the flag and shows an example that parses.
    for bad in ["yesterday", "2026-11-20 10:00", "1795168800"] {
        let err = usage(&job, bad, ok_to, &[]);
        assert!(err.contains("--from"), "names --from: {err}");
        assert!(err.contains(bad), "shows the bad value: {err}");
        assert!(
            err.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
                .any(|w| w.parse::<jiff::Timestamp>().is_ok()),
            "shows an RFC 3339 example: {err}"
        );
    }
    let err = usage(&job, ok_from, "10:10", &[]);
    assert!(err.contains("--to"), "names --to: {err}");

    // --to before (or at) --from.
    for to in ["2026-11-20T09:00:00Z", ok_from] {
        let err = usage(&job, ok_from, to, &[]);
        assert!(
            err.contains("--to") && err.contains("--from"),
            "says --to must be after --from: {err}"
        );
    }

    // No whole window inside the range.
    let err = usage(&job, "2026-11-20T10:00:10Z", "2026-11-20T10:00:50Z", &[]);
    assert!(err.contains("window"), "says no whole window fits: {err}");
    let err = usage(&job, "2026-11-20T10:00:30Z", "2026-11-20T10:01:30Z", &[]);
    assert!(err.contains("window"), "says no whole window fits: {err}");

    // Bad --rate-limit.
    for bad in ["fast", "5MiB", "0MiB/s", "5 parsecs/s"] {
        let err = usage(&job, ok_from, ok_to, &["--rate-limit", bad]);
        assert!(
            err.contains("--rate-limit"),
            "{bad:?}: names the flag: {err}"
        );
        assert!(
            err.contains("/s"),
            "{bad:?}: shows a rate like 5MiB/s: {err}"
        );
    }

    // Missing flags and bad values are clap's usage errors: exit 2 too.
    for args in [
        vec!["replay".to_string(), job.display().to_string()],
        vec![
            "replay".to_string(),
            job.display().to_string(),
            "--from".to_string(),
            ok_from.to_string(),
        ],
    ] {
        let o = tidemark().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr_of(&o));
        assert!(stderr_of(&o).contains("--to"), "{}", stderr_of(&o));
    }
    let err = usage(&job, ok_from, ok_to, &["--progress", "sometimes"]);
    assert!(err.contains("--progress"), "{err}");
    let err = usage(&job, ok_from, ok_to, &["--progress-interval", "soon"]);
    assert!(err.contains("--progress-interval"), "{err}");

    // An invalid job file: the validator's message with its position.
    let bad_job = d.path().join("bad.toml");
    std::fs::write(
        &bad_job,
        job_toml("").replace("size = \"1m\"", "size = \"7m\""),
    )
    .unwrap();
    let err = usage(&bad_job, ok_from, ok_to, &[]);
    assert!(err.contains(&format!("{}:", bad_job.display())), "{err}");
    assert!(err.contains("7m"), "{err}");
    // A missing job file.
    let err = usage(&d.path().join("nope.toml"), ok_from, ok_to, &[]);
    assert!(err.contains("nope.toml"), "{err}");
}

/// Plain progress lines: `progress: 42% (…)`; the percentages, in order.
// ---- no clobbered file (issue 10 §4) ---------------------------------------------

#[test]
fn replay_output_onto_the_job_file_is_refused_and_the_job_kept() {
    let f = Fixture::new(Spec {
        minutes: 4,
        ..THREE_HOSTS
    });
    let (from, to) = ("2026-11-20T10:01:00Z", "2026-11-20T10:03:00Z");
    let before = std::fs::read(&f.job).unwrap();
    for extra in [&[][..], &["--overwrite"][..]] {
        let o = replay_cmd(
            &f.job,
            from,
            to,
            &[&["--progress", "none"][..], extra].concat(),
        )
        .arg("--output")
        .arg(&f.job)
        .output()
        .unwrap();
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains("job file"), "{err}");
        assert_eq!(
            std::fs::read(&f.job).unwrap(),
            before,
            "the job file was overwritten"
        );
    }
}

#[test]
fn replay_does_not_clobber_an_existing_output_without_overwrite() {
    let f = Fixture::new(Spec {
        minutes: 4,
        ..THREE_HOSTS
    });
    let (from, to) = ("2026-11-20T10:01:00Z", "2026-11-20T10:03:00Z");
    let out = f.path("notes.txt");
    std::fs::write(&out, "my notes\n").unwrap();
    let o = replay_cmd(&f.job, from, to, &["--progress", "none"])
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--overwrite"), "hint: {err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "my notes\n");
    replay_ok(
        &f.job,
        from,
        to,
        &out,
        &["--progress", "none", "--overwrite"],
    );
    assert_same_bytes(
        "overwritten",
        &std::fs::read(&out).unwrap(),
        &f.live_range(from, to),
    );
}

#[test]
fn replay_output_onto_the_live_output_is_refused_even_with_overwrite() {
    // The help promises --overwrite never replaces the job's own JSONL output;
    // --output naming it must not get around that.
    let f = Fixture::new(Spec {
        minutes: 4,
        ..THREE_HOSTS
    });
    let (from, to) = ("2026-11-20T10:01:00Z", "2026-11-20T10:03:00Z");
    let live_path = f.path("out/live.jsonl");
    for output in [live_path.clone(), f.path("out/../out/live.jsonl")] {
        let o = replay_cmd(&f.job, from, to, &["--progress", "none", "--overwrite"])
            .arg("--output")
            .arg(&output)
            .output()
            .unwrap();
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", output.display());
        assert!(err.contains("output"), "{err}");
        assert!(
            std::fs::read(&live_path).unwrap() == f.live,
            "the live output was replaced"
        );
    }
}

#[test]
fn replay_output_named_like_a_future_rotated_sibling_is_refused() {
    // `logs/web-1/access.log.5` does not exist yet, but the next rotations make it
    // an input of the job: validate refuses it as a sink path, and so must --output.
    let f = Fixture::new(Spec {
        minutes: 4,
        ..THREE_HOSTS
    });
    let (from, to) = ("2026-11-20T10:01:00Z", "2026-11-20T10:03:00Z");
    let output = f.path("logs/web-1/access.log.5");
    let o = replay_cmd(&f.job, from, to, &["--progress", "none"])
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("rotated sibling"), "{err}");
    assert!(!output.exists(), "written");
}
