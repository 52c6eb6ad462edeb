//! A two-process cluster's flags and start-up: a member waiting for the others,
//! hosts files and sizes refused with exit 2.

mod member;
mod two_members;

use member::{text, tidemark, Member};
use std::time::{Duration, Instant};
use two_members::{hosts_of_member_0, http_get};

#[test]
fn a_member_waits_for_the_others_says_so_and_stops_at_once_on_sigterm() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    // Member 0 alone: its API answers, but the cluster is not healthy.
    let mut zero = Member::start_with(
        &d.join("state-0"),
        &d.join("m0.log"),
        &[
            "-n",
            "2",
            "-p",
            "0",
            "--hosts",
            hosts_of_member_0(d).to_str().unwrap(),
            "--allow-root",
            d.to_str().unwrap(),
        ],
        &[],
        true,
    );
    let (code, body) = http_get(&zero.api, "/healthz", None);
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("waiting for every member to connect"),
        "{body}"
    );
    let started = Instant::now();
    let status = zero.terminate();
    assert!(status.success(), "{status}\n{}", zero.log());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(zero.log().contains("had not formed yet"), "{}", zero.log());
}

#[test]
fn bad_cluster_flags_and_a_state_folder_of_another_member_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let hosts = d.join("hosts");
    std::fs::write(&hosts, "127.0.0.1:7001\n# comment\n127.0.0.1:7002\n").unwrap();
    let one_host = d.join("one-host");
    std::fs::write(&one_host, "127.0.0.1:7001\n").unwrap();
    let bad_host = d.join("bad-host");
    std::fs::write(&bad_host, "127.0.0.1:7001\nlocalhost\n").unwrap();
    let any_port = d.join("any-port");
    std::fs::write(&any_port, "127.0.0.1:0\n127.0.0.1:0\n").unwrap();
    let state = d.join("state");
    let h = hosts.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (
            &["-n", "2", "-p", "2", "--hosts", h],
            "-p 2 is not a member of a 2-process cluster",
        ),
        (&["-n", "2", "-p", "1"], "-n 2 needs --hosts FILE"),
        (
            &["-n", "2", "-p", "1", "--hosts", one_host.to_str().unwrap()],
            "lists 1 addresses but -n is 2",
        ),
        (
            &["-n", "2", "-p", "1", "--hosts", bad_host.to_str().unwrap()],
            "line 2: \"localhost\" is not host:port",
        ),
        (&["--hosts", h], "only for several processes"),
        // Member 1 must be told the port member 0 got, not port 0.
        (
            &["-n", "2", "-p", "1", "--hosts", any_port.to_str().unwrap()],
            "port 0 is only for a member's own line",
        ),
    ];
    for (args, want) in cases {
        let o = tidemark()
            .args(["cluster", "--state-dir"])
            .arg(&state)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }
    // A state folder remembers its member: process 1's is refused as process 0's.
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("member"), "process 1 of 2\n").unwrap();
    let o = tidemark()
        .args(["cluster", "--state-dir"])
        .arg(&state)
        .args(["-n", "2", "-p", "0", "--hosts", h, "--allow-root", "/"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("belongs to process 1 of 2"),
        "{}",
        text(&o)
    );
}

/// `-n 2 -w 200` passed each flag's own bound (-w ≤ 256) but makes 400 workers
/// that timely connects pairwise: the member started connecting (hanging for a
/// peer, or aborting with "memory allocation failed" for larger products)
/// instead of saying why. The product is bounded and refused at once, exit 2.
#[test]
fn cluster_processes_times_workers_beyond_the_limit_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    let hosts = d.join("hosts");
    std::fs::write(&hosts, "127.0.0.1:1\n127.0.0.1:2\n").unwrap();
    let mut child = tidemark()
        .args(["cluster", "--state-dir"])
        .arg(d.join("state"))
        .args(["-n", "2", "-p", "1", "-w", "200", "--allow-root", "/"])
        .arg("--hosts")
        .arg(&hosts)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A generous bound: the refusal needs no I/O beyond reading the hosts file.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let o = child.wait_with_output().unwrap();
            panic!("the member did not refuse -n 2 -w 200: {}", text(&o));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("-n 2 × -w 200 = 400 workers in all"),
        "{}",
        text(&o)
    );
    assert!(!d.join("state").join("member").exists());
}

/// A member whose own address is taken says so at once and exits 1 (timely used
/// to find out in the background, once the member had started).
#[test]
fn a_member_whose_peer_address_is_taken_says_so_and_exits_1() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    // Held for the whole test: the port stays taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let hosts = d.join("hosts");
    std::fs::write(&hosts, format!("{addr}\n127.0.0.1:0\n")).unwrap();
    let o = tidemark()
        .args(["cluster", "--api", "127.0.0.1:0", "--state-dir"])
        .arg(d.join("state"))
        .args(["-n", "2", "-p", "0", "--allow-root", "/", "--hosts"])
        .arg(&hosts)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("cannot listen for the other members on {addr}")),
        "{}",
        text(&o)
    );
    drop(taken);
}

/// Regression (issue 11 review): member 0 of a cluster that had not formed hung
/// for ever when its API address was taken (it waited for its workers, which
/// waited for the other members) and never said why.
#[test]
fn member_0_whose_api_address_is_taken_says_so_and_exits_before_the_cluster_forms() {
    let d = tempfile::tempdir().unwrap();
    let d = d.path();
    // Held for the whole test: the API's port stays taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = taken.local_addr().unwrap().to_string();
    let mut child = tidemark()
        .args(["cluster", "--api", &api, "--state-dir"])
        .arg(d.join("state"))
        .args(["-n", "2", "-p", "0", "--allow-root", "/", "--hosts"])
        .arg(hosts_of_member_0(d))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A generous bound: nothing is waited for once the bind failed.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let o = child.wait_with_output().unwrap();
            panic!("member 0 hung with its API address taken: {}", text(&o));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("cannot listen on {api}")),
        "{}",
        text(&o)
    );
    drop(taken);
}
