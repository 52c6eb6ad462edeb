//! Review R17s: `RealPaths` (one memo per batch) against what it replaces —
//! `real_path` (std `canonicalize` of the longest existing prefix),
//! `std::fs::canonicalize` and `std::fs::metadata` — over random trees of
//! folders, files and links (absolute, relative, dangling, loops, to files,
//! to `..`), asked random paths with `.`/`..`/missing parts.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tidemark_sources::file::{real_path, RealPaths};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const NAMES: &[&str] = &[
    "a", "b", "c", "f", "g", "l0", "l1", "l2", "l3", "l4", "..", ".", "zz",
];

fn build(base: &Path, r: &mut Rng) {
    // Folders a, b, c (nested at random), files f, g, links l0..l4 in random folders.
    let mut dirs = vec![base.to_path_buf()];
    for name in ["a", "b", "c"] {
        let parent = dirs[r.below(dirs.len())].clone();
        let d = parent.join(name);
        std::fs::create_dir_all(&d).unwrap();
        dirs.push(d);
    }
    for name in ["f", "g"] {
        for _ in 0..2 {
            let parent = dirs[r.below(dirs.len())].clone();
            std::fs::write(parent.join(name), b"x\n").unwrap();
        }
    }
    for i in 0..5 {
        for _ in 0..2 {
            let parent = dirs[r.below(dirs.len())].clone();
            let link = parent.join(format!("l{i}"));
            if link.symlink_metadata().is_ok() {
                continue;
            }
            let depth = 1 + r.below(3);
            let mut target = PathBuf::new();
            let relative = r.below(2) == 0;
            if !relative {
                target.push(base);
            }
            for _ in 0..depth {
                target.push(NAMES[r.below(NAMES.len())]);
            }
            std::os::unix::fs::symlink(&target, &link).unwrap();
        }
    }
}

fn query(base: &Path, r: &mut Rng) -> PathBuf {
    let mut p = base.to_path_buf();
    for _ in 0..1 + r.below(6) {
        p.push(NAMES[r.below(NAMES.len())]);
    }
    p
}

