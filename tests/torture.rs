//! Process-level torture test (issue 3): a writer appends to several hosts' logs at
//! a high rate and rotates them at random — rename (with late writes to the old
//! handle, as nginx does until it reopens), copytruncate, gzip of older siblings —
//! while `tidemark run` is killed with SIGKILL and restarted several times. The final
//! output must equal both an uninterrupted run over the same files and the writer's
//! ground truth for every series of every window: per-host metrics and rules.
//! Every kill comes after the run committed a checkpoint covering output it wrote
//! (waited for, not assumed from a sleep), so every restart recovers from one.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const HOSTS: usize = 3;
const T0: i64 = 1_795_168_800; // 2026-11-20T10:00:00Z
/// Event time advances 40 ms per line per host: a minute of log every 1,500 lines,
/// so many windows close (and checkpoints commit) between kills.
const STEP_MS: i64 = 40;

/// `source_extra`: more `[source]` keys (e.g. a tiny `max_open_files`).
fn job(dir: &Path, out: &str, source_extra: &str) -> String {
    format!(
        r#"
name = "torture"
[source]
kind = "file"
include = ["{logs}/*/access.log"]
host = {{ path_regex = '/logs/(?P<host>[^/]+)/access\.log' }}
poll_interval = "20ms"
{source_extra}
[parse]
format = "logfmt"
timestamp = {{ field = "ts", format = "epoch_millis" }}
[window]
size = "1m"
max_out_of_orderness = "2s"
idle_timeout = "1h"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status"]
[[metric]]
name = "bytes"
kind = "sum"
field = "bytes"
[[rule]]
record = "status:reqs"
expr = "sum by (status) (reqs)"
[[rule]]
record = "total:bytes"
expr = "sum(bytes)"
[[sink]]
kind = "jsonl"
path = "{out}"
series = "all"
"#,
        logs = dir.join("logs").display(),
    )
}

/// A tiny deterministic PRNG, so a failure can be re-run with the same seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `access.log.N[.gz]` siblings of `live`, highest N first.
fn siblings(live: &Path) -> Vec<(u32, bool, PathBuf)> {
    let dir = live.parent().unwrap();
    let name = live.file_name().unwrap().to_str().unwrap();
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let f = e.file_name().to_string_lossy().to_string();
        if let Some(rest) = f.strip_prefix(&format!("{name}.")) {
            let (num, gz) = match rest.strip_suffix(".gz") {
                Some(n) => (n, true),
                None => (rest, false),
            };
            if let Ok(n) = num.parse::<u32>() {
                v.push((n, gz, e.path()));
            }
        }
    }
    v.sort_by_key(|s| std::cmp::Reverse(s.0));
    v
}

fn shift_siblings(live: &Path) {
    for (n, gz, p) in siblings(live) {
        let name = format!(
            "{}.{}{}",
            live.file_name().unwrap().to_str().unwrap(),
            n + 1,
            if gz { ".gz" } else { "" }
        );
        std::fs::rename(&p, live.with_file_name(name)).unwrap();
    }
}

fn gzip_in_place(plain: &Path) {
    let data = std::fs::read(plain).unwrap();
    let gz = PathBuf::from(format!("{}.gz", plain.display()));
    let tmp = PathBuf::from(format!("{}.gz.tmp", plain.display()));
    let mut enc =
        flate2::write::GzEncoder::new(File::create(&tmp).unwrap(), flate2::Compression::fast());
    enc.write_all(&data).unwrap();
    enc.finish().unwrap().sync_all().unwrap();
    // logrotate's order: the compressed file appears, then the plain one goes.
    std::fs::rename(&tmp, &gz).unwrap();
    std::fs::remove_file(plain).unwrap();
}

type Truth = BTreeMap<(String, i64, u16), (u64, u64)>;

struct Host {
    live: PathBuf,
    out: File,
    seq: i64,
}

