//! Random tests with their seed printed: a proptest runner seeded from
//! `TIDEMARK_TEST_SEED` (to re-run a failure) or from the clock.

use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// A runner of `cases` cases for the test `name`, its seed printed on stderr
/// (shown by `cargo test` when the test fails).
pub(crate) fn runner(name: &str, cases: u32) -> TestRunner {
    let seed: u64 = std::env::var("TIDEMARK_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    eprintln!("{name}: seed {seed} (re-run with TIDEMARK_TEST_SEED={seed})");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &bytes),
    )
}