#[test]
fn real_paths_agree_with_canonicalize_on_random_trees() {
    let id = |m: &std::fs::Metadata| (m.dev(), m.ino());
    let mut failures = Vec::new();
    for seed in 1..std::env::var("R17S_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400u64)
    {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        build(&base, &mut r);
        let mut memo = RealPaths::default();
        let mut memo2 = RealPaths::default();
        for _ in 0..60 {
            let p = query(&base, &mut r);
            // A trailing `.` is dropped by `Path::components` (not the kernel's
            // reading): not a case the product asks.
            if p.as_os_str().as_encoded_bytes().ends_with(b"/.") {
                continue;
            }
            // Only what the kernel can reach matters (a file, or a file to be
            // made in an existing folder).
            let reachable = std::fs::metadata(&p).is_ok()
                || p.parent()
                    .is_some_and(|d| std::fs::metadata(d).is_ok_and(|m| m.is_dir()));
            let want = real_path(&p);
            let got = memo.of(&p);
            if got != want && reachable {
                failures.push(format!(
                    "seed {seed} of {}: {} != {}",
                    p.display(),
                    got.display(),
                    want.display()
                ));
            }
            let want_c = std::fs::canonicalize(&p).ok();
            let got_c = memo.canonical(&p);
            if got_c != want_c {
                failures.push(format!(
                    "seed {seed} canonical {}: {got_c:?} != {want_c:?}",
                    p.display()
                ));
            }
            let (at, meta) = memo2.of_file(&p);
            if at != want && reachable {
                failures.push(format!(
                    "seed {seed} of_file {}: {} != {}",
                    p.display(),
                    at.display(),
                    want.display()
                ));
            }
            let want_m = std::fs::metadata(&p).ok();
            if meta.as_ref().map(id) != want_m.as_ref().map(id) {
                failures.push(format!(
                    "seed {seed} of_file meta {}: {:?} != {:?}",
                    p.display(),
                    meta.as_ref().map(id),
                    want_m.as_ref().map(id)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures[..failures.len().min(30)].join("\n")
    );
}

/// Link loops (two links, a self link, a loop below a folder link) and a long
/// chain: answered as `real_path`/`canonicalize` answer, without looping.
#[test]
fn real_paths_of_link_loops_end_as_canonicalize_does() {
    let d = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(d.path()).unwrap();
    std::fs::create_dir_all(base.join("dir/sub")).unwrap();
    std::fs::write(base.join("dir/sub/f.log"), b"x\n").unwrap();
    std::os::unix::fs::symlink(base.join("l2"), base.join("l1")).unwrap();
    std::os::unix::fs::symlink(base.join("l1"), base.join("l2")).unwrap();
    std::os::unix::fs::symlink("me", base.join("me")).unwrap();
    std::os::unix::fs::symlink(base.join("dir"), base.join("d")).unwrap();
    std::os::unix::fs::symlink("../d/sub/../../l1", base.join("dir/back")).unwrap();
    // A chain of 45 links (past the kernel's 40): ELOOP at the end.
    std::os::unix::fs::symlink(base.join("dir/sub/f.log"), base.join("c0")).unwrap();
    for i in 1..45 {
        std::os::unix::fs::symlink(base.join(format!("c{}", i - 1)), base.join(format!("c{i}")))
            .unwrap();
    }
    let mut memo = RealPaths::default();
    for q in [
        "l1",
        "l1/x.log",
        "l2/../dir/sub/f.log",
        "me",
        "me/x",
        "d/back",
        "d/back/x.log",
        "d/sub/../back/y",
        "c10",
        "c39",
        "c40",
        "c44",
        "c44/../dir",
    ] {
        let p = base.join(q);
        assert_eq!(memo.of(&p), real_path(&p), "{q}");
        assert_eq!(memo.canonical(&p), std::fs::canonicalize(&p).ok(), "{q}");
        let (at, meta) = RealPaths::default().of_file(&p);
        assert_eq!(at, real_path(&p), "{q}");
        assert_eq!(meta.is_some(), std::fs::metadata(&p).is_ok(), "{q}");
    }
}

/// The folder listing by `getdents64` (80b18c3): non-UTF-8 names, a name of
/// 255 bytes, `.`/`..`, siblings in a folder reached through a link, and a
/// folder of 3,000 entries (several 32 KiB reads), as `read_dir` lists them.
#[test]
fn rotated_siblings_by_getdents_as_read_dir_finds_them() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use tidemark_sources::file::discover::rotated_siblings;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join(OsStr::from_bytes(b"h\xff\xfe"));
    std::fs::create_dir(&dir).unwrap();
    let live = dir.join("access.log");
    std::fs::write(&live, b"x\n").unwrap();
    for n in 1..=3000 {
        std::fs::write(dir.join(format!("access.log.{n}")), b"y\n").unwrap();
    }
    std::fs::write(dir.join(OsStr::from_bytes(b"access.log.\xff")), b"z\n").unwrap();
    std::fs::write(dir.join("a".repeat(255)), b"z\n").unwrap();
    std::os::unix::fs::symlink(&dir, d.path().join("via")).unwrap();
    let want = |live: &Path| -> Vec<PathBuf> {
        let dir = live.parent().unwrap();
        let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter_map(|n| {
                let s = n.to_str()?;
                let num: u32 = s.strip_prefix("access.log.")?.parse().ok()?;
                Some((num, dir.join(&n)))
            })
            .collect();
        v.sort_by_key(|b| std::cmp::Reverse(b.0));
        v.into_iter().map(|(_, p)| p).collect()
    };
    for l in [live.clone(), d.path().join("via/access.log")] {
        let got: Vec<PathBuf> = rotated_siblings(&l).into_iter().map(|r| r.path).collect();
        assert_eq!(got.len(), 3000);
        assert_eq!(got, want(&l));
    }
}
