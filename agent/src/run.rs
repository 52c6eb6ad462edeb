//! The agent's loop: discovery, reading within the in-flight bound, producing,
//! delivery reports, heartbeats and checkpoints, on one thread (librdkafka sends on
//! its own threads).
//!
//! Each turn: take the delivery reports (acknowledged lines advance their group's
//! checkpointable place), look for new groups and forget long-gone ones when due
//! (`run/prune.rs`), give a new epoch to groups whose files had a discontinuity
//! (`run/epoch.rs`), read the groups round-robin while fewer than `max_in_flight` lines
//! are in flight (a read stops at the line that fills the bound: the rest stays in
//! the file source's buffer, its position exact), send heartbeats for idle groups,
//! write the checkpoint once a second when it changed, then wait for reports or the
//! poll interval.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tidemark_kafka::partition_for;
use tidemark_kafka::wire::RecordHeaders;
use tidemark_sources::file::discover::{discover, discover_new};
use tidemark_sources::file::{AllowedRoots, EscapedPath};
use tidemark_sources::rate::RateLimiter;
use tidemark_sources::tail::{FileId, ReadStatus, TailOptions, Tailer};

use crate::error::AgentError;
use crate::group::Group;
use crate::producer::{Ack, Sender};
use crate::state::{Checkpoint, GroupCheckpoint, StateDir};
use crate::stats::Stats;
use crate::validate::Agent;
use epoch::send_line;

mod epoch;
mod prune;

/// How often the include globs are evaluated again.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(1);
/// How often the checkpoint is written (when it changed).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// How long a stop waits for the lines in flight to be acknowledged.
const STOP_FLUSH: Duration = Duration::from_secs(10);

/// How the agent ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stopped on request; every line read was acknowledged and checkpointed.
    Drained,
    /// Stopped on request with lines still in flight (the broker was away): they
    /// are sent again on the next start.
    InFlight(usize),
}

/// Ships the agent's files until `stop` is set. `stats` is what `/metrics` shows.
pub fn run(agent: &Agent, stop: &AtomicBool, stats: Arc<Stats>) -> Result<Outcome, AgentError> {
    let mut ship = Shipper::new(agent, stats)?;
    let result = ship.run(stop);
    // Whatever ended the loop, what the broker acknowledged is kept.
    let saved = ship.checkpoint(true);
    let outcome = result?;
    saved?;
    Ok(outcome)
}

impl<'a> Shipper<'a> {
    fn new(agent: &'a Agent, stats: Arc<Stats>) -> Result<Shipper<'a>, AgentError> {
        let state = StateDir::open(&agent.state_dir)?;
        let saved = state.load(&agent.host, &agent.topic)?;
        let sender = Sender::new(agent, stats.clone())?;
        Ok(Shipper {
            agent,
            sender,
            stats,
            state,
            saved,
            groups: Vec::new(),
            known: HashSet::new(),
            first_discovery: None,
            partitions: None,
            in_flight: 0,
            next: 0,
            rate: match agent.source.rate_limit {
                Some(r) => {
                    RateLimiter::new(r.max(1), r.max(1).max(agent.source.read_chunk_bytes as u64))
                }
                None => RateLimiter::unlimited(),
            },
            last_discovery: None,
            partitions_warned: None,
            last_checkpoint: Instant::now(),
            file_label: None,
        })
    }
}

struct Shipper<'a> {
    agent: &'a Agent,
    sender: Sender,
    stats: Arc<Stats>,
    state: StateDir,
    /// The checkpoint as last written.
    saved: Checkpoint,
    /// The groups by the index their records' delivery reports carry; a slot is
    /// emptied when its group is pruned (with nothing in flight) and reused.
    groups: Vec<Option<Group>>,
    known: HashSet<PathBuf>,
    /// When the globs were first evaluated (checkpoint entries no discovery has
    /// found since are pruned after `group_retention`).
    first_discovery: Option<Instant>,
    /// The topic's partition count, once the broker told it.
    partitions: Option<i32>,
    /// Records (lines and heartbeats) queued and not yet reported on.
    in_flight: usize,
    /// Round-robin start.
    next: usize,
    rate: RateLimiter,
    last_discovery: Option<Instant>,
    /// When the missing partition count was last warned about.
    partitions_warned: Option<Instant>,
    last_checkpoint: Instant,
    /// The `tm-file` value of the file last read (computed once per file).
    file_label: Option<(FileId, String)>,
}

