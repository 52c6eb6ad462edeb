//! Phase 2 checks of [window]: window size, the disorder bound, and the guards
//! against idle sources and wrong clocks.

use std::time::Duration;

use super::diag::Report;
use super::source::duration;
use crate::duration::format_duration;
use crate::job::Window;
use crate::model::WindowFile;

/// `max_jump` when not set: this, or `max_out_of_orderness` when that is larger.
pub const DEFAULT_MAX_JUMP: Duration = Duration::from_secs(60);
/// `max_jump` when not set, for a job whose disorder bound is `max_out_of_orderness`.
pub fn default_max_jump(max_out_of_orderness: Duration) -> Duration {
    max_out_of_orderness.max(DEFAULT_MAX_JUMP)
}

/// `max_clock_lag` when not set.
pub const DEFAULT_MAX_CLOCK_LAG: Duration = Duration::from_secs(600);

/// Checks [window].
pub fn check_window(r: &mut Report<'_>, w: &WindowFile, metrics: usize) -> Option<Window> {
    let size = duration(r, w.size.as_ref(), "window size", Duration::from_secs(60));
    if let Some((size, Some(at))) = size {
        let shown = format_duration(size);
        let hour = Duration::from_secs(3600);
        let problem = if size < Duration::from_secs(1) {
            Some(format!("window size `{shown}` is shorter than 1s"))
        } else if size.subsec_nanos() != 0 {
            Some(format!(
                "window size `{shown}` is not a whole number of seconds"
            ))
        } else if size > hour || 3600 % size.as_secs() != 0 {
            Some(format!("window size `{shown}` does not divide one hour evenly, so windows would not line up with the hour"))
        } else {
            None
        };
        if let Some(problem) = problem {
            r.at(at, problem, "use a size that divides 1h, such as 10s, 15s, 30s, 1m, 2m, 5m, 10m, 15m, 30m or 1h".to_string());
        }
    }
    let lateness = duration(
        r,
        w.max_out_of_orderness.as_ref(),
        "max_out_of_orderness",
        Duration::from_secs(5),
    );
    let idle = duration(
        r,
        w.idle_timeout.as_ref(),
        "idle_timeout",
        Duration::from_secs(30),
    );
    if let Some((d, Some(at))) = idle {
        if d.is_zero() {
            r.at(
                at,
                "idle_timeout must be greater than 0s",
                "it is how long a file group may sit idle at end of file before it stops holding back the windows; the default is \"30s\"".to_string(),
            );
        }
    }
    let skew = duration(
        r,
        w.max_clock_skew.as_ref(),
        "max_clock_skew",
        Duration::from_secs(600),
    );
    if let Some((d, Some(at))) = skew {
        if d.is_zero() {
            r.at(
                at,
                "max_clock_skew must be greater than 0s",
                "it is how far ahead of this machine's clock a line's timestamp may be before the line is dropped as a clock error; the default is \"10m\"".to_string(),
            );
        }
    }
    let default_jump = lateness.map_or(DEFAULT_MAX_JUMP, |(d, _)| default_max_jump(d));
    let jump = duration(r, w.max_jump.as_ref(), "max_jump", default_jump);
    if let (Some((j, Some(at))), Some((d, _))) = (jump, lateness) {
        if j < d {
            r.at(
                at,
                format!(
                    "max_jump `{}` is less than max_out_of_orderness `{}`",
                    format_duration(j),
                    format_duration(d)
                ),
                "a line within the disorder bound is never a clock error: raise max_jump to at least max_out_of_orderness (or leave it out: the default is 1m, or max_out_of_orderness if larger)".to_string(),
            );
        }
    }
    let lag = duration(
        r,
        w.max_clock_lag.as_ref(),
        "max_clock_lag",
        DEFAULT_MAX_CLOCK_LAG,
    );
    if let Some((d, Some(at))) = lag {
        if d.is_zero() {
            r.at(
                at,
                "max_clock_lag must be greater than 0s",
                "it is how long the time of a file group that keeps writing may stay stuck behind this machine's clock before the group stops holding back the windows; the default is \"10m\"".to_string(),
            );
        }
    }
    let max_series = super::limits::check_max_series(r, w.max_series.as_ref(), metrics);
    Some(Window {
        size: size?.0,
        max_out_of_orderness: lateness?.0,
        idle_timeout: idle?.0,
        max_clock_skew: skew?.0,
        max_series: max_series?,
        max_jump: jump?.0,
        max_clock_lag: lag?.0,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    fn window(lines: &str) -> Result<crate::job::Window, crate::Diagnostics> {
        let text = format!(
            "name = \"w\"\n[source]\nkind = \"file\"\ninclude = [\"/l/*.log\"]\n[parse]\n\
             format = \"json\"\n[window]\n{lines}\n[[metric]]\nname = \"m\"\nkind = \"counter\"\n\
             [[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n"
        );
        crate::validate::from_str(&text, "job.toml", Path::new("/")).map(|j| j.window)
    }

    #[test]
    fn clock_guards_have_defaults_that_follow_the_disorder_bound() {
        let w = window("").unwrap();
        assert_eq!(w.max_jump, Duration::from_secs(60));
        assert_eq!(w.max_clock_lag, Duration::from_secs(600));
        // A job valid before these keys existed stays valid: the default jump
        // grows with a larger disorder bound.
        let w = window("max_out_of_orderness = \"5m\"").unwrap();
        assert_eq!(w.max_jump, Duration::from_secs(300));
        let w = window("max_jump = \"2h\"\nmax_clock_lag = \"30s\"").unwrap();
        assert_eq!(
            (w.max_jump, w.max_clock_lag),
            (Duration::from_secs(7200), Duration::from_secs(30))
        );
    }

    #[test]
    fn a_jump_bound_below_the_disorder_bound_is_refused() {
        let d = window("max_out_of_orderness = \"30s\"\nmax_jump = \"10s\"").unwrap_err();
        assert_eq!(d.len(), 1, "{d}");
        assert_eq!((d[0].line, d[0].column), (9, 12), "{d}");
        assert!(
            d[0].message.contains("less than max_out_of_orderness"),
            "{d}"
        );
        let d = window("max_clock_lag = \"0s\"").unwrap_err();
        assert!(
            d[0].message.contains("max_clock_lag must be greater"),
            "{d}"
        );
        let d = window("max_jump = 5").unwrap_err();
        assert!(
            d[0].hint
                .as_deref()
                .is_some_and(|h| h.contains("max_jump = \"30s\"")),
            "{d}"
        );
    }
}
