//! One large file read as segments by several workers (`--until-eof`, no state
//! folder) must give exactly what one worker reading it in order gives: the same
//! windows (byte-identical records, the order-dependent gauge included), and the
//! same late, outlier, malformed, oversize and counted lines — for random input
//! with disorder inside the bound, late lines beyond it, lone outliers hours
//! ahead, real jumps, malformed, CRLF and too long lines, and an unterminated
//! last line, wherever the cuts fall; the file alone or continued from rotated
//! siblings (a gzip one read whole as one segment); with and without a
//! `max_series` small enough that windows lose series.
//!
//! Random: the seed is printed; `SPLIT_SEED=N` runs that one seed.

mod common;

use common::{job_from, nginx_line, run_until_eof, write_file};
use tidemark_engine::series::ClosedWindow;
use tidemark_engine::stats::JobStats;

const T0: i64 = 1_795_168_800; // 2026-11-20T10:00:00Z
const DISORDER_S: i64 = 5;

const JOB: &str = r#"
name = "split"
[source]
kind = "file"
include = ["logs/*/access.log"]
host = { path_regex = '/logs/(?P<host>[^/]+)/' }
split_from = "4KiB"
max_line_bytes = "256B"
[parse]
format = "nginx"
[window]
size = "1m"
max_out_of_orderness = "5s"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status", "method"]
[[metric]]
name = "bytes"
kind = "sum"
field = "body_bytes_sent"
labels = ["status"]
[[metric]]
name = "last_bytes"
kind = "gauge"
field = "body_bytes_sent"
[[metric]]
name = "rt"
kind = "histogram"
field = "request_time"
quantiles = [0.5, 0.99]
[[rule]]
record = "status:reqs"
expr = "sum by (status) (reqs)"
[[sink]]
kind = "stdout"
series = "all"
"#;

/// splitmix64: a small, seedable generator (the test prints its seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A host's lines in file order: mostly within the disorder bound, now and then
/// a late line, a lone line hours ahead, a real jump, a malformed line, a CRLF.
fn lines(rng: &mut Rng, n: usize) -> Vec<String> {
    let mut max_t = T0;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        max_t += rng.below(2) as i64;
        let t = match rng.below(1000) {
            0..=29 => max_t - DISORDER_S - 1 - rng.below(120) as i64,
            30..=34 => max_t + 3600 + rng.below(3600) as i64,
            35..=36 => {
                max_t += 3600 + rng.below(3600) as i64;
                max_t
            }
            37..=46 => {
                out.push("not an nginx line\n".to_string());
                continue;
            }
            _ => max_t - rng.below(DISORDER_S as u64 + 1) as i64,
        };
        let method = ["GET", "GET", "POST", "PUT"][rng.below(4) as usize];
        let status = [200, 200, 200, 404, 500][rng.below(5) as usize];
        let mut line = nginx_line(t, method, status, rng.below(5000), rng.below(2000) as u32);
        match rng.below(100) {
            0 | 1 => line.insert(line.len() - 1, '\r'),
            // Longer than max_line_bytes: skipped and counted.
            2 => line.insert_str(line.len() - 1, &" pad".repeat(70)),
            _ => {}
        }
        out.push(line);
    }
    // An unterminated last line now and then.
    if rng.below(2) == 0 {
        if let Some(last) = out.last_mut() {
            last.pop();
        }
    }
    out
}

/// What must not differ between the sequential and the split read.
fn counted(s: &JobStats) -> String {
    format!(
        "bytes {} lines {} counted {} late {} outliers {} oversize {} parse {:?} values {:?} opened {} \
         limited {:?} {}",
        s.bytes_read,
        s.lines_read,
        s.lines_counted,
        s.late_lines,
        s.outlier_lines,
        s.oversize_lines,
        s.parse_errors,
        s.value_errors,
        s.files_opened,
        s.series_limit_dropped,
        s.series_limited_windows
    )
}

fn render(windows: &[ClosedWindow]) -> String {
    windows.iter().map(|w| format!("{w:?}\n")).collect()
}

