//! `tidemark replay --format openmetrics`: the flags' values checked and turned
//! into what the OpenMetrics sink is opened with (docs/replay.md, *Backfill into
//! Prometheus*).

use std::path::{Path, PathBuf};

use tidemark_jobs::duration::parse_size;
use tidemark_jobs::{Job, SampleTime, SeriesChoice, SinkKind};
use tidemark_sinks::OpenMetricsOptions;

/// What the replay writes at `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// JSON Lines, as the job's jsonl sink writes (docs/output.md).
    Jsonl,
    /// OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.
    Openmetrics,
}

/// Which instant of its window an OpenMetrics sample carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stamp {
    /// The window's end, as the remote-write sink stamps by default.
    End,
    /// The window's start.
    Start,
}

/// `replay`'s flags for the output's format (flattened into its arguments).
#[derive(clap::Args)]
pub struct OpenMetricsFlags {
    /// What to write: JSON Lines, or OpenMetrics text for Prometheus's backfill
    /// (`promtool tsdb create-blocks-from openmetrics`; needs --output).
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// With --format openmetrics: stamp each sample with its window's end (the
    /// default, as the remote-write sink) or start.
    #[arg(long, value_enum, value_name = "end|start")]
    pub timestamp: Option<Stamp>,
    /// With --format openmetrics: add the label NAME=VALUE to every series that
    /// has no NAME label itself (as Prometheus's external_labels). Repeatable.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_external_label)]
    pub external_label: Vec<(String, String)>,
    /// Bytes of samples --format openmetrics regroups in memory before it
    /// spills to a temporary file next to the output (tests and tuning).
    #[arg(long, hide = true, value_name = "SIZE")]
    pub openmetrics_buffer: Option<String>,
}

/// What the flags and `--output` (with `--overwrite`) ask for:
/// `None` for JSON Lines; for OpenMetrics, where and how to write it, the job's
/// jsonl sinks taken out of `job` (they are the live run's). `Err` is a usage
/// error (exit 2).
pub fn openmetrics_output(
    args: &OpenMetricsFlags,
    output: Option<&Path>,
    overwrite: bool,
    job: &mut Job,
) -> Result<Option<OpenMetricsOut>, String> {
    let out = match (args.format, output) {
        (Format::Jsonl, _) if args.timestamp.is_some() => {
            return Err("--timestamp applies to --format openmetrics only".into())
        }
        (Format::Jsonl, _) if !args.external_label.is_empty() => {
            return Err("--external-label applies to --format openmetrics only".into())
        }
        (Format::Jsonl, _) => return Ok(None),
        (Format::Openmetrics, None) => {
            return Err(
                "--format openmetrics needs --output FILE (the job's sinks are JSON Lines)".into(),
            )
        }
        (Format::Openmetrics, Some(out)) => out,
    };
    let buffer = match args.openmetrics_buffer.as_deref().map(parse_size) {
        None => tidemark_sinks::openmetrics::DEFAULT_BUFFER_BYTES,
        Some(Ok(n)) => usize::try_from(n).unwrap_or(usize::MAX),
        Some(Err(e)) => return Err(format!("--openmetrics-buffer: {e}")),
    };
    let time = match args.timestamp {
        None | Some(Stamp::End) => SampleTime::End,
        Some(Stamp::Start) => SampleTime::Start,
    };
    let path = std::path::absolute(out).map_err(|e| format!("--output: {e}"))?;
    let mut names: Vec<&str> = args
        .external_label
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("--external-label {} is given twice", w[0]));
    }
    Ok(Some(OpenMetricsOut {
        path,
        opts: OpenMetricsOptions {
            series: take_jsonl_sinks(job),
            time,
            external_labels: args.external_label.clone(),
            overwrite,
            buffer_bytes: buffer,
        },
    }))
}

/// Where and how `--format openmetrics` writes.
pub struct OpenMetricsOut {
    pub path: PathBuf,
    pub opts: OpenMetricsOptions,
}

/// `NAME=VALUE` with a Prometheus label name that is not reserved (`__…`).
pub fn parse_external_label(s: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once('=') else {
        return Err(format!(
            "{s:?} has no `=`; write NAME=VALUE, e.g. cluster=eu-1"
        ));
    };
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "{name:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*); write NAME=VALUE, e.g. cluster=eu-1"
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "{name:?}: names starting with __ are reserved by Prometheus"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

/// `--format openmetrics` writes instead of the job's jsonl sinks (they are the
/// live run's): removes them, and returns the series the first of them prints
/// (`series = …`), which the OpenMetrics file prints too; every series if the
/// job has none. A sink that prints no series (`series = "none"`, an alert
/// transcript) does not count.
fn take_jsonl_sinks(job: &mut Job) -> SeriesChoice {
    let series = job
        .sinks
        .iter()
        .find(|s| matches!(s.kind, SinkKind::Jsonl(_)) && s.series != SeriesChoice::None)
        .map(|s| s.series)
        .unwrap_or(SeriesChoice::All);
    job.sinks.retain(|s| !matches!(s.kind, SinkKind::Jsonl(_)));
    series
}