fn write_lines(h: &mut Host, name: &str, n: usize, rng: &mut Rng, truth: &Mutex<Truth>) {
    let mut buf = String::new();
    let mut t = truth.lock().unwrap();
    for _ in 0..n {
        h.seq += 1;
        // Bounded disorder (< 2 s): never late.
        let ts = T0 * 1000 + h.seq * STEP_MS - rng.below(1500) as i64;
        let status = [200u16, 200, 200, 404, 500][rng.below(5) as usize];
        let bytes = rng.below(10_000);
        buf.push_str(&format!(
            "ts={ts} host={name} status={status} bytes={bytes} seq={}\n",
            h.seq
        ));
        let e = t
            .entry((name.to_string(), ts - ts.rem_euclid(60_000), status))
            .or_default();
        e.0 += 1;
        e.1 += bytes;
    }
    h.out.write_all(buf.as_bytes()).unwrap();
}

fn writer(dir: PathBuf, stop: Arc<AtomicBool>, truth: Arc<Mutex<Truth>>, seed: u64) {
    let mut rng = Rng(seed);
    let mut hosts: Vec<Host> = (0..HOSTS)
        .map(|i| {
            let live = dir.join("logs").join(format!("web-{i}")).join("access.log");
            std::fs::create_dir_all(live.parent().unwrap()).unwrap();
            let out = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&live)
                .unwrap();
            Host { live, out, seq: 0 }
        })
        .collect();
    while !stop.load(Ordering::SeqCst) {
        for (i, h) in hosts.iter_mut().enumerate() {
            let name = format!("web-{i}");
            write_lines(h, &name, 40 + rng.below(40) as usize, &mut rng, &truth);
            match rng.below(100) {
                // rename + create; the writer keeps writing to the old handle for a
                // moment, like nginx before it reopens its logs.
                0..=2 => {
                    shift_siblings(&h.live);
                    std::fs::rename(&h.live, h.live.with_file_name("access.log.1")).unwrap();
                    write_lines(h, &name, rng.below(20) as usize, &mut rng, &truth);
                    h.out = OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&h.live)
                        .unwrap();
                    if rng.below(2) == 0 {
                        let two = h.live.with_file_name("access.log.2");
                        if two.exists() {
                            gzip_in_place(&two);
                        }
                    }
                }
                // copytruncate: copy, then truncate the live file in place.
                3..=4 => {
                    shift_siblings(&h.live);
                    std::fs::copy(&h.live, h.live.with_file_name("access.log.1")).unwrap();
                    h.out.set_len(0).unwrap();
                }
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(8));
    }
}

fn tidemark(job: &Path, state: &Path, until_eof: bool) -> Child {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    // TORTURE_LOG_DIR keeps every run's log, for debugging a failure.
    let stderr = match std::env::var_os("TORTURE_LOG_DIR") {
        Some(d) => {
            let n = RUN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let f = File::create(Path::new(&d).join(format!("run-{n}.log"))).unwrap();
            c.env("TIDEMARK_LOG", "info");
            Stdio::from(f)
        }
        None => {
            c.env("TIDEMARK_LOG", "warn");
            Stdio::piped()
        }
    };
    c.arg("run")
        .arg(job)
        .args(["-w", "2", "--checkpoint-interval", "50ms", "--state-dir"])
        .arg(state);
    if until_eof {
        c.arg("--until-eof");
    }
    c.stdout(Stdio::null()).stderr(stderr).spawn().unwrap()
}

/// One output series of one window: (record, labels, window start in ms).
type SeriesKey = (String, BTreeMap<String, String>, i64);

