//! Turns a job file into a checked [`Job`], or into [`Diagnostics`] that say where
//! (file, line, column) and what to do.
//!
//! Phase 1 reads the TOML (syntax, unknown keys, value types). Phase 2 checks meaning
//! and reports every problem it finds, not just the first. Nothing here touches the
//! file system except [`load`] reading the job file itself, and nothing reads the
//! environment except through the [`Env`] paths and the fixed host value are
//! expanded from (`${NAME}`, see [`crate::env`]): [`load`] and [`from_str`] use the
//! process environment, [`load_with_env`] and [`from_str_with_env`] the one they
//! are given.

mod alertmanager;
mod alerts;
mod diag;
mod kafka;
mod kafka_sink;
mod limits;
mod metrics;
mod names;
mod overlap;
mod paths;
mod remote_write;
mod rules;
mod sink_keys;
mod sinks;
mod sizes;
mod source;
mod syntax;
mod window;

use std::path::Path;

use diag::Report;
pub use diag::{Diagnostic, Diagnostics};
pub use limits::DEFAULT_MAX_SERIES;
pub(crate) use names::is_label_name;
pub use names::MAX_JOB_NAME_BYTES;
pub use overlap::{overlap as sink_overlap, Overlaps as SinkOverlaps};
use paths::Relative;
pub use window::{default_max_jump, DEFAULT_MAX_CLOCK_LAG, DEFAULT_MAX_JUMP};

use crate::env::Env;
use crate::job::Job;

/// Reads and validates the job file at `path`. `${NAME}` in paths (and in a fixed
/// host value) is expanded from the process environment; relative paths in the job then resolve against the
/// file's folder (made absolute against the current directory).
pub fn load(path: &Path) -> Result<Job, Diagnostics> {
    load_with_env(path, &Env::process())
}

/// [`load`], expanding `${NAME}` in paths and the host value from `env`.
pub fn load_with_env(path: &Path, env: &Env) -> Result<Job, Diagnostics> {
    let display = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let (message, hint) = match e.kind() {
            std::io::ErrorKind::NotFound => (
                "cannot read the job file: it does not exist".to_string(),
                "check the path (relative paths are relative to the current directory)",
            ),
            std::io::ErrorKind::InvalidData => (
                "cannot read the job file: it is not UTF-8 text".to_string(),
                "save the job file as UTF-8",
            ),
            _ => (
                format!("cannot read the job file: {e}"),
                "check that the path names a readable file",
            ),
        };
        Diagnostics(vec![Diagnostic {
            file: display.clone(),
            line: 0,
            column: 0,
            message,
            hint: Some(hint.to_string()),
        }])
    })?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base_dir = job_folder(parent);
    let file = match path.file_name() {
        Some(name) => base_dir.join(name),
        None => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    };
    validate_text(&text, &display, &base_dir, env, Some(&file))
}

/// The absolute folder of a job file, which its relative paths resolve against.
/// A `..` in it is resolved by the file system (`a/link/..` is the folder above
/// the link's target, not `a`), so the job reached as `../nginx.toml` from a
/// subfolder has the same paths — sinks, groups, checkpoint — as when reached as
/// `/etc/tm/nginx.toml`. Without a `..` the folder is kept as spelled (symbolic
/// links are not resolved), as it always was.
fn job_folder(parent: &Path) -> std::path::PathBuf {
    let absolute = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
    if absolute
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        if let Ok(real) = std::fs::canonicalize(&absolute) {
            return real;
        }
    }
    absolute
}

/// Validates job file text. `display_path` is how diagnostics name the file;
/// `${NAME}` in paths (and in a fixed host value) is expanded from the process
/// environment, then relative paths
/// in the job are joined onto `base_dir` (pass an absolute folder).
pub fn from_str(text: &str, display_path: &str, base_dir: &Path) -> Result<Job, Diagnostics> {
    from_str_with_env(text, display_path, base_dir, &Env::process())
}

/// [`from_str`], expanding `${NAME}` in paths and the host value from `env`.
pub fn from_str_with_env(
    text: &str,
    display_path: &str,
    base_dir: &Path,
    env: &Env,
) -> Result<Job, Diagnostics> {
    validate_text(text, display_path, base_dir, env, None)
}

/// Validates a job submitted to a cluster: like [`from_str_with_env`], but a
/// submitted job has no folder of its own, so every path (`include`, `exclude`,
/// `archive`, a jsonl sink's `path`) must be absolute once `${NAME}` is expanded;
/// a relative one is an error at its line and column. The job's `base_dir` is `/`.
pub fn submitted(text: &str, display_path: &str, env: &Env) -> Result<Job, Diagnostics> {
    check(text, display_path, Relative::Refused, env, None)
}

