//! What one discovery pass learned about its paths, so that each is looked at
//! once: a `stat` per path (the kind of file, and the (device, inode) that tells
//! two paths to one file apart), a `statfs` per device (whether it is a kernel
//! pseudo file system). Before, each layer asked again: a 2,000-host fleet paid a
//! `statx` for the kind, another to compare inodes and a `statfs` per file.
//!
//! One pass only: a file replaced after it was looked at is seen by the next
//! pass (and by the open, which checks the open file itself).

use std::collections::HashMap;
use std::fs::FileType;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A path as one `stat` (links followed) saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub file_type: FileType,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Looked {
    /// By path: `None` if it does not exist (or cannot be looked at).
    stats: HashMap<PathBuf, Option<Stat>>,
    /// By device: what kernel file system it is, if one (see
    /// [`super::kernel_fs`]). A device number names one mounted file system,
    /// and its type with it.
    kernel_fs: HashMap<u64, Option<&'static str>>,
}

impl Looked {
    /// `path` followed through its links, looked at once per pass.
    pub fn stat(&mut self, path: &Path) -> Option<Stat> {
        if let Some(s) = self.stats.get(path) {
            return *s;
        }
        #[cfg(test)]
        COUNT.with(|c| c.set((c.get().0 + 1, c.get().1)));
        let s = std::fs::metadata(path).ok().map(|m| Stat {
            dev: m.dev(),
            ino: m.ino(),
            file_type: m.file_type(),
        });
        self.stats.insert(path.to_path_buf(), s);
        s
    }

    /// What kernel file system `path` (on device `dev`) is on, if one: one
    /// `statfs` per device.
    pub fn kernel_fs(&mut self, path: &Path, dev: u64) -> Option<&'static str> {
        *self.kernel_fs.entry(dev).or_insert_with(|| {
            #[cfg(test)]
            COUNT.with(|c| c.set((c.get().0, c.get().1 + 1)));
            super::kernel_fs::of_path(path)
        })
    }
}

/// The names in folder `dir` (without `.` and `..`): `openat`, `getdents64`
/// until the end (32 KiB at a time, as glibc), `close`. `std::fs::read_dir`
/// also `fstat`s the folder it opened (glibc's `opendir`): a fifth of a
/// one-file folder's listing, and a tailer lists its group's folder at every
/// scan. A listing that fails part way is an error (not a partial listing, in
/// which files would seem gone).
pub(crate) fn names_in(dir: &Path) -> std::io::Result<Vec<std::ffi::OsString>> {
    use rustix::fs::{Mode, OFlags, RawDir};
    use std::mem::MaybeUninit;
    use std::os::unix::ffi::OsStrExt;
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )?;
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 32 * 1024];
    let mut listing = RawDir::new(&fd, &mut buf);
    let mut names = Vec::new();
    while let Some(entry) = listing.next() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(std::ffi::OsStr::from_bytes(name).to_os_string());
        }
    }
    Ok(names)
}

#[cfg(test)]
thread_local! {
    /// (stat, statfs) calls made on this thread, for the tests that count.
    static COUNT: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::{discover, AllowedRoots};

    /// The listing without `fstat` finds what `read_dir` finds, also past one
    /// 32 KiB `getdents64`, and fails as it does.
    #[test]
    fn names_in_lists_what_read_dir_lists() {
        let d = tempfile::tempdir().unwrap();
        for i in 0..1500 {
            let name = format!("a-rather-long-file-name-number-{i:05}.log");
            std::fs::write(d.path().join(name), b"").unwrap();
        }
        std::fs::create_dir(d.path().join("sub")).unwrap();
        let mut got = names_in(d.path()).unwrap();
        let mut want: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got.len(), 1501);
        assert_eq!(got, want);
        let missing = names_in(&d.path().join("nope")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        let file = d.path().join("a-rather-long-file-name-number-00001.log");
        assert!(names_in(&file).is_err());
    }

    /// A fleet's discovery stats each file once and its file system once: the
    /// kind of file, the inode comparison and the kernel-file check share them.
    #[test]
    fn a_discovery_pass_looks_at_each_path_once_and_each_device_once() {
        let d = tempfile::tempdir().unwrap();
        let hosts = 30;
        for h in 0..hosts {
            let dir = d.path().join(format!("web-{h}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("access.log"), b"x\n").unwrap();
            std::fs::write(dir.join("access.log.1"), b"y\n").unwrap();
        }
        let include = vec![format!("{}/*/access.log*", d.path().display())];
        COUNT.with(|c| c.set((0, 0)));
        let found = discover(&include, &[], &AllowedRoots::any()).unwrap();
        let (stats, statfs) = COUNT.with(|c| c.get());
        assert_eq!(found.groups.len(), hosts);
        assert!(found.groups.iter().all(|g| g.rotated.len() == 1));
        assert_eq!(stats, 2 * hosts, "one stat per file");
        assert_eq!(statfs, 1, "one statfs per device");
    }
}
