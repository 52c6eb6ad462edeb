//! Discovery against real folders: groups, siblings, roots, duplicates, FIFOs.

use super::*;

fn any() -> AllowedRoots {
    AllowedRoots::any()
}

#[test]
fn split_rotated_names() {
    let p = Path::new("/l/access.log.12.gz");
    assert_eq!(
        split_rotated(p),
        Some((PathBuf::from("/l/access.log"), 12, true))
    );
    assert_eq!(
        split_rotated(Path::new("/l/access.log.1")),
        Some((PathBuf::from("/l/access.log"), 1, false))
    );
    assert_eq!(split_rotated(Path::new("/l/access.log")), None);
    assert_eq!(split_rotated(Path::new("/l/access.log.gz")), None);
    assert_eq!(split_rotated(Path::new("/l/.1")), None);
}

#[test]
fn groups_with_siblings_oldest_first() {
    let d = tempfile::tempdir().unwrap();
    for n in [
        "a.log",
        "a.log.1",
        "a.log.2.gz",
        "a.log.3.gz",
        "a.log.2",
        "b.log",
    ] {
        std::fs::write(d.path().join(n), b"x\n").unwrap();
    }
    let glob = format!("{}/*.log*", d.path().display());
    let groups = discover(&[glob], &[], &any()).unwrap().groups;
    assert_eq!(groups.len(), 2, "{groups:?}");
    let a = &groups[0];
    assert_eq!(a.live, d.path().join("a.log"));
    let names: Vec<_> = a
        .files_in_order()
        .map(|(p, _)| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a.log.3.gz", "a.log.2", "a.log.1", "a.log"]);
    assert!(groups[1].rotated.is_empty());
}

/// A group's siblings come from discovery's own walk, not from listing its
/// folder again: the same siblings as a listing finds, whatever the glob.
#[test]
fn siblings_from_the_walk_are_those_a_listing_finds() {
    let d = tempfile::tempdir().unwrap();
    let b = d.path();
    for f in [
        "w1/access.log",
        "w1/access.log.1",
        "w1/access.log.2",
        "w1/access.log.2.gz",
        "w1/access.log.10.gz",
        "w1/access.log.x",
        "w1/error.log",
        "w1/error.log.1",
        "w2/access.log.1",
        "w2/access.log.3.gz",
        "w3/access.log",
        "w3/deep/access.log",
        "w3/deep/access.log.7",
    ] {
        std::fs::create_dir_all(b.join(f).parent().unwrap()).unwrap();
        std::fs::write(b.join(f), b"x\n").unwrap();
    }
    // A folder with a sibling's name is not a sibling.
    std::fs::create_dir_all(b.join("w3/access.log.4")).unwrap();
    for globs in [
        vec!["*/access.log"],
        vec!["*/access.log*"],
        vec!["*/*.log"],
        vec!["w1/access.log"],
        vec!["**/access.log"],
        vec!["w[12]/access.log", "*/access.log"],
        vec!["*/access.log", "w1/*.log"],
    ] {
        let globs: Vec<String> = globs
            .iter()
            .map(|g| format!("{}/{g}", b.display()))
            .collect();
        let groups = discover(&globs, &[], &any()).unwrap().groups;
        assert!(!groups.is_empty(), "{globs:?}");
        for g in &groups {
            assert_eq!(
                g.rotated,
                rotated_siblings(&g.live),
                "{globs:?}: {}",
                g.live.display()
            );
        }
        let w1 = groups.iter().find(|g| g.live == b.join("w1/access.log"));
        if let Some(w1) = w1 {
            let numbers: Vec<u32> = w1.rotated.iter().map(|r| r.number).collect();
            assert_eq!(numbers, [10, 2, 1], "{globs:?}");
        }
    }
}

/// Regression: between a rotation's rename and create the live file is missing;
/// discovery then skipped the group, and it came back a moment later as a "new"
/// file whose older lines were all late.
#[test]
fn a_group_whose_live_file_is_missing_is_still_found() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("web-1")).unwrap();
    std::fs::write(d.path().join("web-1/access.log.1"), b"x\n").unwrap();
    std::fs::write(d.path().join("web-1/access.log.2.gz"), b"").unwrap();
    std::fs::create_dir_all(d.path().join("web-2")).unwrap();
    std::fs::write(d.path().join("web-2/access.log"), b"x\n").unwrap();
    // Not a sibling of anything the glob matches.
    std::fs::write(d.path().join("web-2/error.log.1"), b"x\n").unwrap();
    let glob = format!("{}/*/access.log", d.path().display());
    let groups = discover(&[glob], &[], &any()).unwrap().groups;
    let lives: Vec<_> = groups.iter().map(|g| g.live.clone()).collect();
    assert_eq!(
        lives,
        [
            d.path().join("web-1/access.log"),
            d.path().join("web-2/access.log")
        ]
    );
    assert_eq!(groups[0].rotated.len(), 2);
}

