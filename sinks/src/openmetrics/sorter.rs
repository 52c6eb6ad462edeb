//! Regrouping samples that arrive window by window into OpenMetrics order —
//! family by family, series by series, each series in time order — in bounded
//! memory.
//!
//! Windows arrive in time order, each holding one sample of many series; the
//! text format wants every sample of one series together, and every series of
//! one family together. Samples are kept per series in memory (a sorted map)
//! until a budget of bytes is used, then written out as one sorted *run* to an
//! unnamed temporary file (gone when closed, even after `kill -9`). At the end
//! the runs are merged: the smallest series key first, and for one key the runs
//! in the order they were written, which is time order. Memory is the budget
//! plus, at the end, one read buffer and one key per run; the temporary file is
//! as large as the output. A range whose output fits the budget never touches
//! the disk before the end.
//!
//! A key is the family name, a NUL byte, then the labels' text: NUL sorts
//! before every character a name or a label set can hold, so all the series of
//! a family sort together (`foo` before `foo_bar`, whatever their labels).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes counted per series kept in memory beyond its key and samples (the
/// map's node and the two allocations), so that many tiny series spill too.
const PER_SERIES: usize = 64;

/// Read buffer per run while merging.
const MERGE_BUFFER: usize = 64 * 1024;

/// Samples grouped by series, spilled to disk in sorted runs past a budget.
pub struct SeriesSorter {
    budget: usize,
    /// Where the spill file is created (the output's folder: the same file
    /// system the output is written to, not a `/tmp` that may be memory).
    dir: PathBuf,
    /// Key → the series' sample lines (`VALUE TIMESTAMP\n` each), in time order.
    mem: BTreeMap<Box<[u8]>, Vec<u8>>,
    mem_bytes: usize,
    spill: Option<File>,
    spill_len: u64,
    /// (offset, length) of each run in the spill file, in the order written.
    runs: Vec<(u64, u64)>,
    key: Vec<u8>,
}

impl SeriesSorter {
    /// A sorter that keeps about `budget` bytes in memory and spills to an
    /// unnamed file in `dir` beyond that.
    pub fn new(dir: &Path, budget: usize) -> SeriesSorter {
        SeriesSorter {
            budget: budget.max(1),
            dir: dir.to_path_buf(),
            mem: BTreeMap::new(),
            mem_bytes: 0,
            spill: None,
            spill_len: 0,
            runs: Vec::new(),
            key: Vec::new(),
        }
    }

    /// How many runs were spilled so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Adds one sample line (`VALUE TIMESTAMP\n`) of the series `family` +
    /// `labels` (its text, `{a="1"}` or empty). Samples of one series must come
    /// in time order.
    pub fn push(&mut self, family: &str, labels: &str, sample: &str) -> io::Result<()> {
        self.key.clear();
        self.key.extend_from_slice(family.as_bytes());
        self.key.push(0);
        self.key.extend_from_slice(labels.as_bytes());
        match self.mem.get_mut(self.key.as_slice()) {
            Some(body) => body.extend_from_slice(sample.as_bytes()),
            None => {
                self.mem_bytes += self.key.len() + PER_SERIES;
                self.mem
                    .insert(self.key.as_slice().into(), sample.as_bytes().to_vec());
            }
        }
        self.mem_bytes += sample.len();
        if self.mem_bytes >= self.budget {
            self.spill_run()?;
        }
        Ok(())
    }

    /// Writes what is in memory as one sorted run at the end of the spill file.
    fn spill_run(&mut self) -> io::Result<()> {
        if self.mem.is_empty() {
            return Ok(());
        }
        let file = match &mut self.spill {
            Some(f) => f,
            None => self.spill.insert(tempfile::tempfile_in(&self.dir)?),
        };
        file.seek(SeekFrom::Start(self.spill_len))?;
        let mut w = BufWriter::with_capacity(MERGE_BUFFER, &*file);
        let mut len = 0u64;
        for (key, body) in std::mem::take(&mut self.mem) {
            let key_len = u32::try_from(key.len()).map_err(|_| too_long())?;
            w.write_all(&key_len.to_le_bytes())?;
            w.write_all(&key)?;
            w.write_all(&(body.len() as u64).to_le_bytes())?;
            w.write_all(&body)?;
            len += 4 + key.len() as u64 + 8 + body.len() as u64;
        }
        w.flush()?;
        self.runs.push((self.spill_len, len));
        self.spill_len += len;
        self.mem_bytes = 0;
        Ok(())
    }

