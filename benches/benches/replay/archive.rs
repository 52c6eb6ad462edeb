//! The archive replayed: one UTC day of nginx logs per host, as rotated siblings,
//! written once per spec.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use tidemark_sources::sample::{write_nginx_sample, SampleSpec};

/// 2026-11-19T00:00:00Z: the archive holds that whole UTC day. It lies in the past, so
/// no line is refused as a future timestamp.
pub const DAY_START: i64 = 1_795_046_400;
pub const DAY_MINUTES: u32 = 24 * 60;
/// Lag bound of the generated timestamps; the job's `max_out_of_orderness` must cover it.
pub const DISORDER_SECS: u32 = 3;

pub struct Archive {
    pub dir: PathBuf,
    pub lines: u64,
    pub bytes: u64,
    pub disk_bytes: u64,
    pub files: u64,
}

/// Writes the archive into `root/replay/data` unless the same spec is already there (only
/// possible with TIDEMARK_BENCH_DIR).
pub fn archive(root: &Path, spec: &SampleSpec) -> Result<Archive> {
    let dir = root.join("replay").join("data");
    let marker = root.join("replay").join("spec.txt");
    let want = format!("{spec:?}");
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let mut it = text.lines();
        if it.next() == Some(want.as_str()) {
            let n: Vec<u64> = it.filter_map(|l| l.parse().ok()).collect();
            if let [lines, bytes, disk_bytes, files] = n[..] {
                eprintln!("reusing {}", dir.display());
                return Ok(Archive {
                    dir,
                    lines,
                    bytes,
                    disk_bytes,
                    files,
                });
            }
        }
    }
    let _ = std::fs::remove_file(&marker);
    let t = Instant::now();
    let s = write_nginx_sample(&dir, spec).with_context(|| format!("writing {}", dir.display()))?;
    let files = s.files.len() as u64;
    eprintln!(
        "generated {} lines, {:.0} MB ({:.0} MB on disk) in {files} files in {:.1}s",
        s.lines,
        s.bytes as f64 / 1e6,
        s.disk_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    std::fs::write(
        &marker,
        format!(
            "{want}\n{}\n{}\n{}\n{files}\n",
            s.lines, s.bytes, s.disk_bytes
        ),
    )?;
    Ok(Archive {
        dir,
        lines: s.lines,
        bytes: s.bytes,
        disk_bytes: s.disk_bytes,
        files,
    })
}
