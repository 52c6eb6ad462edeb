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

#[cfg(test)]
thread_local! {
    /// (stat, statfs) calls made on this thread, for the tests that count.
    static COUNT: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::{discover, AllowedRoots};

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
