//! A file sink's written pages leave the page cache once on disk, all but the last
//! [`KEEP`] bytes or more (sinks/src/drop_behind.rs). Checked with `mincore` on the
//! file's pages, in a folder under the build's target directory, which is on a disk
//! file system on any machine that builds this: there the kernel keeps written
//! pages cached until told otherwise. Where it is not (tmpfs, where the pages are
//! the file; ZFS, whose cache is not the page cache), a probe says so and the tests
//! check only that nothing written is lost.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use tidemark_engine::{ClosedWindow, Labels, Origin, Series, Value};
use tidemark_jobs::SeriesChoice;
use tidemark_sinks::drop_behind::{DropBehind, KEEP};
use tidemark_sinks::{Existing, JsonlSink, OutputRoots, Sink};

const MIB: u64 = 1 << 20;

/// The system's page size.
#[allow(unsafe_code)]
fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the system.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096)
}

/// Which of the pages of the first `len` bytes of the file at `path` are in the
/// page cache.
#[allow(unsafe_code)]
fn resident(path: &Path, len: u64) -> Vec<bool> {
    use std::os::fd::AsRawFd;
    let file = File::open(path).unwrap();
    let len = len as usize;
    // SAFETY: a read-only shared mapping of `len` bytes of an open file, unmapped
    // below; nothing reads through it (mincore only asks which pages are cached).
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    let err = std::io::Error::last_os_error();
    assert_ne!(addr, libc::MAP_FAILED, "mmap: {err}");
    let mut vec = vec![0u8; len.div_ceil(page_size())];
    // SAFETY: `addr` is the mapping just made, `vec` has a byte per page of it.
    let r = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    let err = std::io::Error::last_os_error();
    // SAFETY: the mapping made above, not used after.
    unsafe { libc::munmap(addr, len) };
    assert_eq!(r, 0, "mincore: {err}");
    vec.iter().map(|b| b & 1 == 1).collect()
}

/// The pages of bytes `[from, to)`.
fn pages(from: u64, to: u64) -> std::ops::Range<usize> {
    let p = page_size() as u64;
    (from / p) as usize..(to / p) as usize
}

/// A folder on the build's file system.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// Whether this file system caches written pages and drops clean ones when
/// advised (what the tests below look at). If not, says so on stderr.
fn cache_is_observable(dir: &Path) -> bool {
    let path = dir.join("probe");
    let mut f = File::create(&path).unwrap();
    f.write_all(&vec![b'p'; MIB as usize]).unwrap();
    f.sync_data().unwrap();
    let cached = resident(&path, MIB).iter().all(|&c| c);
    let len = std::num::NonZeroU64::new(MIB);
    rustix::fs::fadvise(&f, 0, len, rustix::fs::Advice::DontNeed).unwrap();
    let dropped = !resident(&path, MIB).iter().any(|&c| c);
    if !(cached && dropped) {
        eprintln!(
            "NOTE: the file system of {} does not cache written pages as a disk file \
             system does (cached after writing: {cached}, dropped when advised: \
             {dropped}; tmpfs or ZFS?): only the content is checked",
            dir.display()
        );
    }
    cached && dropped
}

/// Appends `bytes` to `file` (now `len` bytes long) a MiB at a time, each
/// followed by `after_write` as the sink does; the new length.
fn append(file: &mut File, behind: &mut DropBehind, mut len: u64, bytes: u64) -> u64 {
    let chunk = vec![b'x'; MIB as usize];
    for _ in 0..bytes / MIB {
        file.write_all(&chunk).unwrap();
        len += MIB;
        behind.after_write(file, len);
    }
    len
}

fn whole(path: &Path, len: u64, byte: u8) {
    let mut back = Vec::new();
    File::open(path).unwrap().read_to_end(&mut back).unwrap();
    assert_eq!(back.len() as u64, len);
    assert!(back.iter().all(|&b| b == byte));
}

