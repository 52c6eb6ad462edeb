//! A cluster of two OS processes on 127.0.0.1 (issue 5): each member reads the
//! files of its own "machine" (`${LOG_ROOT}` differs per member), rollups span
//! both, and process 0 writes the one output. Output is compared byte for byte
//! with `tidemark run --until-eof` over both machines' files. Flags and start-up
//! are in `cluster_two_processes_flags.rs`.

mod member;
mod two_members;

use member::{append_host, expected, text, tidemark, wait_for_output, windows_before, T0};
use std::time::Duration;
use two_members::{append, http_get, job, start, status, wait_until, Cluster, TOKEN};

#[test]
fn a_two_process_cluster_runs_jobs_exactly_once_across_restarts() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    std::fs::write(d.join("token"), TOKEN).unwrap();
    append(d, T0, 300); // 10:00:00 – 10:04:58 on both machines
                        // `a` closes windows by the data only (idle 1h), so lines added while the
                        // cluster is down are not late; `b` closes them once input stops (idle 1s).
    let a = job(d, "a", "1h");
    let b = job(d, "b", "1s");
    let mut c = start(d, "1");

    // The token is required (the API listens on loopback).
    let (code, body) = http_get(&c.zero.api, "/jobs", None);
    assert_eq!(code, 401, "{body}");
    let o = tidemark()
        .args(["job", "list", "--api", &c.zero.api])
        .env("TIDEMARK_API_TOKEN", "wrong")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("401"), "{}", text(&o));

    // Job a: both machines' lines, rolled up across members, equal the oracle.
    let o = c.job(&["submit", a.submitted.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    // Watermark 10:04:53: the windows before 10:04 are closed.
    let want_a = windows_before(&expected(d, &a.reference, &a.out), 4);
    assert!(String::from_utf8_lossy(&want_a).contains("web-2"));
    wait_for_output(&a.out, &want_a, &c.zero);

    // Job b while a runs: every window (idle input closes them).
    let o = c.job(&["submit", b.submitted.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    wait_for_output(&b.out, &expected(d, &b.reference, &b.out), &c.zero);

    // Status counts the lines of both members.
    let lines_per_member = 150;
    wait_until(
        &c,
        "job b's status did not count both members' lines",
        || lines_read(&c) == 2 * lines_per_member,
    );
    let s = status(&c, b.name);
    assert_eq!(s["lines_read_by_member"]["1"], lines_per_member, "{s}");
    assert_eq!(s["errors"]["late"], 0, "{s}");
    // Both members found files: nothing to warn about.
    assert_eq!(s["warnings"], serde_json::json!([]), "{s}");

    // Bad submissions: 400 with validate's message, 409, 404.
    let bad = d.join("bad.toml");
    std::fs::write(&bad, "name = \"bad\"\n").unwrap();
    let o = c.job(&["submit", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("missing required key `source`") && text(&o).contains("400"),
        "{}",
        text(&o)
    );
    let o = c.job(&["submit", a.submitted.to_str().unwrap()]);
    assert!(text(&o).contains("409"), "{}", text(&o));
    let o = c.job(&["stop", "nope"]);
    assert!(text(&o).contains("404"), "{}", text(&o));

    // A job member 1 cannot run (no ${ONLY_ON_0} there) runs on neither, and
    // says which member and why.
    let only0 = d.join("only0.toml");
    let text0 = std::fs::read_to_string(&a.submitted)
        .unwrap()
        .replace("name = \"a\"", "name = \"only0\"")
        .replace("${LOG_ROOT}/*", "${LOG_ROOT}/${ONLY_ON_0}*")
        .replace("a.jsonl", "only0.jsonl");
    std::fs::write(&only0, text0).unwrap();
    let o = c.job(&["submit", only0.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    wait_until(&c, "job only0 did not fail", || {
        status(&c, "only0")["state"] == "failed"
    });
    let err = status(&c, "only0")["last_error"].to_string();
    assert!(
        err.contains("member 1") && err.contains("ONLY_ON_0"),
        "{err}"
    );
    let o = c.job(&["stop", "only0"]);
    assert!(o.status.success(), "{}", text(&o));

    // Stop b: it is forgotten; a keeps running.
    let o = c.job(&["stop", "b"]);
    assert!(o.status.success(), "{}", text(&o));
    wait_until(&c, "b and only0 were not forgotten", || {
        let list = String::from_utf8(c.job(&["list"]).stdout).unwrap();
        list.lines().count() == 1 && list.starts_with("a\tRunning")
    });

    // SIGTERM to member 1 stops the whole cluster cleanly.
    let s1 = c.one.terminate();
    let s0 = c.zero.wait_exit(Duration::from_secs(30));
    assert!(s1.success() && s0.success(), "{s0} {s1}\n{}", c.logs());

    // More lines while it is down; after the restart a continues exactly once.
    append(d, T0 + 300, 300); // to 10:09:58
    let c = start(d, "2");
    let want_a = windows_before(&expected(d, &a.reference, &a.out), 9);
    wait_for_output(&a.out, &want_a, &c.zero);
    let list = String::from_utf8(c.job(&["list"]).stdout).unwrap();
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.starts_with("a\tRunning"), "{list}");
    assert!(c.zero.log().contains("resuming from"), "{}", c.logs());
    assert!(
        c.one.log().contains("resuming this member's files"),
        "{}",
        c.logs()
    );

    // kill -9 of member 1: member 0 exits with an error; after a restart of both,
    // a continues exactly once from the last commit both sides agree on.
    std::thread::sleep(Duration::from_millis(300)); // checkpoints after the output
    let mut c = c;
    let _ = c.one.child.kill();
    let _ = c.one.child.wait();
    let s0 = c.zero.wait_exit(Duration::from_secs(30));
    assert_eq!(
        s0.code(),
        Some(1),
        "member 0 should fail: {s0}\n{}",
        c.logs()
    );
    assert!(
        c.zero
            .log()
            .contains("lost the connection to another cluster member"),
        "{}",
        c.logs()
    );
    append(d, T0 + 600, 300); // to 10:14:58
    let c = start(d, "3");
    let want_a = windows_before(&expected(d, &a.reference, &a.out), 14);
    wait_for_output(&a.out, &want_a, &c.zero);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(std::fs::read(&a.out).unwrap(), want_a, "{}", c.logs());
}

/// Lines job b read, summed over both members, as its status reports them.
fn lines_read(c: &Cluster) -> u64 {
    status(c, "b")["lines_read"].as_u64().unwrap_or(0)
}

/// Lines keep arriving on both machines while members are killed (-9) at random
/// moments and the cluster is restarted; at the end the output equals the oracle
/// exactly: nothing lost, nothing twice. The seed is printed; rerun one with
/// `CLUSTER_KILL_SEED=N`.
#[test]
fn kill_9_of_either_member_while_lines_arrive_loses_and_repeats_nothing() {
    let seed: u64 = std::env::var("CLUSTER_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                % 100_000
        });
    println!("CLUSTER_KILL_SEED={seed}");
    let mut rng = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move |n: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % n
    };
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    std::fs::write(d.join("token"), TOKEN).unwrap();
    let a = job(d, "a", "1h");
    append(d, T0, 60);
    let mut written = 60; // seconds of log so far
    let mut c = start(d, "0");
    let o = c.job(&["submit", a.submitted.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    for round in 1..=3 {
        // Lines arrive in bursts for a random while, then a random member dies.
        let bursts = 2 + next(8);
        for _ in 0..bursts {
            append(d, T0 + written, 20);
            written += 20;
            std::thread::sleep(Duration::from_millis(next(120)));
        }
        let victim = next(2);
        let (dead, survivor) = if victim == 0 {
            (&mut c.zero, &mut c.one)
        } else {
            (&mut c.one, &mut c.zero)
        };
        let _ = dead.child.kill();
        let _ = dead.child.wait();
        let s = survivor.wait_exit(Duration::from_secs(30));
        assert!(!s.success(), "round {round}: the survivor should fail: {s}");
        // More lines while it is down, then both come back.
        append(d, T0 + written, 20);
        written += 20;
        c = start(d, &round.to_string());
    }
    // The windows the final watermark closes (both hosts reached `written`-2 s).
    let last_minute = (written - 2 - 5) / 60;
    let want = windows_before(&expected(d, &a.reference, &a.out), last_minute);
    wait_for_output(&a.out, &want, &c.zero);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::read(&a.out).unwrap(),
        want,
        "seed {seed}\n{}",
        c.logs()
    );
}

/// Clean stops with a window open on a member only. Each member used to stop a
/// job's sources as soon as it applied the Stop or Shutdown; one that did so
/// before process 0 ended its sources while process 0's collector still took
/// that for progress, wrote the member's open windows without their later lines
/// and committed past them. Process 0 now stops first and the others after a
/// second sequenced command. Here process 0 reads nothing (its workers follow the
/// wall clock) and member 1 holds the whole job back. The race window is narrow:
/// this test did not catch the old order in 4 runs, so it guards the stop path,
/// not that exact interleaving.
#[test]
fn a_member_stopping_before_process_0_does_not_commit_its_open_windows() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    std::fs::write(d.join("token"), TOKEN).unwrap();
    std::fs::create_dir_all(d.join("machine-0")).unwrap();
    let web2 = d.join("machine-1/web-2");
    append_host(&web2, T0, 572); // to 10:09:30: window 10:09 is open
    let a = job(d, "a", "1h");
    for round in 0..3 {
        let mut c = start(d, &format!("r{round}"));
        if round == 0 {
            let o = c.job(&["submit", a.submitted.to_str().unwrap()]);
            assert!(o.status.success(), "{}", text(&o));
        }
        let upto = 9 + 5 * round; // minutes closed by the watermark
        let want = windows_before(&expected(d, &a.reference, &a.out), upto);
        wait_for_output(&a.out, &want, &c.zero);
        // A checkpoint after them, then a clean stop from either member.
        std::thread::sleep(Duration::from_millis(200));
        let s = if round % 2 == 0 {
            c.one.terminate()
        } else {
            c.zero.terminate()
        };
        assert!(s.success(), "{s}\n{}", c.logs());
        // The rest of the open window and 5 more minutes arrive while it is down.
        let from = T0 + 572 + 300 * round;
        append_host(&web2, from, 300);
    }
    let c = start(d, "end");
    let want = windows_before(&expected(d, &a.reference, &a.out), 24);
    wait_for_output(&a.out, &want, &c.zero);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(std::fs::read(&a.out).unwrap(), want, "{}", c.logs());
}