    /// Writes every series to `out`: a `# TYPE NAME gauge` line before each
    /// family, its series one after the other with their samples in time order,
    /// then `# EOF`.
    pub fn write_to(mut self, out: &mut impl Write) -> io::Result<()> {
        let mut emit = Emitter::default();
        if self.runs.is_empty() {
            for (key, body) in &self.mem {
                emit.series(out, key, &mut &body[..], body.len() as u64)?;
            }
        } else {
            self.spill_run()?;
            let file = self
                .spill
                .as_ref()
                .ok_or_else(|| io::Error::other("no spill file"))?;
            let mut readers: Vec<BufReader<Slice<'_>>> = self
                .runs
                .iter()
                .map(|&(pos, len)| {
                    BufReader::with_capacity(
                        MERGE_BUFFER,
                        Slice {
                            file,
                            pos,
                            end: pos + len,
                        },
                    )
                })
                .collect();
            // (key, run, body length); for one key, the earlier run first.
            let mut heap = BinaryHeap::new();
            for (i, r) in readers.iter_mut().enumerate() {
                if let Some((key, len)) = header(r)? {
                    heap.push(Reverse((key, i, len)));
                }
            }
            while let Some(Reverse((key, i, len))) = heap.pop() {
                emit.series(out, &key, &mut readers[i], len)?;
                if let Some((key, len)) = header(&mut readers[i])? {
                    heap.push(Reverse((key, i, len)));
                }
            }
        }
        out.write_all(b"# EOF\n")
    }
}

/// Writes series in key order, opening each family with its TYPE line.
#[derive(Default)]
struct Emitter {
    family: Option<Vec<u8>>,
    prefix: Vec<u8>,
    line: Vec<u8>,
}

impl Emitter {
    /// The series `key` and its `len` bytes of sample lines from `body`.
    fn series(
        &mut self,
        out: &mut impl Write,
        key: &[u8],
        body: &mut impl BufRead,
        len: u64,
    ) -> io::Result<()> {
        let nul = key.iter().position(|&b| b == 0).unwrap_or(key.len());
        let (family, labels) = (&key[..nul], key.get(nul + 1..).unwrap_or_default());
        if self.family.as_deref() != Some(family) {
            out.write_all(b"# TYPE ")?;
            out.write_all(family)?;
            out.write_all(b" gauge\n")?;
            self.family = Some(family.to_vec());
        }
        self.prefix.clear();
        self.prefix.extend_from_slice(family);
        self.prefix.extend_from_slice(labels);
        self.prefix.push(b' ');
        let mut body = body.take(len);
        loop {
            self.line.clear();
            if body.read_until(b'\n', &mut self.line)? == 0 {
                break;
            }
            out.write_all(&self.prefix)?;
            out.write_all(&self.line)?;
        }
        if body.limit() != 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the spill file ended inside a series",
            ));
        }
        Ok(())
    }
}

/// The next record's key and body length, or `None` at the end of the run.
fn header(r: &mut impl Read) -> io::Result<Option<(Vec<u8>, u64)>> {
    let mut n = [0u8; 4];
    match r.read_exact(&mut n) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut key = vec![0u8; u32::from_le_bytes(n) as usize];
    r.read_exact(&mut key)?;
    let mut len = [0u8; 8];
    r.read_exact(&mut len)?;
    Ok(Some((key, u64::from_le_bytes(len))))
}

fn too_long() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "a series key over 4 GiB")
}

