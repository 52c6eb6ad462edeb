//! Allowed roots: the folders a cluster lets jobs read from (`--allow-root DIR`).
//!
//! [`check_roots`] is a lexical check of a validated [`Job`]: every `include`,
//! `exclude` and `archive` glob must be absolute, must have no `..` component (a `..`
//! after a wildcard could climb out of any folder the glob starts in), and its
//! literal part, the components before the first one with a wildcard (`*`, `?`,
//! `[`), must lie inside one of the roots. Inside means component by component:
//! `/var/logs/x` is not inside `/var/log`, and `/var/log*/x` is not either, because
//! its literal part is only `/var`. Paths are normalised lexically first (`.` and
//! repeated or trailing `/` dropped), never by looking at the disk.
//!
//! A lexical check cannot see symbolic links: `/var/log/link/*` is accepted even when
//! `link` points at `/etc`. That is part of the contract, not a gap: this check
//! answers the submitter up front with a clear error; the read-time check is what
//! makes it hold. Once a job passed, the cluster sets
//! [`Source::allowed_roots`](crate::Source::allowed_roots) to its roots, and
//! whoever reads the job's files resolves each one to its real path (symlinks
//! followed) and reads it only when that lies inside one of the canonicalised
//! roots: discovery leaves the others out, and every open checks the file actually
//! opened (`tidemark_sources::file::roots`). A file outside is skipped with a
//! warning and counted, never read.
//!
//! Writes have roots of their own (`--output-root DIR`): [`check_output_roots`]
//! checks lexically that every jsonl sink path is absolute, has no `..` and lies
//! strictly inside one of them. As for reads, the cluster then sets
//! [`Job::output_roots`](crate::Job::output_roots), and the sink opener checks the
//! real path of the file it opens.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use crate::job::{Job, SinkKind};
use crate::validate::{Diagnostic, Diagnostics};