/// Every series of every window in a jsonl output.
fn read_jsonl_series(path: &Path) -> BTreeMap<SeriesKey, f64> {
    let mut series = BTreeMap::new();
    let ms = |v: &serde_json::Value| {
        v.as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond()
    };
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let start = ms(&v["start"]);
        assert_eq!(ms(&v["end"]) - start, 60_000, "a 1m window: {line}");
        let labels = v["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, l)| (k.clone(), l.as_str().unwrap().to_string()))
            .collect();
        let key = (v["record"].as_str().unwrap().to_string(), labels, start);
        let value = v["value"].as_f64().unwrap();
        assert!(
            series.insert(key, value).is_none(),
            "a series written twice: {line}"
        );
    }
    series
}

/// What the job must write for the writer's ground truth: `reqs` per host and
/// status, `bytes` per host, and the rules summed over hosts.
fn expected_series(truth: &Truth) -> BTreeMap<SeriesKey, f64> {
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut want: BTreeMap<SeriesKey, f64> = BTreeMap::new();
    for ((host, start, status), (reqs, bytes)) in truth {
        let status = status.to_string();
        let mut add = |record: &str, l: BTreeMap<String, String>, v: u64| {
            *want.entry((record.to_string(), l, *start)).or_default() += v as f64;
        };
        add(
            "reqs",
            labels(&[("host", host), ("status", &status)]),
            *reqs,
        );
        add("bytes", labels(&[("host", host)]), *bytes);
        add("status:reqs", labels(&[("status", &status)]), *reqs);
        add("total:bytes", labels(&[]), *bytes);
    }
    want
}

/// The job's checkpoint file's identity (`STATE/JOB/checkpoint`): a save replaces
/// it (a new inode by rename).
fn checkpoint_id(state: &Path) -> Option<(u64, std::time::SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(state.join("torture").join("checkpoint")).ok()?;
    Some((m.ino(), m.modified().ok()?))
}