#[test]
fn exclude_and_bad_glob() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.log"), b"x\n").unwrap();
    std::fs::write(d.path().join("b.log"), b"x\n").unwrap();
    let inc = format!("{}/*.log", d.path().display());
    let exc = format!("{}/b.*", d.path().display());
    let groups = discover(&[inc], &[exc], &any()).unwrap().groups;
    assert_eq!(groups.len(), 1);
    assert!(discover(&["[".into()], &[], &any()).is_err());
}

#[test]
fn archive_files_sorted_deduplicated_and_excluded() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    for dir in ["web-2", "web-1", "web-1/sub"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for n in [
        "web-2/access.log-20260101.gz",
        "web-1/access.log-20260102.gz",
        "web-1/access.log-20260101.gz",
        "web-1/access.log-20260103",
        "web-1/error.log-20260101.gz",
        "web-1/access.log-skip.gz",
    ] {
        std::fs::write(root.join(n), b"x\n").unwrap();
    }
    // A directory that matches the glob is not a file.
    std::fs::create_dir_all(root.join("web-1/access.log-dir")).unwrap();
    // A symlink to a file already matched is the same file; a dangling one is none.
    std::os::unix::fs::symlink(
        root.join("web-2/access.log-20260101.gz"),
        root.join("web-1/sub/access.log-link.gz"),
    )
    .unwrap();
    std::os::unix::fs::symlink(root.join("nowhere"), root.join("web-1/access.log-dangling"))
        .unwrap();
    let r = root.display();
    let files = discover_archive(
        &[
            format!("{r}/*/access.log-*"),
            // Matches files already matched: each is listed once.
            format!("{r}/web-1/access.log-2026010[12].gz"),
            format!("{r}/web-1/../web-2/*.gz"),
            format!("{r}/web-1/sub/*.gz"),
        ],
        &[format!("{r}/*/*-skip.gz")],
        &any(),
    )
    .unwrap()
    .files;
    let names: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "web-1/access.log-20260101.gz",
            "web-1/access.log-20260102.gz",
            "web-1/access.log-20260103",
            "web-2/access.log-20260101.gz",
        ],
        "{files:?}"
    );

    assert!(discover_archive(&[], &[], &any()).unwrap().files.is_empty());
    assert!(discover_archive(&[format!("{r}/nothing/*")], &[], &any())
        .unwrap()
        .files
        .is_empty());
    match discover_archive(&[format!("{r}/a[.gz")], &[], &any()) {
        Err(e @ DiscoverError::BadArchive { .. }) => {
            assert!(e.to_string().starts_with("archive glob \""), "{e}");
            assert!(e.to_string().contains("a[.gz"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        discover_archive(&[format!("{r}/*")], &["[".into()], &any()),
        Err(DiscoverError::BadExclude { .. })
    ));
}

/// `BASE/root` (the allowed root) with links leading out of it to `BASE/out`,
/// and links that stay inside.
fn escape_tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
    use std::os::unix::fs::symlink;
    let d = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(d.path()).unwrap();
    let (root, out) = (base.join("root"), base.join("out"));
    for dir in [&root.join("sub"), &out] {
        std::fs::create_dir_all(dir).unwrap();
    }
    for f in [
        root.join("app.log"),
        root.join("app.log.2"),
        root.join("sub/x.log"),
        root.join("sub/real.log"),
        out.join("secret"),
        out.join("passwd"),
        out.join("x.log"),
    ] {
        std::fs::write(f, b"x\n").unwrap();
    }
    // Out of the root: a file, a rotated sibling, a directory.
    symlink(out.join("secret"), root.join("evil.log")).unwrap();
    symlink(out.join("passwd"), root.join("app.log.1")).unwrap();
    symlink(&out, root.join("x")).unwrap();
    // Inside it: a file and a directory reached through links.
    symlink(root.join("sub/real.log"), root.join("ok.log")).unwrap();
    symlink(root.join("sub"), root.join("linked")).unwrap();
    (d, root, out)
}

