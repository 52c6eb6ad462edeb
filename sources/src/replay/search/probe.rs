//! The reads a search is made of: a bounded window of the file, and a probe
//! of it for the first parseable line at or after an offset (see "A probe" in
//! the [search docs](super)).

use std::io;
use std::os::unix::fs::FileExt;

use memchr::memchr;

use super::{TimeIndex, FIRST_READ};
use crate::replay::lines::{for_each_line, last_parsed, parse_time, time_of, Hit, Probe, Walk};

impl TimeIndex<'_> {
    /// Reads `[off, off + n)` (clipped to the file) into `self.buf`. Returns
    /// whether the window reaches the end of the file.
    pub(super) fn read_window(&mut self, off: u64, n: usize) -> io::Result<bool> {
        let off = off.min(self.len);
        let n = (n as u64).min(self.len - off) as usize;
        self.buf.clear();
        self.buf.resize(n, 0);
        let mut got = 0;
        while got < n {
            match self.file.read_at(&mut self.buf[got..], off + got as u64) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.truncate(got);
        self.stats.reads += 1;
        self.stats.bytes_read += got as u64;
        // A short read means the file shrank: its end is where the bytes stop.
        Ok(got < n || off + n as u64 >= self.len)
    }

    /// The first parseable line at or after the first line start `≥ x`.
    pub(super) fn probe(&mut self, x: u64) -> io::Result<Probe> {
        let x = x.min(self.len);
        let (from, skip) = if x == 0 { (0, false) } else { (x - 1, true) };
        let mut w = FIRST_READ.min(self.probe_bytes);
        loop {
            let eof = self.read_window(from, w)?;
            let at = if skip {
                match memchr(b'\n', &self.buf) {
                    Some(i) => Some(from + i as u64 + 1),
                    None if eof => Some(from + self.buf.len() as u64),
                    None => None,
                }
            } else {
                Some(from)
            };
            let (mut found, mut candidate) = (None, None);
            let (parser, accept) = (&mut *self.parser, self.accept);
            let walk = for_each_line(&self.buf, skip, eof, |s, n, line| {
                let Some(t) = parse_time(parser, line, &accept) else {
                    return true;
                };
                let hit = Hit::Line {
                    start: from + s as u64,
                    next: from + n as u64,
                    t,
                };
                match candidate {
                    // The outlier rule: a line more than `max_jump` ahead of the
                    // next one does not move a run's watermark, so it must not
                    // steer a search either; the next line takes its place.
                    Some(Hit::Line { t: c, .. }) if c - t > accept.max_jump_ms => {
                        candidate = Some(hit);
                        true
                    }
                    Some(confirmed) => {
                        found = Some(confirmed);
                        false
                    }
                    None if accept.max_jump_ms == i64::MAX => {
                        found = Some(hit);
                        false
                    }
                    None => {
                        candidate = Some(hit);
                        true
                    }
                }
            });
            let hit = match (found, walk) {
                (Some(hit), _) => hit,
                // The file's last parseable line has nothing to be judged against.
                (None, Walk::End) => candidate.unwrap_or(Hit::Eof),
                (None, _) if w < self.probe_bytes => {
                    w = w.saturating_mul(2).min(self.probe_bytes);
                    continue;
                }
                // No next line within the budget: take the line as it is.
                (None, _) => candidate.unwrap_or(Hit::GaveUp),
            };
            return Ok(Probe { at, hit });
        }
    }

    /// The time of the first parseable line at or after the line start `x`,
    /// unjudged (`None` at the end of the file or past the probe budget).
    pub(super) fn probe_raw_time(&mut self, x: u64) -> io::Result<Option<i64>> {
        let accept = self.accept;
        self.accept.max_jump_ms = i64::MAX;
        let probe = self.probe(x);
        self.accept = accept;
        Ok(time_of(probe?.hit))
    }

    /// Calls `f(start, next, time)` for the lines that start in `[lo, hi)`, in
    /// order, while it returns true; `lo` should be a line start (or 0), and
    /// `hi − lo` at most about `probe_bytes`. Stops early at a line that does
    /// not end within `probe_bytes` past `hi`.
    pub(super) fn scan_range(
        &mut self,
        lo: u64,
        hi: u64,
        mut f: impl FnMut(u64, u64, Option<i64>) -> bool,
    ) -> io::Result<()> {
        if lo >= hi {
            return Ok(());
        }
        let (from, skip) = if lo == 0 { (0, false) } else { (lo - 1, true) };
        let w = usize::try_from(hi - from)
            .unwrap_or(usize::MAX)
            .saturating_add(self.probe_bytes);
        let eof = self.read_window(from, w)?;
        let (parser, accept) = (&mut *self.parser, self.accept);
        for_each_line(&self.buf, skip, eof, |s, n, line| {
            let start = from + s as u64;
            start < hi && f(start, from + n as u64, parse_time(parser, line, &accept))
        });
        Ok(())
    }

    /// The time of the last parseable line within `probe_bytes` of the end.
    pub(super) fn last_time(&mut self) -> io::Result<Option<i64>> {
        let mut w = FIRST_READ.min(self.probe_bytes);
        loop {
            // One byte more than `w`, so that a line starting `w` bytes from the
            // end is seen to start there (as a probe reads from `x - 1`).
            let from = self.len.saturating_sub(w as u64 + 1);
            self.read_window(from, w + 1)?;
            let skip = from > 0;
            if let Some(t) = last_parsed(self.parser, &self.buf, skip, &self.accept) {
                return Ok(Some(t));
            }
            if from == 0 || w >= self.probe_bytes {
                return Ok(None);
            }
            w = w.saturating_mul(2).min(self.probe_bytes);
        }
    }
}
