//! The discovery pass of a finite run (`--until-eof`), and of a live run catching up
//! (its backlog: each partition up to the end it had when the worker connected):
//! before reading a backlog, a second consumer reads the same records (from the same
//! starts to the same ends)
//! to find every stream in it, where its records end, and the earliest window its
//! lines can add to. With that, windows close while the backlog is read — paced by
//! event time across partitions ([`super::pace`]) — instead of all at the end: a
//! window may close once every stream that can still add to it has passed it, and
//! a stream not read yet is known too.
//!
//! Why a pass and not a rule: records of a stream not seen yet may come anywhere
//! later in its partition, with lines of any time (an agent that uploads a host's
//! hours-old backlog after other hosts' records); without knowing them, no window
//! could close before every partition was read to its end, and a backlog's every
//! window would be alive at once.
//!
//! How the earliest window is found without parsing every line twice: each new
//! stream gets a *shadow* [`Stream`], fed its records in order exactly as the
//! reading proper will, until its watermark has taken a line's time (usually after
//! two lines). A stream's watermark never goes back, and every line it counts is at
//! or past it, so the stream's lines go to windows at or after the earlier of the
//! shadow's first window with data and its watermark's window. A stream floor later
//! raised to at most that window changes none of its decisions. The one input the
//! shadow cannot decide as the reading will is a line stamped in the future (past
//! this machine's clock plus `max_clock_skew`): by the time it is read again it may
//! no longer be. Such a stream's earliest window is unknown and it holds every window
//! until the reading proper finds it (exact, just less memory saved).

use std::collections::BTreeMap;
use std::time::Instant;

use tidemark_jobs::HostFrom;
use tidemark_kafka::wire::{self, AgentRecord, GroupRef};
use tidemark_sources::parse::LineParser;

use crate::plan::Plan;
use crate::stats::JobStats;
use crate::time::{EventMs, WindowTime};

use super::consumer::{Polled, Reader};
use super::group::{AgentItem, RecordCx, Stream};
use super::streams::{KeyView, StreamKey};

/// Where a stream's lines can start, as far as the pass found.
enum Earliest {
    /// Still being followed by its shadow.
    Watching(Box<Stream>),
    /// Its lines add to windows at or after this (`None`: it has none).
    Known(Option<WindowTime>),
}

/// One stream the pass found.
pub(crate) struct Found {
    /// Its partition.
    pub(crate) partition: i32,
    /// The offset of its last record in the range read.
    pub(crate) last: i64,
    earliest: Earliest,
}

impl Found {
    /// A stream found with its earliest window known (tests).
    #[cfg(test)]
    pub(crate) fn known(partition: i32, last: i64, earliest: Option<WindowTime>) -> Found {
        Found {
            partition,
            last,
            earliest: Earliest::Known(earliest),
        }
    }

    /// The earliest window its lines add to (`None`: none; [`WindowTime::MIN`]: unknown).
    pub(crate) fn earliest(&self) -> Option<WindowTime> {
        match &self.earliest {
            Earliest::Known(w) => *w,
            // Only after the pass: the pass settles every shadow at its end.
            Earliest::Watching(_) => Some(WindowTime::MIN),
        }
    }
}

/// A record as the pass feeds it to a shadow.
enum Item<'a> {
    Line(GroupRef<'a>, u64, &'a [u8]),
    Beat(GroupRef<'a>, u64, i64),
    Plain(&'a [u8]),
}

/// The pass while it reads.
pub(crate) struct Scan {
    reader: Reader,
    /// A live run's catch-up: records written after the range's end are read by
    /// the reading proper but never seen here.
    live: bool,
    /// Whether a record or a partition end came since [`Scan::take_progress`].
    polled_any: bool,
    finder: Finder,
}

/// What a finished pass found: every stream of the range, by key.
pub(crate) type Discovered = BTreeMap<StreamKey, Found>;

/// What the pass needs to judge a record as the reading proper will.
pub(crate) struct FindCx<'a> {
    pub(crate) parser: &'a mut LineParser,
    pub(crate) plan: &'a Plan,
    pub(crate) source: &'a tidemark_jobs::Source,
    /// This machine's clock now (a line stamped past it plus `max_clock_skew` is
    /// refused as in the future).
    pub(crate) wall_ms: EventMs,
    pub(crate) now: Instant,
}

