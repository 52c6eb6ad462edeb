//! Phase 2 checks of [[sink]] tables.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::diag::Report;
use super::names::{did_you_mean, quoted_choices};
use super::source::{expand_path, resolve};
use crate::env::Env;
use crate::job::{SeriesChoice, Sink, SinkKind};
use crate::model::SinkFile;

const KINDS: &[&str] = &["jsonl", "stdout"];
const SERIES: &[&str] = &["rules", "hosts", "all"];

/// Checks the sinks; no [[sink]] at all means one stdout sink printing rule series.
pub fn check_sinks(
    r: &mut Report<'_>,
    sinks: &[Spanned<SinkFile>],
    rule_count: usize,
    base_dir: &Path,
    env: &Env,
) -> Option<Vec<Sink>> {
    if sinks.is_empty() {
        if rule_count == 0 {
            r.at(
                0,
                "the job has no [[rule]] and no [[sink]]: the default sink prints only rule series, so it would print nothing",
                "add a [[rule]], or add a [[sink]] with series = \"hosts\" to output the per-host metrics".to_string(),
            );
            return None;
        }
        return Some(vec![Sink {
            kind: SinkKind::Stdout,
            series: SeriesChoice::Rules,
        }]);
    }
    let mut out = Vec::new();
    let mut ok = true;
    let mut paths: HashMap<PathBuf, usize> = HashMap::new();
    let mut stdout_seen = false;
    for sink in sinks {
        let before = r.diags.len();
        let s = sink.get_ref();
        let kind = match (s.kind.get_ref().as_str(), &s.path) {
            ("jsonl", Some(p)) if p.get_ref().trim().is_empty() => {
                r.on(
                    p,
                    "the jsonl sink path is empty",
                    "write the output file, e.g. path = \"out/nginx.jsonl\"".to_string(),
                );
                None
            }
            ("jsonl", Some(p)) => 'jsonl: {
                let Some(expanded) = expand_path(r, p, "the jsonl sink path", env) else {
                    break 'jsonl None;
                };
                let path = PathBuf::from(resolve(base_dir, &expanded.text));
                let line = r.position(p.span().start).0;
                if let Some(first) = paths.get(&path) {
                    r.on(
                        p,
                        format!("two sinks write to the same file (the first on line {first})"),
                        "give each jsonl sink its own path".to_string(),
                    );
                } else {
                    paths.insert(path.clone(), line);
                }
                Some(SinkKind::Jsonl(path))
            }
            ("jsonl", None) => {
                r.on(sink, "a jsonl sink needs a `path`", "add path = \"out/NAME.jsonl\" (relative paths are relative to the job file's folder)".to_string());
                None
            }
            ("stdout", Some(p)) => {
                r.on(
                    p,
                    "a stdout sink does not take a `path`",
                    "remove `path`, or use kind = \"jsonl\" to write to a file".to_string(),
                );
                None
            }
            ("stdout", None) => {
                if stdout_seen {
                    r.on(
                        &s.kind,
                        "only one stdout sink is allowed",
                        "remove the repeated stdout sink".to_string(),
                    );
                }
                stdout_seen = true;
                Some(SinkKind::Stdout)
            }
            (other, _) => {
                r.on(
                    &s.kind,
                    format!("unknown sink kind `{other}`"),
                    format!(
                        "{}use {}",
                        did_you_mean(other, KINDS.iter().copied()),
                        quoted_choices(KINDS)
                    ),
                );
                None
            }
        };
        let series = match s.series.as_ref().map(|v| (v, v.get_ref().as_str())) {
            None | Some((_, "rules")) => Some(SeriesChoice::Rules),
            Some((_, "hosts")) => Some(SeriesChoice::Hosts),
            Some((_, "all")) => Some(SeriesChoice::All),
            Some((v, other)) => {
                r.on(
                    v,
                    format!("unknown series choice `{other}`"),
                    format!(
                        "{}use \"rules\" (rule outputs), \"hosts\" (per-host metrics) or \"all\"",
                        did_you_mean(other, SERIES.iter().copied())
                    ),
                );
                None
            }
        };
        if series == Some(SeriesChoice::Rules) && rule_count == 0 {
            let message = "this sink prints rule series, but the job has no [[rule]], so it would print nothing";
            let hint = "add a [[rule]], or set series = \"hosts\" to output the per-host metrics"
                .to_string();
            match &s.series {
                Some(v) => r.on(v, message, hint),
                None => r.on(
                    sink,
                    format!("{message} (series defaults to \"rules\")"),
                    hint,
                ),
            }
        }
        match (kind, series) {
            (Some(kind), Some(series)) if r.diags.len() == before => {
                out.push(Sink { kind, series })
            }
            _ => ok = false,
        }
    }
    ok.then_some(out)
}
