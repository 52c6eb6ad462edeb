//! `[window] max_series`: the most per-host series one window may hold over the
//! whole job, so that no input can make a job's memory grow without bound.

use toml::Spanned;

use super::diag::Report;

/// `max_series` when the job file does not set it.
pub const DEFAULT_MAX_SERIES: usize = 100_000;

/// The largest `max_series` accepted: a window's series are numbered with `u32`.
pub const MAX_MAX_SERIES: usize = 1_000_000_000;

/// `max_series`, or its default. Each metric gets an equal share, so it must be at
/// least the number of metrics (a share of 0 would drop every series).
pub fn check_max_series(
    r: &mut Report<'_>,
    value: Option<&Spanned<i64>>,
    metrics: usize,
) -> Option<usize> {
    let Some(v) = value else {
        return Some(DEFAULT_MAX_SERIES.max(metrics));
    };
    let n = *v.get_ref();
    let least = metrics.max(1);
    match usize::try_from(n) {
        Ok(n) if n > MAX_MAX_SERIES => {
            r.on(
                v,
                format!("max_series = {n} is too large"),
                format!("use at most {MAX_MAX_SERIES}; the default is {DEFAULT_MAX_SERIES}"),
            );
            None
        }
        Ok(n) if n >= least => Some(n),
        _ => {
            r.on(
                v,
                format!(
                    "max_series = {n} is too small: each of the job's {metrics} metric(s) needs a share of at least 1 series per window"
                ),
                format!(
                    "use at least {least} (metrics share it equally); the default is {DEFAULT_MAX_SERIES}"
                ),
            );
            None
        }
    }
}

/// `[source] max_open_files` when the job file does not set it.
pub const DEFAULT_MAX_OPEN_FILES: usize = 256;
/// The largest `max_open_files` accepted (beyond any real file limit).
pub const MAX_MAX_OPEN_FILES: usize = 1 << 20;

/// `[source] max_open_files`, or its default: at least 1.
pub fn check_max_open_files(r: &mut Report<'_>, value: Option<&Spanned<i64>>) -> Option<usize> {
    let Some(v) = value else {
        return Some(DEFAULT_MAX_OPEN_FILES);
    };
    let n = *v.get_ref();
    match usize::try_from(n) {
        Ok(n) if (1..=MAX_MAX_OPEN_FILES).contains(&n) => Some(n),
        _ => {
            r.on(
                v,
                format!("max_open_files = {n} is out of range"),
                format!(
                    "use 1 to {MAX_MAX_OPEN_FILES} (files kept open at once; idle ones past it \
                     are closed and reopened); the default is {DEFAULT_MAX_OPEN_FILES}"
                ),
            );
            None
        }
    }
}
