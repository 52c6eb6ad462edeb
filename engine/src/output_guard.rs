//! Sink paths that would destroy something the job needs: one of its input files
//! (a file an `include` glob matched, a rotated sibling, an archived file), its
//! job file, or its state (anything under the state folder). Opening a sink
//! creates or cuts its file, so these are refused before any sink is opened.
//!
//! Validation already refuses the lexical cases (a sink path an `include` or
//! `archive` glob matches, or the job file's own path). This is the half that
//! sees the file system: a path that reaches one of those files through a
//! symbolic link or a hard link (the same (device, inode)), or a state folder
//! reached through a link. Existing files are compared by (device, inode) and real
//! path; a path that does not exist yet, by its real parent folder. Outputs chosen
//! after validation (`tidemark replay --output`) get the lexical checks here too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use thiserror::Error;
use tidemark_jobs::{Job, SinkKind};
use tidemark_sources::file::discover::discover_archive;
use tidemark_sources::file::{AllowedRoots, FileGroup};

use crate::checkpoint::FileIdentity;

/// A sink path that would overwrite something the job needs.
#[derive(Debug, Error, PartialEq, Eq)]
#[error(
    "the jsonl sink {} is {what}: opening it would destroy it, so tidemark will not. \
     hint: give the [[sink]] a path of its own, e.g. path = \"out/{job}.jsonl\" (a job \
     submitted to a cluster needs an absolute path, e.g. \"/var/lib/tidemark/output/{job}.jsonl\")",
    path.display()
)]
pub struct SinkPathError {
    /// The sink's path as the job file gives it.
    pub path: PathBuf,
    /// What it is, e.g. "an input file of the job (/var/log/app.log)".
    pub what: String,
    /// The job's name, for the hint's example path.
    pub job: String,
}

/// What the sinks must not write over.
#[derive(Debug, Default)]
pub struct Protected {
    /// Existing files by identity, with what each is.
    files: HashMap<FileIdentity, String>,
    /// Files by path (lexically and by real path), with what each is.
    paths: Vec<(PathBuf, String)>,
    /// Folders: nothing under them may be a sink, except under their exceptions.
    folders: Vec<Folder>,
    /// The job file, for the lexical checks.
    job_file: Option<PathBuf>,
}

#[derive(Debug)]
struct Folder {
    /// The folder, lexically and by real path.
    forms: [PathBuf; 2],
    what: String,
    /// Folders inside it that may be written (lexically and by real path).
    except: Vec<PathBuf>,
}

impl Protected {
    /// The job's input files: every file of `groups` (live and rotated) and every
    /// file its `archive` globs match (read by replay, and never to be written).
    ///
    /// The folders on the way are resolved once for all of them (a fleet's
    /// thousands of files share their folders' prefixes): see [`RealPaths`].
    pub fn inputs(&mut self, job: &Job, groups: &[FileGroup]) {
        let mut real = RealPaths::default();
        for g in groups {
            for (path, _) in g.files_in_order() {
                self.file_resolved(path, "an input file of the job", &mut real);
            }
        }
        let roots = AllowedRoots::of_source(&job.source);
        if let Ok(found) = discover_archive(&job.source.archive, &job.source.exclude, &roots) {
            for path in &found.files {
                self.file_resolved(path, "an archived input file of the job", &mut real);
            }
        }
    }

    /// What a job run from `job_file` with state in `state_dir` must not write
    /// over, its inputs found by discovery now (`tidemark validate`).
    pub fn of_job(job: &Job, job_file: Option<&Path>, state_dir: Option<&Path>) -> Protected {
        let mut p = Protected::of_run(job_file, state_dir);
        let roots = AllowedRoots::of_source(&job.source);
        let groups =
            tidemark_sources::file::discover(&job.source.include, &job.source.exclude, &roots)
                .map(|d| d.groups)
                .unwrap_or_default();
        p.inputs(job, &groups);
        p
    }

    /// The job file and the state folder of a run, its inputs not yet
    /// (`tidemark run` before it starts; the engine adds the groups it reads).
    pub fn of_run(job_file: Option<&Path>, state_dir: Option<&Path>) -> Protected {
        let mut p = Protected::default();
        if let Some(file) = job_file {
            p.job_file(file);
        }
        if let Some(dir) = state_dir {
            p.folder(dir, "the state folder (--state-dir)");
        }
        p
    }

    /// A file that must not be written: by path, and by identity if it exists.
    pub fn file(&mut self, path: &Path, what: &str) {
        self.file_resolved(path, what, &mut RealPaths::default());
    }

    /// [`Protected::file`], resolving its real path through `real`.
    fn file_resolved(&mut self, path: &Path, what: &str, real: &mut RealPaths) {
        let what = format!("{what} ({})", path.display());
        let (real_path, meta) = real.of_file(path);
        if let Some(meta) = meta {
            self.files.insert(FileIdentity::of(&meta), what.clone());
        }
        self.paths.push((real_path, what.clone()));
        self.paths.push((normalize(path), what));
    }

    /// The job file: not to be written, by any path (and named as such).
    pub fn job_file(&mut self, path: &Path) {
        self.file(path, "the job file");
        self.job_file = Some(path.to_path_buf());
    }

