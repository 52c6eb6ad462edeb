//! Path settings: `${NAME}` expansion, and what relative paths mean (joined onto a
//! job file's folder, or refused in a job submitted to a cluster).

use std::path::Path;

use toml::Spanned;

use super::diag::Report;
use crate::env::{expand, Env, Expanded};

/// What relative paths in a job mean.
#[derive(Debug, Clone, Copy)]
pub enum Relative<'a> {
    /// Joined onto this folder (absolute): a job file's own folder.
    JoinOnto(&'a Path),
    /// Refused where they are written: a job submitted to a cluster has no folder
    /// of its own, and joining its paths onto `/` or the member's working folder
    /// would read nothing, or write where nobody looks.
    Refused,
}

impl Relative<'_> {
    /// `expanded` (the value of `value`, after `${NAME}`) as an absolute path, or
    /// `None` after reporting a relative one that is refused. `what` names the
    /// setting, e.g. "include glob".
    pub(crate) fn resolve(
        self,
        r: &mut Report<'_>,
        value: &Spanned<String>,
        expanded: &str,
        what: &str,
    ) -> Option<String> {
        match self {
            Relative::JoinOnto(base_dir) => Some(resolve(base_dir, expanded)),
            Relative::Refused if Path::new(expanded).is_absolute() => Some(expanded.to_string()),
            Relative::Refused => {
                let raw = value.get_ref();
                let shown = if raw == expanded {
                    format!("`{raw}`")
                } else {
                    format!("`{raw}` (expanded: `{expanded}`)")
                };
                let hint = if what.contains("sink") {
                    "write an absolute path inside one of the cluster's output roots (`--output-root`; by default the folder `output` in the state folder of its process 0), e.g. \"/var/lib/tidemark/output/app.jsonl\""
                } else {
                    "write an absolute path, e.g. \"/var/log/app/*.log\", or start it with a variable the cluster allows (`--job-env`), e.g. \"${LOG_ROOT}/app/*.log\""
                };
                r.on(
                    value,
                    format!("{what} {shown} is a relative path, but a job submitted to a cluster has no folder to resolve it against"),
                    hint.to_string(),
                );
                None
            }
        }
    }
}

/// Resolves a relative path or glob against `base_dir`; absolute ones are kept as is.
pub fn resolve(base_dir: &Path, p: &str) -> String {
    if Path::new(p).is_absolute() {
        return p.to_string();
    }
    let mut rel = p;
    while let Some(rest) = rel.strip_prefix("./") {
        rel = rest.trim_start_matches('/');
    }
    base_dir.join(rel).to_string_lossy().into_owned()
}

/// Expands `${NAME}` and `$$` in a path setting or the fixed host value (`what`
/// names it in messages), reporting each problem at its `$`.
pub(crate) fn expand_path(
    r: &mut Report<'_>,
    value: &Spanned<String>,
    what: &str,
    env: &Env,
) -> Option<Expanded> {
    match expand(value.get_ref(), env) {
        Ok(expanded) => Some(expanded),
        Err(errors) => {
            for e in errors {
                let (message, hint) = e.describe(what);
                r.inside(value, e.offset, message, hint);
            }
            None
        }
    }
}

pub(crate) fn globs(
    r: &mut Report<'_>,
    items: &[Spanned<String>],
    key: &str,
    relative: Relative<'_>,
    env: &Env,
) -> Vec<String> {
    let mut out = Vec::new();
    for g in items {
        if g.get_ref().trim().is_empty() {
            r.on(
                g,
                format!("empty path in {key}"),
                "write a file path or glob, e.g. \"/var/log/app/*.log\"".to_string(),
            );
        } else if let Some(expanded) = expand_path(r, g, key, env) {
            let what = format!("{key} glob");
            out.extend(relative.resolve(r, g, &expanded.text, &what));
        }
    }
    out
}

/// Checks archive globs: like [`globs`], and each must also be a valid pattern
/// (the same `glob` syntax the archive is later expanded with).
pub(crate) fn archive_globs(
    r: &mut Report<'_>,
    items: &[Spanned<String>],
    relative: Relative<'_>,
    env: &Env,
) -> Vec<String> {
    let mut out = Vec::new();
    for g in items {
        let raw = g.get_ref();
        if raw.trim().is_empty() {
            r.on(
                g,
                "empty path in archive",
                "write a file path or glob, e.g. \"/archive/nginx/*/access.log-*.gz\"".to_string(),
            );
            continue;
        }
        let Some(expanded) = expand_path(r, g, "archive", env) else {
            continue;
        };
        let text = &expanded.text;
        if let Err(e) = glob::Pattern::new(text) {
            // `pos` counts characters; the report wants a byte offset.
            let byte = text
                .char_indices()
                .nth(e.pos)
                .map_or(text.len(), |(i, _)| i);
            let shown = if text == raw {
                format!("`{raw}`")
            } else {
                format!("`{raw}` (expanded: `{text}`)")
            };
            r.inside(
                g,
                expanded.source_offset(byte),
                format!("archive glob {shown} is not a valid pattern: {}", e.msg),
                glob_hint(e.msg),
            );
            continue;
        }
        let Some(resolved) = relative.resolve(r, g, text, "archive glob") else {
            continue;
        };
        if let Err(e) = glob::Pattern::new(&resolved) {
            r.on(
                g,
                format!(
                    "archive glob `{raw}`, resolved against the job file's folder, is `{resolved}`, which is not a valid pattern: {}",
                    e.msg
                ),
                "the folder's name contains glob characters: write an absolute glob instead"
                    .to_string(),
            );
            continue;
        }
        out.push(resolved);
    }
    out
}

