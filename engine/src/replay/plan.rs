//! Planning a replay: which files, and which byte ranges of them, can hold lines of
//! the range — found from first and last lines and by binary search, never by
//! reading the files outside the range — cut into segments for parallel reading.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tidemark_jobs::Job;
use tidemark_sources::file::discover::{discover, discover_archive};
use tidemark_sources::file::{outside_error, AllowedRoots, EscapedPath, Outside};
use tidemark_sources::parse::LineParser;
use tidemark_sources::replay::DEFAULT_PROBE_BYTES;
use tidemark_sources::replay::{
    gzip_first_time_file, is_gzip_file, span_overlaps, Accept, TimeIndex,
};

use super::range::ReplayRange;
use crate::error::EngineError;
use crate::groupset::host_of_path;
use crate::time::{wall_clock_ms, window_start, EventMs, WindowTime};

/// A piece of one file read by one worker: a byte range of a plain file cut at a
/// line start, or a whole compressed file.
#[derive(Debug, Clone)]
pub struct Segment {
    /// The stream it belongs to: a file group's live path, or an archive stream.
    /// Partials fold in (group, seq) order.
    pub group: Arc<str>,
    /// Position in the stream's order.
    pub seq: u32,
    /// The host of its lines when not a per-line field.
    pub host: Option<Arc<str>>,
    /// The file's path when planned.
    pub path: PathBuf,
    /// The file's identity when planned: it may be renamed (rotated) before a
    /// worker gets to it, and another file may then have its name.
    pub dev: u64,
    /// The file's inode when planned (with `dev`, its identity).
    pub ino: u64,
    /// Whether the file is gzip-compressed (then it is read whole).
    pub gzip: bool,
    /// Byte range (plain files); a compressed file is read whole.
    pub start: u64,
    /// End of the byte range (exclusive).
    pub end: u64,
    /// Time of the segment's first parseable line minus the disorder bound: no line
    /// of the segment is below it unless it is late.
    pub floor_ms: Option<EventMs>,
    /// The earliest window it can add to.
    pub lo: WindowTime,
    /// File bytes to read (compressed size for gzip), for progress.
    pub cost: u64,
}

/// What a replay reads, from [`plan_replay`]: the segments in the order workers take
/// them, and what planning looked at (for the summary and the output checks).
#[derive(Debug, Clone)]
pub struct ReplayPlan {
    /// The whole windows the replay emits.
    pub range: ReplayRange,
    /// In the order workers take them: by first window, then stream order.
    pub segments: Vec<Segment>,
    /// Files looked at, and how many of them were skipped after reading only
    /// their first and last lines (plain) or first line (gzip, with the next file's).
    pub files: u64,
    /// See `files`.
    pub files_skipped: u64,
    /// Compressed files that must be read whole.
    pub gzip_files_read: u64,
    /// Size of every file looked at.
    pub bytes_in_files: u64,
    /// Bytes the segments cover (compressed size for gzip).
    pub bytes_to_read: u64,
    /// Bytes read by the searches.
    pub search_bytes: u64,
    /// (device, inode) of every file looked at: an output must not be one of them.
    pub inputs: Vec<(u64, u64)>,
    /// Files left out, never read, because their real path (symlinks resolved) is
    /// outside the job's allowed roots (each was warned about).
    pub outside_roots: u64,
}

/// How [`plan_replay`] cuts the files into segments.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// Workers that will read the segments: the default segment size is cut
    /// from each one's share, so every worker has several to take.
    pub workers: usize,
    /// Target segment size; `None`: a sixteenth of a worker's share of the
    /// range, between 1 MiB and 8 MiB.
    pub segment_bytes: Option<u64>,
}

struct FileInfo {
    path: PathBuf,
    dev: u64,
    ino: u64,
    gzip: bool,
    size: u64,
    /// First and last parseable lines' times (plain files, when both ends have one).
    span: Option<(EventMs, EventMs)>,
    first: Option<EventMs>,
}

