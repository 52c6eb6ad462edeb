//! Expanding a glob into paths, following symbolic links but never around a loop.
//!
//! The `glob` crate follows a directory link back to its own ancestor until the
//! kernel says `ELOOP`, 40 levels down: `**` then matched one file 41 times
//! (issue 10 §3), and two such links made the walk exponential. This walks with
//! `walkdir`, which follows links and stops at a directory that is one of its own
//! ancestors, reporting it. Directories that cannot be listed are reported too,
//! not skipped silently.
//!
//! The pattern syntax is the `glob` crate's (`*`, `?`, `[...]`, `[!...]`, and `**`
//! as a whole component for any number of folders, none included); `*` and `?`
//! do not match `/` and do match a leading `.`. The walk starts at the pattern's
//! literal leading folders and goes no deeper than the pattern can match; each
//! folder is compared with its pattern component before it is entered.

use std::io;
use std::path::{Component, Path, PathBuf};

use glob::{MatchOptions, Pattern, PatternError};
use walkdir::{DirEntry, WalkDir};

/// A directory link that leads back to one of its own ancestors: not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkLoop {
    /// The link, as reached by the walk.
    pub path: PathBuf,
    /// The folder it leads back to.
    pub ancestor: PathBuf,
}

/// What [`walk_glob`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walked {
    /// Every existing path that matches (of any file type), sorted.
    pub paths: Vec<PathBuf>,
    pub loops: Vec<WalkLoop>,
    /// Folders that could not be listed, with the error.
    pub unlistable: Vec<(PathBuf, String)>,
}

enum Step {
    One(Pattern),
    /// `**`: any number of folders.
    Any,
}

const OPTS: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

fn is_wild(part: &std::ffi::OsStr) -> bool {
    part.to_string_lossy().contains(['*', '?', '['])
}

/// The paths `pattern` matches, sorted (see the module docs).
pub fn walk_glob(pattern: &str) -> Result<Walked, PatternError> {
    walk(pattern, false).map(|(walked, _)| walked)
}

/// [`walk_glob`] of `pattern`, and the paths `{pattern}.*` matches (sorted), in
/// one walk where it can: discovery wants both (live files, and rotated siblings
/// whose live file may be missing), and walking the same folders twice listed
/// each of them twice. Where the two walks would differ (a pattern without a
/// wildcard, or ending in `**`), it walks twice.
pub fn walk_glob_and_rotated(pattern: &str) -> Result<(Walked, Vec<PathBuf>), PatternError> {
    Pattern::new(pattern)?;
    // `{pattern}.*` must be `pattern` with its last component extended, as
    // written (not so after a trailing `/` or `/.`, which components drop).
    let tail = pattern.rsplit('/').next().unwrap_or(pattern);
    let last = Path::new(pattern).components().next_back();
    let one_walk = matches!(last, Some(Component::Normal(p)) if p != "**" && p == tail)
        && Path::new(pattern)
            .components()
            .any(|c| matches!(c, Component::Normal(p) if is_wild(p)));
    if one_walk {
        return walk(pattern, true);
    }
    let mut walked = walk_glob(pattern)?;
    let mut rotated = walk_glob(&format!("{pattern}.*"))?;
    walked.loops.append(&mut rotated.loops);
    walked.unlistable.append(&mut rotated.unlistable);
    Ok((walked, rotated.paths))
}