fn glob_hint(msg: &str) -> String {
    if msg.starts_with("invalid range") {
        "close the character class with `]`, e.g. \"access.log-[0-9]*.gz\"; write `[[]` to match a literal `[`".to_string()
    } else {
        "`*` matches within one path component, `**` any number of whole components: write it alone between slashes, e.g. \"/archive/**/access.log-*.gz\"".to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::env::Env;
    use crate::job::SinkKind;
    use crate::validate::{from_str_with_env, submitted};

    /// A job with `include`, `extra` [source] lines and a jsonl sink at `sink`.
    fn job(include: &str, extra: &str, sink: &str) -> String {
        format!(
            "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [\"{include}\"]\n{extra}\
             [parse]\nformat = \"json\"\n[[metric]]\nname = \"n\"\nkind = \"counter\"\n\
             [[sink]]\nkind = \"jsonl\"\npath = \"{sink}\"\nseries = \"hosts\"\n"
        )
    }

    fn refused(text: &str, env: &Env) -> String {
        match submitted(text, "j.toml", env) {
            Ok(job) => panic!("accepted: {job:?}"),
            Err(d) => d.to_string(),
        }
    }

    #[test]
    fn a_submitted_job_with_a_relative_include_is_refused_not_read_from_root() {
        let text = job("logs/*.log", "", "/out/j.jsonl");
        let d = refused(&text, &Env::empty());
        assert!(
            d.starts_with("j.toml:4:12: error: include glob `logs/*.log` is a relative path"),
            "{d}"
        );
        assert!(d.contains("hint: write an absolute path"), "{d}");
        // The same text as a job file resolves against its folder.
        let j = from_str_with_env(&text, "j.toml", Path::new("/jobs"), &Env::empty()).unwrap();
        assert_eq!(j.source.include, ["/jobs/logs/*.log"]);
    }

    #[test]
    fn a_submitted_job_with_a_relative_sink_is_refused_not_written_under_root() {
        let d = refused(&job("/var/log/*.log", "", "out/x.jsonl"), &Env::empty());
        assert!(
            d.starts_with(
                "j.toml:12:8: error: the jsonl sink path `out/x.jsonl` is a relative path"
            ),
            "{d}"
        );
        assert!(d.contains("output root"), "{d}");
    }

    #[test]
    fn relative_exclude_archive_and_expanded_values_are_refused_each_at_its_place() {
        let env = Env::from_vars([("REL", "logs"), ("ABS", "/srv/logs")]);
        let text = job(
            "${REL}/*.log",
            "exclude = [\"tmp/*\"]\narchive = [\"./old/*.gz\"]\n",
            "/out/j.jsonl",
        );
        let d = refused(&text, &env);
        let lines: Vec<&str> = d.lines().filter(|l| l.contains("error:")).collect();
        assert_eq!(lines.len(), 3, "{d}");
        assert!(
            lines[0].starts_with(
                "j.toml:4:12: error: include glob `${REL}/*.log` (expanded: `logs/*.log`)"
            ),
            "{d}"
        );
        assert!(
            lines[1].starts_with("j.toml:5:12: error: exclude glob `tmp/*`"),
            "{d}"
        );
        assert!(
            lines[2].starts_with("j.toml:6:12: error: archive glob `./old/*.gz`"),
            "{d}"
        );
    }

    #[test]
    fn absolute_paths_are_kept_as_written() {
        let env = Env::from_vars([("ABS", "/srv/logs")]);
        let j = submitted(&job("${ABS}/*.log", "", "/out/j.jsonl"), "j.toml", &env).unwrap();
        assert_eq!(j.source.include, ["/srv/logs/*.log"]);
        assert_eq!(j.base_dir, PathBuf::from("/"));
        assert!(matches!(&j.sinks[0].kind, SinkKind::Jsonl(p) if p == Path::new("/out/j.jsonl")));
    }
}
