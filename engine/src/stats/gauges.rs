//! One file group's figures for `/metrics`: as this process's workers publish
//! them ([`GroupGauges`]), and as a cluster member reports them ([`MemberGroup`]).

use crate::time::EventMs;

use super::JobStats;
#[cfg(doc)]
use super::MemberStats;

/// A cluster member's group as it reports it to process 0 (see
/// [`MemberStats::groups`]): its figures, with what this process keeps of its
/// own groups in other maps.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberGroup {
    /// See [`JobStats::groups`].
    pub gauges: GroupGauges,
    /// Its files that cannot be opened or read now, if any ever failed (see
    /// [`JobStats::unreadable_files`]).
    #[serde(default)]
    pub files_failing: Option<u64>,
    /// How far its clock trails (ms), if it ever did (see
    /// [`JobStats::clock_behind_ms`] and [`JobStats::clock_lag_ms`]).
    #[serde(default)]
    pub clock_behind_ms: Option<i64>,
}

impl JobStats {
    /// One clock figure for `live`: how far its clock trails, whether released
    /// (stuck, `clock_lag_ms`) or holding the windows back (trailing,
    /// `clock_behind_ms`). The group sets the other to 0 when it moves from one
    /// to the other, and both once caught up; the larger is the one that holds.
    /// `None` if its clock never trailed.
    pub fn clock_behind_of(&self, live: &std::path::Path) -> Option<i64> {
        let a = self.clock_behind_ms.get(live);
        let b = self.clock_lag_ms.get(live);
        a.into_iter().chain(b).map(|v| (*v).max(0)).max()
    }
}

/// One file group's figures at an instant (see [`JobStats::groups`]). Its
/// counters cover this run's reading of the group, since its worker found it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupGauges {
    /// Lines read from the group's files.
    pub lines_read: u64,
    /// Bytes read from the group's files.
    pub bytes_read: u64,
    /// Bytes behind the end of its files.
    pub lag_bytes: u64,
    /// The group's watermark (event time), once a line or the wall clock set it.
    pub watermark_ms: Option<EventMs>,
    /// Idle at the end of its files for longer than `idle_timeout`: it no
    /// longer holds the job's windows open.
    pub idle: bool,
    /// Whether one of its files is held open now.
    pub file_open: bool,
}