    /// A file that must not be written, known only by identity.
    pub fn identity(&mut self, id: FileIdentity, what: String) {
        self.files.insert(id, what);
    }

    /// A folder nothing under which may be written.
    pub fn folder(&mut self, path: &Path, what: &str) {
        self.folder_except(path, what, &[]);
    }

    /// A folder nothing under which may be written, except under `except` (a
    /// cluster's output root inside its state folder).
    pub(crate) fn folder_except(&mut self, path: &Path, what: &str, except: &[PathBuf]) {
        self.folders.push(Folder {
            forms: [real_path(path), normalize(path)],
            what: format!("inside {what} {}", path.display()),
            except: except
                .iter()
                .flat_map(|e| [real_path(e), normalize(e)])
                .collect(),
        });
    }

    /// Checks every jsonl sink of `job`: by file system, and lexically against
    /// its globs (a name its `include` will match once rotated) and job file.
    pub fn check(&self, job: &Job) -> Result<(), SinkPathError> {
        // Compiled once: a job may have thousands of sinks and globs.
        let overlaps =
            tidemark_jobs::validate::SinkOverlaps::new(&job.source, self.job_file.as_deref());
        for s in &job.sinks {
            if let SinkKind::Jsonl(path) = &s.kind {
                let lexical = || overlaps.of(path);
                if let Some(what) = self.hit(path).or_else(lexical) {
                    return Err(SinkPathError {
                        path: path.clone(),
                        what,
                        job: job.name.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// What `path` would write over, if anything.
    fn hit(&self, path: &Path) -> Option<String> {
        if let Ok(meta) = std::fs::metadata(path) {
            if let Some(what) = self.files.get(&FileIdentity::of(&meta)) {
                return Some(what.clone());
            }
        }
        let forms = [normalize(path), real_path(path)];
        for form in &forms {
            if let Some((_, what)) = self.paths.iter().find(|(p, _)| p == form) {
                return Some(what.clone());
            }
            let inside = |f: &Folder| {
                f.forms.iter().any(|p| form.starts_with(p))
                    && !f.except.iter().any(|e| form.starts_with(e))
            };
            if let Some(f) = self.folders.iter().find(|f| inside(f)) {
                return Some(f.what.clone());
            }
        }
        None
    }
}

use tidemark_sources::file::normalize;
pub use tidemark_sources::file::{real_path, RealPaths};

#[cfg(test)]
mod tests {
    use super::*;

    fn job(sink: &Path) -> Job {
        let text = format!(
            r#"name = "j"
[source]
kind = "file"
include = ["/nowhere/*.log"]
[parse]
format = "nginx"
[window]
size = "1m"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "jsonl"
path = "{}"
series = "hosts"
"#,
            sink.display()
        );
        tidemark_jobs::from_str(&text, "j.toml", Path::new("/")).unwrap()
    }

    #[test]
    fn a_sink_reaching_a_protected_file_or_folder_by_any_path_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let input = base.join("logs/app.log");
        std::fs::create_dir_all(input.parent().unwrap()).unwrap();
        std::fs::write(&input, b"x\n").unwrap();
        std::fs::create_dir_all(base.join("state/j")).unwrap();
        std::fs::create_dir_all(base.join("out")).unwrap();
        std::os::unix::fs::symlink(&input, base.join("out/link.jsonl")).unwrap();
        std::fs::hard_link(&input, base.join("out/hard.jsonl")).unwrap();
        std::os::unix::fs::symlink(base.join("state"), base.join("st")).unwrap();
        let mut p = Protected::default();
        p.inputs(
            &job(&base.join("x")),
            &[FileGroup {
                live: input.clone(),
                rotated: Vec::new(),
            }],
        );
        p.folder(&base.join("state"), "the state folder");
        for (sink, what) in [
            (base.join("logs/app.log"), "an input file"),
            (base.join("logs/../logs/./app.log"), "an input file"),
            (base.join("out/link.jsonl"), "an input file"),
            (base.join("out/hard.jsonl"), "an input file"),
            (base.join("state/j/checkpoint"), "inside the state folder"),
            (base.join("st/j/new.jsonl"), "inside the state folder"),
            (base.join("state/other/x.jsonl"), "inside the state folder"),
        ] {
            let err = p.check(&job(&sink)).unwrap_err();
            assert!(err.what.starts_with(what), "{}: {err}", sink.display());
            assert!(err.to_string().contains("hint:"), "{err}");
            // A submitted job must give an absolute path; the hint says so.
            assert!(err.to_string().contains("absolute"), "{err}");
        }
        // `..` after a link is the folder above the link's target.
        std::os::unix::fs::symlink(base.join("state/j"), base.join("out/to-j")).unwrap();
        assert_eq!(
            real_path(&base.join("out/to-j/../new/x.jsonl")),
            base.join("state/new/x.jsonl")
        );
        let err = p
            .check(&job(&base.join("out/to-j/../x.jsonl")))
            .unwrap_err();
        assert!(err.what.starts_with("inside the state folder"), "{err}");
        for fine in [base.join("out/j.jsonl"), base.join("logs/app.log.jsonl")] {
            assert_eq!(p.check(&job(&fine)), Ok(()), "{}", fine.display());
        }
    }
}
