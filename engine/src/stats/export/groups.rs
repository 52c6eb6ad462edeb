//! The per-group families (`group` label: the live path), from what each worker
//! last published ([`crate::stats::GroupGauges`]).

use prometheus_client::registry::Unit;
use tidemark_sources::file::EscapedPath;

use super::{job, secs, with, Families, Labels};
use crate::time::EventMs;

fn group_labels(j: &str, live: &std::path::Path) -> Labels {
    with(job(j), "group", EscapedPath(live).to_string())
}

pub(super) fn groups(f: &mut Families<'_>, wall_ms: EventMs) {
    f.counter(
        "group_lines_read",
        "Lines read from the group's files in this run, as last published (about every second)",
        None,
        |j, s| {
            s.groups
                .iter()
                .map(|(live, g)| (group_labels(j, live), g.lines_read))
                .collect::<Vec<_>>()
        },
    );
    f.counter(
        "group_read",
        "Bytes read from the group's files in this run, as last published (about every second)",
        Some(Unit::Bytes),
        |j, s| {
            s.groups
                .iter()
                .map(|(live, g)| (group_labels(j, live), g.bytes_read))
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "group_read_lag",
        "Bytes behind the end of the group's files",
        Some(Unit::Bytes),
        |j, s| {
            s.groups
                .iter()
                .map(|(live, g)| (group_labels(j, live), g.lag_bytes as f64))
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "group_watermark_timestamp",
        "The group's watermark (event time, Unix seconds)",
        Some(Unit::Seconds),
        |j, s| {
            s.groups
                .iter()
                .filter_map(|(live, g)| Some((group_labels(j, live), secs(g.watermark_ms?))))
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "group_watermark_lag",
        "How far the group's watermark trails the wall clock",
        Some(Unit::Seconds),
        |j, s| {
            s.groups
                .iter()
                .filter_map(|(live, g)| {
                    Some((
                        group_labels(j, live),
                        secs(wall_ms.saturating_sub(g.watermark_ms?)),
                    ))
                })
                .collect::<Vec<_>>()
        },
    );
    f.gauge("group_idle", "1 while the group is idle at the end of its files for longer than idle_timeout (it no longer holds windows open)", None, |j, s| {
        s.groups
            .iter()
            .map(|(live, g)| (group_labels(j, live), f64::from(u8::from(g.idle))))
            .collect::<Vec<_>>()
    });
    f.gauge(
        "group_files_open",
        "Files of the group held open now",
        None,
        |j, s| {
            s.groups
                .iter()
                .map(|(live, g)| (group_labels(j, live), f64::from(u8::from(g.file_open))))
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "group_files_failing",
        "Files of the group that cannot be opened or read now",
        None,
        |j, s| {
            s.unreadable_files
                .iter()
                .map(|(live, files)| (group_labels(j, live), files.len() as f64))
                .collect::<Vec<_>>()
        },
    );
    f.gauge("group_clock_behind", "How far the lines the group keeps writing trail the wall clock, beyond max_clock_lag (0 once caught up)", Some(Unit::Seconds), |j, s| {
        s.clock_behind_ms
            .iter()
            .chain(s.clock_lag_ms.iter().filter(|(_, lag)| **lag > 0))
            .map(|(live, lag)| (group_labels(j, live), secs(*lag)))
            .collect::<Vec<_>>()
    });
}
