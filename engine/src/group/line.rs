//! One line of a file group: parse it, stamp its event time, move the group's
//! watermark, drop it if late or already written, and add it to its window. The
//! per-line path of [`super::GroupState::read`]; its warnings are rate-limited
//! per group.

use std::path::Path;

use tidemark_sources::file::EscapedPath;
use tidemark_sources::parse::LineParser;
use tidemark_sources::tail::LineMeta;

use crate::agg::{explain, stamp, OpenWindows};
use crate::plan::{HostPlan, Plan};
use crate::resume::WindowMarks;
use crate::stats::JobStats;
use crate::time::{window_start, EventMs};
use crate::watermark::{ClockState, GroupClock};

/// Warnings logged per group before further bad lines are only counted.
const MAX_WARNINGS: u32 = 10;

/// What every line of one read needs besides its own state.
pub(super) struct LineCtx<'a> {
    pub(super) future_limit: EventMs,
    pub(super) skip_below: EventMs,
    pub(super) resumed_at_tail: bool,
    pub(super) track_resume: bool,
    pub(super) plan: &'a Plan,
    pub(super) fixed_host: Option<&'a str>,
}

/// Warnings logged so far, per kind (each stops at [`MAX_WARNINGS`]).
pub(super) struct Warnings<'a> {
    pub(super) bad_lines: &'a mut u32,
    pub(super) outliers: &'a mut u32,
    pub(super) after_written: &'a mut u32,
}

// `#[inline]`: it was in the same file as its one caller, the read loop, and
// is called per line; kept inlinable there across codegen units.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(super) fn ingest_line(
    ctx: &LineCtx<'_>,
    meta: LineMeta<'_>,
    line: &[u8],
    parser: &mut LineParser,
    wm: &mut GroupClock,
    windows: &mut OpenWindows,
    marks: &mut WindowMarks,
    warnings: Warnings<'_>,
    stats: &mut JobStats,
) {
    let (plan, future_limit) = (ctx.plan, ctx.future_limit);
    let origin = Origin {
        path: meta.path,
        line_no: meta.line_no,
    };
    let (parsed, t) = match stamp(parser, line, future_limit, stats) {
        Ok(p) => p,
        Err(reason) => {
            warn_line(warnings.bad_lines, &origin, explain(reason), line);
            return;
        }
    };
    let start = window_start(t, plan.window_ms);
    // A window's first line is marked with the watermark state just before it;
    // taken only then, not for every line.
    let before =
        (ctx.track_resume && start >= ctx.skip_below && !marks.has(start)).then(|| wm.state());
    let seen = wm.see(t);
    if let Some(outlier) = seen.outlier {
        stats.outlier_lines += 1;
        warn_outlier(warnings.outliers, &origin, outlier, t);
    }
    if seen.late {
        stats.late_lines += 1;
        return;
    }
    if start < ctx.skip_below {
        if ctx.resumed_at_tail {
            // Not a line read again but a new one, whose window an earlier run
            // already wrote (it ended at end of input, on a line far ahead...).
            late_after_written(warnings.after_written, &origin, start, stats);
        }
        // Otherwise already in the sinks before a restart: it counted for the
        // watermark only, exactly as it did the first time.
        return;
    }
    if let Some(before) = before {
        mark_window(marks, wm, start, t, line, meta.position, before);
    }
    let host = match (&plan.host, ctx.fixed_host) {
        (HostPlan::Field(slot), _) => parsed.field(*slot).unwrap_or(""),
        (HostPlan::PerGroup, Some(h)) => h,
        (HostPlan::PerGroup, None) => "",
    };
    stats.lines_counted += 1;
    windows.add(plan, &parsed, t, start, host, stats);
}

/// Where a line came from, for warnings.
struct Origin<'a> {
    path: &'a Path,
    line_no: u64,
}

/// Logs (rate-limited) a line whose jump ahead the next line, at `origin` and
/// stamped `line_ms`, did not confirm.
fn warn_outlier(warnings: &mut u32, origin: &Origin<'_>, outlier_ms: EventMs, line_ms: EventMs) {
    *warnings += 1;
    if *warnings <= MAX_WARNINGS {
        tracing::warn!(
            "{}:{}: an earlier line stamped {} ({} ahead of this one) is not confirmed by \
             this line: it is counted as an outlier (it stays in its own window, but did \
             not move the watermark, so later lines are not late){}",
            EscapedPath(origin.path),
            origin.line_no,
            crate::time::format_ms(outlier_ms),
            crate::watermark::format_span(outlier_ms - line_ms),
            if *warnings == MAX_WARNINGS {
                " — further outliers in this file group are only counted"
            } else {
                ""
            }
        );
    }
}

/// Records the first line of window `start` (stamped `t`) for resuming. Once per
/// window: kept out of line, so the per-line path stays as small as before.
#[inline(never)]
fn mark_window(
    marks: &mut WindowMarks,
    wm: &GroupClock,
    start: EventMs,
    t: EventMs,
    line: &[u8],
    position: &tidemark_sources::tail::Position,
    before: ClockState,
) {
    // A line that jumped ahead (it waits for the next line to confirm it) is kept
    // whole, so that its window, which may stay open for hours, does not hold the
    // resume point back that long.
    let suspect = wm.state().suspect_ms == Some(t);
    if !(suspect && marks.keep(start, line)) {
        marks.mark(start, position, before);
    }
}

/// Counts and logs (rate-limited) a new line whose window, starting at
/// `window_ms`, an earlier run already wrote.
#[cold]
#[inline(never)]
fn late_after_written(
    warnings: &mut u32,
    origin: &Origin<'_>,
    window_ms: EventMs,
    stats: &mut JobStats,
) {
    stats.late_after_written += 1;
    *warnings += 1;
    if *warnings <= MAX_WARNINGS {
        tracing::warn!(
            "{}:{}: this line belongs to the window at {}, which an earlier run already \
             wrote (it ended at the end of its input, or its last line was stamped far \
             ahead): it is not in the output, counted as late_after_written{}",
            EscapedPath(origin.path),
            origin.line_no,
            crate::time::format_ms(window_ms),
            if *warnings == MAX_WARNINGS {
                " — further such lines in this file group are only counted"
            } else {
                ""
            }
        );
    }
}

fn warn_line(warnings: &mut u32, origin: &Origin<'_>, reason: &str, line: &[u8]) {
    *warnings += 1;
    if *warnings <= MAX_WARNINGS {
        let shown = &line[..line.len().min(160)];
        tracing::warn!(
            "{}:{}: skipped line ({reason}): {:?}{}",
            EscapedPath(origin.path),
            origin.line_no,
            String::from_utf8_lossy(shown),
            if *warnings == MAX_WARNINGS {
                " — further bad lines in this file group are only counted"
            } else {
                ""
            }
        );
    }
}