/// One run of the spill file, read with its own position (`pread`), so every
/// run has a reader of its own on the one file.
struct Slice<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Slice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `windows` windows of `series` series each (family `fam{i%3}`),
    /// with budget `budget`; returns the text and how many runs were spilled.
    fn sorted(windows: u64, series: u64, budget: usize) -> (String, usize) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SeriesSorter::new(dir.path(), budget);
        for w in 0..windows {
            for i in 0..series {
                let labels = format!("{{i=\"{i}\"}}");
                let fam = format!("fam{}", i % 3);
                s.push(&fam, &labels, &format!("{} {}\n", w * 100 + i, 60 * w))
                    .unwrap();
            }
        }
        let runs = s.runs();
        let mut out = Vec::new();
        s.write_to(&mut out).unwrap();
        // The spill file has no name: nothing is left in the folder.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        (String::from_utf8(out).unwrap(), runs)
    }

    #[test]
    fn families_and_series_are_contiguous_and_each_series_in_time_order() {
        let (text, runs) = sorted(3, 4, 1 << 20);
        assert_eq!(runs, 0);
        assert_eq!(
            text,
            "# TYPE fam0 gauge\n\
             fam0{i=\"0\"} 0 0\nfam0{i=\"0\"} 100 60\nfam0{i=\"0\"} 200 120\n\
             fam0{i=\"3\"} 3 0\nfam0{i=\"3\"} 103 60\nfam0{i=\"3\"} 203 120\n\
             # TYPE fam1 gauge\n\
             fam1{i=\"1\"} 1 0\nfam1{i=\"1\"} 101 60\nfam1{i=\"1\"} 201 120\n\
             # TYPE fam2 gauge\n\
             fam2{i=\"2\"} 2 0\nfam2{i=\"2\"} 102 60\nfam2{i=\"2\"} 202 120\n\
             # EOF\n"
        );
    }

    #[test]
    fn spilling_to_runs_gives_the_same_text_as_memory_alone() {
        let (whole, runs) = sorted(200, 50, 1 << 30);
        assert_eq!(runs, 0);
        for budget in [1, 100, 5_000, 30_000] {
            let (spilled, runs) = sorted(200, 50, budget);
            assert!(runs > 1, "budget {budget}: {runs} runs");
            assert!(spilled == whole, "budget {budget}: the texts differ");
        }
    }

    #[test]
    fn a_family_is_not_split_by_one_whose_name_extends_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SeriesSorter::new(dir.path(), 1 << 20);
        s.push("foo", "{a=\"z\"}", "1 60\n").unwrap();
        s.push("foo_bar", "", "2 60\n").unwrap();
        s.push("foo", "", "3 60\n").unwrap();
        s.push("foo:x", "", "4 60\n").unwrap();
        let mut out = Vec::new();
        s.write_to(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# TYPE foo gauge\nfoo 3 60\nfoo{a=\"z\"} 1 60\n\
             # TYPE foo:x gauge\nfoo:x 4 60\n\
             # TYPE foo_bar gauge\nfoo_bar 2 60\n# EOF\n"
        );
    }

    #[test]
    fn a_nul_byte_in_a_label_value_stays_in_the_value() {
        let dir = tempfile::tempdir().unwrap();
        for budget in [1, 1 << 20] {
            let mut s = SeriesSorter::new(dir.path(), budget);
            s.push("foo", "{a=\"x\0y\"}", "1 60\n").unwrap();
            s.push("foo", "{a=\"x\"}", "2 60\n").unwrap();
            s.push("foo", "{a=\"x\0y\"}", "3 120\n").unwrap();
            let mut out = Vec::new();
            s.write_to(&mut out).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "# TYPE foo gauge\nfoo{a=\"x\0y\"} 1 60\nfoo{a=\"x\0y\"} 3 120\n\
                 foo{a=\"x\"} 2 60\n# EOF\n",
                "budget {budget}"
            );
        }
    }

    /// Random windows of random series, random budgets: the output is the
    /// reference order (by family, then labels text, each series in the order
    /// pushed), whatever was spilled.
    #[test]
    fn random_inputs_come_out_in_reference_order_whatever_the_budget() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        println!("seed {seed}");
        let mut x = seed | 1;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let dir = tempfile::tempdir().unwrap();
        for round in 0..20 {
            let budget = [1, 50, 1_000, 100_000][next(4) as usize];
            let mut s = SeriesSorter::new(dir.path(), budget);
            let mut pushed: Vec<(String, String, String)> = Vec::new();
            for w in 0..next(60) {
                for _ in 0..next(20) {
                    let fam = ["a", "a_b", "a:b", "b", "ab"][next(5) as usize].to_string();
                    let labels = match next(4) {
                        0 => String::new(),
                        n => format!("{{l=\"{}\"}}", "xyz\0 ".repeat(n as usize)),
                    };
                    // One sample per series and window, as a window holds.
                    if pushed.iter().any(|(f, l, t)| {
                        *f == fam && *l == labels && t.ends_with(&format!(" {w}\n"))
                    }) {
                        continue;
                    }
                    let sample = format!("{} {w}\n", next(1000));
                    s.push(&fam, &labels, &sample).unwrap();
                    pushed.push((fam, labels, sample));
                }
            }
            let mut want = String::new();
            let mut reference = pushed.clone();
            // Stable: a series' samples stay in the order pushed (time order).
            reference.sort_by(|a, b| {
                (a.0.as_bytes(), 0u8, a.1.as_bytes()).cmp(&(b.0.as_bytes(), 0u8, b.1.as_bytes()))
            });
            let mut family = None;
            for (f, l, t) in &reference {
                if family != Some(f) {
                    want.push_str(&format!("# TYPE {f} gauge\n"));
                    family = Some(f);
                }
                want.push_str(&format!("{f}{l} {t}"));
            }
            want.push_str("# EOF\n");
            let mut out = Vec::new();
            s.write_to(&mut out).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                want,
                "seed {seed}, round {round}, budget {budget}"
            );
        }
    }

    #[test]
    fn nothing_pushed_is_just_eof() {
        let (text, _) = sorted(0, 0, 10);
        assert_eq!(text, "# EOF\n");
    }
}