impl Shipper<'_> {
    fn run(&mut self, stop: &AtomicBool) -> Result<Outcome, AgentError> {
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            self.take_reports(Duration::ZERO)?;
            if self
                .last_discovery
                .is_none_or(|t| now.duration_since(t) >= DISCOVERY_INTERVAL)
            {
                self.last_discovery = Some(now);
                self.discover()?;
                self.prune(now)?;
            }
            self.settle()?;
            let busy = self.read(now)?;
            self.settle()?;
            self.heartbeats(now)?;
            if now.duration_since(self.last_checkpoint) >= CHECKPOINT_INTERVAL {
                self.checkpoint(false)?;
            }
            let wait = idle_wait(
                busy,
                self.in_flight >= self.agent.max_in_flight || !self.sender.may_hand_over(now),
                self.rate.wait_hint(now),
                self.agent.source.poll_interval,
            );
            self.take_reports(wait)?;
        }
        // Give the lines in flight a chance to be acknowledged (and so not sent
        // again on the next start).
        let deadline = Instant::now() + STOP_FLUSH;
        while self.in_flight > 0 && Instant::now() < deadline {
            self.take_reports(Duration::from_millis(50))?;
        }
        Ok(if self.in_flight == 0 {
            Outcome::Drained
        } else {
            Outcome::InFlight(self.in_flight)
        })
    }

    /// Applies delivery reports, waiting up to `wait` for them.
    fn take_reports(&mut self, wait: Duration) -> Result<(), AgentError> {
        let mut acked = 0;
        for (ack, error) in self.sender.poll(wait) {
            self.in_flight -= 1;
            let Some(group) = self.groups.get_mut(ack.group).and_then(Option::as_mut) else {
                tracing::error!("a delivery report for a group that is gone (ignored)");
                continue;
            };
            if let Some(error) = error {
                Stats::add(&self.stats.delivery_errors, 1);
                if ack.seq == 0 {
                    group.heartbeat_in_flight = false;
                    tracing::warn!(
                        "{}: a heartbeat was refused: {error}",
                        EscapedPath(&group.live)
                    );
                    continue;
                }
                return Err(AgentError::Delivery {
                    group: group.ship.id.group.clone(),
                    seq: ack.seq,
                    error,
                });
            }
            if ack.seq == 0 {
                group.heartbeat_in_flight = false;
            } else if group.ack(ack.seq) {
                acked += 1;
            } else {
                tracing::error!(
                    "{}: a delivery report for line {} that is not in flight (ignored)",
                    EscapedPath(&group.live),
                    ack.seq
                );
            }
        }
        Stats::add(&self.stats.lines_acked, acked);
        Stats::set(&self.stats.in_flight, self.in_flight as u64);
        Ok(())
    }

    /// Takes the groups the globs find that are not known yet. A new group's epoch
    /// and partition are checkpointed before its first line is sent: an epoch drawn
    /// again after a crash would make a consumer take the resent lines as new.
    fn discover(&mut self) -> Result<(), AgentError> {
        let Some(partitions) = self.partitions.or_else(|| {
            let n = self.sender.partitions(Duration::from_secs(5));
            let now = Instant::now();
            let due = self
                .partitions_warned
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(30));
            if n.is_none() && due {
                self.partitions_warned = Some(now);
                tracing::warn!(
                    "topic {}: the brokers do not answer with its partitions yet; reading \
                     waits (hint: check brokers and that the topic exists)",
                    self.agent.topic
                );
            }
            n
        }) else {
            return Ok(());
        };
        self.partitions = Some(partitions);
        let src = &self.agent.source;
        let roots = AllowedRoots::any();
        self.first_discovery.get_or_insert_with(Instant::now);
        let found = if self.known.is_empty() {
            discover(&src.include, &src.exclude, &roots)?
        } else {
            discover_new(&src.include, &src.exclude, &roots, &self.known)?
        };
        let mut added = false;
        for g in found.groups {
            if !self.known.insert(g.live.clone()) {
                continue;
            }
            let settings = self.agent.numbering;
            let cp = match self.saved.groups.get(&g.live) {
                Some(cp) if cp.numbering.is_some_and(|n| n != settings) => {
                    // The lines after the checkpoint would be numbered otherwise
                    // than the copies the broker may hold: a new epoch (written
                    // below, before any line is sent).
                    let epoch = draw_epoch(Some(cp.epoch))?;
                    Stats::add(&self.stats.new_epochs, 1);
                    tracing::warn!(
                        "{}: [filter] or max_line_bytes changed since the checkpoint; the \
                         lines after line {} of epoch {:016x} are numbered in a new epoch \
                         {epoch:016x}, so that none is taken for another's copy (lines the \
                         broker already had after the checkpoint are sent again)",
                        EscapedPath(&g.live),
                        cp.seq,
                        cp.epoch,
                    );
                    GroupCheckpoint {
                        epoch,
                        seq: 0,
                        numbering: Some(settings),
                        ..cp.clone()
                    }
                }
                Some(cp) => cp.clone(),
                None => {
                    let epoch = draw_epoch(None)?;
                    let key = tidemark_kafka::GroupId {
                        host: self.agent.host.clone(),
                        group: g.live.to_string_lossy().into_owned(),
                        epoch,
                    }
                    .key();
                    GroupCheckpoint {
                        epoch,
                        partition: partition_for(&key, partitions),
                        seq: 0,
                        position: None,
                        numbering: Some(settings),
                    }
                }
            };
            tracing::info!(
                "shipping {} to partition {} from line {}",
                EscapedPath(&g.live),
                cp.partition,
                cp.seq + 1
            );
            let tailer = Tailer::new(g.live.clone(), self.tail_options(), cp.position.clone());
            let group = Group::new(g.live.clone(), &self.agent.host, &cp, settings, tailer);
            match self.groups.iter_mut().find(|slot| slot.is_none()) {
                Some(slot) => *slot = Some(group),
                None => self.groups.push(Some(group)),
            }
            added = true;
        }
        self.count_groups();
        if added {
            self.checkpoint(true)?;
        }
        Ok(())
    }

    fn tail_options(&self) -> TailOptions {
        let src = &self.agent.source;
        TailOptions {
            follow: true,
            max_line_bytes: src.max_line_bytes,
            fingerprint_bytes: src.fingerprint_bytes,
            unterminated_wait: src.rotated_tail_wait,
            fd_retry: src.poll_interval,
        }
    }

    /// Reads the groups round-robin while the in-flight bound and the rate limit
    /// allow; true if one has more to read right away.
    fn read(&mut self, now: Instant) -> Result<bool, AgentError> {
        let n = self.groups.len();
        let mut busy = false;
        let mut stopped_at = None;
        // Lines are handed over a produce request at a time (see `Sender::may_hand_over`).
        let hand_over = self.sender.may_hand_over(now);
        // Before any read of the turn: what each read finds at its end was written
        // by then (see `Group::read_at_ms`).
        let read_at_ms = wall_ms();
        for k in 0..n {
            let i = (self.next + k) % n;
            if !self.groups[i].as_ref().is_some_and(Group::reading) {
                continue;
            }
            let room = self.agent.max_in_flight.saturating_sub(self.in_flight);
            if room == 0 || !hand_over || self.sender.request_full(now) {
                Stats::add(&self.stats.in_flight_pauses, 1);
                stopped_at = Some(i);
                busy = false;
                break;
            }
            let budget = self
                .rate
                .allowance(now)
                .min(self.agent.source.read_chunk_bytes);
            if budget == 0 {
                stopped_at = Some(i);
                busy = false;
                break;
            }
            let (status, sent, bytes) = self.read_group(i, budget, room, now, read_at_ms);
            self.in_flight += sent;
            self.note_in_flight();
            self.rate.consume(bytes as usize);
            busy |= status? == ReadStatus::More;
        }
        // The next turn starts where this one stopped (no group starves while
        // reading pauses), or one further.
        self.next = match stopped_at {
            Some(i) => i,
            None if n > 0 => (self.next + 1) % n,
            None => 0,
        };
        Ok(busy)
    }

    /// One read of group `i`: at most `room` lines are sent. Returns how it ended
    /// (or why it could not send a line), the records queued and the bytes read.
    fn read_group(
        &mut self,
        i: usize,
        budget: usize,
        room: usize,
        now: Instant,
        read_at_ms: i64,
    ) -> (Result<ReadStatus, AgentError>, usize, u64) {
        let stop = std::cell::Cell::new(false);
        let (mut read, mut sent, mut filtered) = (0u64, 0usize, 0u64);
        let mut failed = None;
        let filter = &self.agent.filter;
        let sender = &self.sender;
        let file_label = &mut self.file_label;
        let Some(g) = self.groups[i].as_mut() else {
            return (Ok(ReadStatus::Idle), 0, 0);
        };
        let before = g.tailer.counters();
        let Group { tailer, ship, .. } = g;
        let status = tailer.read_some_until(budget, now, &stop, |meta, line| {
            read += 1;
            if !filter.is_empty() && !filter.keeps(line) {
                filtered += 1;
                return;
            }
            if !ship.continues(meta.discontinuities) {
                // After a discontinuity: this line waits for a new epoch, and
                // reading stops until it has one.
                ship.hold(meta.position, line, meta.discontinuities);
                stop.set(true);
                return;
            }
            if let Err(e) = send_line(sender, ship, i, meta.position, line, file_label) {
                failed = Some(e);
                stop.set(true);
                return;
            }
            sent += 1;
            if sent >= room || sender.request_full(now) {
                stop.set(true);
            }
        });
        g.status = status;
        g.read_at_ms = read_at_ms;
        g.ship
            .note_discontinuities(g.tailer.counters().discontinuities);
        if sent > 0 {
            g.last_sent = Some(now);
        }
        while let Some(e) = g.tailer.take_error() {
            tracing::warn!("{}: {e}", EscapedPath(&g.live));
        }
        let after = g.tailer.counters();
        let s = &self.stats;
        Stats::add(&s.lines_read, read);
        Stats::add(&s.lines_filtered, filtered);
        Stats::add(&s.lines_sent, sent as u64);
        Stats::add(
            &s.oversize_lines,
            after.oversize_lines - before.oversize_lines,
        );
        Stats::add(&s.rotations, after.rotations - before.rotations);
        Stats::add(&s.copytruncates, after.copytruncates - before.copytruncates);
        Stats::add(&s.truncations, after.truncations - before.truncations);
        Stats::add(&s.resume_misses, after.resume_misses - before.resume_misses);
        let bytes = after.bytes - before.bytes;
        Stats::add(&s.bytes_read, bytes);
        match failed {
            Some(e) => (Err(e), sent, bytes),
            None => (Ok(status), sent, bytes),
        }
    }

    /// A heartbeat for each group idle at its end with every line acknowledged,
    /// once per interval (and never two in flight).
    fn heartbeats(&mut self, now: Instant) -> Result<(), AgentError> {
        let every = self.agent.heartbeat_interval;
        for (i, slot) in self.groups.iter_mut().enumerate() {
            let Some(g) = slot else { continue };
            if self.in_flight >= self.agent.max_in_flight {
                // The bound holds heartbeats too: they wait with the lines.
                break;
            }
            // Stamped with the time of the read that found the group at its end,
            // not of sending: that read may be turns old.
            let Some(at_ms) = g.idle_at_ms() else {
                continue;
            };
            if g.heartbeat_in_flight || g.last_sent.is_some_and(|t| now.duration_since(t) < every) {
                continue;
            }
            let headers = RecordHeaders::Heartbeat {
                group: &g.ship.id,
                seq: g.ship.acked_seq(),
                at_ms,
            };
            self.sender.send(
                g.ship.partition,
                &g.ship.key,
                b"",
                headers,
                Ack { group: i, seq: 0 },
            )?;
            g.heartbeat_in_flight = true;
            g.last_sent = Some(now);
            self.in_flight += 1;
            Stats::add(&self.stats.heartbeats_sent, 1);
        }
        self.note_in_flight();
        Ok(())
    }

    fn note_in_flight(&self) {
        let in_flight = self.in_flight as u64;
        Stats::set(&self.stats.in_flight, in_flight);
        self.stats
            .in_flight_max
            .fetch_max(in_flight, Ordering::Relaxed);
    }

    /// Writes the checkpoint if it changed (or `force`d).
    fn checkpoint(&mut self, force: bool) -> Result<(), AgentError> {
        self.last_checkpoint = Instant::now();
        // A group with no place to give (its epoch broken past the last one
        // written), and groups not found this run (their files gone for now),
        // keep the place last written.
        let groups: BTreeMap<PathBuf, GroupCheckpoint> = self
            .groups
            .iter()
            .flatten()
            .filter_map(|g| Some((g.live.clone(), g.checkpoint()?)))
            .collect();
        let mut next = self.saved.clone();
        next.groups.extend(groups);
        if next != self.saved || force {
            self.state.save(&next)?;
            self.saved = next;
            Stats::add(&self.stats.checkpoints, 1);
            Stats::set(&self.stats.checkpoint_at_ms, wall_ms() as u64);
        }
        // What the groups gave is written (now or before).
        for g in self.groups.iter_mut().flatten() {
            g.saved();
        }
        Ok(())
    }

    fn count_groups(&self) {
        let n = self.groups.iter().flatten().count();
        Stats::set(&self.stats.groups, n as u64);
    }
}

/// A new epoch, never `old`.
fn draw_epoch(old: Option<u64>) -> Result<u64, AgentError> {
    loop {
        let epoch = getrandom::u64().map_err(|e| AgentError::Random(e.to_string()))?;
        if Some(epoch) != old {
            return Ok(epoch);
        }
    }
}

/// How long a turn waits for delivery reports before reading again: not at all while a
/// group has more to read; a little while reading is paused at the in-flight bound
/// (reports free room); until the rate limit allows a byte again when it is what stopped
/// reading (a non-zero hint); else — every group at its end — one `poll_interval`, as the
/// file source polls. A zero hint (unlimited, or tokens left) is not a reason to wake
/// early: waking every millisecond at the end of the files cost the agent most of its CPU.
fn idle_wait(busy: bool, paused: bool, rate_hint: Duration, poll_interval: Duration) -> Duration {
    if busy {
        Duration::ZERO
    } else if paused {
        Duration::from_millis(20)
    } else if rate_hint > Duration::ZERO {
        poll_interval.min(rate_hint)
    } else {
        poll_interval
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests;
