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

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// 2026-11-20T10:00:00Z.
pub const SAMPLE_START_UNIX_SECS: i64 = 1_795_168_800;

/// What to generate. See the field docs; [`SampleSpec::default`] is a small demo set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleSpec {
    /// Number of hosts, named "web-1", "web-2", ... (see [`host_name`]).
    pub hosts: usize,
    /// Nominal time of the first event (unix seconds, UTC).
    pub start_unix_secs: i64,
    /// Length of the data set in minutes.
    pub minutes: u32,
    /// Lines per host per minute (spread evenly over the minute's seconds).
    pub lines_per_minute: u32,
    /// Rotated siblings per host: `access.log.1` .. `access.log.<rotations>`.
    pub rotations: u32,
    /// Siblings numbered `>= gzip_from` are gzip-compressed (`access.log.2.gz`); 0 = none.
    pub gzip_from: u32,
    /// A line's time is never more than this many seconds below the max time seen
    /// before it in the same host's stream (bounded disorder). 0 = sorted.
    pub disorder_secs: u32,
    pub seed: u64,
}

impl Default for SampleSpec {
    fn default() -> Self {
        SampleSpec {
            hosts: 3,
            start_unix_secs: SAMPLE_START_UNIX_SECS,
            minutes: 10,
            lines_per_minute: 600,
            rotations: 2,
            gzip_from: 2,
            disorder_secs: 3,
            seed: 42,
        }
    }
}

impl SampleSpec {
    /// Lines written per host.
    pub fn lines_per_host(&self) -> u64 {
        u64::from(self.minutes) * u64::from(self.lines_per_minute)
    }
    /// Lines written in total.
    pub fn total_lines(&self) -> u64 {
        self.lines_per_host() * self.hosts as u64
    }
}

/// One generated request. `path` borrows a buffer reused between lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleLine<'a> {
    /// Host index, 0-based; its name is [`host_name`]`(host)`.
    pub host: usize,
    pub event_secs: i64,
    pub remote_addr: [u8; 4],
    pub method: &'static str,
    /// Request URI including any query string, e.g. `/api/users?id=42`.
    pub path: &'a str,
    pub protocol: &'static str,
    pub status: u16,
    pub body_bytes: u64,
    pub referer: &'static str,
    pub user_agent: &'static str,
    pub request_time_ms: u32,
}

/// What [`write_nginx_sample`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SampleSummary {
    /// All files, host by host, each host's oldest file first.
    pub files: Vec<PathBuf>,
    pub lines: u64,
    /// Uncompressed log bytes (what a reader parses).
    pub bytes: u64,
    /// Bytes on disk (smaller when siblings are gzip-compressed).
    pub disk_bytes: u64,
}

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

/// Appends one nginx "combined" line with a trailing `$request_time`, including `'\n'`.
pub fn format_nginx_line(line: &SampleLine, out: &mut Vec<u8>) {
    let [a, b, c, d] = line.remote_addr;
    push_u64(out, u64::from(a));
    out.push(b'.');
    push_u64(out, u64::from(b));
    out.push(b'.');
    push_u64(out, u64::from(c));
    out.push(b'.');
    push_u64(out, u64::from(d));
    out.extend_from_slice(b" - - [");
    push_time_local(line.event_secs, out);
    out.extend_from_slice(b"] \"");
    out.extend_from_slice(line.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(line.path.as_bytes());
    out.push(b' ');
    out.extend_from_slice(line.protocol.as_bytes());
    out.extend_from_slice(b"\" ");
    push_u64(out, u64::from(line.status));
    out.push(b' ');
    push_u64(out, line.body_bytes);
    out.extend_from_slice(b" \"");
    out.extend_from_slice(line.referer.as_bytes());
    out.extend_from_slice(b"\" \"");
    out.extend_from_slice(line.user_agent.as_bytes());
    out.extend_from_slice(b"\" ");
    let (secs, ms) = (line.request_time_ms / 1000, line.request_time_ms % 1000);
    push_u64(out, u64::from(secs));
    let digit = |v: u32| b'0' + (v % 10) as u8;
    out.extend_from_slice(&[b'.', digit(ms / 100), digit(ms / 10), digit(ms), b'\n']);
}

/// `20/Nov/2026:10:00:01 +0000` (nginx `$time_local` in UTC).
fn push_time_local(secs: i64, out: &mut Vec<u8>) {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + i64::from(month <= 2)).clamp(0, 9999);
    let two = |v: i64| [b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8];
    out.extend_from_slice(&two(day));
    out.push(b'/');
    out.extend_from_slice(MONTHS[(month - 1) as usize]);
    out.push(b'/');
    out.extend_from_slice(&two(year / 100));
    out.extend_from_slice(&two(year));
    for v in [sod / 3600, sod / 60 % 60, sod % 60] {
        out.push(b':');
        out.extend_from_slice(&two(v));
    }
    out.extend_from_slice(b" +0000");
}

/// Appends the decimal digits of `v`.
fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// splitmix64: tiny, fast, good enough for synthetic data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
    /// Approximately standard normal (Irwin-Hall of four 16-bit uniforms).
    fn normal(&mut self) -> f64 {
        let x = self.next();
        let s: u64 = (0..4).map(|i| (x >> (16 * i)) & 0xFFFF).sum();
        (s as f64 / 65_536.0 - 2.0) * 1.732_050_8
    }
    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }
}

