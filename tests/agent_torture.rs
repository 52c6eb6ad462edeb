//! `tidemark agent` under random rename and copytruncate rotations, random `kill -9`
//! and broker outages: after dropping resends by (group, seq), the topic holds exactly
//! the files' lines, in order, with no gap. The seed is printed; `AGENT_SEED=N`
//! re-runs one.
mod agent_support;

use std::collections::BTreeMap;
use std::time::Duration;

use agent_support::*;

/// A small deterministic PRNG (splitmix64).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

#[test]
fn random_rotations_kills_and_outages_lose_and_duplicate_nothing() {
    let seed = std::env::var("AGENT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("agent torture seed: {seed} (re-run with AGENT_SEED={seed})");
    let mut rng = Rng(seed);
    let mut broker = broker();
    let setup = Setup::new();
    let logs_dir = setup.logs();
    let mut logs = [
        Log::new(&logs_dir, "a"),
        Log::new(&logs_dir, "b"),
        Log::new(&logs_dir, "c"),
    ];
    let config = setup.config(
        &broker,
        "max_in_flight = 200\nheartbeat_interval = \"300ms\"",
    );
    let mut agent = Agent::start(&config);
    for round in 0..12 {
        for log in logs.iter_mut() {
            log.write(rng.below(300) as usize);
            match rng.below(4) {
                0 => log.rotate_rename(),
                1 => log.rotate_copytruncate(),
                _ => {}
            }
            log.write(rng.below(100) as usize);
        }
        std::thread::sleep(Duration::from_millis(rng.below(700)));
        match rng.below(4) {
            0 => {
                eprintln!("round {round}: kill -9");
                agent.kill();
                agent = Agent::start(&config);
            }
            1 => {
                eprintln!("round {round}: broker down");
                broker.stop();
                for log in logs.iter_mut() {
                    log.write(rng.below(200) as usize);
                }
                std::thread::sleep(Duration::from_millis(rng.below(1500)));
                if rng.below(2) == 0 {
                    eprintln!("round {round}: kill -9 while the broker is down");
                    agent.kill();
                    broker.restart();
                    agent = Agent::start(&config);
                } else {
                    broker.restart();
                }
            }
            _ => {}
        }
    }
    let total: usize = logs.iter().map(|l| l.lines.len()).sum();
    let mut reader = Reader::new(&broker);
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let mut seqs: BTreeMap<String, std::collections::BTreeSet<u64>> = BTreeMap::new();
        for r in &reader.records {
            if let Rec::Line { group, seq, .. } = r {
                seqs.entry(group.clone()).or_default().insert(*seq);
            }
        }
        if seqs.values().map(|s| s.len()).sum::<usize>() >= total {
            break;
        }
        if std::time::Instant::now() > deadline {
            let have: Vec<(String, usize, u64, usize)> = logs
                .iter()
                .map(|l| {
                    let s = seqs.get(&l.group());
                    (
                        l.name.clone(),
                        s.map_or(0, |s| s.len()),
                        s.and_then(|s| s.last().copied()).unwrap_or(0),
                        l.lines.len(),
                    )
                })
                .collect();
            panic!(
                "seed {seed}: not every line arrived; (file, distinct seqs, highest seq, lines \
                 written): {have:?}\nagent log:\n{}",
                agent.log()
            );
        }
        reader.poll(Duration::from_millis(300));
    }
    reader.poll(Duration::from_millis(500));
    let want: BTreeMap<String, Vec<String>> =
        logs.iter().map(|l| (l.group(), l.lines.clone())).collect();
    let got = reader.lines_by_group();
    for (group, lines) in &want {
        let got = got.get(group).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(got.len(), lines.len(), "{group}: line count (seed {seed})");
        assert!(
            got == lines.as_slice(),
            "{group}: lines differ (seed {seed})"
        );
    }
    assert_eq!(got.len(), want.len(), "seed {seed}");
    assert!(agent.metric("in_flight_max") <= 200);
    assert_eq!(agent.stop(), Some(0), "{}", agent.log());
}
