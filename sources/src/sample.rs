//! Deterministic synthetic nginx access logs, for `tidemark demo`, tests and benchmarks.
//!
//! The same [`SampleSpec`] (including its `seed`) always yields byte-identical files.
//! Each host has its own PRNG stream, so hosts are generated in parallel without
//! affecting the output. [`for_each_line`] replays exactly the lines that
//! [`write_nginx_sample`] writes, so tests can compute expected metrics (oracles).
//!
//! ```
//! use tidemark_sources::sample::{for_each_line, SampleSpec};
//! let spec = SampleSpec { hosts: 2, minutes: 3, lines_per_minute: 10, ..SampleSpec::default() };
//! let mut n = 0;
//! for_each_line(&spec, |_line| n += 1);
//! assert_eq!(n, 2 * 3 * 10);
//! ```

mod format;
mod spec;
mod stream;

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

pub use format::format_nginx_line;
pub use spec::{SampleLine, SampleSpec, SampleSummary, SAMPLE_START_UNIX_SECS};
use stream::HostStream;

/// "web-1" for host 0, "web-2" for host 1, ...
pub fn host_name(host: usize) -> String {
    format!("web-{}", host + 1)
}

/// File name of rotation `n` (0 = the live `access.log`).
pub fn rotated_name(n: u32, gzip_from: u32) -> String {
    match n {
        0 => "access.log".to_string(),
        n if gzip_from > 0 && n >= gzip_from => format!("access.log.{n}.gz"),
        n => format!("access.log.{n}"),
    }
}

/// Calls `f` for every line in write order: host 0's whole stream (oldest first), then host 1, ...
pub fn for_each_line(spec: &SampleSpec, mut f: impl FnMut(&SampleLine)) {
    for host in 0..spec.hosts {
        let mut g = HostStream::new(spec, host);
        while let Some(line) = g.next_line() {
            f(&line);
        }
    }
}

/// Writes `DIR/<host>/access.log` plus rotated siblings. Each host's stream is split into
/// `rotations + 1` contiguous chunks of (nearly) equal line counts; the oldest chunk goes to
/// the highest-numbered sibling and the newest to `access.log`. Existing files are replaced
/// and other `access.log*` files in the host folders removed, so the folder holds exactly
/// this data set. Hosts are written in parallel; the bytes do not depend on it.
pub fn write_nginx_sample(dir: &Path, spec: &SampleSpec) -> io::Result<SampleSummary> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = threads.min(spec.hosts).max(1);
    // Thread t writes hosts t, t + threads, ...
    let per_thread: Vec<Vec<_>> = std::thread::scope(|s| {
        let write = |t: usize| {
            move || {
                (t..spec.hosts)
                    .step_by(threads)
                    .map(|h| write_host(dir, spec, h))
                    .collect()
            }
        };
        let handles: Vec<_> = (0..threads).map(|t| s.spawn(write(t))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sample writer panicked"))
            .collect()
    });
    let mut per_thread: Vec<_> = per_thread.into_iter().map(Vec::into_iter).collect();
    let mut total = SampleSummary::default();
    for host in 0..spec.hosts {
        let r = per_thread[host % threads]
            .next()
            .expect("one result per host")?;
        total.files.extend(r.files);
        total.lines += r.lines;
        total.bytes += r.bytes;
        total.disk_bytes += r.disk_bytes;
    }
    Ok(total)
}