struct Stream {
    key: Arc<str>,
    host: Option<Arc<str>>,
    files: Vec<FileInfo>,
}

/// A plain file's byte range holding the replay range.
struct Candidate {
    stream: usize,
    file: usize,
    start: u64,
    end: u64,
}

/// Plans a replay of `range` for `job`: finds the job's files (live, rotated, compressed,
/// archived) within its allowed roots, skips those wholly outside the range after reading
/// their first and last lines, and cuts the rest into segments by binary search on
/// timestamps, ordered as workers should take them. Fails if the job's parser cannot be
/// built, or finding or reading its files fails.
pub fn plan_replay(
    job: &Job,
    range: ReplayRange,
    opts: PlanOptions,
) -> Result<ReplayPlan, EngineError> {
    let d = job.window.max_out_of_orderness.as_millis() as i64;
    let (from, to) = (range.from_ms(), range.to_ms());
    let mut parser = LineParser::new(&job.parse, &[]).map_err(EngineError::Parser)?;
    // Searches use only the lines the replay will count (a line dated 2099 must not
    // make a file look later than the range).
    let accept = Accept {
        max_ms: wall_clock_ms().saturating_add(job.window.max_clock_skew.as_millis() as i64),
        max_line_bytes: job.source.max_line_bytes,
        max_jump_ms: job.window.max_jump.as_millis() as i64,
    };
    let roots = AllowedRoots::of_source(&job.source);
    let mut outside = Vec::new();
    let mut streams = find_streams(job, &roots, &mut outside, &mut parser, &accept)?;
    for o in &outside {
        tracing::warn!("{o}");
    }
    let mut plan = ReplayPlan {
        range,
        segments: Vec::new(),
        files: 0,
        files_skipped: 0,
        gzip_files_read: 0,
        bytes_in_files: 0,
        bytes_to_read: 0,
        search_bytes: 0,
        inputs: Vec::new(),
        outside_roots: outside.len() as u64,
    };
    // Pass 1: decide per file from its first (and last) lines; search plain files.
    let mut candidates = Vec::new();
    let mut gzip_whole = Vec::new();
    for (si, s) in streams.iter_mut().enumerate() {
        // Every line of a file is at most the first time of any later file of its
        // stream plus d: the later file's first line is at least their maximum − d.
        let mut later_first: Option<EventMs> = None;
        let mut upper = vec![None; s.files.len()];
        for (i, f) in s.files.iter().enumerate().rev() {
            upper[i] = later_first.map(|t| t.saturating_add(d));
            if let Some(t) = f.first {
                later_first = Some(later_first.map_or(t, |l| l.min(t)));
            }
        }
        for (fi, f) in s.files.iter().enumerate() {
            plan.files += 1;
            plan.inputs.push((f.dev, f.ino));
            plan.bytes_in_files += f.size;
            let before_range = upper[fi].is_some_and(|u| u < from);
            let after_range = f.first.is_some_and(|t| t.saturating_sub(d) >= to);
            let outside_span = f.span.is_some_and(|sp| !span_overlaps(sp, from, to, d));
            if f.size == 0 || before_range || after_range || outside_span {
                plan.files_skipped += 1;
                continue;
            }
            if f.gzip {
                plan.gzip_files_read += 1;
                gzip_whole.push((si, fi));
                continue;
            }
            if f.size <= SMALL_FILE {
                // Cheaper to read it whole than to search it.
                candidates.push(Candidate {
                    stream: si,
                    file: fi,
                    start: 0,
                    end: f.size,
                });
                continue;
            }
            let searched = reopen(&roots, f, &mut parser).and_then(|ix| {
                let mut ix = ix.with_accept(accept);
                let start = ix.seek_to_time(from, d)?;
                let end = ix.end_offset(to, d)?;
                Ok((start, end, ix.stats().bytes_read))
            });
            let (start, end, read) = searched.map_err(|e| io_error(&f.path, e))?;
            plan.search_bytes += read;
            if start >= end {
                plan.files_skipped += 1;
                continue;
            }
            candidates.push(Candidate {
                stream: si,
                file: fi,
                start,
                end,
            });
        }
    }
    // Pass 2: cut the plain ranges into segments.
    let total: u64 = candidates.iter().map(|c| c.end - c.start).sum();
    // Many segments per worker: the last ones finish close together (no worker
    // idles while another reads a big one), and each stream's first segment is
    // short, so the first window closes early.
    let target = opts
        .segment_bytes
        .unwrap_or_else(|| (total / (opts.workers.max(1) as u64 * 16)).clamp(1 << 20, 8 << 20));
    let mut pieces: Vec<(usize, usize, Segment)> = Vec::new();
    let window_ms = job.window.size.as_millis() as i64;
    let lo_of = |floor: Option<EventMs>| -> WindowTime {
        window_start(floor.map_or(from, |f| f.max(from)), window_ms) as WindowTime
    };
    for c in &candidates {
        let s = &streams[c.stream];
        let f = &s.files[c.file];
        let n = (c.end - c.start).div_ceil(target.max(1)).max(1) as usize;
        if n == 1 && c.start == 0 {
            // One segment from the start: its first line is the file's.
            let floor = f.first.map(|t| t.saturating_sub(d));
            pieces.push((
                c.stream,
                c.file,
                segment(s, f, 0, c.end, floor, lo_of(floor)),
            ));
            continue;
        }
        let points = reopen(&roots, f, &mut parser)
            .and_then(|ix| {
                let mut ix = ix.with_accept(accept);
                let p = ix.split_points(c.start, c.end, n)?;
                Ok((p, ix.stats().bytes_read))
            })
            .map_err(|e| io_error(&f.path, e))?;
        plan.search_bytes += points.1;
        for w in points.0.windows(2) {
            let ((a, t), (b, _)) = (w[0], w[1]);
            let floor = t.map(|t| t.saturating_sub(d));
            pieces.push((c.stream, c.file, segment(s, f, a, b, floor, lo_of(floor))));
        }
    }
    for &(si, fi) in &gzip_whole {
        let s = &streams[si];
        let f = &s.files[fi];
        let floor = f.first.map(|t| t.saturating_sub(d));
        pieces.push((si, fi, segment(s, f, 0, f.size, floor, lo_of(floor))));
    }
    // Number each stream's segments in stream order (file, then offset).
    pieces.sort_by_key(|p| (p.0, p.1, p.2.start));
    let mut last_stream = usize::MAX;
    let mut seq = 0u32;
    for (si, _, seg) in &mut pieces {
        if *si != last_stream {
            last_stream = *si;
            seq = 0;
        }
        seg.seq = seq;
        seq += 1;
    }
    plan.segments = pieces.into_iter().map(|p| p.2).collect();
    plan.segments
        .sort_by(|a, b| (a.lo, &a.group, a.seq).cmp(&(b.lo, &b.group, b.seq)));
    plan.bytes_to_read = plan.segments.iter().map(|s| s.cost).sum();
    Ok(plan)
}