/// Checks that everything `job` reads lies inside one of `roots`. An empty `roots`
/// allows any path. Roots should be absolute, without `..`; a root that is not
/// allows nothing (the caller should reject it at start-up).
pub fn check_roots(job: &Job, roots: &[PathBuf]) -> Result<(), RootsError> {
    if roots.is_empty() {
        return Ok(());
    }
    let allowed: Vec<PathBuf> = roots.iter().filter_map(|r| normalize(r)).collect();
    let mut problems = Vec::new();
    let s = &job.source;
    let globs = [
        ("include", &s.include),
        ("exclude", &s.exclude),
        ("archive", &s.archive),
    ];
    for (key, list) in globs {
        for g in list {
            if let Some(kind) = check_glob(g, &allowed) {
                problems.push(RootProblem {
                    key,
                    path: g.clone(),
                    kind,
                });
            }
        }
    }
    // An HTTP sink's secret files (remote-write, alertmanager) are read too, and
    // sent to its url: a submitted job must not read anything the cluster does
    // not let it read.
    for sink in &job.sinks {
        let (key, path) = match sink.kind.auth() {
            Some(crate::job::RemoteWriteAuth::BearerTokenFile(p)) => ("bearer_token_file", p),
            Some(crate::job::RemoteWriteAuth::Basic { password_file, .. }) => {
                ("basic_auth password_file", password_file)
            }
            None => continue,
        };
        let text = path.to_string_lossy();
        // A literal path: a wildcard in it would only be a strange file name,
        // but the glob check would take it as the end of the literal part.
        let kind = if text.contains(['*', '?', '[']) {
            Some(RootProblemKind::Outside {
                prefix: literal_prefix(path),
            })
        } else {
            check_glob(&text, &allowed)
        };
        if let Some(kind) = kind {
            problems.push(RootProblem {
                key,
                path: text.into_owned(),
                kind,
            });
        }
    }
    for sink in &job.sinks {
        if let SinkKind::Jsonl(path) = &sink.kind {
            if !path.is_absolute() {
                problems.push(RootProblem {
                    key: "jsonl sink",
                    path: path.to_string_lossy().into_owned(),
                    kind: RootProblemKind::Relative,
                });
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(RootsError {
            job: job.name.clone(),
            roots: roots.to_vec(),
            problems,
        })
    }
}

/// Checks that every jsonl sink of `job` writes strictly inside one of `roots`
/// (lexically: absolute, no `..`). An empty `roots` allows any absolute path.
pub fn check_output_roots(job: &Job, roots: &[PathBuf]) -> Result<(), RootsError> {
    let allowed: Vec<PathBuf> = roots.iter().filter_map(|r| normalize(r)).collect();
    let mut problems = Vec::new();
    for sink in &job.sinks {
        let SinkKind::Jsonl(path) = &sink.kind else {
            continue;
        };
        let kind = if path.components().any(|c| c == Component::ParentDir) {
            Some(RootProblemKind::ParentDir)
        } else if !path.is_absolute() {
            Some(RootProblemKind::Relative)
        } else {
            let path: PathBuf = path
                .components()
                .filter(|c| *c != Component::CurDir)
                .collect();
            let inside = allowed
                .iter()
                .any(|root| path.starts_with(root) && path != *root);
            (!roots.is_empty() && !inside).then_some(RootProblemKind::OutsideOutputRoots)
        };
        if let Some(kind) = kind {
            problems.push(RootProblem {
                key: "jsonl sink",
                path: path.to_string_lossy().into_owned(),
                kind,
            });
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(RootsError {
            job: job.name.clone(),
            roots: roots.to_vec(),
            problems,
        })
    }
}

fn check_glob(glob: &str, allowed: &[PathBuf]) -> Option<RootProblemKind> {
    let path = Path::new(glob);
    if path.components().any(|c| c == Component::ParentDir) {
        return Some(RootProblemKind::ParentDir);
    }
    if !path.is_absolute() {
        return Some(RootProblemKind::Relative);
    }
    let prefix = literal_prefix(path);
    if allowed.iter().any(|root| prefix.starts_with(root)) {
        None
    } else {
        Some(RootProblemKind::Outside { prefix })
    }
}

/// The components of an absolute glob before the first one with a wildcard.
/// (A `[` escape such as `[*]` also ends it: that only makes the check stricter.)
pub fn literal_prefix(glob: &Path) -> PathBuf {
    glob.components()
        .take_while(|c| match c {
            Component::Normal(part) => !part.to_string_lossy().contains(['*', '?', '[']),
            _ => true,
        })
        .filter(|c| *c != Component::CurDir)
        .collect()
}

/// `p` without `.` components and with no trailing `/`; `None` when it is relative
/// or has a `..` component.
fn normalize(p: &Path) -> Option<PathBuf> {
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return None;
    }
    Some(p.components().filter(|c| *c != Component::CurDir).collect())
}

/// Everything in a job that reads outside the allowed roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootsError {
    /// The job's name.
    pub job: String,
    /// The roots as the cluster was given them.
    pub roots: Vec<PathBuf>,
    /// In job order: include, exclude, archive, then sinks.
    pub problems: Vec<RootProblem>,
}

/// One path that breaks the roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootProblem {
    /// `include`, `exclude`, `archive`, `jsonl sink`, or a remote-write sink's
    /// `bearer_token_file` / `basic_auth password_file`.
    pub key: &'static str,
    /// The path or glob, as the validated job holds it (expanded and absolute).
    pub path: String,
    pub kind: RootProblemKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootProblemKind {
    /// The glob has a `..` component.
    ParentDir,
    /// The path is not absolute.
    Relative,
    /// The glob's literal part (shown) is inside none of the roots.
    Outside { prefix: PathBuf },
    /// The sink path is inside none of the output roots.
    OutsideOutputRoots,
}

/// The first of `roots` (as joined for messages), for an example path.
fn example_root(roots: &str) -> &str {
    roots.split(", ").next().unwrap_or("").trim_end_matches('/')
}

impl RootProblem {
    /// What is wrong and what to do; `roots` as in [`RootsError::roots`].
    pub fn describe(&self, roots: &[PathBuf]) -> (String, String) {
        let RootProblem { key, path, kind } = self;
        let what = if *key == "jsonl sink" {
            format!("the jsonl sink path `{path}`")
        } else if key.contains("_file") {
            format!("the sink's {key} `{path}`")
        } else {
            format!("{key} glob `{path}`")
        };
        let roots = roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        match kind {
            RootProblemKind::ParentDir if *key == "jsonl sink" => (
                format!("{what} has a `..` component, which is not allowed when the cluster restricts writes to {roots}"),
                "write the path without `..`: name the folder it means directly".to_string(),
            ),
            RootProblemKind::OutsideOutputRoots => (
                format!("{what} is outside the folders this cluster writes to (its output roots): {roots}"),
                format!("write the sink inside an output root, e.g. \"{}/NAME.jsonl\"; or start the cluster's process 0 with --output-root for a folder that should hold it", example_root(&roots)),
            ),
            RootProblemKind::ParentDir => (
                format!("{what} has a `..` component, which is not allowed when the cluster restricts reads to {roots}"),
                "write the path without `..`: name the folder it means directly".to_string(),
            ),
            RootProblemKind::Relative => (
                format!("{what} is not an absolute path, so it cannot be checked against the allowed roots ({roots})"),
                "write an absolute path".to_string(),
            ),
            RootProblemKind::Outside { prefix } => {
                let part = if Path::new(path) == prefix.as_path() {
                    String::new()
                } else {
                    format!(" (its part before the first wildcard, `{}`, is inside none of them)", prefix.display())
                };
                (
                    format!("{what} may read outside the roots this cluster allows: {roots}{part}"),
                    "read only files under an allowed root, with the wildcards below the root (e.g. \"ROOT/app/*.log\"); or start every cluster member with --allow-root for a folder that holds these files".to_string(),
                )
            }
        }
    }
}

impl RootsError {
    /// The problems as diagnostics naming `file` (no line: a validated job no longer
    /// knows where its paths were written), in the format of validation errors.
    pub fn to_diagnostics(&self, file: &str) -> Diagnostics {
        Diagnostics(
            self.problems
                .iter()
                .map(|p| {
                    let (message, hint) = p.describe(&self.roots);
                    Diagnostic {
                        file: file.to_string(),
                        line: 0,
                        column: 0,
                        message,
                        hint: Some(hint),
                    }
                })
                .collect(),
        )
    }
}

/// One problem per line, each followed by its hint line; no trailing newline.
impl fmt::Display for RootsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_diagnostics(&format!("job `{}`", self.job)))
    }
}

impl std::error::Error for RootsError {}

#[cfg(test)]
mod tests;