/// [`from_str_with_env`] for the job file `job_file`, if it came from one (a sink
/// must not write over it).
pub(crate) fn validate_text(
    text: &str,
    display_path: &str,
    base_dir: &Path,
    env: &Env,
    job_file: Option<&Path>,
) -> Result<Job, Diagnostics> {
    check(
        text,
        display_path,
        Relative::JoinOnto(base_dir),
        env,
        job_file,
    )
}

fn check(
    text: &str,
    display_path: &str,
    relative: Relative<'_>,
    env: &Env,
    job_file: Option<&Path>,
) -> Result<Job, Diagnostics> {
    let base_dir = match relative {
        Relative::JoinOnto(dir) => dir,
        Relative::Refused => Path::new("/"),
    };
    let mut r = Report::new(text, display_path);
    let Some(file) = syntax::parse_file(&mut r) else {
        return Err(r.finish());
    };

    if !names::is_job_name(file.name.get_ref()) {
        r.on(
            &file.name,
            format!("job name `{}` is not valid", file.name.get_ref()),
            "use letters, digits, `_` and `-`, starting with a letter or `_`, e.g. \"nginx-access\"".to_string(),
        );
    } else if file.name.get_ref().len() > names::MAX_JOB_NAME_BYTES {
        r.on(
            &file.name,
            format!(
                "job name is {} characters long; the limit is {}",
                file.name.get_ref().len(),
                names::MAX_JOB_NAME_BYTES
            ),
            format!(
                "use a shorter name: the state folder keeps files named after the job, and a file name may be at most 255 bytes; e.g. \"{}\"",
                &file.name.get_ref()[..32]
            ),
        );
    }
    let (parse, fields) = source::check_parse(&mut r, &file.parse);
    let source = source::check_source(&mut r, &file.source, &fields, relative, env);
    let window = window::check_window(&mut r, &file.window, file.metrics.len());
    if file.metrics.is_empty() {
        r.at(
            0,
            "the job defines no [[metric]], so it would compute nothing",
            "add a [[metric]] table, e.g. name = \"lines_total\" and kind = \"counter\""
                .to_string(),
        );
    }
    let (metrics, table) = metrics::check_metrics(&mut r, &file.metrics, &fields);
    let rules = rules::check_rules(&mut r, &file.rules, &table);
    let alerts = alerts::check_alerts(
        &mut r,
        &file.alerts,
        &alerts::AlertContext {
            rule_files: &file.rules,
            rules: &rules,
            metrics: &table,
            metric_defs: &metrics,
            window: window.as_ref().map(|w| w.size),
            max_series: window.as_ref().map(|w| w.max_series),
        },
    );
    let sinks = sinks::check_sinks(
        &mut r,
        &file.sinks,
        file.rules.len(),
        file.alerts.len(),
        relative,
        env,
    );
    if let (Some(source), Some(sinks)) = (&source, &sinks) {
        sinks::check_overlaps(&mut r, &file.sinks, sinks, source, job_file);
    }
    if let (Some(sinks), Some(first)) = (&sinks, file.alerts.first()) {
        sinks::check_alerts_reach_a_sink(&mut r, sinks, &first.get_ref().name);
    }

    let metrics: Option<Vec<_>> = metrics.into_iter().collect();
    let rules: Option<Vec<_>> = rules.into_iter().collect();
    let alerts: Option<Vec<_>> = alerts.into_iter().collect();
    match (parse, source, window, metrics, rules, sinks, alerts) {
        (
            Some(parse),
            Some(source),
            Some(window),
            Some(metrics),
            Some(rules),
            Some(sinks),
            Some(alerts),
        ) if r.diags.is_empty() => Ok(Job {
            name: file.name.into_inner(),
            base_dir: base_dir.to_path_buf(),
            source,
            parse,
            window,
            metrics,
            rules,
            sinks,
            alerts,
            output_roots: Vec::new(),
        }),
        _ => {
            if r.diags.is_empty() {
                r.at(
                    0,
                    "internal error: the job was rejected without a reason",
                    "please report this with the job file".to_string(),
                );
            }
            Err(r.finish())
        }
    }
}

/// Checks a `[source]` table (`kind = "file"`) that is not part of a job: the agent's
/// (`tidemark agent`), which reads files with the same keys, spelled and checked as in
/// a job. `text` is the whole file the table was read from (for line and column);
/// relative globs resolve against `base_dir`. The host comes from elsewhere there, so
/// `host` is checked only as written.
pub fn check_file_source(
    text: &str,
    display_path: &str,
    source: &toml::Spanned<crate::model::SourceFile>,
    base_dir: &Path,
    env: &Env,
) -> Result<crate::job::Source, Diagnostics> {
    let mut r = Report::new(text, display_path);
    let checked = source::check_source(
        &mut r,
        source,
        &source::Fields::Any,
        Relative::JoinOnto(base_dir),
        env,
    );
    match checked {
        Some(source) if r.diags.is_empty() => Ok(source),
        _ => Err(r.finish()),
    }
}

#[cfg(test)]
mod tests;
