//! jsonl outputs compared window by window, a line at a time (never held whole:
//! see [`lines_of`]).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use tidemark_bench::rfc3339_utc;

/// The `start` field of a jsonl output line.
pub fn start_of(line: &[u8]) -> Option<&[u8]> {
    const KEY: &[u8] = b"\"start\":\"";
    let i = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = line[i..].iter().position(|&b| b == b'"')?;
    Some(&line[i..i + len])
}

/// Output files are read a line at a time and never held whole: a child's `ru_maxrss`
/// starts at this process's own peak RSS (Linux counts the memory it shares with its
/// parent until `exec`), so a big buffer here would show up in every later run's figure.
pub fn lines_of(path: &Path) -> Result<impl Iterator<Item = std::io::Result<Vec<u8>>>> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(BufReader::with_capacity(64 << 10, f).split(b'\n'))
}

/// FNV-1a over `bytes`, continuing from `h` (start from [`FNV_START`]).
pub fn fnv_update(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// A digest of the file `path` (0 if it does not exist).
pub fn digest(path: &Path) -> Result<u64> {
    if !path.exists() {
        return Ok(0);
    }
    let mut h = FNV_START;
    for line in lines_of(path)? {
        h = fnv_update(fnv_update(h, &line?), b"\n");
    }
    Ok(h)
}

/// Copies the lines of `output` whose window starts in `[from, to)` (by the `start`
/// field) to `into`, and returns how many there were.
pub fn windows_in(output: &Path, from: i64, to: i64, into: &Path) -> Result<u64> {
    let (from, to) = (rfc3339_utc(from), rfc3339_utc(to));
    let mut w = BufWriter::new(File::create(into)?);
    let mut n = 0;
    for line in lines_of(output)? {
        let line = line?;
        if start_of(&line).is_some_and(|s| s >= from.as_bytes() && s < to.as_bytes()) {
            w.write_all(&line)?;
            w.write_all(b"\n")?;
            n += 1;
        }
    }
    w.flush()?;
    Ok(n)
}

/// `None` if `got` holds the same bytes as `want`, else where it first departs from it.
pub fn difference(want: &Path, got: &Path) -> Result<Option<String>> {
    if !got.exists() {
        return Ok(Some("no output file was written".into()));
    }
    let show = |l: &[u8]| String::from_utf8_lossy(&l[..l.len().min(200)]).into_owned();
    let (mut w, mut g) = (lines_of(want)?, lines_of(got)?);
    let mut i = 0u64;
    loop {
        i += 1;
        match (w.next().transpose()?, g.next().transpose()?) {
            (None, None) => break,
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => {
                return Ok(Some(format!(
                    "line {i}: expected {:?}, got {:?}",
                    show(&a),
                    show(&b)
                )))
            }
            (Some(a), None) => {
                return Ok(Some(format!(
                    "line {i} is missing, expected {:?}",
                    show(&a)
                )))
            }
            (None, Some(b)) => return Ok(Some(format!("extra line {i}: {:?}", show(&b)))),
        }
    }
    // Same lines; only a missing final newline can still differ.
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Ok((len(want) != len(got)).then(|| "the final newline differs".to_string()))
}
