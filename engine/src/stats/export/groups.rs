//! The per-group families (`group` label: the live path), from what each worker
//! last published ([`crate::stats::GroupGauges`]). In a cluster each series
//! also has `member`, the process index: the same path may be a group on every
//! machine.

use std::path::Path;

use prometheus_client::registry::Unit;
use tidemark_sources::file::EscapedPath;

use super::{job, secs, with, Families, Labels};
use crate::stats::{GroupGauges, JobStats, MemberGroup};
use crate::time::EventMs;

fn labels_of(j: &str, member: Option<usize>, live: &Path) -> Labels {
    let labels = with(job(j), "group", EscapedPath(live).to_string());
    match member {
        Some(m) => with(labels, "member", m.to_string()),
        None => labels,
    }
}

/// This process's own group `live`.
fn group_labels(j: &str, s: &JobStats, live: &Path) -> Labels {
    labels_of(j, s.member_index, live)
}

/// Every group's figures: this process's, then (cluster) each other member's.
fn all_groups<'a>(j: &'a str, s: &'a JobStats) -> impl Iterator<Item = (Labels, &'a GroupGauges)> {
    let own = s
        .groups
        .iter()
        .map(|(live, g)| (group_labels(j, s, live), g));
    let members = member_groups(j, s).map(|(labels, g)| (labels, &g.gauges));
    own.chain(members)
}

/// The other members' groups (cluster), labelled with their member.
fn member_groups<'a>(
    j: &'a str,
    s: &'a JobStats,
) -> impl Iterator<Item = (Labels, &'a MemberGroup)> {
    s.member_groups.iter().flat_map(move |(m, groups)| {
        groups
            .iter()
            .map(move |(live, g)| (labels_of(j, Some(*m), live), g))
    })
}

pub(super) fn groups(f: &mut Families<'_>, wall_ms: EventMs) {
    f.counter(
        "group_lines_read",
        "Lines read from the group's files in this run, as last published (about every second)",
        None,
        |j, s| {
            all_groups(j, s)
                .map(|(labels, g)| (labels, g.lines_read))
                .collect::<Vec<_>>()
        },
    );
    f.counter(
        "group_read",
        "Bytes read from the group's files in this run, as last published (about every second)",
        Some(Unit::Bytes),
        |j, s| {
            all_groups(j, s)
                .map(|(labels, g)| (labels, g.bytes_read))
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "group_read_lag",
        "Bytes behind the end of the group's files",
        Some(Unit::Bytes),
        |j, s| {
            all_groups(j, s)
                .map(|(labels, g)| (labels, g.lag_bytes as f64))
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "group_watermark_timestamp",
        "The group's watermark (event time, Unix seconds)",
        Some(Unit::Seconds),
        |j, s| {
            all_groups(j, s)
                .filter_map(|(labels, g)| Some((labels, secs(g.watermark_ms?))))
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "group_watermark_lag",
        "How far the group's watermark trails the wall clock",
        Some(Unit::Seconds),
        |j, s| {
            all_groups(j, s)
                .filter_map(|(labels, g)| {
                    Some((labels, secs(wall_ms.saturating_sub(g.watermark_ms?))))
                })
                .collect::<Vec<_>>()
        },
    );
    f.gauge("group_idle", "1 while the group is idle at the end of its files for longer than idle_timeout (it no longer holds windows open)", None, |j, s| {
        all_groups(j, s)
            .map(|(labels, g)| (labels, f64::from(u8::from(g.idle))))
            .collect::<Vec<_>>()
    });
    f.gauge(
        "group_files_open",
        "Files of the group held open now",
        None,
        |j, s| {
            all_groups(j, s)
                .map(|(labels, g)| (labels, f64::from(u8::from(g.file_open))))
                .collect::<Vec<_>>()
        },
    );
    f.gauge(
        "group_files_failing",
        "Files of the group that cannot be opened or read now",
        None,
        |j, s| {
            let own = s
                .unreadable_files
                .iter()
                .map(|(live, files)| (group_labels(j, s, live), files.len() as f64));
            let members = member_groups(j, s)
                .filter_map(|(labels, g)| Some((labels, g.files_failing? as f64)));
            own.chain(members).collect::<Vec<_>>()
        },
    );
    f.gauge("group_clock_behind", "How far the lines the group keeps writing trail the wall clock, beyond max_clock_lag (0 once caught up)", Some(Unit::Seconds), |j, s| {
        let own = clock_behind(s)
            .into_iter()
            .map(|(live, lag)| (group_labels(j, s, live), secs(lag)));
        let members = member_groups(j, s)
            .filter_map(|(labels, g)| Some((labels, secs(g.clock_behind_ms?))));
        own.chain(members).collect::<Vec<_>>()
    });
    f.gauge(
        "groups_not_shown",
        "Cluster: groups of other members left out of the per-group series (over 1000 per member)",
        None,
        |j, s| Some((job(j), s.member_groups_left_out as f64)),
    );
}

/// Per group of this process, one clock figure ([`JobStats::clock_behind_of`]).
pub(super) fn clock_behind(s: &JobStats) -> std::collections::BTreeMap<&Path, i64> {
    let groups = s.clock_behind_ms.keys().chain(s.clock_lag_ms.keys());
    groups
        .filter_map(|live| Some((live.as_path(), s.clock_behind_of(live)?)))
        .collect()
}
