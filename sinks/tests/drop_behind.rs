//! A file sink's written pages leave the page cache once on disk, all but the last
//! [`KEEP`] bytes (sinks/src/drop_behind.rs). Checked with `mincore` on the file's
//! pages, in a folder under the build's target directory: a disk file system, where
//! the kernel keeps written pages cached unless told otherwise (on tmpfs the pages
//! are the file, and nothing can be dropped).

use std::fs::File;
use std::io::{Read, Write};

use tidemark_sinks::drop_behind::{DropBehind, KEEP};

const MIB: u64 = 1 << 20;

/// Which of the pages of the first `len` bytes of the file at `path` are in the
/// page cache.
#[allow(unsafe_code)]
fn resident(path: &std::path::Path, len: u64) -> Vec<bool> {
    use std::os::fd::AsRawFd;
    let file = File::open(path).unwrap();
    let page = 4096usize;
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
    assert_ne!(
        addr,
        libc::MAP_FAILED,
        "mmap: {}",
        std::io::Error::last_os_error()
    );
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: `addr` is the mapping just made, `vec` has a byte per page of it.
    let r = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    let err = std::io::Error::last_os_error();
    // SAFETY: the mapping made above, not used after.
    unsafe { libc::munmap(addr, len) };
    assert_eq!(r, 0, "mincore: {err}");
    vec.iter().map(|b| b & 1 == 1).collect()
}

fn pages(from: u64, to: u64) -> std::ops::Range<usize> {
    (from / 4096) as usize..(to / 4096) as usize
}

#[test]
fn pages_written_long_ago_leave_the_cache_and_the_last_ones_stay() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("out.jsonl");
    let mut file = File::create(&path).unwrap();
    let chunk = vec![b'x'; MIB as usize];
    let mut behind = DropBehind::from(0);
    let mut len = 0u64;
    let mut append = |file: &mut File, bytes: u64| {
        for _ in 0..bytes / MIB {
            file.write_all(&chunk).unwrap();
            len += MIB;
            behind.after_write(file, len);
        }
        len
    };
    // Three steps: the third started the write-back of [2 KEEP, 3 KEEP); then
    // all but the last MiB before the fourth.
    append(&mut file, 4 * KEEP - MIB);
    // On disk now, so the fourth step drops all of [2 KEEP, 3 KEEP) (without
    // this it would drop what had been written back by then, which depends on
    // the disk), and would drop [3 KEEP, 4 KEEP) too if it were told to: the
    // last KEEP bytes are clean as well.
    file.sync_data().unwrap();
    let len = append(&mut file, MIB);
    let cached = resident(&path, len);
    let dropped = pages(2 * KEEP, 3 * KEEP);
    let kept = pages(3 * KEEP, len);
    let still = cached[dropped.clone()].iter().filter(|&&c| c).count();
    assert_eq!(
        still,
        0,
        "{still} of {} written-back pages are still cached",
        dropped.len()
    );
    let gone = cached[kept.clone()].iter().filter(|&&c| !c).count();
    assert_eq!(
        gone,
        0,
        "{gone} of the last {} pages left the cache",
        kept.len()
    );
    // Nothing of the file is lost: read back (from the disk) whole.
    let mut back = Vec::new();
    File::open(&path).unwrap().read_to_end(&mut back).unwrap();
    assert_eq!(back.len() as u64, len);
    assert!(back.iter().all(|&b| b == b'x'));
}

#[test]
fn below_keep_nothing_is_advised() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let path = dir.path().join("out.jsonl");
    let mut file = File::create(&path).unwrap();
    let mut behind = DropBehind::from(0);
    file.write_all(&vec![b'y'; (KEEP - MIB) as usize]).unwrap();
    file.sync_data().unwrap();
    behind.after_write(&file, KEEP - MIB);
    let cached = resident(&path, KEEP - MIB);
    assert!(
        cached.iter().all(|&c| c),
        "a file shorter than KEEP stays cached"
    );
}