/// Waits (generous deadline; the loop ends at the event) until `done`, or panics
/// with `what` and the child's stderr if the child exits or time runs out.
fn wait_until(child: &mut Child, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        let exited = child.try_wait().unwrap();
        if exited.is_some() || Instant::now() >= deadline {
            let mut err = String::new();
            use std::io::Read;
            if let Some(mut e) = child.stderr.take() {
                e.read_to_string(&mut err).unwrap();
            }
            panic!("{what} ({exited:?}): {err}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sigkill_and_restart_during_rotation_loses_and_duplicates_nothing() {
    torture(7, "");
}

/// The same with one open file per worker (2 workers, 3 hosts): idle live files
/// are closed and reopened by identity across rotations and kills (issue 10).
#[test]
fn files_closed_past_max_open_files_lose_and_duplicate_nothing() {
    torture(11, "max_open_files = 2");
}

fn torture(default_seed: u64, source_extra: &str) {
    let seed = std::env::var("TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seed);
    let d = tempfile::tempdir().unwrap();
    let job_path = d.path().join("job.toml");
    std::fs::write(&job_path, job(d.path(), "out/live.jsonl", source_extra)).unwrap();
    let state = d.path().join("state");
    let stop = Arc::new(AtomicBool::new(false));
    let truth = Arc::new(Mutex::new(Truth::new()));
    let w = {
        let (dir, stop, truth) = (d.path().to_path_buf(), stop.clone(), truth.clone());
        std::thread::spawn(move || writer(dir, stop, truth, seed))
    };
    // Start tidemark only once every host's log exists (and has a line).
    let deadline = Instant::now() + Duration::from_secs(10);
    while (0..HOSTS).any(|i| {
        let p = d
            .path()
            .join("logs")
            .join(format!("web-{i}"))
            .join("access.log");
        std::fs::metadata(p).map(|m| m.len() == 0).unwrap_or(true)
    }) {
        assert!(Instant::now() < deadline, "the writer did not start");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut rng = Rng(seed ^ 0xabcd);
    let started = Instant::now();
    let mut kills = 0;
    let live_out = d.path().join("out/live.jsonl");
    let out_len = || std::fs::metadata(&live_out).map(|m| m.len()).unwrap_or(0);
    for round in 0..6 {
        let mut child = tidemark(&job_path, &state, false);
        // Recovery must be exercised: before the kill this run wrote windows and
        // then committed a checkpoint after them. On a slow machine a fixed sleep
        // could kill it before either, and the test pass without a recovery.
        let before = out_len();
        wait_until(&mut child, "tidemark wrote no window", || {
            out_len() > before
        });
        let written = checkpoint_id(&state);
        wait_until(
            &mut child,
            "tidemark committed no checkpoint after its windows",
            || checkpoint_id(&state).is_some_and(|id| Some(id) != written),
        );
        if round > 0 {
            assert!(before > 0, "round {round}: nothing to recover");
        }
        // Then a random moment: mid-read, mid-window, mid-checkpoint.
        std::thread::sleep(Duration::from_millis(rng.below(900)));
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            use std::io::Read;
            if let Some(mut e) = child.stderr.take() {
                e.read_to_string(&mut err).unwrap();
            }
            panic!("tidemark exited early ({status}): {err}");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    stop.store(true, Ordering::SeqCst);
    w.join().unwrap();
    // Finish: read everything that is left and close every window.
    let out = tidemark(&job_path, &state, true)
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "final run: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same files, read once without interruption.
    let fresh_job = d.path().join("fresh.toml");
    std::fs::write(&fresh_job, job(d.path(), "out/fresh.jsonl", source_extra)).unwrap();
    let fresh = tidemark(&fresh_job, &d.path().join("fresh-state"), true)
        .wait_with_output()
        .unwrap();
    assert!(
        fresh.status.success(),
        "{}",
        String::from_utf8_lossy(&fresh.stderr)
    );

    let live = std::fs::read(d.path().join("out/live.jsonl")).unwrap();
    let uninterrupted = std::fs::read(d.path().join("out/fresh.jsonl")).unwrap();
    let truth = truth.lock().unwrap().clone();
    let lines: u64 = truth.values().map(|v| v.0).sum();
    eprintln!(
        "torture: seed {seed}, {kills} kills in {:.1}s, {lines} lines, {} output bytes",
        started.elapsed().as_secs_f64(),
        live.len()
    );
    let want = expected_series(&truth);
    for (name, output) in [
        ("uninterrupted", "out/fresh.jsonl"),
        ("killed", "out/live.jsonl"),
    ] {
        let got = read_jsonl_series(&d.path().join(output));
        let wrong: Vec<_> = want
            .iter()
            .filter(|(k, v)| got.get(*k) != Some(*v))
            .map(|(k, v)| (k, v, got.get(k)))
            .take(8)
            .collect();
        let extra: Vec<_> = got
            .keys()
            .filter(|k| !want.contains_key(*k))
            .take(8)
            .collect();
        assert!(
            wrong.is_empty() && extra.is_empty(),
            "seed {seed}: the {name} run disagrees with the writer's ground truth in \
             {} of {} series (key, want, got): {wrong:#?}\nseries not in the truth: {extra:#?}",
            want.iter().filter(|(k, v)| got.get(*k) != Some(*v)).count(),
            want.len()
        );
    }
    if live != uninterrupted {
        let (a, b) = (
            String::from_utf8_lossy(&live),
            String::from_utf8_lossy(&uninterrupted),
        );
        let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
        let only_live: Vec<_> = a.iter().filter(|l| !b.contains(l)).take(8).collect();
        let only_fresh: Vec<_> = b.iter().filter(|l| !a.contains(l)).take(8).collect();
        let kept = std::env::var_os("TORTURE_KEEP").map(|_| d.keep());
        panic!(
            "output after {kills} SIGKILLs differs from an uninterrupted run ({} vs {} lines)\nonly after kills: {only_live:#?}\nonly uninterrupted: {only_fresh:#?}\nkept: {kept:?}",
            a.len(),
            b.len()
        );
    }
}
