//! Allowed roots: the tailer reads no file whose real path (symlinks resolved) is
//! outside them — not the live file, not a rotated sibling, not one swapped in
//! after the scan that chose it.

use std::os::unix::fs::symlink;

use super::*;
use crate::file::AllowedRoots;

/// `BASE/root` (allowed) and `BASE/out` (not), canonical.
struct Dirs {
    _d: tempfile::TempDir,
    root: PathBuf,
    out: PathBuf,
}

fn dirs() -> Dirs {
    let d = tempfile::tempdir().unwrap();
    let base = fs::canonicalize(d.path()).unwrap();
    let (root, out) = (base.join("root"), base.join("out"));
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::create_dir_all(&out).unwrap();
    fs::write(out.join("secret"), b"secret-1\nsecret-2\n").unwrap();
    Dirs { _d: d, root, out }
}

fn within(live: &Path, follow: bool, roots: &[&Path]) -> H {
    H {
        t: Tailer::new(live.to_path_buf(), opts(follow), None)
            .with_allowed_roots(AllowedRoots::new(roots)),
        now: Instant::now(),
        lines: Vec::new(),
    }
}

fn errors(t: &mut Tailer) -> Vec<String> {
    std::iter::from_fn(|| t.take_error()).collect()
}

#[test]
fn a_rotated_sibling_leading_out_of_the_roots_is_not_read() {
    let d = dirs();
    let live = d.root.join("app.log");
    fs::write(&live, b"live-1\nlive-2\n").unwrap();
    fs::write(sib(&live, 2), b"old-1\n").unwrap();
    symlink(d.out.join("secret"), sib(&live, 1)).unwrap();

    let mut h = within(&live, false, &[&d.root]);
    let (lines, st) = h.read();
    assert_eq!(lines, strs(&["old-1", "live-1", "live-2"]));
    assert_eq!(st, ReadStatus::Finished);
    let c = h.t.counters();
    assert_eq!(c.outside_roots, 1, "{c:?}");
    assert_eq!(c.files_opened, 2, "{c:?}");
    let errs = errors(&mut h.t);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("app.log.1"), "{errs:?}");
    assert!(
        errs[0].contains(&d.out.join("secret").display().to_string()),
        "{errs:?}"
    );
    assert!(errs[0].contains("outside the roots"), "{errs:?}");

    // Without roots the link is read like any sibling.
    let mut h = H::new(&live, opts(false), None);
    let (lines, _) = h.read();
    assert_eq!(
        lines,
        strs(&["old-1", "secret-1", "secret-2", "live-1", "live-2"])
    );
    assert_eq!(h.t.counters().outside_roots, 0);
}

#[test]
fn a_live_file_leading_out_of_the_roots_is_not_read() {
    let d = dirs();
    let live = d.root.join("evil.log");
    symlink(d.out.join("secret"), &live).unwrap();

    let mut h = within(&live, false, &[&d.root]);
    let (lines, st) = h.read();
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(st, ReadStatus::Finished);
    assert_eq!(h.t.counters().outside_roots, 1);
    assert_eq!(h.t.counters().bytes, 0);
    assert!(errors(&mut h.t)[0].contains("evil.log"));

    // Following, and starting at its end: still nothing, reported once.
    let mut t =
        Tailer::at_end(live.clone(), opts(true)).with_allowed_roots(AllowedRoots::new(&[&d.root]));
    let mut got = Vec::new();
    for _ in 0..3 {
        t.read_some(1 << 20, Instant::now(), |_, l: &[u8]| got.push(l.to_vec()));
    }
    fs::write(d.out.join("secret"), b"secret-1\nsecret-2\nsecret-3\n").unwrap();
    t.read_some(1 << 20, Instant::now(), |_, l: &[u8]| got.push(l.to_vec()));
    assert!(got.is_empty());
    assert_eq!(t.counters().outside_roots, 1);
    assert_eq!(t.counters().bytes, 0);
}