impl Scan {
    /// A pass over `reader`'s range (a finite reader, from [`Reader::scanner`]).
    pub(crate) fn new(reader: Reader, live: bool) -> Scan {
        Scan {
            reader,
            live,
            finder: Finder::default(),
            polled_any: false,
        }
    }

    /// Whether the brokers gave anything (a record, a partition end) since the last
    /// call: a pass whose brokers died must end a finite run (`broker_timeout`).
    pub(crate) fn take_progress(&mut self) -> bool {
        std::mem::take(&mut self.polled_any)
    }

    /// The pass's own reader (its client errors count for `broker_timeout`).
    pub(crate) fn reader(&self) -> &Reader {
        &self.reader
    }

    /// Reads up to `budget` records; once the range is read, every stream found.
    pub(crate) fn step(&mut self, budget: usize, mut cx: FindCx<'_>) -> Progress {
        let mut read = 0;
        while read < budget && !self.reader.finished() {
            let record = match self.reader.poll() {
                Polled::Nothing => break,
                Polled::Skip | Polled::Again { .. } => {
                    self.polled_any = true;
                    continue;
                }
                Polled::Error(e) => {
                    tracing::debug!("kafka source, discovery pass: {e}");
                    break;
                }
                Polled::Record(r) => r,
            };
            read += 1;
            self.polled_any = true;
            let headers: Vec<(&str, Option<&[u8]>)> = record.headers().collect();
            self.finder.record(
                record.partition(),
                record.offset(),
                &headers,
                record.payload(),
                record.append_time_ms(),
                &mut cx,
            );
        }
        if !self.reader.finished() {
            return if read == budget {
                Progress::Busy
            } else {
                Progress::Waiting
            };
        }
        let finder = std::mem::take(&mut self.finder);
        Progress::Done(if self.live {
            finder.finish_live(cx.plan)
        } else {
            finder.finish()
        })
    }
}

/// The streams found so far, each followed by its shadow until its earliest window
/// is known.
pub(crate) struct Finder {
    found: BTreeMap<StreamKey, Found>,
    /// `partition N`, the name of a partition's stream of other records, made once.
    partition_names: BTreeMap<i32, Box<str>>,
    /// Heartbeat warnings (the reading proper's to log).
    warned_ahead: u32,
    /// The shadows' counts (the reading proper counts for real).
    stats: JobStats,
    warned: u32,
}

impl Default for Finder {
    fn default() -> Self {
        Finder {
            found: BTreeMap::new(),
            partition_names: BTreeMap::new(),
            warned_ahead: u32::MAX / 2,
            stats: JobStats::default(),
            // Sequence warnings are the reading proper's to log.
            warned: u32::MAX / 2,
        }
    }
}

