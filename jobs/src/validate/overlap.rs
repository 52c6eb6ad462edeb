//! Whether a sink path would destroy one of the job's inputs, as far as paths
//! tell. A job may have thousands of globs and thousands of sinks: matching each
//! sink against each glob cost sinks × globs (6,000 of each: 22 s). Each glob is
//! compiled once and indexed by a literal every path it matches must contain (the
//! one fewest globs share); a path is then matched only against the globs whose
//! literal it contains, found in one pass over it (aho-corasick, already a
//! dependency of `regex`). Globs whose literals all are shared by many (or that
//! have none, like `**/*`) are still each matched against every path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aho_corasick::AhoCorasick;

use crate::job::Source;

/// Like discovery walks folders: `*` does not cross a `/`.
const WALK: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// What the output `path` would destroy, as far as paths tell: an input a glob
/// of `source` matches or will match once rotated (`NAME.N`, `NAME.N.gz`), an
/// archived input, or `job_file`. `None` if nothing. For outputs chosen after
/// validation (`tidemark replay --output`); for many paths build [`Overlaps`].
pub fn overlap(path: &Path, source: &Source, job_file: Option<&Path>) -> Option<String> {
    Overlaps::new(source, job_file).of(path)
}

/// A job's globs, compiled and indexed, to check many sink paths.
pub struct Overlaps {
    job_file: Option<PathBuf>,
    include: Globs,
    archive: Globs,
    /// Applied as discovery does: to the full path, with default options.
    exclude: Vec<glob::Pattern>,
}

impl Overlaps {
    pub fn new(source: &Source, job_file: Option<&Path>) -> Overlaps {
        Overlaps {
            job_file: job_file.map(normalize),
            include: Globs::new(&source.include),
            archive: Globs::new(&source.archive),
            exclude: source
                .exclude
                .iter()
                .filter_map(|g| glob::Pattern::new(g).ok())
                .collect(),
        }
    }

    /// See [`overlap`].
    pub fn of(&self, path: &Path) -> Option<String> {
        let path = normalize(path);
        if self.job_file.as_ref().is_some_and(|f| *f == path) {
            return Some("the job file itself".to_string());
        }
        let excluded = |p: &Path| self.exclude.iter().any(|e| e.matches_path(p));
        let live = rotated_base(&path);
        let mut candidates = self.include.candidates(&path);
        if let Some(live) = &live {
            candidates.extend(self.include.candidates(live));
        }
        candidates.sort_unstable();
        candidates.dedup();
        // In the globs' order, as the message names the first that matches.
        for i in candidates {
            let (g, pattern) = &self.include.globs[i];
            if pattern.matches_path_with(&path, WALK) && !excluded(&path) {
                return Some(format!(
                    "an input file: the include glob {g:?} matches it, so the job would read its own output"
                ));
            }
            if let Some(live) = live
                .as_ref()
                .filter(|l| pattern.matches_path_with(l, WALK) && !excluded(l))
            {
                return Some(format!(
                    "an input file: it is named like a rotated sibling of {}, which the include glob {g:?} matches",
                    live.display()
                ));
            }
        }
        let mut candidates = self.archive.candidates(&path);
        candidates.sort_unstable();
        candidates.dedup();
        candidates.into_iter().find_map(|i| {
            let (g, pattern) = &self.archive.globs[i];
            (pattern.matches_path_with(&path, WALK) && !excluded(&path))
                .then(|| format!("an archived input file: the archive glob {g:?} matches it"))
        })
    }
}

/// Globs (those that compile: the others match nothing) and their index.
struct Globs {
    globs: Vec<(String, glob::Pattern)>,
    /// Over the distinct required literals; `by_literal[k]` are the globs needing literal k.
    finder: Option<AhoCorasick>,
    by_literal: Vec<Vec<usize>>,
    /// Globs with no literal (`*`, `**/*`): candidates for every path.
    always: Vec<usize>,
}

