//! Event-time pacing of a kafka source's partitions (the file source's pacing,
//! [`crate::pacing`], with partitions as lanes) and the windows a finite run may
//! close while it reads, both from what the discovery pass ([`super::discover`])
//! found.
//!
//! Streams within one partition are interleaved, so they cannot be paced apart: a
//! partition's position is its slowest stream's watermark — counting the streams
//! not read yet at the earliest window their lines can add to. A partition more
//! than the bound ahead of the slowest partition (of every worker of the job in
//! this process, through the job's [`crate::pacing::PaceBoard`]) is paused with
//! librdkafka's `pause`, and resumed once the others caught up; the slowest always
//! reads, so nothing deadlocks. A partition read through ([`read_through`]: a live
//! run's, past the end it had at connect) holds no one back, and a live one is
//! never paused: every paused partition is short of its backlog's end, and the
//! slowest reads to it, so a live catch-up ends.
//! Pacing only decides the order of reading: each stream keeps its own watermark.

use std::collections::BTreeMap;

use crate::pacing::{Lane, Pacer};
use crate::plan::Plan;
use crate::time::{EventMs, WindowTime};

use super::consumer::Reader;
use super::discover::{Discovered, Found};
use super::streams::{StreamKey, Streams};

/// Each of `reader`'s partitions with whether it was read through: a finite run's
/// up to the end it had at start; a live run's (`follow`) up to the end it had when
/// the reader connected, once — from there on its records are live, written after
/// the backlog: it is read on and holds no other partition back, as after the
/// catch-up. Review R16l: a live partition counted as read through only while at
/// its end, so one never at its end (other hosts' records keep coming) held by a
/// stale stream (a dead agent's, no heartbeat, so never idle there) stayed the
/// slowest lane, the partitions past it plus the bound stayed paused short of their
/// backlog's end, and the catch-up never ended.
pub(crate) fn read_through(reader: &Reader, follow: bool) -> Vec<(i32, bool)> {
    reader
        .partitions()
        .map(|p| {
            let done = if follow {
                reader.reached_end(p)
            } else {
                reader.partition_done(p)
            };
            (p, done)
        })
        .collect()
}

/// Where each partition (with whether it was read through, [`read_through`]) stands
/// for pacing.
pub(crate) fn lanes(
    partitions: impl IntoIterator<Item = (i32, bool)>,
    streams: &Streams,
    found: &Discovered,
) -> BTreeMap<i32, Lane> {
    let partitions: BTreeMap<i32, bool> = partitions.into_iter().collect();
    // `None` (no line yet) sorts first: the furthest behind.
    let mut slowest: BTreeMap<i32, Option<Option<EventMs>>> =
        partitions.keys().map(|&p| (p, None)).collect();
    let mut hold = |p: i32, wm: Option<EventMs>| {
        if let Some(s) = slowest.get_mut(&p) {
            *s = Some(match *s {
                Some(prev) => prev.min(wm),
                None => wm,
            });
        }
    };
    for (key, s) in streams.iter().filter(|(_, s)| !s.is_finished()) {
        if let Some(at) = s.paced_at(pass_bound(found, streams, key)) {
            hold(s.partition, at);
        }
    }
    for f in unread(streams, found) {
        if let Some(w) = f.earliest() {
            hold(f.partition, (w != WindowTime::MIN).then_some(w as EventMs));
        }
    }
    slowest
        .into_iter()
        .map(|(p, wm)| {
            let lane = if partitions.get(&p) == Some(&true) {
                Lane::Quiet
            } else {
                // No stream holding it (none found yet, or only records that make
                // none): read it, as the furthest behind.
                Lane::Reading(wm.flatten())
            };
            (p, lane)
        })
        .collect()
}

/// Publishes this worker's slowest partition and pauses the partitions past the
/// horizon, resuming the others. Returns how many were paused now. `live`: a live
/// run catching up.
pub(crate) fn pace(
    reader: &mut Reader,
    lanes: &BTreeMap<i32, Lane>,
    pacer: &Pacer,
    live: bool,
) -> u64 {
    let horizon = pacer.horizon(lanes.values().copied());
    reader.pace(|p| match lanes.get(&p) {
        Some(Lane::Reading(wm)) => horizon.allows(*wm),
        // Read through: a finite run's has nothing more to fetch. A live one's is
        // read on: paused, its new records would wait unread while its streams
        // look idle (`idle_timeout` would make their lines late).
        Some(Lane::Quiet) => live,
        None => false,
    })
}

/// Finishes the streams whose last record (as the pass found) has been read (by
/// `next_offset`, each partition's next offset to read), and
/// those the pass did not find at all (restored, with no record left in the range).
pub(crate) fn finish_read(
    next_offset: impl Fn(i32) -> Option<i64>,
    streams: &mut Streams,
    found: &Discovered,
) {
    for (key, s) in streams.iter_mut().filter(|(_, s)| !s.is_finished()) {
        let read = match found.get(key) {
            Some(f) => next_offset(f.partition).is_some_and(|n| n > f.last),
            None => true,
        };
        if read {
            s.finish();
        }
    }
}

/// The first window a finite run may still add to: the earliest among the streams
/// still reading and those not read yet. `None` when no stream holds any window.
pub(crate) fn first_open(streams: &Streams, found: &Discovered, plan: &Plan) -> Option<WindowTime> {
    let read = streams
        .iter()
        .map(|(key, s)| s.bounded_by(plan, pass_bound(found, streams, key)));
    let unread = unread(streams, found).filter_map(|f| f.earliest());
    read.chain(unread).min()
}

/// The streams the pass found that are not read yet: neither here nor forgotten
/// after they were read (`stream_retention` during a live catch-up).
fn unread<'a>(streams: &'a Streams, found: &'a Discovered) -> impl Iterator<Item = &'a Found> {
    found
        .iter()
        .filter(|(k, _)| !streams.contains_key(k) && !streams.forgot(k))
        .map(|(_, f)| f)
}

/// The earliest window the pass found for the stream `key` (`None`: not found, or
/// forgotten since: a stream made again after it was forgotten starts from records
/// past the pass's range, of which the pass knows nothing; [`WindowTime::MAX`]: it
/// has no line).
fn pass_bound(found: &Discovered, streams: &Streams, key: &StreamKey) -> Option<WindowTime> {
    if streams.forgot(key) {
        return None;
    }
    found
        .get(key)
        .map(|f| f.earliest().unwrap_or(WindowTime::MAX))
}

#[cfg(test)]
mod tests;