const UAS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64) tidemark-sample/1.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "curl/8.11.0",
];
const REFERERS: [&str; 3] = ["-", "https://shop.example.com/", "https://www.google.com/"];
/// (path, query prefix or "" for none) per method.
const GET_PATHS: [(&str, &str); 10] = [
    ("/", ""),
    ("/index.html", ""),
    ("/static/js/app.js", ""),
    ("/static/css/site.css", ""),
    ("/images/logo.png", ""),
    ("/api/users", "?id="),
    ("/api/orders", "?page="),
    ("/api/search", "?q=item"),
    ("/api/cart", ""),
    ("/health", ""),
];
const POST_PATHS: [(&str, &str); 3] =
    [("/api/orders", ""), ("/login", ""), ("/api/cart", "?item=")];
const PUT_PATHS: [(&str, &str); 2] = [("/api/users", "?id="), ("/api/cart", "?item=")];
const DELETE_PATHS: [(&str, &str); 2] = [("/api/cart", "?item="), ("/api/sessions", "?id=")];

/// One host's line stream.
struct HostStream {
    rng: Rng,
    host: usize,
    idx: u64,
    total: u64,
    lpm: u64,
    start: i64,
    disorder: u64,
    path: String,
}

impl HostStream {
    fn new(spec: &SampleSpec, host: usize) -> Self {
        let mut seed = Rng(spec.seed ^ (host as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F));
        HostStream {
            rng: Rng(seed.next()),
            host,
            idx: 0,
            total: spec.lines_per_host(),
            lpm: u64::from(spec.lines_per_minute),
            start: spec.start_unix_secs,
            disorder: u64::from(spec.disorder_secs),
            path: String::with_capacity(64),
        }
    }

    fn next_line(&mut self) -> Option<SampleLine<'_>> {
        if self.idx >= self.total {
            return None;
        }
        let (minute, i) = (self.idx / self.lpm, self.idx % self.lpm);
        self.idx += 1;
        let r = &mut self.rng;
        // Nominal times never decrease, so `nominal - lag` (lag <= disorder) is never more
        // than `disorder` below the max of the earlier lines.
        let nominal = self.start + (minute * 60 + i * 60 / self.lpm) as i64;
        let disordered = self.disorder > 0 && r.below(4) == 0;
        let lag = if disordered {
            1 + r.below(self.disorder)
        } else {
            0
        };
        let event_secs = (nominal - lag as i64).max(self.start);
        let remote_addr = [
            10,
            r.below(16) as u8,
            r.below(256) as u8,
            1 + r.below(254) as u8,
        ];
        let (method, paths): (_, &[(&str, &str)]) = match r.below(100) {
            0..=79 => ("GET", &GET_PATHS),
            80..=91 => ("POST", &POST_PATHS),
            92..=96 => ("PUT", &PUT_PATHS),
            _ => ("DELETE", &DELETE_PATHS),
        };
        let (base, query) = paths[r.below(paths.len() as u64) as usize];
        self.path.clear();
        self.path.push_str(base);
        if !query.is_empty() {
            self.path.push_str(query);
            let n = 1 + r.below(500) as u32; // 1..=500: "id=7", "id=42", "id=500"
            let digits = [n / 100, n / 10 % 10, n % 10].map(|d| char::from(b'0' + d as u8));
            self.path
                .extend(&digits[usize::from(n < 100) + usize::from(n < 10)..]);
        }
        let status = match r.below(10_000) {
            0..=8_799 => 200,
            8_800..=8_999 => 301,
            9_000..=9_449 => 304,
            9_450..=9_799 => 404,
            9_800..=9_949 => 500,
            _ => 503,
        };
        let body_bytes = match status {
            200 => r.lognormal(2_400.0, 1.3).clamp(40.0, 8e6) as u64,
            301 => 169,
            304 => 0,
            404 => 153 + r.below(400),
            500 => 177,
            _ => 197,
        };
        let mut ms = r.lognormal(35.0, 0.9);
        if r.below(100) == 0 {
            ms *= 8.0; // slow tail
        }
        if status == 503 {
            ms = 1.0 + r.below(5) as f64;
        }
        let referer = REFERERS[r.below(10).saturating_sub(7) as usize];
        Some(SampleLine {
            host: self.host,
            event_secs,
            remote_addr,
            method,
            path: &self.path,
            protocol: ["HTTP/2.0", "HTTP/1.1"][usize::from(r.below(5) > 0)],
            status,
            body_bytes,
            referer,
            user_agent: UAS[r.below(UAS.len() as u64) as usize],
            request_time_ms: ms.clamp(1.0, 60_000.0) as u32,
        })
    }
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
    fn formats_a_combined_line() {
        let line = SampleLine {
            host: 0,
            event_secs: SAMPLE_START_UNIX_SECS + 1,
            remote_addr: [10, 0, 3, 7],
            method: "GET",
            path: "/api/users?id=42",
            protocol: "HTTP/1.1",
            status: 200,
            body_bytes: 5123,
            referer: "-",
            user_agent: UAS[0],
            request_time_ms: 42,
        };
        let mut out = Vec::new();
        format_nginx_line(&line, &mut out);
        let want =
            "10.0.3.7 - - [20/Nov/2026:10:00:01 +0000] \"GET /api/users?id=42 HTTP/1.1\" 200 5123 \
                    \"-\" \"Mozilla/5.0 (X11; Linux x86_64) tidemark-sample/1.0\" 0.042\n";
        assert_eq!(String::from_utf8(out).unwrap(), want);
    }

    #[test]
    fn time_local_matches_jiff() {
        let mut r = Rng(7);
        for _ in 0..2_000 {
            let secs = r.below(253_402_300_799) as i64; // up to 9999-12-31
            let mut out = Vec::new();
            push_time_local(secs, &mut out);
            let ts = jiff::Timestamp::from_second(secs).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                ts.strftime("%d/%b/%Y:%H:%M:%S +0000").to_string()
            );
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
