//! Tailer tests against real files in temporary directories.

mod buffer;
mod checks;
mod discontinuity;
mod gzip;
mod park;
mod pause_rotation;
mod resume;
mod rewrite_during_delivery;
mod roots;
mod rotation;
mod settled;
mod stop;
mod unreadable;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{LineMeta, Position, ReadStatus, TailOptions, Tailer};

const WAIT: Duration = Duration::from_millis(100);

fn opts(follow: bool) -> TailOptions {
    TailOptions {
        follow,
        max_line_bytes: 1024,
        fingerprint_bytes: 32,
        unterminated_wait: WAIT,
        fd_retry: WAIT,
    }
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

fn gzip_to(src: &Path, dst: &Path) {
    let data = fs::read(src).unwrap();
    let mut gz =
        flate2::write::GzEncoder::new(File::create(dst).unwrap(), flate2::Compression::fast());
    gz.write_all(&data).unwrap();
    gz.finish().unwrap();
}

fn sib(live: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", live.display()))
}

/// A tailer with a clock the test moves, collecting lines as strings.
struct H {
    t: Tailer,
    now: Instant,
    lines: Vec<String>,
}

impl H {
    fn new(live: &Path, opts: TailOptions, resume: Option<Position>) -> H {
        H {
            t: Tailer::new(live.to_path_buf(), opts, resume),
            now: Instant::now(),
            lines: Vec::new(),
        }
    }

    /// Reads until the tailer is no longer busy; returns the new lines.
    fn read(&mut self) -> (Vec<String>, ReadStatus) {
        let from = self.lines.len();
        let st = loop {
            let lines = &mut self.lines;
            let st = self.t.read_some(1 << 20, self.now, |_, l: &[u8]| {
                lines.push(String::from_utf8_lossy(l).into_owned())
            });
            // A resume miss is scanned again a little later: let that time pass.
            if let (ReadStatus::Blocked, Some(at)) = (st, self.t.wake_at()) {
                self.now = self.now.max(at);
                continue;
            }
            if st != ReadStatus::More {
                break st;
            }
        };
        (self.lines[from..].to_vec(), st)
    }

    /// Lets time pass (beyond the unterminated-line wait), then reads.
    fn later(&mut self) -> (Vec<String>, ReadStatus) {
        self.now += WAIT * 2;
        self.read()
    }

    /// Reads with time passing until nothing new arrives.
    fn drain(&mut self) -> Vec<String> {
        let from = self.lines.len();
        let mut quiet = 0;
        while quiet < 3 {
            let (new, st) = self.later();
            quiet = if new.is_empty() && st != ReadStatus::More {
                quiet + 1
            } else {
                0
            };
            if st == ReadStatus::Finished {
                break;
            }
        }
        self.lines[from..].to_vec()
    }

    /// Drops the tailer and starts another from its position.
    fn restart(&mut self, live: &Path, opts: TailOptions) {
        let pos = self.t.position();
        self.t = Tailer::new(live.to_path_buf(), opts, pos);
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `n` numbered lines `prefix-i`, each with a newline.
fn numbered(prefix: &str, range: std::ops::Range<u32>) -> (Vec<u8>, Vec<String>) {
    let lines: Vec<String> = range.map(|i| format!("{prefix}-{i:04}")).collect();
    let mut bytes = Vec::new();
    for l in &lines {
        bytes.extend_from_slice(l.as_bytes());
        bytes.push(b'\n');
    }
    (bytes, lines)
}

fn collect_meta(t: &mut Tailer, now: Instant) -> Vec<(String, u64, u64, PathBuf)> {
    let mut out = Vec::new();
    loop {
        let st = t.read_some(1 << 20, now, |m: LineMeta<'_>, l: &[u8]| {
            out.push((
                String::from_utf8_lossy(l).into_owned(),
                m.position.offset,
                m.line_no,
                m.path.to_path_buf(),
            ))
        });
        if st != ReadStatus::More {
            return out;
        }
    }
}
