//! Phase 2 checks of [[sink]] tables.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::alertmanager;
use super::diag::Report;
use super::kafka_sink;
use super::names::{did_you_mean, quoted_choices};
use super::overlap::{normalize, Overlaps};
use super::paths::{expand_path, Relative};
use super::remote_write;
use super::sink_keys;
use crate::env::Env;
use crate::job::{SeriesChoice, Sink, SinkKind, Source};
use crate::model::SinkFile;

const KINDS: &[&str] = &[
    "jsonl",
    "stdout",
    remote_write::KIND,
    alertmanager::KIND,
    kafka_sink::KIND,
];

/// A member's stdout is its log: a submitted job printing there would write into
/// every operator's log and drown (or forge) its lines.
const STDOUT_SUBMITTED: &str = "a job submitted to a cluster cannot print to stdout (a stdout sink, the default without [[sink]]): the member's stdout is its log";
const JSONL_SUBMITTED_HINT: &str = "a jsonl sink writing inside one of the cluster's output roots (`--output-root`; by default the folder `output` in the state folder of its process 0), e.g. kind = \"jsonl\" and path = \"/var/lib/tidemark/output/app.jsonl\"";
const SERIES: &[&str] = &["rules", "hosts", "all", "none"];

/// Checks the sinks; no [[sink]] at all means one stdout sink printing rule series.
pub fn check_sinks(
    r: &mut Report<'_>,
    sinks: &[Spanned<SinkFile>],
    rule_count: usize,
    alert_count: usize,
    relative: Relative<'_>,
    env: &Env,
) -> Option<Vec<Sink>> {
    let submitted = matches!(relative, Relative::Refused);
    if sinks.is_empty() {
        if submitted {
            r.at(
                0,
                STDOUT_SUBMITTED,
                format!("add a [[sink]]: {JSONL_SUBMITTED_HINT}"),
            );
            return None;
        }
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
            alerts: false,
        }]);
    }
    let mut out = Vec::new();
    let mut ok = true;
    let mut paths: HashMap<PathBuf, usize> = HashMap::new();
    let mut stdout_seen = false;
    // Each kafka sink's (topic, line): a job's records are told apart by its
    // name only, so two of its sinks on one topic would skip each other's.
    let mut topics: HashMap<String, usize> = HashMap::new();
    for sink in sinks {
        let before = r.diags.len();
        let s = sink.get_ref();
        let kind_name = s.kind.get_ref().as_str();
        if KINDS.contains(&kind_name) {
            sink_keys::refuse_foreign_keys(r, s, kind_name);
        }
        let kind = match (kind_name, &s.path) {
            (remote_write::KIND, _) => remote_write::check(r, sink, relative, env)
                .map(|rw| SinkKind::RemoteWrite(Box::new(rw))),
            (alertmanager::KIND, _) => alertmanager::check(r, sink, relative, env)
                .map(|am| SinkKind::Alertmanager(Box::new(am))),
            (kafka_sink::KIND, _) => kafka_sink::check(r, sink, env).and_then(|k| {
                let line = r.position(sink.span().start).0;
                if let Some(first) = topics.get(&k.topic) {
                    r.on(
                        &s.kind,
                        format!(
                            "two kafka sinks of this job write the topic {} (the first on line {first})",
                            k.topic
                        ),
                        "a restart tells the job's records apart by its name only: give each kafka sink its own topic, or merge them (series = \"all\")".to_string(),
                    );
                    return None;
                }
                topics.insert(k.topic.clone(), line);
                Some(SinkKind::Kafka(Box::new(k)))
            }),
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
                let Some(path) = relative.resolve(r, p, &expanded.text, "the jsonl sink path")
                else {
                    break 'jsonl None;
                };
                let path = PathBuf::from(path);
                let line = r.position(p.span().start).0;
                // Compared as spelled with `.` and `..` applied; links and hard
                // links are caught when the sinks are opened.
                let same = normalize(&path);
                if let Some(first) = paths.get(&same) {
                    r.on(
                        p,
                        format!("two sinks write to the same file (the first on line {first})"),
                        "give each jsonl sink its own path".to_string(),
                    );
                } else {
                    paths.insert(same, line);
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
            ("stdout", None) if submitted => {
                r.on(
                    &s.kind,
                    STDOUT_SUBMITTED,
                    format!("replace it with {JSONL_SUBMITTED_HINT}"),
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
            Some((_, "none")) => Some(SeriesChoice::None),
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
        // An alertmanager sink sends alerts, whatever the series (it refuses `series`).
        if series == Some(SeriesChoice::Rules) && rule_count == 0 && kind_name != alertmanager::KIND
        {
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
        if kind_name == alertmanager::KIND && alert_count == 0 {
            r.on(
                &s.kind,
                "an alertmanager sink sends the job's alerts, but the job has no [[alert]]",
                "add an [[alert]] (docs/alerts.md), or remove this sink".to_string(),
            );
        }
        let alerts = s.alerts.as_ref().is_some_and(|a| *a.get_ref());
        match (&s.alerts, s.kind.get_ref().as_str()) {
            (Some(a), kind) if *a.get_ref() && kind != "jsonl" => r.on(
                a,
                format!("a {kind} sink cannot write the alert transcript"),
                "set alerts = true on a jsonl sink".to_string(),
            ),
            (Some(a), _) if *a.get_ref() && alert_count == 0 => r.on(
                a,
                "this sink writes the alert transcript, but the job has no [[alert]]",
                "add an [[alert]], or remove alerts = true".to_string(),
            ),
            _ => {}
        }
        if let (Some(SeriesChoice::None), Some(v)) = (series, &s.series) {
            if !alerts {
                r.on(
                    v,
                    "series = \"none\" writes no series, and this sink writes no alerts either",
                    "set alerts = true to write only the alert transcript, or choose \"rules\", \"hosts\" or \"all\"".to_string(),
                );
            }
        }
        match (kind, series) {
            (Some(kind), Some(series)) if r.diags.len() == before => out.push(Sink {
                kind,
                series,
                alerts,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// Refuses a job whose `[[alert]]`s no sink receives: they would be evaluated
/// every window and never seen. `first_alert` is where the error points.
pub fn check_alerts_reach_a_sink(
    r: &mut Report<'_>,
    sinks: &[Sink],
    first_alert: &Spanned<String>,
) {
    let reached = sinks
        .iter()
        .any(|s| s.alerts || matches!(s.kind, SinkKind::Alertmanager(_)));
    if !reached {
        r.on(
            first_alert,
            "the job's [[alert]]s go to no sink",
            "set alerts = true on a jsonl sink or add an alertmanager sink (docs/alerts.md)"
                .to_string(),
        );
    }
}

/// Refuses a jsonl sink path that would destroy one of the job's inputs or its
/// job file, as far as paths tell (the run checks real paths and file identities
/// too): a path an `include` glob matches (the job would read its own output),
/// one named like a rotated sibling (`NAME.1`, `NAME.2.gz`) of such a path, one an
/// `archive` glob matches, or the job file's own path. `sinks` are the checked
/// `file_sinks`, in the same order.
pub fn check_overlaps(
    r: &mut Report<'_>,
    file_sinks: &[Spanned<SinkFile>],
    sinks: &[Sink],
    source: &Source,
    job_file: Option<&Path>,
) {
    let overlaps = Overlaps::new(source, job_file);
    for (spanned, sink) in file_sinks.iter().zip(sinks) {
        let (SinkKind::Jsonl(path), Some(p)) = (&sink.kind, &spanned.get_ref().path) else {
            continue;
        };
        if let Some(what) = overlaps.of(path) {
            r.on(
                p,
                format!(
                    "the sink path {} is {what}: writing there would destroy it",
                    path.display()
                ),
                format!("give the sink a path of its own, one no `include` or `archive` glob matches, e.g. path = \"out/NAME.jsonl\" ({ABSOLUTE_IN_A_CLUSTER})"),
            );
        }
    }
}

/// Said wherever a hint suggests a relative sink path.
const ABSOLUTE_IN_A_CLUSTER: &str =
    "a job submitted to a cluster needs an absolute path, e.g. \"/var/lib/tidemark/output/NAME.jsonl\"";

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn job(sink: &str, extra: &str) -> String {
        format!(
            r#"name = "j"
[source]
kind = "file"
include = ["logs/*/access.log"]
{extra}
[parse]
format = "nginx"
[window]
size = "1m"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "jsonl"
path = "{sink}"
series = "hosts"
"#
        )
    }

    fn errors(text: &str) -> String {
        match crate::from_str(text, "j.toml", Path::new("/srv")) {
            Ok(_) => String::new(),
            Err(d) => d.to_string(),
        }
    }

    #[test]
    fn a_sink_path_that_is_an_input_is_refused_by_validate() {
        for (sink, extra, what) in [
            ("logs/web-1/access.log", "", "include glob"),
            ("./logs/web-1/../web-1/access.log", "", "include glob"),
            (
                "logs/web-1/access.log.1",
                "",
                "rotated sibling of /srv/logs/web-1/access.log",
            ),
            ("logs/web-1/access.log.3.gz", "", "rotated sibling"),
            ("old/x.gz", "archive = [\"old/*.gz\"]", "archive glob"),
        ] {
            let err = errors(&job(sink, extra));
            assert!(err.contains(what), "{sink}: {err}");
            assert!(err.contains("j.toml:") && err.contains("hint:"), "{err}");
        }
        for (sink, extra) in [
            ("out/access.log", ""),
            ("logs/access.log", ""),
            ("logs/web-1/access.log.jsonl", ""),
            (
                "logs/web-1/access.log.1",
                "exclude = [\"/srv/logs/web-1/*\"]",
            ),
            ("old/x.jsonl", "archive = [\"old/*.gz\"]"),
        ] {
            assert_eq!(errors(&job(sink, extra)), "", "{sink} {extra}");
        }
    }

    #[test]
    fn a_sink_path_that_is_the_job_file_is_refused_by_validate() {
        let check = |sink: &str| {
            crate::validate::validate_text(
                &job(sink, ""),
                "j.toml",
                Path::new("/srv"),
                &crate::Env::process(),
                Some(Path::new("/srv/j.toml")),
            )
            .err()
            .map(|d| d.to_string())
            .unwrap_or_default()
        };
        assert!(
            check("j.toml").contains("the job file itself"),
            "{}",
            check("j.toml")
        );
        assert!(check("./x/../j.toml").contains("the job file itself"));
        assert_eq!(check("j.toml.jsonl"), "");
    }

    #[test]
    fn the_overlap_hint_works_for_submitted_jobs_too() {
        // A submitted job refuses a relative sink path: the hint must not offer one
        // without saying so.
        let err = errors(&job("logs/web-1/access.log", ""));
        assert!(err.contains("absolute"), "{err}");
    }

    #[test]
    fn two_sinks_reaching_one_path_through_dotdot_are_refused() {
        let text = job("out/x.jsonl", "")
            + "[[sink]]\nkind = \"jsonl\"\npath = \"out/../out/./x.jsonl\"\nseries = \"hosts\"\n";
        let err = errors(&text);
        assert!(err.contains("same file"), "{err}");
    }
}
