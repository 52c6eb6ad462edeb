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
mod tests {
    use super::*;
    use crate::env::Env;
    use crate::validate::from_str_with_env;

    /// A job reading `include` (and `archive`), validated with an empty environment.
    fn job(include: &[&str], exclude: &[&str], archive: &[&str]) -> Job {
        let list = |l: &[&str]| {
            l.iter()
                .map(|g| format!("{g:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let text = format!(
            "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [{}]\nexclude = [{}]\narchive = [{}]\n\
             [parse]\nformat = \"json\"\n[[metric]]\nname = \"n\"\nkind = \"counter\"\n\
             [[sink]]\nkind = \"jsonl\"\npath = \"/out/j.jsonl\"\nseries = \"hosts\"\n",
            list(include),
            list(exclude),
            list(archive)
        );
        from_str_with_env(&text, "j.toml", Path::new("/jobs"), &Env::empty())
            .unwrap_or_else(|d| panic!("{d}"))
    }

    fn roots(rs: &[&str]) -> Vec<PathBuf> {
        rs.iter().map(PathBuf::from).collect()
    }

    /// The problem kinds found for one include glob.
    fn include(glob: &str, rs: &[&str]) -> Option<RootProblemKind> {
        match check_roots(&job(&[glob], &[], &[]), &roots(rs)) {
            Ok(()) => None,
            Err(e) => {
                assert_eq!(e.problems.len(), 1, "{e}");
                assert_eq!(e.problems[0].key, "include");
                Some(e.problems[0].kind.clone())
            }
        }
    }

    fn outside(prefix: &str) -> Option<RootProblemKind> {
        Some(RootProblemKind::Outside {
            prefix: PathBuf::from(prefix),
        })
    }

    #[test]
    fn no_roots_allow_anything() {
        let j = job(&["/etc/*", "/var/log/../etc/passwd"], &[], &["rel/*.gz"]);
        assert_eq!(check_roots(&j, &[]), Ok(()));
    }

    #[test]
    fn globs_under_a_root_are_allowed() {
        let r = &["/var/log"];
        assert_eq!(include("/var/log/nginx/*/access.log", r), None);
        assert_eq!(include("/var/log/*.log", r), None);
        assert_eq!(include("/var/log/**/x.log", r), None);
        assert_eq!(include("/var/log/app.log", r), None);
        assert_eq!(include("/var/log", r), None);
        assert_eq!(include("/var/./log//app/*.log", r), None);
        // Relative globs were resolved against the job file's folder.
        assert_eq!(include("logs/*.log", &["/jobs"]), None);
        assert_eq!(include("/srv/x/*", &["/var/log", "/srv"]), None);
    }

    #[test]
    fn parent_components_are_rejected_anywhere() {
        let r = &["/var/log"];
        assert_eq!(
            include("/var/log/../etc/*", r),
            Some(RootProblemKind::ParentDir)
        );
        assert_eq!(
            include("/var/log/*/../../etc/passwd", r),
            Some(RootProblemKind::ParentDir)
        );
        assert_eq!(
            include("/var/log/app/..", r),
            Some(RootProblemKind::ParentDir)
        );
        // Resolved against the job folder, then rejected.
        assert_eq!(
            include("../logs/*.log", &["/"]),
            Some(RootProblemKind::ParentDir)
        );
        // `..` inside a name is just a name.
        assert_eq!(include("/var/log/a..b/*.log", r), None);
        assert_eq!(include("/var/log/...", r), None);
    }

    #[test]
    fn roots_contain_by_component_not_by_string() {
        let r = &["/var/log"];
        assert_eq!(include("/var/logs/x", r), outside("/var/logs/x"));
        assert_eq!(include("/var/log2/*.log", r), outside("/var/log2"));
        assert_eq!(include("/var/lo", r), outside("/var/lo"));
        assert_eq!(include("/var", r), outside("/var"));
    }

    #[test]
    fn a_wildcard_ends_the_literal_part() {
        let r = &["/var/log"];
        assert_eq!(include("/var/log*/x", r), outside("/var"));
        assert_eq!(include("/var/lo?/x", r), outside("/var"));
        assert_eq!(include("/var/[l]og/x", r), outside("/var"));
        assert_eq!(include("/*/log/x", r), outside("/"));
        assert_eq!(include("/**/x.log", r), outside("/"));
        // The root `/` allows everything.
        assert_eq!(include("/*/log/x", &["/"]), None);
        assert_eq!(include("/**/x.log", &["/"]), None);
    }

    #[test]
    fn roots_are_normalised() {
        assert_eq!(include("/var/log/x/*.log", &["/var/log/"]), None);
        assert_eq!(include("/var/log/x/*.log", &["/var//log/."]), None);
        assert_eq!(
            include("/var/logs/x", &["/var/log/"]),
            outside("/var/logs/x")
        );
        // A root that is relative or climbs allows nothing.
        assert_eq!(include("/var/log/x", &["var/log"]), outside("/var/log/x"));
        assert_eq!(
            include("/etc/x", &["/var/log/../../etc"]),
            outside("/etc/x")
        );
    }

    #[test]
    fn exclude_and_archive_are_checked_and_every_problem_is_listed() {
        let j = job(
            &["/var/log/*.log", "/etc/*"],
            &["/var/log/../x"],
            &["/archive/*.gz", "/var/log/old/*.gz"],
        );
        let e = check_roots(&j, &roots(&["/var/log"])).unwrap_err();
        let found: Vec<(&str, &str)> = e
            .problems
            .iter()
            .map(|p| (p.key, p.path.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("include", "/etc/*"),
                ("exclude", "/var/log/../x"),
                ("archive", "/archive/*.gz")
            ]
        );
        assert_eq!(e.job, "j");
    }

    #[test]
    fn sinks_are_not_restricted_but_must_be_absolute() {
        let mut j = job(&["/var/log/*.log"], &[], &[]);
        assert_eq!(check_roots(&j, &roots(&["/var/log"])), Ok(()));
        j.sinks[0].kind = SinkKind::Jsonl(PathBuf::from("out/j.jsonl"));
        let e = check_roots(&j, &roots(&["/var/log"])).unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert_eq!(e.problems[0].key, "jsonl sink");
        assert_eq!(e.problems[0].kind, RootProblemKind::Relative);
    }

    #[test]
    fn a_remote_write_secret_file_must_be_inside_the_read_roots() {
        let mut j = job(&["/var/log/*.log"], &[], &[]);
        let rw = |auth| {
            SinkKind::RemoteWrite(Box::new(crate::job::RemoteWrite {
                url: "http://p:9090/api/v1/write".into(),
                timestamp: crate::job::SampleTime::End,
                external_labels: vec![],
                auth: Some(auth),
                timeout: crate::job::RemoteWrite::DEFAULT_TIMEOUT,
                max_samples_per_send: 10,
                queue_capacity: 100,
                min_backoff: crate::job::RemoteWrite::DEFAULT_MIN_BACKOFF,
                max_backoff: crate::job::RemoteWrite::DEFAULT_MAX_BACKOFF,
            }))
        };
        use crate::job::RemoteWriteAuth::*;
        j.sinks[0].kind = rw(BearerTokenFile("/var/log/secrets/token".into()));
        assert_eq!(check_roots(&j, &roots(&["/var/log"])), Ok(()));
        j.sinks[0].kind = rw(BearerTokenFile("/etc/shadow".into()));
        let e = check_roots(&j, &roots(&["/var/log"])).unwrap_err();
        assert_eq!(e.problems[0].key, "bearer_token_file");
        assert_eq!(e.problems[0].kind, outside("/etc/shadow").unwrap());
        let (message, _) = e.problems[0].describe(&e.roots);
        assert!(
            message.contains("bearer_token_file `/etc/shadow`"),
            "{message}"
        );
        j.sinks[0].kind = rw(Basic {
            username: "u".into(),
            password_file: "/var/log/*".into(),
        });
        let e = check_roots(&j, &roots(&["/var/log"])).unwrap_err();
        assert_eq!(e.problems[0].key, "basic_auth password_file");
    }

    #[test]
    fn an_alertmanager_secret_file_must_be_inside_the_read_roots() {
        let mut j = job(&["/var/log/*.log"], &[], &[]);
        let am = |auth| {
            SinkKind::Alertmanager(Box::new(crate::job::Alertmanager {
                url: "http://am:9093".into(),
                resend_interval: crate::job::Alertmanager::DEFAULT_RESEND_INTERVAL,
                timeout: crate::job::Alertmanager::DEFAULT_TIMEOUT,
                generator_url: None,
                auth: Some(auth),
            }))
        };
        use crate::job::RemoteWriteAuth::*;
        j.sinks[0].kind = am(BearerTokenFile("/var/log/secrets/token".into()));
        assert_eq!(check_roots(&j, &roots(&["/var/log"])), Ok(()));
        j.sinks[0].kind = am(BearerTokenFile("/etc/shadow".into()));
        let e = check_roots(&j, &roots(&["/var/log"])).unwrap_err();
        assert_eq!(e.problems[0].key, "bearer_token_file");
        let (message, _) = e.problems[0].describe(&e.roots);
        assert!(
            message.contains("bearer_token_file `/etc/shadow`"),
            "{message}"
        );
    }

    #[test]
    fn sinks_must_write_strictly_inside_an_output_root() {
        let mut j = job(&["/var/log/*.log"], &[], &[]);
        let out = roots(&["/srv/out/", "/data"]);
        let problem = |j: &Job| {
            check_output_roots(j, &out)
                .err()
                .map(|e| e.problems[0].kind.clone())
        };
        for ok in [
            "/srv/out/j.jsonl",
            "/srv/out/./team/j.jsonl",
            "/data/j.jsonl",
        ] {
            j.sinks[0].kind = SinkKind::Jsonl(PathBuf::from(ok));
            assert_eq!(problem(&j), None, "{ok}");
        }
        for (bad, kind) in [
            ("/etc/profile", RootProblemKind::OutsideOutputRoots),
            ("/srv/outside/j.jsonl", RootProblemKind::OutsideOutputRoots),
            ("/srv/out", RootProblemKind::OutsideOutputRoots),
            (
                "/srv/out/../state/submitted/x.toml",
                RootProblemKind::ParentDir,
            ),
            ("out/j.jsonl", RootProblemKind::Relative),
        ] {
            j.sinks[0].kind = SinkKind::Jsonl(PathBuf::from(bad));
            assert_eq!(problem(&j), Some(kind), "{bad}");
        }
        j.sinks[0].kind = SinkKind::Jsonl(PathBuf::from("/etc/profile"));
        let e = check_output_roots(&j, &out).unwrap_err();
        assert_eq!(
            e.to_string(),
            "job `j`: error: the jsonl sink path `/etc/profile` is outside the folders this cluster writes to (its output roots): /srv/out/, /data\n  \
             hint: write the sink inside an output root, e.g. \"/srv/out/NAME.jsonl\"; or start the cluster's process 0 with --output-root for a folder that should hold it"
        );
        // Read roots and stdout sinks do not matter; no output roots allow any absolute path.
        assert_eq!(check_output_roots(&j, &[]), Ok(()));
        j.sinks[0].kind = SinkKind::Stdout;
        assert_eq!(check_output_roots(&j, &out), Ok(()));
    }

    #[test]
    fn relative_globs_are_rejected() {
        let mut j = job(&["/var/log/*.log"], &[], &[]);
        j.source.include = vec!["logs/*.log".to_string()];
        let e = check_roots(&j, &roots(&["/var/log"])).unwrap_err();
        assert_eq!(e.problems[0].kind, RootProblemKind::Relative);
    }

    #[test]
    fn messages_name_the_glob_and_the_roots() {
        let j = job(&["/var/log*/x", "/srv/a.log"], &[], &[]);
        let e = check_roots(&j, &roots(&["/var/log", "/data/"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "job `j`: error: include glob `/var/log*/x` may read outside the roots this cluster allows: /var/log, /data/ (its part before the first wildcard, `/var`, is inside none of them)\n  \
             hint: read only files under an allowed root, with the wildcards below the root (e.g. \"ROOT/app/*.log\"); or start every cluster member with --allow-root for a folder that holds these files\n\
             job `j`: error: include glob `/srv/a.log` may read outside the roots this cluster allows: /var/log, /data/\n  \
             hint: read only files under an allowed root, with the wildcards below the root (e.g. \"ROOT/app/*.log\"); or start every cluster member with --allow-root for a folder that holds these files"
        );
        let d = e.to_diagnostics("job.toml");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].file, "job.toml");
        assert_eq!(d[0].line, 0);
        let j = job(&["/var/log/../etc/*"], &[], &[]);
        let e = check_roots(&j, &roots(&["/var/log"])).unwrap_err();
        assert!(e.to_string().contains(
            "include glob `/var/log/../etc/*` has a `..` component, which is not allowed when the cluster restricts reads to /var/log"
        ), "{e}");
    }
}
