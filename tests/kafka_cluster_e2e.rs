//! Issue 14's end-to-end path: 3 hosts' logs under random rename and copytruncate
//! rotation → 3 `tidemark agent` processes → a real broker (tansu) → a 2-process
//! `tidemark cluster` running a `kind = "kafka"` job submitted through the API. Its
//! output must equal `tidemark run --until-eof` of the same job over the same files,
//! byte for byte — without faults, and with random `kill -9` of agents and members and
//! the broker stopped for 20 s mid-run.
//!
//! One host goes quiet early, and the job's `idle_timeout` (2 h) is far longer than the
//! test: its windows, and every later window, can only close through its agent's
//! heartbeats. The seed is printed; `E2E_SEED=N` replays one.

mod agent_support;
mod kafka_common;
mod kafka_e2e;
mod member;
mod two_members;

use std::time::{Duration, Instant};

use kafka_common::Rng;
use kafka_e2e::{near_a_minutes_end, seed, World, JOB};

const HOSTS: usize = 3;
const FILES: usize = 2;
/// Rounds (100–400 ms each) before the writers wait for the end of a minute.
const ROUNDS: usize = 60;
/// The last host writes in the first rounds only: afterwards it is quiet.
const QUIET_AFTER: usize = 8;

/// Writes the first lines, starts the agents, the cluster and the job.
fn start(seed: u64, rng: &mut Rng) -> World {
    let mut w = World::new(HOSTS, FILES, "1s", seed);
    for h in &mut w.hosts {
        for f in 0..FILES {
            h.write(f, 10, rng);
        }
    }
    w.start_agents();
    w.start_cluster();
    w.submit();
    w
}

/// How many hosts write in `round`.
fn active(round: usize) -> usize {
    if round < QUIET_AFTER {
        HOSTS
    } else {
        HOSTS - 1
    }
}

/// Waits for a minute's last seconds, writes a last round, and compares with the
/// oracle. Returns the world, still running.
fn finish(mut w: World, rng: &mut Rng) -> World {
    while !near_a_minutes_end() {
        std::thread::sleep(Duration::from_millis(200));
    }
    w.write_round(rng, HOSTS - 1);
    let want = w.oracle();
    w.wait_for_output(&want);
    let lines: usize = w.hosts.iter().map(|h| h.lines()).sum();
    eprintln!(
        "seed {}: {} bytes of output, {lines} lines, byte-identical",
        w.seed,
        want.len()
    );
    w
}

#[test]
fn agents_broker_and_a_two_process_cluster_give_run_until_eofs_output() {
    let seed = seed();
    let mut rng = Rng::new(seed);
    let mut w = start(seed, &mut rng);
    for round in 0..ROUNDS {
        w.write_round(&mut rng, active(round));
    }
    let w = finish(w, &mut rng);
    // Both members have reported by now (each read lines for the output). A kafka
    // job has no include globs: no warning about files on member 1.
    let s = two_members::status(w.cluster(), JOB);
    assert_eq!(s["warnings"], serde_json::json!([]), "{s:#}");
    // Its own counts, every member's: nothing lost upstream, nothing unusable.
    for key in ["kafka_lost_lines", "kafka_bad_records"] {
        assert_eq!(s["errors"][key], 0, "{key}: {s:#}");
    }
}

/// A fault the schedule injects at a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// `kill -9` of this host's agent, restarted after a round.
    Agent(usize),
    /// `kill -9` of this member; the other exits; both restarted after a round.
    Member(u64),
    /// The broker stopped (SIGKILL) for 20 s while lines keep coming; with `true`, an
    /// agent is killed too while it is away.
    Broker(bool),
}

/// 3 agent kills, 2 member kills and one 20 s broker outage at distinct random rounds.
fn schedule(rng: &mut Rng) -> Vec<(usize, Fault)> {
    let mut faults = vec![
        Fault::Agent(rng.below(HOSTS as u64) as usize),
        Fault::Agent(rng.below(HOSTS as u64) as usize),
        Fault::Agent(rng.below(HOSTS as u64) as usize),
        Fault::Member(rng.below(2)),
        Fault::Member(rng.below(2)),
        Fault::Broker(rng.below(2) == 0),
    ];
    let mut plan = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    while let Some(f) = faults.pop() {
        let round = 2 + rng.below(ROUNDS as u64 - 4) as usize;
        if used.insert(round) {
            plan.push((round, f));
        } else {
            faults.push(f);
        }
    }
    plan.sort();
    plan
}

#[test]
fn kill_9_of_agents_and_members_and_a_broker_outage_change_nothing() {
    let seed = seed();
    let mut rng = Rng::new(seed);
    let plan = schedule(&mut rng);
    eprintln!("seed {seed}: faults {plan:?}");
    let mut w = start(seed, &mut rng);
    for round in 0..ROUNDS {
        let n = active(round);
        w.write_round(&mut rng, n);
        let Some(&(_, fault)) = plan.iter().find(|(r, _)| *r == round) else {
            continue;
        };
        match fault {
            Fault::Agent(h) => {
                w.hosts[h].kill_agent();
                w.write_round(&mut rng, n);
                w.hosts[h].start_agent();
            }
            Fault::Member(victim) => {
                w.kill_member(victim);
                w.write_round(&mut rng, n);
                w.start_cluster();
            }
            Fault::Broker(with_agent_kill) => {
                w.broker.stop();
                let back = Instant::now() + Duration::from_secs(20);
                let victim = rng.below(HOSTS as u64) as usize;
                let mut killed = false;
                while Instant::now() < back {
                    w.write_round(&mut rng, n);
                    if with_agent_kill && !killed {
                        // Lines in flight to a broker that is away, then a crash.
                        w.hosts[victim].kill_agent();
                        killed = true;
                    }
                }
                w.broker.restart();
                if killed {
                    w.hosts[victim].start_agent();
                }
            }
        }
    }
    // Member 1 killed once windows are written, so that it has checkpointed its
    // partitions' positions for process 0's frontier: it resumes from them, not from
    // each partition's first record. Slow rounds meanwhile (heartbeats close the
    // windows of the quiet host).
    while w.output_is_empty() {
        w.write_round(&mut rng, HOSTS - 1);
        std::thread::sleep(Duration::from_millis(700));
    }
    w.wait_until("member 1 checkpointed no kafka stream positions", |w| {
        let cp = w.member_checkpoint(1);
        cp.contains("\"next_offset\"") && cp.contains("\"seen_to\"")
    });
    w.kill_member(1);
    w.write_round(&mut rng, HOSTS - 1);
    w.start_cluster();
    w.wait_until("member 1 did not resume its kafka partitions", |w| {
        w.cluster()
            .one
            .log()
            .contains("resuming this member's kafka partitions")
    });
    finish(w, &mut rng);
}