fn write_host(dir: &Path, spec: &SampleSpec, host: usize) -> io::Result<SampleSummary> {
    const CHUNK: usize = 1 << 20;
    let hdir = dir.join(host_name(host));
    std::fs::create_dir_all(&hdir)?;
    let names: Vec<String> = (0..=spec.rotations)
        .rev()
        .map(|n| rotated_name(n, spec.gzip_from))
        .collect();
    for entry in std::fs::read_dir(&hdir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("access.log") && !names.contains(&name) {
            std::fs::remove_file(hdir.join(name))?;
        }
    }
    let mut g = HostStream::new(spec, host);
    let mut buf = Vec::with_capacity(CHUNK + 4096);
    let mut sum = SampleSummary {
        lines: spec.lines_per_host(),
        ..SampleSummary::default()
    };
    for (k, name) in names.iter().enumerate() {
        let path = hdir.join(name);
        let file = File::create(&path)?;
        let mut out: Box<dyn Write> = if name.ends_with(".gz") {
            Box::new(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::fast(),
            ))
        } else {
            Box::new(file)
        };
        let end = (k as u64 + 1) * sum.lines / names.len() as u64;
        while g.idx < end {
            format_nginx_line(&g.next_line().expect("idx < lines_per_host"), &mut buf);
            if buf.len() >= CHUNK || g.idx == end {
                out.write_all(&buf)?;
                sum.bytes += buf.len() as u64;
                buf.clear();
            }
        }
        out.flush()?;
        drop(out); // finishes the gzip stream
        sum.disk_bytes += std::fs::metadata(&path)?.len();
        sum.files.push(path);
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn spec() -> SampleSpec {
        SampleSpec {
            hosts: 3,
            minutes: 5,
            lines_per_minute: 97,
            rotations: 3,
            gzip_from: 2,
            ..SampleSpec::default()
        }
    }

    fn read_all(path: &Path) -> Vec<u8> {
        let raw = std::fs::read(path).unwrap();
        if path.extension().is_some_and(|e| e == "gz") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        } else {
            raw
        }
    }

    #[test]
    fn deterministic_and_seed_sensitive() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let sa = write_nginx_sample(a.path(), &spec()).unwrap();
        let sb = write_nginx_sample(b.path(), &spec()).unwrap();
        write_nginx_sample(c.path(), &SampleSpec { seed: 43, ..spec() }).unwrap();
        assert_eq!(
            (sa.lines, sa.bytes, sa.disk_bytes),
            (sb.lines, sb.bytes, sb.disk_bytes)
        );
        for (fa, fb) in sa.files.iter().zip(&sb.files) {
            let rel = fa.strip_prefix(a.path()).unwrap();
            assert_eq!(rel, fb.strip_prefix(b.path()).unwrap());
            assert_eq!(
                std::fs::read(fa).unwrap(),
                std::fs::read(fb).unwrap(),
                "{}",
                rel.display()
            );
            assert_ne!(
                read_all(fa),
                read_all(&c.path().join(rel)),
                "{}",
                rel.display()
            );
        }
    }

    #[test]
    fn layout_counts_and_stream_match_for_each_line() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec();
        let sum = write_nginx_sample(dir.path(), &spec).unwrap();
        assert_eq!(sum.lines, spec.total_lines());
        assert_eq!(sum.files.len(), 3 * 4);
        let mut expected = Vec::new();
        for_each_line(&spec, |l| format_nginx_line(l, &mut expected));
        let mut got = Vec::new();
        for host in 0..3 {
            let hdir = dir.path().join(host_name(host));
            let names = [
                "access.log.3.gz",
                "access.log.2.gz",
                "access.log.1",
                "access.log",
            ];
            for (i, name) in names.iter().enumerate() {
                assert_eq!(sum.files[host * 4 + i], hdir.join(name));
                let data = read_all(&hdir.join(name));
                let n = data.iter().filter(|&&b| b == b'\n').count() as u64;
                assert!(
                    n.abs_diff(spec.lines_per_host() / 4) <= 1,
                    "{name}: {n} lines"
                );
                got.extend_from_slice(&data);
            }
        }
        assert_eq!(sum.bytes, got.len() as u64);
        assert!(sum.disk_bytes < sum.bytes);
        assert!(got == expected, "files differ from for_each_line");
    }

    #[test]
    fn rewriting_replaces_the_data_set() {
        let dir = tempfile::tempdir().unwrap();
        write_nginx_sample(dir.path(), &spec()).unwrap();
        let small = SampleSpec {
            hosts: 1,
            rotations: 1,
            gzip_from: 0,
            lines_per_minute: 1,
            ..spec()
        };
        let sum = write_nginx_sample(dir.path(), &small).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("web-1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["access.log", "access.log.1"]);
        assert_eq!((sum.files.len(), sum.lines), (2, 5));
    }

    #[test]
    fn disorder_is_bounded_and_present() {
        for disorder in [0u32, 1, 5] {
            let spec = SampleSpec {
                disorder_secs: disorder,
                ..spec()
            };
            let (mut host, mut max, mut late, mut n) = (usize::MAX, i64::MIN, 0, 0);
            for_each_line(&spec, |l| {
                if l.host != host {
                    (host, max) = (l.host, i64::MIN);
                }
                assert!(l.event_secs >= spec.start_unix_secs);
                assert!(l.event_secs < spec.start_unix_secs + 60 * i64::from(spec.minutes));
                if max != i64::MIN {
                    assert!(
                        l.event_secs >= max - i64::from(disorder),
                        "{} < {max} - {disorder}",
                        l.event_secs
                    );
                    late += usize::from(l.event_secs < max);
                }
                max = max.max(l.event_secs);
                n += 1;
            });
            assert_eq!(n, spec.total_lines());
            assert_eq!(
                late > 0,
                disorder > 0,
                "disorder {disorder}: {late} out-of-order lines"
            );
        }
    }

    #[test]
    fn mix_is_realistic() {
        let (mut get, mut ok, mut n, mut times) = (0u32, 0u32, 0u32, Vec::new());
        for_each_line(
            &SampleSpec {
                hosts: 1,
                minutes: 10,
                lines_per_minute: 1000,
                ..spec()
            },
            |l| {
                get += u32::from(l.method == "GET");
                ok += u32::from(l.status == 200);
                times.push(l.request_time_ms);
                n += 1;
            },
        );
        times.sort_unstable();
        assert!((0.75..0.85).contains(&(f64::from(get) / f64::from(n))));
        assert!((0.85..0.91).contains(&(f64::from(ok) / f64::from(n))));
        let p50 = times[times.len() / 2];
        assert!((25..50).contains(&p50) && times[times.len() * 99 / 100] > 3 * p50);
    }
}