impl Finder {
    /// One record of partition `p` at `offset` (`append_ms`: the broker's append
    /// time, when the topic stamps records so).
    pub(crate) fn record(
        &mut self,
        p: i32,
        offset: i64,
        headers: &[(&str, Option<&[u8]>)],
        payload: &[u8],
        append_ms: Option<EventMs>,
        cx: &mut FindCx<'_>,
    ) {
        let Ok(decoded) = wire::decode(headers.iter().copied(), payload) else {
            return;
        };
        // The same stream names as `SourceState::take` (`super::streams`).
        let (host, group, item): (&str, &str, Item<'_>) = match decoded {
            AgentRecord::Line {
                group, seq, line, ..
            } => (group.host, group.group, Item::Line(group, seq, line)),
            AgentRecord::Heartbeat { group, seq, at_ms } => {
                (group.host, group.group, Item::Beat(group, seq, at_ms))
            }
            AgentRecord::Foreign { payload } => {
                if let HostFrom::Record { header } = &cx.source.host {
                    let value = headers.iter().rev().find(|(k, _)| *k == header.as_str());
                    let utf8 =
                        value.and_then(|(_, v)| std::str::from_utf8(v.unwrap_or_default()).ok());
                    if utf8.is_none() {
                        // Skipped by the reading proper: no stream.
                        return;
                    }
                }
                let name: &str = self
                    .partition_names
                    .entry(p)
                    .or_insert_with(|| format!("partition {p}").into());
                ("", name, Item::Plain(payload))
            }
        };
        let plan = cx.plan;
        let now = cx.now;
        let view = (host, group, p);
        if !self.found.contains_key(&view as &dyn KeyView) {
            self.found.insert(
                StreamKey::new(host, group, p),
                Found {
                    partition: p,
                    last: offset,
                    earliest: Earliest::Watching(Box::new(Stream::shadow(group, p, plan, now))),
                },
            );
        }
        let found = self
            .found
            .get_mut(&view as &dyn KeyView)
            .expect("found or inserted above");
        found.last = offset;
        let Earliest::Watching(shadow) = &mut found.earliest else {
            return;
        };
        let future_before = future_lines(&self.stats);
        let heartbeat_grace_ms = super::take::heartbeat_grace_ms(cx.source);
        let mut rcx = RecordCx {
            parser: cx.parser,
            plan,
            wall_ms: cx.wall_ms,
            max_line: cx.source.max_line_bytes,
            stats: &mut self.stats,
            warned: &mut self.warned,
            heartbeat_grace_ms,
            warned_ahead: &mut self.warned_ahead,
            append_ms,
        };
        match item {
            Item::Line(group, seq, line) => {
                let item = AgentItem::Line {
                    seq,
                    line,
                    host: group.host,
                };
                shadow.agent_record(offset, &group, item, &mut rcx);
            }
            Item::Beat(group, seq, at_ms) => {
                let item = AgentItem::Heartbeat { seq, at_ms };
                shadow.agent_record(offset, &group, item, &mut rcx);
            }
            Item::Plain(line) => shadow.plain_record(offset, line, "", &mut rcx),
        }
        if future_lines(&self.stats) != future_before {
            // Perhaps not in the future any more when read again: unknown.
            found.earliest = Earliest::Known(Some(WindowTime::MIN));
        } else if shadow.clock_started() {
            found.earliest = Earliest::Known(settled(shadow, plan));
        }
    }

    /// Every stream found, each shadow still following settled by what it has.
    pub(crate) fn finish(mut self) -> Discovered {
        for f in self.found.values_mut() {
            if let Earliest::Watching(shadow) = &f.earliest {
                // Every record of it was fed: its windows are the ones it has.
                f.earliest = Earliest::Known(shadow.first_data_window());
            }
        }
        self.found
    }
}

impl Finder {
    /// Every stream found by a live run's pass: a shadow still following was not
    /// given every record of its stream (more come after the range's end, with
    /// lines of any time its watermark allows), so only its watermark bounds it —
    /// and with none yet, where its lines start is unknown.
    pub(crate) fn finish_live(mut self, plan: &Plan) -> Discovered {
        for f in self.found.values_mut() {
            if let Earliest::Watching(shadow) = &f.earliest {
                f.earliest = Earliest::Known(match shadow.watermark() {
                    Some(_) => settled(shadow, plan),
                    None => Some(WindowTime::MIN),
                });
            }
        }
        self.found
    }
}

/// Where a pass is after a step.
pub(crate) enum Progress {
    /// More records are waiting.
    Busy,
    /// Waiting for the brokers.
    Waiting,
    /// The range is read: every stream in it.
    Done(Discovered),
}

/// The earliest window a shadow whose watermark started can still add to.
fn settled(shadow: &Stream, plan: &Plan) -> Option<WindowTime> {
    let wm = shadow.watermark_window(plan);
    Some(shadow.first_data_window().map_or(wm, |w| w.min(wm)))
}

fn future_lines(stats: &JobStats) -> u64 {
    stats
        .parse_errors
        .get("future_timestamp")
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