fn names(root: &Path, paths: impl IntoIterator<Item = PathBuf>) -> Vec<String> {
    paths
        .into_iter()
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

#[test]
fn links_out_of_the_allowed_roots_are_not_discovered() {
    let (_d, root, out) = escape_tree();
    let roots = AllowedRoots::new(&[&root]);
    let r = root.display();
    let found = discover(&[format!("{r}/*.log")], &[], &roots).unwrap();
    let lives = names(&root, found.groups.iter().map(|g| g.live.clone()));
    assert_eq!(lives, ["app.log", "ok.log"], "{found:?}");
    // The rotated sibling that leads out is not part of its group.
    let rotated = names(
        &root,
        found.groups[0].rotated.iter().map(|f| f.path.clone()),
    );
    assert_eq!(rotated, ["app.log.2"]);
    let outside: Vec<(String, PathBuf)> = found
        .outside
        .iter()
        .map(|o| {
            (
                o.path.strip_prefix(&root).unwrap().display().to_string(),
                o.real.clone(),
            )
        })
        .collect();
    assert_eq!(
        outside,
        [
            ("app.log.1".to_string(), out.join("passwd")),
            ("evil.log".to_string(), out.join("secret"))
        ]
    );

    // A directory link out of the root, matched by a wildcard.
    let found = discover(&[format!("{r}/*/x.log")], &[], &roots).unwrap();
    let lives = names(&root, found.groups.iter().map(|g| g.live.clone()));
    // `linked` leads to `sub`: one file, read once, under its real path.
    assert_eq!(lives, ["sub/x.log"]);
    assert_eq!(found.duplicates.len(), 1, "{found:?}");
    assert_eq!(found.outside.len(), 1, "{found:?}");
    assert_eq!(found.outside[0].path, root.join("x/x.log"));
    assert_eq!(found.outside[0].real, out.join("x.log"));

    // Without roots, everything is found (each file once).
    let all = discover(&[format!("{r}/*.log"), format!("{r}/*/x.log")], &[], &any()).unwrap();
    assert_eq!(all.groups.len(), 5, "{all:?}");
    assert!(all.outside.is_empty());
    assert_eq!(all.groups[0].rotated.len(), 2);
}

#[test]
fn a_group_found_through_its_sibling_keeps_only_siblings_inside() {
    let (_d, root, out) = escape_tree();
    // The live file leads out; its rotated sibling is inside.
    std::os::unix::fs::symlink(out.join("secret"), root.join("gone.log")).unwrap();
    std::fs::write(root.join("gone.log.1"), b"x\n").unwrap();
    let roots = AllowedRoots::new(&[&root]);
    let found = discover(&[format!("{}/gone.log", root.display())], &[], &roots).unwrap();
    assert_eq!(found.groups.len(), 1);
    assert_eq!(found.groups[0].live, root.join("gone.log"));
    assert_eq!(found.groups[0].rotated.len(), 1);
    assert_eq!(found.outside.len(), 1);
    assert_eq!(found.outside[0].path, root.join("gone.log"));
}

#[test]
fn archive_links_out_of_the_allowed_roots_are_not_listed() {
    let (_d, root, out) = escape_tree();
    let roots = AllowedRoots::new(&[&root]);
    let r = root.display();
    let found = discover_archive(
        &[format!("{r}/*.log*"), format!("{r}/*/x.log")],
        &[],
        &roots,
    )
    .unwrap();
    assert_eq!(
        names(&root, found.files),
        ["app.log", "app.log.2", "linked/x.log", "ok.log"]
    );
    let outside: Vec<PathBuf> = found.outside.iter().map(|o| o.real.clone()).collect();
    assert_eq!(
        outside,
        [out.join("passwd"), out.join("secret"), out.join("x.log")]
    );
    let all = discover_archive(&[format!("{r}/*.log*")], &[], &any()).unwrap();
    assert_eq!(all.files.len(), 5);
}

/// Regression (issue 10 §3): live discovery deduplicated by path, so one file
/// reached by several paths was read (and counted) once per path.
#[test]
fn one_file_reached_by_several_paths_is_one_group() {
    use std::os::unix::fs::symlink;
    let d = tempfile::tempdir().unwrap();
    let b = std::fs::canonicalize(d.path()).unwrap();
    std::fs::create_dir_all(b.join("releases/42")).unwrap();
    std::fs::write(b.join("releases/42/app.log"), b"x\n").unwrap();
    std::fs::write(b.join("releases/42/app.log.1"), b"y\n").unwrap();
    symlink("releases/42", b.join("current")).unwrap();
    std::fs::create_dir_all(b.join("h")).unwrap();
    std::fs::write(b.join("h/a.log"), b"x\n").unwrap();
    std::fs::hard_link(b.join("h/a.log"), b.join("h/b.log")).unwrap();
    symlink("..", b.join("releases/42/up")).unwrap();
    let r = b.display();
    let found = discover(
        &[
            format!("{r}/*/app.log"),
            format!("{r}/releases/*/app.log"),
            format!("{r}/releases/../releases/42/app.log"),
            format!("{r}/h/*.log"),
            format!("{r}/**/app.log"),
        ],
        &[],
        &any(),
    )
    .unwrap();
    let lives = names(&b, found.groups.iter().map(|g| g.live.clone()));
    // The real path names the group, not the link.
    assert_eq!(lives, ["h/a.log", "releases/42/app.log"], "{found:?}");
    assert_eq!(found.groups[1].rotated.len(), 1);
    let dups: Vec<(String, String)> = found
        .duplicates
        .iter()
        .map(|d| {
            (
                d.path.strip_prefix(&b).unwrap().display().to_string(),
                d.same_as.strip_prefix(&b).unwrap().display().to_string(),
            )
        })
        .collect();
    assert_eq!(
        dups,
        [
            ("current/app.log".into(), "releases/42/app.log".into()),
            // Through `current`, then up the loop once (then it ends).
            ("current/up/42/app.log".into(), "releases/42/app.log".into()),
            ("h/b.log".into(), "h/a.log".into()),
            (
                "releases/../releases/42/app.log".into(),
                "releases/42/app.log".into()
            ),
        ]
    );
    // `**` does not go around the loop (`up` leads back to `releases`).
    let loops: Vec<PathBuf> = found.loops.iter().map(|l| l.path.clone()).collect();
    assert_eq!(
        loops,
        [b.join("current/up/42/up"), b.join("releases/42/up")]
    );

    // A group already being read keeps its path, even a link's.
    let known = HashSet::from([b.join("current/app.log")]);
    let found = discover_preferring(
        &[format!("{r}/*/app.log"), format!("{r}/releases/*/app.log")],
        &[],
        &any(),
        &known,
    )
    .unwrap();
    let lives = names(&b, found.groups.iter().map(|g| g.live.clone()));
    assert_eq!(lives, ["current/app.log"]);
    assert_eq!(found.duplicates[0].path, b.join("releases/42/app.log"));
}

/// Regression: of a file found by its real path and through a directory link,
/// the path sorted first named the group (`current/app.log`), which leads to
/// another file once the link is flipped.
#[test]
fn an_alias_link_is_not_chosen_over_the_real_path() {
    let d = tempfile::tempdir().unwrap();
    let b = std::fs::canonicalize(d.path()).unwrap();
    std::fs::create_dir_all(b.join("web-1")).unwrap();
    std::fs::write(b.join("web-1/app.log"), b"x\n").unwrap();
    std::os::unix::fs::symlink("web-1", b.join("current")).unwrap();
    let found = discover(&[format!("{}/*/app.log", b.display())], &[], &any()).unwrap();
    let lives: Vec<PathBuf> = found.groups.iter().map(|g| g.live.clone()).collect();
    assert_eq!(lives, [b.join("web-1/app.log")], "{found:?}");
    assert_eq!(
        found.duplicates,
        [Duplicate {
            path: b.join("current/app.log"),
            same_as: b.join("web-1/app.log"),
        }]
    );
}

/// Regression: every discovery listed the siblings of, and compared the inodes
/// of, every group again: 242 ms per discovery with 2000 groups (debug).
/// Groups already known are left out before any of that.
#[test]
fn discover_new_looks_only_at_new_groups() {
    let d = tempfile::tempdir().unwrap();
    let b = std::fs::canonicalize(d.path()).unwrap();
    for i in 0..50 {
        std::fs::write(b.join(format!("{i:02}.log")), b"x\n").unwrap();
        std::fs::write(b.join(format!("{i:02}.log.1")), b"y\n").unwrap();
    }
    let glob = format!("{}/*.log*", b.display());
    let known: HashSet<PathBuf> = (1..50).map(|i| b.join(format!("{i:02}.log"))).collect();
    let found = discover_new(std::slice::from_ref(&glob), &[], &any(), &known).unwrap();
    let lives: Vec<PathBuf> = found.groups.iter().map(|g| g.live.clone()).collect();
    assert_eq!(lives, [b.join("00.log")]);
    assert_eq!(found.groups[0].rotated.len(), 1);
    assert_eq!(found.examined, 1, "only the new group is looked at");
    assert_eq!(discover(&[glob], &[], &any()).unwrap().examined, 50);
}

/// Not a test: what a discovery costs with 2000 groups, all known (as a live
/// job's discoveries after the first) or not. `cargo test -p tidemark-sources
/// --lib discovery_cost -- --ignored --nocapture`
#[test]
#[ignore]
fn discovery_cost_with_2000_groups() {
    let d = tempfile::tempdir().unwrap();
    let b = std::fs::canonicalize(d.path()).unwrap();
    for i in 0..2000 {
        std::fs::create_dir_all(b.join(format!("h{i}"))).unwrap();
        std::fs::write(b.join(format!("h{i}/app.log")), b"x\n").unwrap();
        std::fs::write(b.join(format!("h{i}/app.log.1")), b"y\n").unwrap();
    }
    let glob = vec![format!("{}/*/app.log", b.display())];
    let all = discover(&glob, &[], &any()).unwrap();
    let known: HashSet<PathBuf> = all.groups.iter().map(|g| g.live.clone()).collect();
    let time = |f: &dyn Fn()| {
        let t = std::time::Instant::now();
        for _ in 0..5 {
            f();
        }
        t.elapsed() / 5
    };
    let before = time(&|| {
        discover_preferring(&glob, &[], &any(), &known).unwrap();
    });
    let after = time(&|| {
        discover_new(&glob, &[], &any(), &known).unwrap();
    });
    eprintln!("2000 known groups: every group examined {before:?}, only new ones {after:?}");
}

/// Regression (issue 10 §6): a FIFO or device matched by a glob was skipped
/// without a word. It is listed (the caller warns), and never opened.
#[test]
fn a_fifo_matched_by_a_glob_is_listed_not_opened() {
    let d = tempfile::tempdir().unwrap();
    let b = d.path();
    std::fs::write(b.join("a.log"), b"x\n").unwrap();
    let fifo = b.join("p.log");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("/dev/null", b.join("null.log")).unwrap();
    let found = discover(&[format!("{}/*.log", b.display())], &[], &any()).unwrap();
    assert_eq!(found.groups.len(), 1);
    assert_eq!(
        found.not_regular,
        [
            (b.join("null.log"), "a character device"),
            (fifo, "a FIFO (named pipe)")
        ]
    );
}
