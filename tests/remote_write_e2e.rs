//! The remote-write sink end to end, against a real Prometheus 2.42
//! (`--web.enable-remote-write-receiver`), issue 12 "Tests and figures": the
//! samples queried back equal the JSONL output for every series and window —
//! after an uninterrupted run, after `kill -9` mid-stream and a restart, and
//! through a receiver that answers 500 for a while or is down for a while
//! (reads pause; nothing lost); a 400 is not retried and fails the job.

mod rw_e2e;
mod stack;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rw_e2e::proxy::Proxy;
use rw_e2e::*;

#[test]
fn prometheus_holds_exactly_the_jsonl_values_for_every_series_and_window() {
    let d = tempfile::tempdir().unwrap();
    write_logs(d.path(), seed("exact"), 60);
    let prom = prometheus();
    let job = write_job(d.path(), &prom.url(), "", "max_samples_per_send = 50");
    let out = run(&job, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let jsonl = read_jsonl(&d.path().join("out/rw.jsonl"));
    assert_same(&jsonl, &read_prometheus(&prom), "one run");
    // All 35 windows, with rules, per-host counters, sums and histograms.
    let windows: std::collections::BTreeSet<i64> = jsonl.keys().map(|k| k.2).collect();
    assert_eq!(windows.len(), 35, "{windows:?}");
    for record in [
        "status:http_requests:sum1m",
        "job:http_request_duration_seconds:p99_1m",
        "http_requests_total",
        "http_response_bytes_total",
        "http_request_duration_seconds",
        "http_request_duration_seconds_count",
        "http_request_duration_seconds_sum",
    ] {
        assert!(jsonl.keys().any(|k| k.0 == record), "no {record}");
    }
}

/// The checkpoint file's identity: a save replaces it (rename), so it changes
/// with every checkpoint written.
fn checkpoint_id(state: &std::path::Path) -> Option<(u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(state.join("rw").join("checkpoint")).ok()?;
    Some((m.ino(), m.modified().ok()?))
}

/// The largest window end in the JSONL file now (0 when empty).
fn last_window_end(path: &std::path::Path) -> i64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Only whole lines: the file may be mid-write.
    text.lines()
        .filter(|l| l.ends_with('}'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["end"].as_str()?.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_millisecond())
        .max()
        .unwrap_or(0)
}

#[test]
fn kill_9_mid_stream_and_a_restart_leave_prometheus_exact() {
    let d = tempfile::tempdir().unwrap();
    let seed = seed("kill -9");
    let mut rng = Rng(seed ^ 0x9e37);
    write_logs(d.path(), seed, 200);
    let prom = prometheus();
    // Paced, so that the kills come mid-stream; small requests, so that a window
    // spans several.
    let job = write_job(
        d.path(),
        &prom.url(),
        "rate_limit = \"150KiB/s\"\nread_chunk = \"16KiB\"",
        "max_samples_per_send = 40",
    );
    let state = d.path().join("state");
    let state_arg = state.to_str().unwrap();
    let args = ["--state-dir", state_arg, "--checkpoint-interval", "1500ms"];
    let out_file = d.path().join("out/rw.jsonl");
    let mut resent_total = 0;
    for round in 0..3 {
        let mut child = spawn_run(&job, &args);
        // The run writes one checkpoint as it starts; the next one commits
        // windows.
        let mut seen = checkpoint_id(&state);
        for what in ["the start checkpoint", "a checkpoint of windows"] {
            wait_until(&mut child, what, || {
                let now = checkpoint_id(&state);
                now.is_some() && now != seen
            });
            seen = checkpoint_id(&state);
        }
        // Samples newer than every window in the JSONL when the checkpoint
        // was seen are past its frontier: acknowledged, not yet committed —
        // what a restart must send again without harm. Two windows of them, so
        // that a resent request is older than what Prometheus holds.
        let end = last_window_end(&out_file);
        wait_until(&mut child, "samples past the checkpoint", || {
            read_prometheus(&prom).keys().any(|k| k.2 > end + 120_000)
        });
        // Then a random moment: mid-window, mid-request, mid-checkpoint.
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        assert!(
            child.try_wait().unwrap().is_none(),
            "round {round}: the run ended before the kill"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // What the restart sends again: the samples Prometheus holds of windows
        // the last checkpoint does not cover (its frontier is a window start; a
        // sample carries its window's end).
        let frontier = tidemark_engine::checkpoint::CheckpointStore::open(&state.join("rw"), "rw")
            .unwrap()
            .load()
            .unwrap()
            .expect("a checkpoint")
            .frontier_ms;
        let held = read_prometheus(&prom);
        let resent = held.keys().filter(|k| k.2 > frontier).count();
        eprintln!(
            "kill {round}: {} samples in Prometheus, {resent} past the checkpoint (sent again)",
            held.len()
        );
        resent_total += resent;
    }
    assert!(
        resent_total > 0,
        "no kill left acknowledged samples to resend"
    );

    let again = run(&job, &args);
    let err = stderr(&again);
    assert!(again.status.success(), "{err}");
    eprintln!(
        "the last run's sink: {}",
        summary_line(&err, "prometheus_remote_write ").unwrap_or("(no line)")
    );
    let jsonl = read_jsonl(&out_file);
    assert_same(
        &jsonl,
        &read_prometheus(&prom),
        "after kill -9 and a restart",
    );
    for text in [err.as_str(), prom.log().as_str()] {
        assert!(
            !text.contains("duplicate sample for timestamp"),
            "a resent sample differed from the first copy:\n{text}"
        );
    }
}

#[test]
fn a_receiver_answering_500_then_recovering_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    write_logs(d.path(), seed("500"), 60);
    let prom = prometheus();
    const FAILING: u64 = 6;
    let proxy = Proxy::start(
        prom.url(),
        Box::new(|n| (n < FAILING).then(|| (500, "try again later".to_string()))),
    );
    let job = write_job(
        d.path(),
        &proxy.url(),
        "",
        "max_samples_per_send = 100\nmin_backoff = \"10ms\"\nmax_backoff = \"200ms\"",
    );
    let out = run(&job, &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(proxy.answered(), FAILING);
    assert!(proxy.forwarded() > 0);
    assert_same(
        &read_jsonl(&d.path().join("out/rw.jsonl")),
        &read_prometheus(&prom),
        "after 500s",
    );
    let retries = retries_reported(&err);
    assert!(retries >= FAILING, "{retries} retries reported:\n{err}");
}

#[test]
fn a_400_is_not_retried_and_fails_the_job() {
    let d = tempfile::tempdir().unwrap();
    write_logs(d.path(), seed("400"), 20);
    let prom = prometheus();
    let proxy = Proxy::start(
        prom.url(),
        Box::new(|_| Some((400, "bad request: no such thing".to_string()))),
    );
    let job = write_job(d.path(), &proxy.url(), "", "min_backoff = \"10ms\"");
    let out = run(&job, &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    eprintln!(
        "exit {:?}; {}",
        out.status.code(),
        err.lines().last().unwrap_or("")
    );
    assert_eq!(proxy.requests(), 1, "a 400 was retried:\n{err}");
    assert!(
        err.contains("400"),
        "the error does not name the status:\n{err}"
    );
    assert!(err.contains("bad request: no such thing"), "{err}");
    assert!(
        read_prometheus(&prom).is_empty(),
        "nothing was forwarded, yet Prometheus holds samples"
    );
}

#[test]
fn a_receiver_down_for_a_while_pauses_reads_and_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    write_logs(d.path(), seed("down"), 120);
    let prom = prometheus();
    // Down: every connection is closed without an answer, as by a receiver
    // that went away, until the test says it is back.
    let down = Arc::new(AtomicBool::new(true));
    let proxy = {
        let down = down.clone();
        Proxy::start(
            prom.url(),
            Box::new(move |_| down.load(Ordering::SeqCst).then(|| (0, String::new()))),
        )
    };
    // A queue of about one window: the sink is backlogged within two.
    let job = write_job(
        d.path(),
        &proxy.url(),
        "rate_limit = \"300KiB/s\"\nread_chunk = \"16KiB\"",
        "max_samples_per_send = 50\nqueue_capacity = 100\nmin_backoff = \"10ms\"\nmax_backoff = \"100ms\"",
    );
    let mut child = spawn_run(&job, &[]);
    wait_until(&mut child, "the first attempt", || proxy.requests() > 0);
    // Down for a while: reads pause, attempts go on.
    let tries = proxy.requests();
    wait_until(&mut child, "more attempts", || {
        proxy.requests() > tries + 10
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended while down"
    );
    down.store(false, Ordering::SeqCst);
    let out = finish(child);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(proxy.forwarded() > 0);
    let paused = summary_line(&err, "reads paused for a backlogged sink")
        .unwrap_or_else(|| panic!("no pause reported:\n{err}"));
    eprintln!("{paused}");
    assert_same(
        &read_jsonl(&d.path().join("out/rw.jsonl")),
        &read_prometheus(&prom),
        "after the receiver was down",
    );
}

/// The retries the run's summary reports for its remote-write sink.
fn retries_reported(stderr: &str) -> u64 {
    // `prometheus_remote_write URL: N sample(s) in M request(s) acknowledged, R retries…`
    let line = summary_line(stderr, "prometheus_remote_write ")
        .unwrap_or_else(|| panic!("no remote-write sink in the summary:\n{stderr}"));
    let before = line.split(" retries").next().unwrap_or("");
    before
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}

/// SIGTERM ends a live job whose receiver is down and whose reads are paused:
/// nothing hangs (the sink's retries and the paused sources both see the stop).
#[test]
fn sigterm_ends_a_job_paused_by_a_down_receiver() {
    let d = tempfile::tempdir().unwrap();
    write_logs(d.path(), seed("sigterm"), 120);
    let prom = prometheus();
    let proxy = Proxy::start(prom.url(), Box::new(|_| Some((503, "down".to_string()))));
    let job = write_job(
        d.path(),
        &proxy.url(),
        "",
        "queue_capacity = 100\nmin_backoff = \"10ms\"\nmax_backoff = \"100ms\"",
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("run")
        .arg(&job)
        .args(["--status-interval", "200ms"])
        .env("TIDEMARK_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The status line says when reads pause; read stderr as it comes.
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("no status line said the reads paused");
        if line.contains("reads paused:") {
            break;
        }
    }
    // Reads can pause on a full queue before the sink's first request has
    // reached the receiver: wait for one (the receiver is down, so it fails).
    let tries_deadline = std::time::Instant::now() + Duration::from_secs(120);
    while proxy.requests() == 0 && std::time::Instant::now() < tries_deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(proxy.requests() > 0, "the sink never tried the receiver");
    let pid = child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tidemark did not stop after SIGTERM while its receiver was down"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = reader.join().unwrap();
    eprintln!(
        "exit {:?}; {}",
        status.code(),
        err.lines().last().unwrap_or("")
    );
    // Nothing was acknowledged, so nothing is committed: the job says so and
    // fails (the next run sends it all).
    assert!(!status.success(), "{err}");
    assert!(err.contains("stopped"), "{err}");
    assert!(read_prometheus(&prom).is_empty());
}