impl Globs {
    fn new(globs: &[String]) -> Globs {
        let mut out = Globs {
            globs: Vec::new(),
            finder: None,
            by_literal: Vec::new(),
            always: Vec::new(),
        };
        // Each glob is indexed by the literal run the fewest globs share (then the
        // longest): globs alike but for a `*` (`/l/*1*`, `/l/*2*`…) must not all
        // be candidates for every path under `/l/`.
        let mut compiled: Vec<(&String, glob::Pattern, Vec<&str>)> = Vec::new();
        let mut shared: HashMap<&str, usize> = HashMap::new();
        for g in globs {
            let Ok(pattern) = glob::Pattern::new(g) else {
                continue;
            };
            let mut runs = literal_runs(g);
            runs.sort_unstable();
            runs.dedup();
            for &run in &runs {
                *shared.entry(run).or_default() += 1;
            }
            compiled.push((g, pattern, runs));
        }
        let mut literals: Vec<&str> = Vec::new();
        let mut slot: HashMap<&str, usize> = HashMap::new();
        for (g, pattern, runs) in compiled {
            let i = out.globs.len();
            out.globs.push((g.clone(), pattern));
            let rarest = runs
                .into_iter()
                .min_by_key(|run| (shared[run], std::cmp::Reverse(run.len())));
            match rarest {
                None => out.always.push(i),
                Some(lit) => {
                    let k = *slot.entry(lit).or_insert_with(|| {
                        literals.push(lit);
                        out.by_literal.push(Vec::new());
                        literals.len() - 1
                    });
                    out.by_literal[k].push(i);
                }
            }
        }
        // Only fails past memory limits; every glob then stays a candidate.
        match AhoCorasick::new(&literals) {
            Ok(ac) => out.finder = Some(ac),
            Err(_) => out.always.extend(out.by_literal.drain(..).flatten()),
        }
        out
    }

    /// Indexes of the globs that may match `path` (unsorted, maybe repeated).
    fn candidates(&self, path: &Path) -> Vec<usize> {
        let mut out = self.always.clone();
        if let Some(ac) = &self.finder {
            let bytes = path.as_os_str().as_encoded_bytes();
            let mut seen = vec![false; self.by_literal.len()];
            for m in ac.find_overlapping_iter(bytes) {
                let k = m.pattern().as_usize();
                if !std::mem::replace(&mut seen[k], true) {
                    out.extend(&self.by_literal[k]);
                }
            }
        }
        out
    }
}

/// The runs of literal characters of a glob (which compiled): every path it
/// matches contains each. Outside `[...]` classes, only `*` and `?` are special.
fn literal_runs(glob: &str) -> Vec<&str> {
    let b = glob.as_bytes();
    let mut runs = Vec::new();
    let (mut start, mut i) = (0, 0);
    // Runs end at ASCII bytes, so on char boundaries.
    let mut close = |run: std::ops::Range<usize>| {
        if let Some(text) = glob.get(run).filter(|t| !t.is_empty()) {
            runs.push(text);
        }
    };
    while i < b.len() {
        match b[i] {
            b'*' | b'?' => {
                close(start..i);
                i += 1;
                start = i;
            }
            b'[' => {
                close(start..i);
                // `[!]...]` and `[]...]`: a `]` right after the opening is a member.
                let mut j = i + 1;
                if b.get(j) == Some(&b'!') {
                    j += 1;
                }
                j += 1;
                while j < b.len() && b[j] != b']' {
                    j += 1;
                }
                i = j + 1;
                start = i.min(b.len());
            }
            _ => i += 1,
        }
    }
    close(start..b.len());
    runs
}

/// `dir/NAME.3.gz` or `dir/NAME.3` → `dir/NAME`: the live file whose rotated
/// sibling this name would be.
fn rotated_base(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".gz").unwrap_or(name);
    let (base, digits) = stem.rsplit_once('.')?;
    (!base.is_empty() && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| path.with_file_name(base))
}

/// `p` without `.` components, `..` applied lexically.
pub(super) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_runs_skip_wildcards_and_classes() {
        assert_eq!(
            literal_runs("/var/log/*/access.log"),
            ["/var/log/", "/access.log"]
        );
        assert_eq!(literal_runs("/l/[abc]x*"), ["/l/", "x"]);
        assert_eq!(literal_runs("[]ab]/logs-*"), ["/logs-"]);
        assert_eq!(literal_runs("[!]]zz"), ["zz"]);
        assert_eq!(literal_runs("**/*"), ["/"]);
        assert!(literal_runs("*").is_empty());
    }

    #[test]
    fn globs_alike_but_for_a_wildcard_are_not_all_candidates() {
        let globs: Vec<String> = (0..1000).map(|i| format!("/l/*-{i}-*")).collect();
        let index = Globs::new(&globs);
        let got = index.candidates(Path::new("/l/app-42-x.log"));
        assert!(got.len() <= 3, "{} candidates", got.len());
        assert!(got.contains(&42));
        let include: Vec<String> = globs.iter().map(|g| format!("{g:?}")).collect();
        let text = format!(
            "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [{}]\n[parse]\nformat = \"json\"\n\
             [[metric]]\nname = \"m\"\nkind = \"counter\"\n[[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n",
            include.join(", ")
        );
        let job = crate::from_str(&text, "j.toml", Path::new("/srv")).unwrap();
        let what = Overlaps::new(&job.source, None).of(Path::new("/l/app-42-x.log"));
        assert!(what.is_some_and(|w| w.contains("/l/*-42-*")));
    }
}