/// Walks `pattern`; with `rotated`, also collects (second) the paths that
/// `{pattern}.*` matches: its last component is then also compared with
/// `{last}.*`, every other step being the same.
fn walk(pattern: &str, rotated: bool) -> Result<(Walked, Vec<PathBuf>), PatternError> {
    // Validates the whole pattern as the `glob` crate does (`**` alone in its
    // component, brackets closed).
    Pattern::new(pattern)?;
    let comps: Vec<Component<'_>> = Path::new(pattern).components().collect();
    let split = comps
        .iter()
        .position(|c| matches!(c, Component::Normal(p) if is_wild(p)))
        .unwrap_or(comps.len());
    let base: PathBuf = comps[..split].iter().collect();
    let mut walked = Walked::default();
    let mut also = Vec::new();
    if split == comps.len() {
        if std::fs::symlink_metadata(&base).is_ok() {
            walked.paths.push(base);
        }
        return Ok((walked, also));
    }
    let mut steps = Vec::with_capacity(comps.len() - split);
    for c in &comps[split..] {
        let part = c.as_os_str().to_string_lossy();
        steps.push(if part == "**" {
            Step::Any
        } else {
            Step::One(Pattern::new(&part)?)
        });
    }
    let whole = Pattern::new(&comps.iter().collect::<PathBuf>().to_string_lossy())?;
    // `{pattern}.*`: the whole pattern and its last step with `.*` appended.
    let (whole_rotated, last_rotated) = if rotated {
        let text = format!("{}.*", comps.iter().collect::<PathBuf>().to_string_lossy());
        let last = comps.last().map_or_else(String::new, |c| {
            format!("{}.*", c.as_os_str().to_string_lossy())
        });
        (Some(Pattern::new(&text)?), Some(Pattern::new(&last)?))
    } else {
        (None, None)
    };
    let any_at = steps.iter().position(|s| matches!(s, Step::Any));
    let dirs_only = matches!(steps.last(), Some(Step::Any));
    let relative = base.as_os_str().is_empty();
    let start = if relative { Path::new(".") } else { &base };
    let keep = |e: &DirEntry| -> bool {
        let d = e.depth();
        // Components before the first `**` are matched one by one.
        match any_at {
            Some(k) if d > k => true,
            _ => match steps.get(d - 1) {
                Some(Step::One(p)) => {
                    let name = e.file_name().to_string_lossy();
                    p.matches_with(&name, OPTS)
                        || (d == steps.len()
                            && last_rotated
                                .as_ref()
                                .is_some_and(|r| r.matches_with(&name, OPTS)))
                }
                _ => true,
            },
        }
    };
    let walker = WalkDir::new(start)
        .follow_links(true)
        .min_depth(1)
        .max_depth(any_at.map_or(steps.len(), |_| usize::MAX))
        .sort_by_file_name();
    for entry in walker.into_iter().filter_entry(keep) {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e.path().unwrap_or(start).to_path_buf();
                if let Some(ancestor) = e.loop_ancestor() {
                    walked.loops.push(WalkLoop {
                        path,
                        ancestor: ancestor.to_path_buf(),
                    });
                } else if let Some(io) = e.io_error() {
                    // Gone since it was listed, or a dangling link: nothing to read.
                    if io.kind() != io::ErrorKind::NotFound {
                        walked.unlistable.push((path, io.to_string()));
                    }
                }
                continue;
            }
        };
        let path = if relative {
            entry.path().strip_prefix(".").unwrap_or(entry.path())
        } else {
            entry.path()
        };
        let last_step = || match steps.last() {
            Some(Step::One(p)) => p.matches_with(&entry.file_name().to_string_lossy(), OPTS),
            _ => true,
        };
        let matched = match any_at {
            // With `rotated`, an entry at the last depth may have been kept for
            // `{last}.*` only.
            None => entry.depth() == steps.len() && (!rotated || last_step()),
            // A trailing `**` matches folders only (as in the `glob` crate).
            Some(_) if dirs_only => entry.file_type().is_dir(),
            Some(_) => whole.matches_path_with(path, OPTS),
        };
        if matched {
            walked.paths.push(path.to_path_buf());
        }
        let matched_rotated = match (any_at, &whole_rotated, &last_rotated) {
            (_, None, _) | (_, _, None) => false,
            (None, _, Some(last)) => {
                entry.depth() == steps.len()
                    && last.matches_with(&entry.file_name().to_string_lossy(), OPTS)
            }
            (Some(_), Some(whole), _) => whole.matches_path_with(path, OPTS),
        };
        if matched_rotated {
            also.push(path.to_path_buf());
        }
    }
    walked.paths.sort();
    also.sort();
    Ok((walked, also))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn rel(base: &Path, paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.strip_prefix(base).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn matches_like_the_glob_crate() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path();
        for f in [
            "a/x.log",
            "a/.h.log",
            "a/sub/x.log",
            "a/sub/deep/x.log",
            "b/x.log",
            "b/y.txt",
            "c1/x.log",
        ] {
            std::fs::create_dir_all(b.join(f).parent().unwrap()).unwrap();
            std::fs::write(b.join(f), b"x\n").unwrap();
        }
        for pat in [
            "*/x.log",
            "a/*.log",
            "**/x.log",
            "a/**/x.log",
            "a/**",
            "[ab]/x.log",
            "[!a]*/x.log",
            "?/*",
            "a/sub/x.log",
            "a/nope.log",
            "*/sub/*/x.log",
        ] {
            let g = format!("{}/{pat}", b.display());
            let want: Vec<PathBuf> = glob::glob(&g).unwrap().flatten().collect();
            let got = walk_glob(&g).unwrap();
            assert_eq!(rel(b, &got.paths), rel(b, &want), "{pat}");
            assert!(got.loops.is_empty() && got.unlistable.is_empty());
        }
        assert!(walk_glob("a/**b").is_err());
        assert!(walk_glob("a/[").is_err());
    }

    /// One walk for a pattern and `{pattern}.*` finds what two walks find.
    #[test]
    fn one_walk_finds_the_live_and_the_rotated_paths_of_two() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path();
        for f in [
            "a/x.log",
            "a/x.log.1",
            "a/x.log.2.gz",
            "a/x.logger",
            "a/.h.log",
            "a/.h.log.3",
            "a/sub/x.log",
            "a/sub/x.log.1",
            "a/sub/deep/x.log.4",
            "b/x.log.1",
            "b/y.txt",
            "b/y.txt.1",
            "c1/x.log",
            "c1/x.log.old",
        ] {
            std::fs::create_dir_all(b.join(f).parent().unwrap()).unwrap();
            std::fs::write(b.join(f), b"x\n").unwrap();
        }
        std::fs::create_dir_all(b.join("a/x.log.9")).unwrap();
        symlink(b.join("a"), b.join("link")).unwrap();
        for pat in [
            "*/x.log",
            "a/*.log",
            "a/*.log*",
            "**/x.log",
            "a/**/x.log",
            "a/**",
            "[ab]/x.log",
            "[!a]*/x.log",
            "?/*",
            "a/x.log",
            "a/nope.log",
            "*/sub/*/x.log",
            "*/x.log/",
            "*/x.log/.",
            "*/*",
        ] {
            let g = format!("{}/{pat}", b.display());
            let two =
                walk_glob(&g).and_then(|w| Ok((w.paths, walk_glob(&format!("{g}.*"))?.paths)));
            let one = walk_glob_and_rotated(&g).map(|(w, rotated)| {
                assert!(w.loops.is_empty() && w.unlistable.is_empty(), "{pat}");
                (w.paths, rotated)
            });
            assert_eq!(one.is_ok(), two.is_ok(), "{pat}");
            if let (Ok(one), Ok(two)) = (one, two) {
                assert_eq!(one, two, "{pat}");
                let found = !one.0.is_empty() || !one.1.is_empty();
                assert!(found || pat.contains("nope"), "{pat} found nothing");
            }
        }
    }

    /// Regression (issue 10 §3): `**` through a link back to an ancestor found
    /// one file 41 times (until ELOOP); two such links made the walk exponential.
    #[test]
    fn a_symlink_loop_ends_the_walk_with_a_report() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        std::fs::create_dir_all(a.join("b")).unwrap();
        std::fs::write(a.join("b/x.log"), b"x\n").unwrap();
        symlink("..", a.join("b/up")).unwrap();
        symlink(".", a.join("b/here")).unwrap();
        let got = walk_glob(&format!("{}/**/x.log", a.display())).unwrap();
        assert_eq!(got.paths, [a.join("b/x.log")]);
        let loops: Vec<_> = got.loops.iter().map(|l| l.path.clone()).collect();
        assert_eq!(loops, [a.join("b/here"), a.join("b/up")]);
        assert_eq!(got.loops[1].ancestor, a);
    }
}