/// Runs one seed; returns (segments, rereads) over its split runs.
fn check(seed: u64) -> (u64, u64) {
    eprintln!("split oracle: seed {seed} (SPLIT_SEED={seed} to run it alone)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let big = 1500 + rng.below(2500) as usize;
    let all = lines(&mut rng, big);
    // Half the seeds: the big host's stream over rotated siblings, oldest
    // gzipped (`access.log.2.gz`, `access.log.1`, `access.log`), cut at random lines.
    let hdir = dir.path().join("logs/big");
    if rng.below(2) == 0 {
        let a = rng.below(big as u64 / 2) as usize;
        let b = a + rng.below((big - a) as u64) as usize;
        let (older, rest) = all.split_at(a);
        let (old, live) = rest.split_at(b - a);
        let mut old = old.to_vec();
        // A rotated file's unterminated last line is a line of its own.
        if rng.below(2) == 0 {
            if let Some(last) = old.last_mut() {
                last.pop();
            }
        }
        write_file(&hdir.join("access.log.2.gz"), older, true);
        write_file(&hdir.join("access.log.1"), &old, false);
        write_file(&hdir.join("access.log"), live, false);
    } else {
        write_file(&hdir.join("access.log"), &all, false);
    }
    // A small host next to it, read as an ordinary file group.
    write_file(
        &dir.path().join("logs/small/access.log"),
        &lines(&mut rng, 20),
        false,
    );
    // Half the seeds: a small max_series, so windows lose series (the same ones).
    let limited = rng.below(2) == 0;
    let text = match limited {
        true => JOB.replace("[window]\n", "[window]\nmax_series = 8\n"),
        false => JOB.to_string(),
    };
    let job = job_from(&text, dir.path());
    let (want, base) = run_until_eof(&job, 1);
    assert_eq!(base.series_limited_windows > 0, limited, "seed {seed}");
    assert_eq!(base.split_segments, 0, "one worker never splits");
    assert!(!want.is_empty());
    let (mut segments, mut rereads) = (0, 0);
    for workers in [2, 3] {
        let (got, stats) = run_until_eof(&job, workers);
        assert!(
            stats.split_segments > 1,
            "seed {seed}, -w {workers}: the big file was not split"
        );
        assert_eq!(
            render(&got),
            render(&want),
            "seed {seed}, -w {workers}: windows differ from the sequential read"
        );
        assert_eq!(
            counted(&stats),
            counted(&base),
            "seed {seed}, -w {workers}: counts differ"
        );
        segments += stats.split_segments;
        rereads += stats.split_rereads;
    }
    (segments, rereads)
}

#[test]
fn a_file_read_as_segments_gives_exactly_the_sequential_result() {
    if let Some(seed) = std::env::var("SPLIT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        check(seed);
        return;
    }
    let first = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let (mut segments, mut rereads) = (0, 0);
    for i in 0..10 {
        let (s, r) = check(first.wrapping_add(i));
        segments += s;
        rereads += r;
    }
    eprintln!("split oracle: {segments} segments, {rereads} read again");
    // Both paths ran: segments confirmed after a speculative read, and segments
    // whose speculative read was refused and read again.
    assert!(
        rereads > 0,
        "no segment was ever read again: the refusal path is untested"
    );
    assert!(segments > rereads * 2);
}

/// Only a finite run without a state folder and without a rate limit splits: a
/// checkpoint keeps one resume position per group, which segments read out of
/// order do not have, and one rate limit paces each worker's own groups.
#[test]
fn with_a_state_folder_or_a_rate_limit_the_file_is_read_as_one_group() {
    let mut rng = Rng(7);
    let dir = tempfile::tempdir().unwrap();
    write_file(
        &dir.path().join("logs/big/access.log"),
        &lines(&mut rng, 2000),
        false,
    );
    let job = job_from(JOB, dir.path());
    let (want, split) = run_until_eof(&job, 2);
    assert!(split.split_segments > 1, "the test's file is split");

    let state = tempfile::tempdir().unwrap();
    let out = common::Collected::default();
    let opts = tidemark_engine::RunOptions {
        until_eof: true,
        state_dir: Some(state.path().to_path_buf()),
        ..common::live_options(2, std::sync::Arc::new(false.into()))
    };
    let outcome = tidemark_engine::run_job(
        &job,
        opts,
        tidemark_engine::fixed_output(Box::new(out.clone())),
    )
    .expect("run");
    assert_eq!(outcome.stats.split_segments, 0, "split with a state folder");
    assert_eq!(render(&out.0.lock().unwrap()), render(&want));

    let paced = job_from(
        &JOB.replace("split_from", "rate_limit = \"1GiB/s\"\nsplit_from"),
        dir.path(),
    );
    let (got, stats) = run_until_eof(&paced, 2);
    assert_eq!(stats.split_segments, 0, "split under a rate limit");
    assert_eq!(render(&got), render(&want));
}