#[test]
fn pages_written_long_ago_leave_the_cache_and_the_last_ones_stay() {
    let dir = scratch();
    let observable = cache_is_observable(dir.path());
    let path = dir.path().join("out.jsonl");
    let mut file = File::create(&path).unwrap();
    let mut behind = DropBehind::from(0);
    // Three steps: the third started the write-back of [2 KEEP, 3 KEEP); then
    // all but the last MiB before the fourth.
    let len = append(&mut file, &mut behind, 0, 4 * KEEP - MIB);
    // On disk now, so the fourth step drops all of [2 KEEP, 3 KEEP) (without
    // this it would drop what had been written back by then, which depends on
    // the disk), and would drop [3 KEEP, 4 KEEP) too if it were told to: the
    // last KEEP bytes are clean as well.
    file.sync_data().unwrap();
    let len = append(&mut file, &mut behind, len, MIB);
    if observable {
        let cached = resident(&path, len);
        let dropped = pages(2 * KEEP, 3 * KEEP);
        let kept = pages(3 * KEEP, len);
        let still = cached[dropped.clone()].iter().filter(|&&c| c).count();
        let n = dropped.len();
        assert_eq!(
            still, 0,
            "{still} of {n} written-back pages are still cached"
        );
        let gone = cached[kept.clone()].iter().filter(|&&c| !c).count();
        let n = kept.len();
        assert_eq!(gone, 0, "{gone} of the last {n} pages left the cache");
    }
    // Nothing of the file is lost: read back (from the disk) whole.
    whole(&path, len, b'x');
}

/// Review rev19: a single append below `KEEP` could not tell (the first step
/// drops the empty range); two can.
#[test]
fn below_keep_in_two_appends_nothing_is_dropped() {
    let dir = scratch();
    let observable = cache_is_observable(dir.path());
    let path = dir.path().join("out.jsonl");
    let mut file = File::create(&path).unwrap();
    let mut behind = DropBehind::from(0);
    let len = append(&mut file, &mut behind, 0, KEEP / 2);
    file.sync_data().unwrap();
    let len = append(&mut file, &mut behind, len, KEEP / 2 - MIB);
    file.sync_data().unwrap();
    if observable {
        let gone = resident(&path, len).iter().filter(|&&c| !c).count();
        assert_eq!(
            gone, 0,
            "{gone} pages of a file shorter than KEEP left the cache"
        );
    }
    whole(&path, len, b'x');
}

/// One window of `n` records whose label value is `value` (about that long each).
fn window(minute: i64, n: usize, value: &str) -> ClosedWindow {
    let series = (0..n)
        .map(|i| Series {
            record: "r".into(),
            labels: Labels::from_pairs(&[("i", i.to_string()), ("v", value.to_string())]),
            value: Value::Int(i as u64),
            origin: Origin::Host,
        })
        .collect();
    ClosedWindow {
        start_ms: minute * 60_000,
        end_ms: (minute + 1) * 60_000,
        series,
    }
}

/// The sink's own use of it: pages written long ago leave the cache, the last
/// ones stay, and the output is what was written.
#[test]
fn a_jsonl_sink_drops_what_it_wrote_long_ago() {
    let dir = scratch();
    let observable = cache_is_observable(dir.path());
    let path: PathBuf = dir.path().join("out.jsonl");
    let value = "v".repeat(64 << 10);
    let roots = OutputRoots::any();
    let mut sink = JsonlSink::create(&path, SeriesChoice::All, Existing::Refuse, &roots).unwrap();
    // Windows of a little over 1 MiB, so a step (every KEEP, on a 64 KiB
    // boundary) comes within a window or two after each multiple of KEEP:
    // three steps, a sync making all written clean, then a fourth step, which
    // drops what the second started and the third ended, [2 KEEP, 3 KEEP) but
    // for the few MiB around its ends.
    let windows = (KEEP / MIB) as i64 * 7 / 2;
    for m in 0..windows {
        sink.write_window(&window(m, 16, &value)).unwrap();
    }
    Sink::sync(&mut sink, 0).unwrap();
    for m in windows..2 * windows - (KEEP / MIB) as i64 * 5 / 2 {
        sink.write_window(&window(m, 16, &value)).unwrap();
    }
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 4 * KEEP + 2 * MIB && len < 5 * KEEP, "{len}");
    drop(sink);
    if observable {
        let cached = resident(&path, len);
        let dropped = pages(2 * KEEP + 2 * MIB, 3 * KEEP);
        let still = cached[dropped.clone()].iter().filter(|&&c| c).count();
        let n = dropped.len();
        assert_eq!(
            still, 0,
            "{still} of {n} written-back pages are still cached"
        );
        let kept = pages(len - KEEP, len);
        let gone = cached[kept.clone()].iter().filter(|&&c| !c).count();
        let n = kept.len();
        assert_eq!(gone, 0, "{gone} of the last {n} pages left the cache");
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let records = text.lines().count() as i64;
    assert_eq!(records, (2 * windows - (KEEP / MIB) as i64 * 5 / 2) * 16);
}
