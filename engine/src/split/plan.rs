//! Which file groups a finite run reads as segments, and their byte segments:
//! cut at line starts by the replay's own [`TimeIndex::split_points`], so a
//! split group is read exactly as a replay reads a file.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};

use tidemark_jobs::Job;
use tidemark_sources::file::{AllowedRoots, EscapedPath, FileGroup};
use tidemark_sources::parse::LineParser;
use tidemark_sources::replay::{is_gzip_file, TimeIndex};

use super::chain::Chain;
use crate::groupset::host_of_path;
use crate::plan::Plan;
use crate::replay::Segment;
use crate::time::EventMs;
use crate::watermark::ClockState;

/// Segments per worker: several, so that the workers end close together (the
/// last segments are a small share of the work) and one that also reads other
/// groups does not hold the others up; not many, as each cut costs a search
/// and may cost a read again (see `super::spec`).
const SEGMENTS_PER_WORKER: usize = 8;

/// No segment is cut smaller than this (except by the file's own size).
const MIN_SEGMENT: u64 = 256 << 10;

/// Nor larger: a segment read ahead keeps its windows until it is confirmed,
/// so its size bounds that memory whatever the file's size.
const MAX_SEGMENT: u64 = 32 << 20;

/// Finished reads waiting for confirmation per group, per worker, at most: a
/// read waiting keeps its windows (up to [`MAX_SEGMENT`] of lines', or a gzip
/// file's). Usually one or two per worker wait; more only while the segment
/// before them is read slowly, and then the others need not read further ahead.
const WAITING_PER_WORKER: usize = 2;

/// One split group: how far its segments are.
pub(crate) struct SplitGroup {
    pub chain: Mutex<Chain>,
    /// By segment: whether it is its file's last, read on to the file's end as
    /// the tailer reads it (lines appended during the run are read, as with `-w 1`).
    pub to_eof: Vec<bool>,
}

/// The groups of a finite run read as segments by every worker of this process,
/// and the segments no worker has taken yet.
#[derive(Default)]
pub struct SplitPlan {
    pub(crate) groups: Vec<SplitGroup>,
    /// In stream order within each group, groups one after the other: the
    /// segment a group needs next is always taken first.
    pub(crate) queue: Mutex<VecDeque<(usize, Segment)>>,
    /// A group with this many reads waiting for confirmation gives out no
    /// segment until one is confirmed (see [`WAITING_PER_WORKER`]).
    pub(crate) max_waiting: usize,
}

impl SplitPlan {
    /// Takes out of `groups` every group worth splitting over `workers` workers:
    /// its files hold at least `split_from` bytes and make more than one segment
    /// (see `segments`). A group that cannot be planned stays with the others
    /// and is read as usual.
    /// Returns the plan and the groups taken.
    pub fn take(
        job: &Job,
        groups: &mut Vec<FileGroup>,
        workers: usize,
    ) -> (SplitPlan, Vec<FileGroup>) {
        let mut split = SplitPlan {
            max_waiting: WAITING_PER_WORKER * workers,
            ..SplitPlan::default()
        };
        let mut taken = Vec::new();
        if workers < 2 {
            return (split, taken);
        }
        let plan = Plan::new(job);
        let Ok(mut parser) = LineParser::new(&job.parse, &plan.fields) else {
            return (split, taken);
        };
        let roots = AllowedRoots::of_source(&job.source);
        // (time key, group, segment): see `interleave`.
        let mut queue = Vec::new();
        groups.retain(|g| {
            let index = split.groups.len();
            match segments(job, &roots, &mut parser, g, workers) {
                Some(segs) if segs.len() > 1 => {
                    tracing::info!(
                        "{}: read as {} segments by {workers} workers",
                        EscapedPath(&g.live),
                        segs.len()
                    );
                    let to_eof = segs
                        .iter()
                        .enumerate()
                        .map(|(i, (s, _))| {
                            segs.get(i + 1)
                                .is_none_or(|(n, _)| (n.dev, n.ino) != (s.dev, s.ino))
                        })
                        .collect();
                    split.groups.push(SplitGroup {
                        to_eof,
                        chain: Mutex::new(Chain {
                            done: 0,
                            at: ClockState::default(),
                            parked: BTreeMap::new(),
                            frontier: 0,
                            segments: segs.len() as u32,
                            unreadable: Default::default(),
                        }),
                    });
                    queue.extend(interleave(index, segs));
                    taken.push(g.clone());
                    false
                }
                _ => true,
            }
        });
        queue.sort_by_key(|(key, g, s)| (*key, *g, s.seq));
        split.queue = Mutex::new(queue.into_iter().map(|(_, g, s)| (g, s)).collect());
        (split, taken)
    }

