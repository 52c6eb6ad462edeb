//! Kernel pseudo file systems (`/proc`, `/sys`, ...): their files look regular but
//! are not data. They report size 0 while reading gives content that is endless or
//! changes on every read, so a tailer that "finds growth" would read garbage or
//! spin on them forever. A glob that matches one (`/proc/*/status`, a link into
//! `/sys`) is refused like a FIFO: named, counted and logged as not regular.
//!
//! Recognised by the file system's magic number (`statfs`), not by path: a link
//! or a bind mount of `/proc` elsewhere is caught too.

use std::fs::File;
use std::path::Path;

/// Magic numbers (`f_type`, see statfs(2)) of the kernel's pseudo file systems.
const KERNEL_FS: &[(u64, &str)] = &[
    (0x9fa0, "a kernel file (in /proc)"),
    (0x6265_6572, "a kernel file (in /sys)"),
    (0x6462_6720, "a kernel file (debugfs)"),
    (0x7472_6163, "a kernel file (tracefs)"),
    (0x2718_1b3e, "a kernel file (cgroup)"),
    (0x0027_e0eb, "a kernel file (cgroup)"),
    (0x6367_7270, "a kernel file (cgroup2)"),
    (0x7363_6673, "a kernel file (securityfs)"),
    (0x6265_6570, "a kernel file (configfs)"),
    (0xcafe_4a11, "a kernel file (bpf)"),
    (0xde5e_81e4, "a kernel file (efivarfs)"),
    (0x6165_676c, "a kernel file (pstore)"),
];

fn named(f_type: u64) -> Option<&'static str> {
    KERNEL_FS
        .iter()
        .find(|(magic, _)| *magic == f_type)
        .map(|(_, what)| *what)
}

/// What `path` is when it lies on a kernel pseudo file system (links followed),
/// e.g. "a kernel file (in /proc)"; `None` otherwise, or when it cannot be told.
pub fn of_path(path: &Path) -> Option<&'static str> {
    let fs = rustix::fs::statfs(path).ok()?;
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
    named(fs.f_type as u64)
}

/// [`of_path`] for an open file: what was opened is what counts.
pub fn of_file(file: &File) -> Option<&'static str> {
    let fs = rustix::fs::fstatfs(file).ok()?;
    #[allow(clippy::unnecessary_cast)]
    named(fs.f_type as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::{discover, AllowedRoots};

    #[test]
    fn a_proc_file_matched_by_a_glob_is_refused_not_spun_on() {
        let include = vec!["/proc/self/stat*".to_string()];
        let found = discover(&include, &[], &AllowedRoots::any()).unwrap();
        assert!(
            found.groups.is_empty(),
            "kernel files became groups to read: {:?}",
            found.groups
        );
        assert!(
            found
                .not_regular
                .iter()
                .any(|(p, what)| p == Path::new("/proc/self/status")
                    && *what == "a kernel file (in /proc)"),
            "{:?}",
            found.not_regular
        );
        // Through a link too, and an ordinary file is not taken for one.
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/proc/self/status", d.path().join("s.log")).unwrap();
        std::fs::write(d.path().join("a.log"), "x\n").unwrap();
        let include = vec![format!("{}/*.log", d.path().display())];
        let found = discover(&include, &[], &AllowedRoots::any()).unwrap();
        assert_eq!(found.groups.len(), 1, "{:?}", found.groups);
        assert_eq!(found.groups[0].live, d.path().join("a.log"));
        assert_eq!(found.not_regular.len(), 1, "{:?}", found.not_regular);
        assert_eq!(of_path(&d.path().join("a.log")), None);
    }
}
