//! `tidemark replay`, black-box: a replayed range equals the live run's windows
//! byte for byte (any worker count, many segments, rotated, compressed and
//! archived files), and files outside the range are skipped. Usage and
//! overwriting are in `replay_cli_usage.rs`; progress, the rate limit and Ctrl-C
//! in `replay_cli_progress.rs`.

mod replay_fixture;

use replay_fixture::*;
#[test]
fn replay_of_an_inner_range_equals_the_live_windows_byte_for_byte() {
    let f = Fixture::new(THREE_HOSTS);
    let (from, to) = ("2026-11-20T10:07:00Z", "2026-11-20T10:23:00Z");
    let want = f.live_range(from, to);
    assert_eq!(
        window_starts(&want).len(),
        16,
        "the live run has every window of the range"
    );
    let seg = ["--segment-bytes", "16384", "--progress", "none"];
    let (out1, out2) = (f.path("w1.jsonl"), f.path("w2.jsonl"));
    // --output replaces whatever was there, with --overwrite.
    std::fs::write(&out1, "stale\n".repeat(100_000)).unwrap();
    let err1 = replay_ok(
        &f.job,
        from,
        to,
        &out1,
        &[&["-w", "1", "--overwrite"][..], &seg].concat(),
    );
    let err2 = replay_ok(&f.job, from, to, &out2, &[&["-w", "2"][..], &seg].concat());
    // Many segments, so cuts fall inside files and windows.
    assert!(plan_line(&err1).segments >= 10, "{err1}");
    assert!(plan_line(&err2).segments >= 10, "{err2}");
    let (got1, got2) = (std::fs::read(&out1).unwrap(), std::fs::read(&out2).unwrap());
    assert_same_bytes("-w 1", &got1, &want);
    assert_same_bytes("-w 2", &got2, &want);
    assert!(got1 == got2, "-w 1 and -w 2 differ");

    // A range not on window boundaries replays the whole windows inside it.
    let out3 = f.path("unaligned.jsonl");
    let err = replay_ok(
        &f.job,
        "2026-11-20T10:06:30Z",
        "2026-11-20T10:23:59Z",
        &out3,
        &["-w", "2", "--progress", "none"],
    );
    assert_same_bytes("unaligned range", &std::fs::read(&out3).unwrap(), &want);
    assert!(
        err.contains(&format!("[{from}, {to})")),
        "says which whole windows it replays: {err}"
    );
}

#[test]
fn replay_of_a_range_covering_everything_equals_the_whole_live_output() {
    let f = Fixture::new(THREE_HOSTS);
    for workers in ["1", "2"] {
        let out = f.path(&format!("all-w{workers}.jsonl"));
        replay_ok(
            &f.job,
            "2026-11-20T09:00:00Z",
            "2026-11-20T12:00:00Z",
            &out,
            &[
                "-w",
                workers,
                "--segment-bytes",
                "50000",
                "--progress",
                "none",
            ],
        );
        assert_same_bytes(
            &format!("whole range, -w {workers}"),
            &std::fs::read(&out).unwrap(),
            &f.live,
        );
    }
}