/// Plain files up to this size are read whole rather than searched: a search
/// probe reads up to 64 KiB from each of a few places.
const SMALL_FILE: u64 = 256 * 1024;

/// A segment of `f` (of stream `s`): `[start, end)`, or the whole file if gzip.
fn segment(
    s: &Stream,
    f: &FileInfo,
    start: u64,
    end: u64,
    floor_ms: Option<EventMs>,
    lo: WindowTime,
) -> Segment {
    Segment {
        group: s.key.clone(),
        seq: 0,
        host: s.host.clone(),
        path: f.path.clone(),
        dev: f.dev,
        ino: f.ino,
        gzip: f.gzip,
        start,
        end,
        floor_ms,
        lo,
        cost: end - start,
    }
}

/// Opens a planned plain file again for searching, inside the allowed roots.
fn reopen<'p>(
    roots: &AllowedRoots,
    f: &FileInfo,
    parser: &'p mut LineParser,
) -> io::Result<TimeIndex<'p>> {
    TimeIndex::open_file(roots.open(&f.path)?, &f.path, parser)
}

fn io_error(path: &Path, e: io::Error) -> EngineError {
    EngineError::Read {
        path: path.to_path_buf(),
        source: e,
    }
}

/// The job's streams: each file group (rotated siblings oldest first, then the
/// live file), then each archived file on its own.
///
/// Archived files are not chained into streams: which files continue which is
/// not known (a host may have several logs), and a wrong guess would skip lines.
/// So an archived file is skipped only from its own first and last lines, and a
/// compressed one is read whole unless its first line is past the range. Their
/// partials fold before the live groups', oldest first — the order they were
/// written in, when each host has one log.
///
/// A file whose real path is outside `roots` is left out, never read, and added
/// to `outside` (each path once).
fn find_streams(
    job: &Job,
    roots: &AllowedRoots,
    outside: &mut Vec<Outside>,
    parser: &mut LineParser,
    accept: &Accept,
) -> Result<Vec<Stream>, EngineError> {
    let src = &job.source;
    let found = discover(&src.include, &src.exclude, roots).map_err(EngineError::Discover)?;
    crate::groupset::warn_left_out(&found);
    outside.extend(found.outside);
    let groups = found.groups;
    let mut streams = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for g in &groups {
        let mut files = Vec::new();
        for (p, gzip) in g.files_in_order() {
            if let Some(f) = file_info(p, Some(gzip), roots, outside, parser, accept)? {
                seen.insert((f.dev, f.ino));
                files.push(f);
            }
        }
        streams.push(Stream {
            key: g.live.to_string_lossy().into(),
            host: host_of_path(&src.host, &g.live).map(Into::into),
            files,
        });
    }
    let archived =
        discover_archive(&src.archive, &src.exclude, roots).map_err(EngineError::Discover)?;
    outside.extend(archived.outside);
    for p in archived.files {
        let Some(f) = file_info(&p, None, roots, outside, parser, accept)? else {
            continue;
        };
        // The same file through another path (`..`, a symlink) is read once.
        if !seen.insert((f.dev, f.ino)) {
            continue;
        }
        // NUL sorts before any absolute path; then by first time.
        let key = format!(
            "\0archive:{:020}:{}",
            f.first.map_or(u64::MAX, |t| t.max(0) as u64),
            p.display()
        );
        streams.push(Stream {
            key: key.into(),
            host: host_of_path(&src.host, &p).map(Into::into),
            files: vec![f],
        });
    }
    outside.sort_by(|a, b| a.path.cmp(&b.path));
    outside.dedup_by(|a, b| a.path == b.path);
    Ok(streams)
}