    /// Whether no group is split.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The first segment not yet taken of a group with fewer than
    /// `max_waiting` reads waiting: `None` when there is none left, or every
    /// group left has that many waiting (see [`SplitPlan::is_drained`]).
    ///
    /// Locks the queue, then groups' chains: nothing locks them the other way.
    /// It cannot wait for ever: a group with reads waiting has its next
    /// segment to confirm being read by some worker (the waiting ones come
    /// after it, and the queue gives a group's segments in order).
    pub(crate) fn pop(&self) -> Option<(usize, Segment)> {
        let mut queue = self.queue.lock().ok()?;
        let mut last: Option<(usize, bool)> = None;
        let i = queue.iter().position(|&(g, _)| match last {
            Some((seen, open)) if seen == g => open,
            _ => {
                let chain = self.groups[g]
                    .chain
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let open = chain.parked.len() < self.max_waiting;
                last = Some((g, open));
                open
            }
        })?;
        queue.remove(i)
    }

    /// Whether every segment has been taken.
    pub(crate) fn is_drained(&self) -> bool {
        self.queue.lock().map_or(true, |q| q.is_empty())
    }
}

/// Group `g`'s segments keyed by the time they start at (their first line's
/// where the cut found one, else the segment's before them), never decreasing
/// within the group. The queue is sorted by it, so that several split groups
/// are read in step by event time — the group behind takes the next segment —
/// rather than one group whole after the other, which kept every split group's
/// windows of the whole range alive until the last group was read. A group's
/// segments stay in order (what `pop`'s progress argument needs).
fn interleave(
    g: usize,
    segs: Vec<(Segment, Option<EventMs>)>,
) -> impl Iterator<Item = (EventMs, usize, Segment)> {
    let mut key = EventMs::MIN;
    segs.into_iter().map(move |(s, t)| {
        key = key.max(t.unwrap_or(EventMs::MIN));
        (key, g, s)
    })
}

/// The segments of `g`'s files in reading order (rotated, oldest first, then
/// the live file), or `None` when it is not to be split: smaller than
/// `split_from` in all, or a file that cannot be opened or is not what its name
/// says (gzip or not). A gzip file is one segment, read whole (it cannot be cut
/// by offset, as in a replay); a plain file is cut at line starts.
fn segments(
    job: &Job,
    roots: &AllowedRoots,
    parser: &mut LineParser,
    g: &FileGroup,
    workers: usize,
) -> Option<Vec<(Segment, Option<EventMs>)>> {
    let mut files = Vec::new();
    for (path, gzip) in g.files_in_order() {
        let file = roots.open(path).ok()?;
        let meta = file.metadata().ok()?;
        if !meta.is_file() || is_gzip_file(&file).ok()? != gzip {
            return None;
        }
        files.push((path, gzip, file, meta));
    }
    let total: u64 = files.iter().map(|f| f.3.len()).sum();
    if total < job.source.split_from_bytes.max(1) {
        return None;
    }
    let target = (total / (workers * SEGMENTS_PER_WORKER) as u64)
        .clamp(MIN_SEGMENT.min(job.source.split_from_bytes), MAX_SEGMENT);
    let group: Arc<str> = g.live.to_string_lossy().into();
    let host: Option<Arc<str>> = host_of_path(&job.source.host, &g.live).map(Into::into);
    let mut out = Vec::new();
    for (path, gzip, file, meta) in files {
        let len = meta.len();
        let cuts = if gzip {
            vec![(0, None), (len, None)]
        } else {
            let n = len.div_ceil(target.max(1)).max(1) as usize;
            if n == 1 {
                vec![(0, None), (len, None)]
            } else {
                TimeIndex::open_file(file, path, parser)
                    .and_then(|mut ix| ix.split_points(0, len, n))
                    .ok()?
            }
        };
        for w in cuts.windows(2) {
            let ((start, t), (end, _)) = (w[0], w[1]);
            let seg = Segment {
                group: group.clone(),
                seq: out.len() as u32,
                host: host.clone(),
                path: path.to_path_buf(),
                dev: meta.dev(),
                ino: meta.ino(),
                gzip,
                start,
                end,
                floor_ms: None,
                lo: 0,
                cost: end - start,
            };
            out.push((seg, t));
        }
    }
    Some(out)
}