#[test]
fn archived_files_are_read_and_the_result_equals_the_live_run_before_archiving() {
    let spec = THREE_HOSTS;
    // The live output over every file, before anything is archived.
    let f = Fixture::new(spec);
    // The three oldest siblings of each host (access.log.5.gz, access.log.4.gz,
    // access.log.3: the first 20 minutes) move to
    // DIR/archive/web-N/access.log-DATE[.gz].
    for host in 1..=spec.hosts {
        for (i, name) in [
            (0, "access.log-20261117.gz"),
            (1, "access.log-20261118.gz"),
            (2, "access.log-20261119"),
        ] {
            let from = f.path(&format!("logs/web-{host}/{}", file_name(&spec, i)));
            let to = f.path(&format!("archive/web-{host}/{name}"));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::rename(&from, &to).unwrap();
        }
    }
    let archived = f.job_variant("archived.toml", r#"archive = ["archive/*/access.log-*"]"#);
    // 10:02 .. 10:27 needs the archived lines and the live group's.
    for (from, to) in [
        ("2026-11-20T10:02:00Z", "2026-11-20T10:27:00Z"),
        ("2026-11-20T09:00:00Z", "2026-11-20T12:00:00Z"),
    ] {
        let out = f.path("archived.jsonl");
        let err = replay_ok(
            &archived,
            from,
            to,
            &out,
            &[
                "-w",
                "2",
                "--segment-bytes",
                "20000",
                "--progress",
                "none",
                "--overwrite",
            ],
        );
        assert_same_bytes(
            &format!("with the archive, {from} .. {to}"),
            &std::fs::read(&out).unwrap(),
            &f.live_range(from, to),
        );
        assert_eq!(
            plan_line(&err).files,
            (spec.hosts * spec.files) as u64,
            "every live, rotated and archived file is looked at: {err}"
        );
    }
    // Without the archive glob the early windows lack those lines: the archive
    // was needed.
    let (from, to) = ("2026-11-20T10:02:00Z", "2026-11-20T10:27:00Z");
    let out = f.path("no-archive.jsonl");
    replay_ok(&f.job, from, to, &out, &["--progress", "none"]);
    assert!(
        std::fs::read(&out).unwrap() != f.live_range(from, to),
        "the archived files made no difference: the test proves nothing"
    );
}

#[test]
fn files_outside_a_narrow_range_are_skipped_without_being_read() {
    // 2 hosts of 10 files (~70 kB, 4 minutes each; the 2 oldest gzipped).
    let spec = Spec {
        hosts: 2,
        minutes: 40,
        per_sec: 3,
        files: 10,
        gzipped: 2,
    };
    let f = Fixture::new(spec);
    let (from, to) = ("2026-11-20T10:21:00Z", "2026-11-20T10:23:00Z");
    let out = f.path("narrow.jsonl");
    let err = replay_ok(&f.job, from, to, &out, &["-w", "2", "--progress", "none"]);
    let plan = plan_line(&err);
    let files = (spec.hosts * spec.files) as u64;
    assert_eq!(plan.files, files, "{err}");
    // The range lies in one or two files of each host (a little more with the
    // disorder bound): at least 7 of each host's 10 are skipped.
    assert!(
        plan.skipped >= 7 * spec.hosts as u64 && plan.skipped < files,
        "skipped {} of {files} files: {err}",
        plan.skipped
    );
    assert!(
        plan.in_files > 0.5 * f.log_bytes as f64,
        "the total counts every file (gzipped ones compressed): {err}"
    );
    // 2 minutes are 1/20 of the data; the segments start and end near them, and
    // the search reads little more than the ends of the skipped files.
    assert!(
        plan.to_read < plan.in_files / 8.0,
        "segments cover {} of {} bytes: {err}",
        plan.to_read,
        plan.in_files
    );
    assert!(
        plan.to_read + plan.search < plan.in_files / 3.0,
        "segments and search read {} + {} of {} bytes: {err}",
        plan.to_read,
        plan.search,
        plan.in_files
    );
    let read = summary_count(&err, "bytes read");
    assert!(
        (read as f64) < plan.in_files / 8.0,
        "bytes read: {read} of {}: {err}",
        plan.in_files
    );
    assert_same_bytes(
        "narrow range",
        &std::fs::read(&out).unwrap(),
        &f.live_range(from, to),
    );
}

#[test]
fn replay_equals_live_on_awkward_input_and_tiny_segments() {
    // Disorder exactly at the bound (5 s), malformed and CRLF lines, a 5-minute
    // gap with no lines at all, and a live file whose last line is unterminated.
    let dir = tempfile::tempdir().unwrap();
    let t0 = secs(T0);
    // Only the file layout: 5 files per host, the 2 oldest gzipped.
    let spec = Spec {
        files: 5,
        gzipped: 2,
        ..THREE_HOSTS
    };
    for host in 1..=3usize {
        let mut rng = Rng(77 + host as u64);
        let mut lines = Vec::new();
        for s in 0..30 * 60i64 {
            if (600..900).contains(&s) {
                continue;
            }
            for _ in 0..rng.below(3) {
                let t = t0 + s - rng.below(6) as i64;
                lines.push(nginx_line(&mut rng, host, t));
            }
        }
        for i in (0..lines.len()).step_by(37) {
            lines[i] = "not a log line\n".into();
        }
        for i in (5..lines.len()).step_by(53) {
            lines[i] = lines[i].replace('\n', "\r\n");
        }
        lines.last_mut().unwrap().pop();
        for (i, chunk) in lines.chunks(lines.len().div_ceil(spec.files)).enumerate() {
            let path = dir
                .path()
                .join(format!("logs/web-{host}"))
                .join(file_name(&spec, i));
            write_file(&path, chunk, i < spec.gzipped);
        }
    }
    let job = dir.path().join("job.toml");
    std::fs::write(&job, job_toml("")).unwrap();
    let o = tidemark()
        .arg("run")
        .arg(&job)
        .arg("--until-eof")
        .output()
        .unwrap();
    let err = stderr_of(&o);
    assert!(o.status.success(), "live run: {err}");
    assert_eq!(summary_count(&err, "late lines (dropped)"), 0, "{err}");
    assert!(
        summary_count(&err, "malformed lines (skipped)") > 0,
        "{err}"
    );
    let f = Fixture {
        job,
        log_bytes: 0,
        live: std::fs::read(dir.path().join("out/live.jsonl")).unwrap(),
        dir,
    };
    for (from, to) in [
        ("2026-11-20T09:00:00Z", "2026-11-20T11:00:00Z"),
        ("2026-11-20T10:09:00Z", "2026-11-20T10:16:00Z"),
        ("2026-11-20T09:59:00Z", "2026-11-20T10:01:00Z"),
        ("2026-11-20T10:29:00Z", "2026-11-20T10:31:00Z"),
    ] {
        let want = f.live_range(from, to);
        assert!(!want.is_empty());
        for w in ["1", "3"] {
            let out = f.path("x.jsonl");
            // Segments of a few lines each: cuts everywhere.
            let args = [
                "-w",
                w,
                "--segment-bytes",
                "300",
                "--progress",
                "none",
                "--overwrite",
            ];
            let err = replay_ok(&f.job, from, to, &out, &args);
            assert_same_bytes(
                &format!("{from} .. {to} -w {w}"),
                &std::fs::read(&out).unwrap(),
                &want,
            );
            assert_eq!(summary_count(&err, "late lines (dropped)"), 0, "{err}");
        }
    }
}