/// A file's size and first (and last) times; `None` if it vanished meanwhile
/// (a group's file), or if its real path is outside `roots` (then added to
/// `outside`). `gzip`: `None` to look at its first bytes (an archived file).
///
/// The file is opened once, inside the roots, and everything here is read from
/// that open file; its (device, inode) is what the segments are later opened by.
fn file_info(
    path: &Path,
    gzip: Option<bool>,
    roots: &AllowedRoots,
    outside: &mut Vec<Outside>,
    parser: &mut LineParser,
    accept: &Accept,
) -> Result<Option<FileInfo>, EngineError> {
    let file = match roots.open(path) {
        Ok(f) => f,
        Err(e) => {
            if let Some(o) = outside_error(&e) {
                outside.push(o.clone());
                return Ok(None);
            }
            if e.kind() == io::ErrorKind::NotFound && gzip.is_some() {
                return Ok(None);
            }
            return Err(io_error(path, e));
        }
    };
    let (size, dev, ino) = match file.metadata() {
        Ok(m) => (m.len(), m.dev(), m.ino()),
        Err(e) => return Err(io_error(path, e)),
    };
    let gzip = match gzip {
        Some(g) => g,
        None => is_gzip_file(&file).map_err(|e| io_error(path, e))?,
    };
    let (span, first) = if size == 0 {
        (None, None)
    } else if gzip {
        // A damaged stream is not fatal here, as in a live run: its first time is
        // unknown, so it is read (and its damage reported) if it may hold the range.
        match gzip_first_time_file(file, path, parser, DEFAULT_PROBE_BYTES, accept) {
            Ok(first) => (None, first),
            Err(e) => {
                tracing::warn!("{}: cannot decompress its start ({e})", EscapedPath(path));
                (None, None)
            }
        }
    } else {
        let span = TimeIndex::open_file(file, path, parser)
            .and_then(|ix| ix.with_accept(*accept).time_span())
            .map_err(|e| io_error(path, e))?;
        (span, span.map(|s| s.0))
    };
    Ok(Some(FileInfo {
        path: path.to_path_buf(),
        dev,
        ino,
        gzip,
        size,
        span,
        first,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A json job reading `include` and `archive`, limited to `roots` as the
    /// cluster sets them.
    fn job(include: &str, archive: &str, roots: &[&Path]) -> Job {
        let text = format!(
            "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [{include:?}]\n\
             archive = [{archive:?}]\n[parse]\nformat = \"json\"\n\
             [[metric]]\nname = \"n\"\nkind = \"counter\"\n\
             [[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n"
        );
        let env = tidemark_jobs::Env::empty();
        let mut job = tidemark_jobs::from_str_with_env(&text, "j.toml", Path::new("/"), &env)
            .unwrap_or_else(|d| panic!("{d}"));
        job.source.allowed_roots = roots.iter().map(|r| r.to_path_buf()).collect();
        job
    }

    fn plan(job: &Job) -> ReplayPlan {
        // 2024-01-01T00:00:00Z, two one-minute windows.
        let from = 1_704_067_200_000;
        let range = ReplayRange::new(from, from + 120_000, 60_000).unwrap();
        let opts = PlanOptions {
            workers: 1,
            segment_bytes: None,
        };
        plan_replay(job, range, opts).unwrap()
    }

    #[test]
    fn a_replay_reads_only_files_inside_the_allowed_roots() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let (root, out) = (base.join("root"), base.join("out"));
        std::fs::create_dir_all(root.join("old")).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        let line = |n: u32| format!("{{\"time\":\"2024-01-01T00:00:{n:02}Z\"}}\n");
        std::fs::write(root.join("app.log"), line(1) + &line(2)).unwrap();
        std::fs::write(root.join("old/a.log"), line(3)).unwrap();
        std::fs::write(out.join("secret"), line(4).repeat(10)).unwrap();
        std::fs::write(out.join("b.log"), line(5).repeat(10)).unwrap();
        symlink(out.join("secret"), root.join("evil.log")).unwrap();
        symlink(out.join("secret"), root.join("app.log.1")).unwrap();
        symlink(out.join("b.log"), root.join("old/b.log")).unwrap();
        let (include, archive) = (
            format!("{}/*.log", root.display()),
            format!("{}/old/*.log", root.display()),
        );

        let p = plan(&job(&include, &archive, &[&root]));
        let mut read: Vec<PathBuf> = p.segments.iter().map(|s| s.path.clone()).collect();
        read.sort();
        assert_eq!(read, [root.join("app.log"), root.join("old/a.log")]);
        assert_eq!(p.files, 2);
        assert_eq!(p.outside_roots, 3);
        let secret = std::fs::metadata(out.join("secret")).unwrap();
        assert!(!p.inputs.contains(&(secret.dev(), secret.ino())));

        // Without roots, the links are read; `secret` once, although both
        // `app.log.1` and `evil.log` lead to it.
        let p = plan(&job(&include, &archive, &[]));
        assert_eq!(p.files, 4);
        assert_eq!(p.outside_roots, 0);
        assert!(p.segments.iter().any(|s| s.path == root.join("app.log.1")));
        assert!(!p.segments.iter().any(|s| s.path == root.join("evil.log")));
    }
}