#[test]
fn a_directory_link_out_of_the_roots_is_not_read() {
    let d = dirs();
    fs::write(d.out.join("x.log"), b"secret-x\n").unwrap();
    fs::write(d.out.join("x.log.1"), b"secret-x0\n").unwrap();
    symlink(&d.out, d.root.join("x")).unwrap();
    let live = d.root.join("x/x.log");

    let mut h = within(&live, false, &[&d.root]);
    let (lines, _) = h.read();
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(h.t.counters().outside_roots, 2);
    // The same files under a root that holds them are read.
    let mut h = within(&live, false, &[&d.root, &d.out]);
    assert_eq!(h.read().0, strs(&["secret-x0", "secret-x"]));
}

#[test]
fn links_that_stay_inside_the_roots_are_read() {
    let d = dirs();
    fs::write(d.root.join("sub/real.log"), b"in-1\n").unwrap();
    fs::write(d.root.join("sub/old.log"), b"in-0\n").unwrap();
    symlink(d.root.join("sub/real.log"), d.root.join("ok.log")).unwrap();
    symlink(d.root.join("sub/old.log"), d.root.join("ok.log.1")).unwrap();
    symlink(d.root.join("sub"), d.root.join("linked")).unwrap();
    // A root named through a link is its target.
    let base = d.root.parent().unwrap();
    let root_link = base.join("root-link");
    symlink(&d.root, &root_link).unwrap();

    for roots in [&[d.root.as_path()][..], &[root_link.as_path()][..]] {
        let mut h = within(&d.root.join("ok.log"), false, roots);
        assert_eq!(h.read().0, strs(&["in-0", "in-1"]));
        let mut h = within(&d.root.join("linked/real.log"), false, roots);
        assert_eq!(h.read().0, strs(&["in-1"]));
        assert_eq!(h.t.counters().outside_roots, 0);
        assert!(h.t.take_error().is_none());
    }
}

/// The scan chose `app.log.1`, a file inside the root; before it is opened, it is
/// renamed to `app.log.2` and a link leading out is put in its place. The link is
/// refused at the open, and the file is read under its new name.
#[test]
fn a_link_swapped_in_after_the_scan_is_not_read() {
    let d = dirs();
    let live = d.root.join("app.log");
    fs::write(&live, b"live-1\n").unwrap();
    fs::write(sib(&live, 1), b"old-1\n").unwrap();

    let mut h = within(&live, true, &[&d.root]);
    let (one, two, secret) = (sib(&live, 1), sib(&live, 2), d.out.join("secret"));
    let mut swapped = false;
    h.t.open_hook = Some(Box::new(move |path: &Path| {
        if !swapped && path == one {
            swapped = true;
            fs::rename(&one, &two).unwrap();
            symlink(&secret, &one).unwrap();
        }
    }));
    let (lines, _) = h.read();
    assert_eq!(lines, strs(&["old-1", "live-1"]));
    append(&live, b"live-2\n");
    assert_eq!(h.drain(), strs(&["live-2"]));
    assert_eq!(h.t.counters().outside_roots, 1);
    let errs = errors(&mut h.t);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("app.log.1"), "{errs:?}");
}

/// Discovery refuses kernel files; one swapped in afterwards (the live path made a
/// link into /proc) must not be read either: size 0, content that changes on
/// every read.
#[test]
fn a_kernel_file_swapped_in_for_the_live_file_is_not_read() {
    let d = dirs();
    let live = d.root.join("app.log");
    symlink("/proc/self/status", &live).unwrap();
    let mut h = within(&live, true, &[]);
    // A few rounds, not `drain`: a kernel file read as a log never goes quiet.
    for _ in 0..5 {
        let (lines, _) = h.later();
        assert!(lines.is_empty(), "read a kernel file: {lines:?}");
    }
    assert_eq!(h.t.counters().files_opened, 0, "{:?}", h.t.counters());
}
