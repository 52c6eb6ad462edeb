//! The sink interface: where a job's closed windows go, and the half of the commit
//! protocol a sink takes part in (docs/design.md, *8. Sinks*; docs/output.md).
//!
//! Every sink — the `jsonl` file, the `stdout` table, the Prometheus
//! remote-write and the Alertmanager sinks of the `tidemark-sinks` crate, and
//! the coming Kafka sink — implements [`Sink`]. A job's sinks are one [`Sinks`] fan-out, which worker 0's
//! collector (`operators::collect`) and the committer (`commit`) call directly.
//!
//! # What the engine guarantees a sink
//!
//! - Windows arrive in ascending order of their start, on one thread (worker 0),
//!   each closed window that has records once per run, its records sorted by
//!   (record, labels). A window is handed to every sink of the job before the
//!   next one is handed to any.
//! - [`Sink::sync`] is called before every checkpoint, and the commit points the
//!   sinks report right after it are recorded in that checkpoint only once every
//!   sink's `sync` returned Ok. A checkpoint therefore never claims a window a sink
//!   has not made durable.
//! - On restart the engine resumes from the last checkpoint: windows at or after
//!   its frontier are computed again, identically (the semantics are
//!   deterministic), and handed over again, in order. Windows before it are not.
//! - The sinks are opened with the start mode ([`crate::OutputStart`]); on
//!   [`crate::OutputStart::Resume`] it carries the commit points of the checkpoint,
//!   and each sink rolls back to its own before it receives a window.
//! - After an error from any sink the job fails: no window is handed over again in
//!   this run, and the next run resumes from the last checkpoint.
//! - A window is handed over only while every sink is [`Sink::ready`], and a
//!   non-forced [`Sink::sync`] only once every sink is [`Sink::settled`]: worker
//!   0 never waits on a sink (in a cluster it runs every job and the commands).
//!   Only the sync of a stop, and [`Sink::finish`], may be called otherwise.
//!
//! # How a sink keeps the results exact
//!
//! The output must hold every window exactly once, whatever crash came between
//! writing and committing. Windows after the last commit point may have been
//! delivered before the crash and are delivered again after it, so a sink needs
//! one of:
//!
//! - **Roll back.** A sink that can undo what it wrote (a file: cut it back to its
//!   length at the commit point) reports a [`SinkCommit`] from
//!   [`Sink::commit_point`] and rolls back to it when opened on a resume. This is
//!   what the `jsonl` sink does; the commit point names the file by identity and
//!   checksum so that only its own output is ever cut.
//! - **Idempotent writes.** A sink that cannot take back what it sent (HTTP,
//!   Kafka) writes each record keyed by window and series — (record, labels,
//!   window start) — so that writing a window again replaces the first copy
//!   instead of adding to it: a remote-write sample with the window's timestamp,
//!   a Kafka record whose key is the series and window on a compacted topic, an
//!   alert whose identity is its labels. Its commit point is `None`.
//! - **Read back.** A sink whose destination can say what it holds records the
//!   frontier [`Sink::sync`] is given with the data, reads it back when opened,
//!   and skips the windows below it.
//!
//! A sink that sends in batches buffers in [`Sink::write_window`] and sends in
//! [`Sink::sync`]: windows are handed over one at a time, and `sync` is the point
//! at which everything handed over must be durable.
//!
//! # Example
//!
//! A tiny in-memory sink, and a fan-out that names it when it fails:
//!
//! ```
//! use tidemark_engine::sink::{BoxError, Sink, Sinks};
//! use tidemark_engine::ClosedWindow;
//!
//! /// Keeps the start of every window it received; full after `cap` windows.
//! struct Memory {
//!     starts: Vec<i64>,
//!     cap: usize,
//! }
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("memory sink full after {0} windows")]
//! struct Full(usize);
//!
//! impl Sink for Memory {
//!     fn describe(&self) -> String {
//!         "memory".to_string()
//!     }
//!     fn write_window(&mut self, w: &ClosedWindow) -> Result<(), BoxError> {
//!         if self.starts.len() == self.cap {
//!             return Err(Full(self.cap).into());
//!         }
//!         self.starts.push(w.start_ms);
//!         Ok(())
//!     }
//! }
//!
//! let window = |start_ms| ClosedWindow { start_ms, end_ms: start_ms + 60_000, series: vec![] };
//! let mut sinks = Sinks::new(vec![Box::new(Memory { starts: vec![], cap: 1 })]);
//! sinks.write_window(&window(0)).unwrap();
//! let err = sinks.write_window(&window(60_000)).unwrap_err();
//! assert_eq!(err.sink, "memory");
//! assert!(err.source.downcast_ref::<Full>().is_some());
//! // Nothing to roll back to: this sink's results are exact only within one run.
//! assert!(sinks.sync(120_000).unwrap().is_empty());
//! ```

use std::error::Error;

use thiserror::Error;

use crate::alert_event::AlertUpdate;
use crate::checkpoint::SinkCommit;
use crate::series::ClosedWindow;
use crate::stats::sink::SinkMeter;
use crate::stats::SinkMeters;
use crate::time::EventMs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A sink's own error, typed by the sink and kept whole: callers that need to tell
/// one failure from another downcast it (e.g. a file to move from a full disk).
/// Boxed because each sink has its own error type, and a job's sinks are called
/// through one list.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// Where a job's closed windows go. See the [module documentation](self) for what
/// the engine guarantees an implementation and what it must do to keep the
/// results exact across restarts.
pub trait Sink: Send {
    /// What this sink is, for logs, errors and stats: its kind and destination,
    /// e.g. `jsonl out/nginx.jsonl`.
    fn describe(&self) -> String;

    /// Receives one closed window. An error fails the job; the window may have
    /// been written in part, and nothing more is handed over in this run.
    fn write_window(&mut self, window: &ClosedWindow) -> Result<(), BoxError>;

    /// Makes everything written so far durable (for a file, fdatasync), so that
    /// a checkpoint written afterwards never points past the output. The windows
    /// handed over so far are exactly those that start before `frontier_ms`, the
    /// frontier of that checkpoint: a sink that reads back what it committed on
    /// restart records it here. Sinks with nothing to make durable (standard
    /// output) keep this default.
    fn sync(&mut self, frontier_ms: EventMs) -> Result<(), BoxError> {
        let _ = frontier_ms;
        Ok(())
    }

    /// Where this sink rolls back to on restart, valid right after
    /// [`Sink::sync`] returned Ok: recorded in the checkpoint written then, and
    /// handed back to the sink's opener on a resume. `None` for a sink that
    /// cannot roll back (it must write idempotently, or read back, instead).
    fn commit_point(&self) -> Option<SinkCommit> {
        None
    }

    /// Called once when the job's input is complete and every window was handed
    /// over (not after a failure or a stop): flush and make it all durable. With
    /// checkpoints on, a last [`Sink::sync`] at the final frontier comes first.
    /// Not a frontier itself: a live job's files may grow, and a later run
    /// continues from the last checkpoint, not from "everything".
    fn finish(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// Receives what the job's alerts (`[[alert]]`) say after a window closed,
    /// right after [`Sink::write_window`] got that window; only for jobs with
    /// alerts, once per closed window. Sinks that do not carry alerts keep this
    /// default and ignore it.
    fn write_alerts(&mut self, update: &AlertUpdate) -> Result<(), BoxError> {
        let _ = update;
        Ok(())
    }

    /// The sink's own live counters, for a sink that has more to report than
    /// the windows and records it was handed (which the fan-out counts for
    /// every sink): batches, retries, a queue. Called once, when the fan-out
    /// takes the sink.
    fn meter(&self) -> Option<Arc<SinkMeter>> {
        None
    }

    /// Whether the sink can take another window now without blocking the
    /// calling thread. Worker 0 runs the collectors of every job of a cluster
    /// member and applies its commands, so it never waits on a sink: while this
    /// is false the collector keeps the closed windows pending and comes back
    /// later. A sink with a bounded queue says false while it is full.
    fn ready(&self) -> bool {
        true
    }

    /// Whether everything handed over so far is acknowledged, so that
    /// [`Sink::sync`] would return at once. A checkpoint that falls due while a
    /// sink is not settled waits (without blocking), and no further window is
    /// handed over meanwhile, so that the checkpoint is not starved under a
    /// continuous stream. Only the forced syncs (a stop, the end of input) call
    /// [`Sink::sync`] on an unsettled sink.
    fn settled(&self) -> bool {
        true
    }

    /// Hands the sink the job's stop flag, once, right after it opened. A sink
    /// that may block (a sender retrying a down receiver, which back-pressures
    /// [`Sink::sync`] and [`Sink::write_window`]) gives up when it is set, and
    /// fails the step it blocks in, so that a stopping job never hangs; nothing
    /// is committed then, and the next run resends. Others keep this default.
    fn watch_stop(&mut self, stop: Arc<AtomicBool>) {
        let _ = stop;
    }
}

/// What a sink was doing when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkStep {
    /// Writing a window.
    Write {
        /// The window's start (event time, ms since the Unix epoch).
        start_ms: i64,
    },
    /// [`Sink::write_alerts`], after the window ending at `end_ms`.
    Alerts {
        /// The evaluated window's end (event time, ms since the Unix epoch).
        end_ms: i64,
    },
    /// [`Sink::sync`], before a checkpoint.
    Sync,
    /// [`Sink::finish`], at the end of input.
    Finish,
}

impl std::fmt::Display for SinkStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkStep::Write { start_ms } => match jiff::Timestamp::from_millisecond(*start_ms) {
                Ok(t) => write!(f, "writing the window of {t} to"),
                Err(_) => write!(f, "writing the window of {start_ms} ms to"),
            },
            SinkStep::Alerts { end_ms } => match jiff::Timestamp::from_millisecond(*end_ms) {
                Ok(t) => write!(f, "sending the alerts of the window ending {t} to"),
                Err(_) => write!(f, "sending the alerts of the window ending {end_ms} ms to"),
            },
            SinkStep::Sync => f.write_str("syncing"),
            SinkStep::Finish => f.write_str("finishing"),
        }
    }
}

/// One of a job's sinks failed: which one ([`Sink::describe`]), doing what, and
/// its own error.
#[derive(Debug, Error)]
#[error("{step} the sink {sink} failed")]
pub struct SinkFailure {
    /// The failing sink, as [`Sink::describe`] says.
    pub sink: String,
    /// What it was doing.
    pub step: SinkStep,
    /// The sink's own error.
    pub source: BoxError,
}

/// A job's sinks, in the order of its job file: every window goes to each.
#[derive(Default)]
pub struct Sinks {
    list: Vec<Box<dyn Sink>>,
    /// One per sink, same order: the sink's own ([`Sink::meter`]) or a plain one.
    meters: Vec<Arc<SinkMeter>>,
}

impl Sinks {
    /// The sinks `list`, called in that order.
    pub fn new(list: Vec<Box<dyn Sink>>) -> Sinks {
        let mut sinks = Sinks::default();
        for s in list {
            sinks.push(s);
        }
        sinks
    }

    /// Adds a sink after the others: it gets each window once they all took it.
    pub fn push(&mut self, sink: Box<dyn Sink>) {
        let meter = sink
            .meter()
            .unwrap_or_else(|| Arc::new(SinkMeter::default()));
        meter.set_name(sink.describe());
        self.meters.push(meter);
        self.list.push(sink);
    }

    /// Hands every sink the job's stop flag ([`Sink::watch_stop`]).
    pub fn watch_stop(&mut self, stop: &Arc<AtomicBool>) {
        for s in &mut self.list {
            s.watch_stop(stop.clone());
        }
    }

    /// Every sink's live counters, in order.
    pub fn meters(&self) -> SinkMeters {
        SinkMeters(self.meters.clone())
    }

    /// How many sinks there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there is no sink (windows are computed and dropped).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// What each sink is ([`Sink::describe`]), in order.
    pub fn describe(&self) -> Vec<String> {
        self.list.iter().map(|s| s.describe()).collect()
    }

    /// Whether every sink can take another window without blocking ([`Sink::ready`]).
    pub fn ready(&self) -> bool {
        self.list.iter().all(|s| s.ready())
    }

    /// Whether every sink acknowledged all it was handed ([`Sink::settled`]).
    pub fn settled(&self) -> bool {
        self.list.iter().all(|s| s.settled())
    }

    /// Hands `window` to every sink, stopping at the first that fails.
    pub fn write_window(&mut self, window: &ClosedWindow) -> Result<(), SinkFailure> {
        let step = SinkStep::Write {
            start_ms: window.start_ms,
        };
        for (s, m) in self.list.iter_mut().zip(&self.meters) {
            m.windows.fetch_add(1, Ordering::Relaxed);
            m.records
                .fetch_add(window.series.len() as u64, Ordering::Relaxed);
            s.write_window(window)
                .map_err(|e| failure(s.as_ref(), step, e))?;
        }
        Ok(())
    }

    /// Hands the alerts' `update` to every sink, stopping at the first that fails.
    pub fn write_alerts(&mut self, update: &AlertUpdate) -> Result<(), SinkFailure> {
        let step = SinkStep::Alerts {
            end_ms: update.end_ms,
        };
        for s in &mut self.list {
            s.write_alerts(update)
                .map_err(|e| failure(s.as_ref(), step, e))?;
        }
        Ok(())
    }

    /// Syncs every sink for a checkpoint at `frontier_ms`, then returns the commit
    /// points of those that have one: what that checkpoint records (only if
    /// every sync succeeded).
    pub fn sync(&mut self, frontier_ms: EventMs) -> Result<Vec<SinkCommit>, SinkFailure> {
        for s in &mut self.list {
            s.sync(frontier_ms)
                .map_err(|e| failure(s.as_ref(), SinkStep::Sync, e))?;
        }
        Ok(self.list.iter().filter_map(|s| s.commit_point()).collect())
    }

    /// Finishes every sink ([`Sink::finish`]).
    pub fn finish(&mut self) -> Result<(), SinkFailure> {
        for s in &mut self.list {
            s.finish()
                .map_err(|e| failure(s.as_ref(), SinkStep::Finish, e))?;
        }
        Ok(())
    }
}

impl From<Vec<Box<dyn Sink>>> for Sinks {
    fn from(list: Vec<Box<dyn Sink>>) -> Sinks {
        Sinks::new(list)
    }
}

fn failure(sink: &dyn Sink, step: SinkStep, source: BoxError) -> SinkFailure {
    SinkFailure {
        sink: sink.describe(),
        step,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::FileIdentity;

    /// Records what it received; fails the step it is told to.
    #[derive(Default)]
    struct Fake {
        name: &'static str,
        fail: Option<&'static str>,
        /// (device, inode) for its commit point; `None`: it cannot roll back.
        file: Option<u64>,
        written: Vec<i64>,
        /// (name, frontier) of each sync, shared by the test's sinks.
        synced: std::sync::Arc<std::sync::Mutex<Vec<(&'static str, i64)>>>,
    }

    #[derive(Debug, Error)]
    #[error("{0} refused")]
    struct Refused(&'static str);

    impl Sink for Fake {
        fn describe(&self) -> String {
            self.name.to_string()
        }
        fn write_window(&mut self, w: &ClosedWindow) -> Result<(), BoxError> {
            if self.fail == Some("write") {
                return Err(Refused("write").into());
            }
            self.written.push(w.start_ms);
            Ok(())
        }
        fn sync(&mut self, frontier_ms: EventMs) -> Result<(), BoxError> {
            if self.fail == Some("sync") {
                return Err(Refused("sync").into());
            }
            self.synced.lock().unwrap().push((self.name, frontier_ms));
            Ok(())
        }
        fn finish(&mut self) -> Result<(), BoxError> {
            if self.fail == Some("finish") {
                return Err(Refused("finish").into());
            }
            Ok(())
        }
        fn commit_point(&self) -> Option<SinkCommit> {
            self.file.map(|ino| SinkCommit {
                path: format!("/out/{}", self.name).into(),
                committed_len: self.written.len() as u64,
                file: Some(FileIdentity { dev: 1, ino }),
                tail: None,
            })
        }
    }

    fn window(start_ms: i64) -> ClosedWindow {
        ClosedWindow {
            start_ms,
            end_ms: start_ms + 60_000,
            series: Vec::new(),
        }
    }

    #[test]
    fn a_failing_second_sink_is_named_with_its_own_error() {
        let mut sinks = Sinks::new(vec![
            Box::new(Fake {
                name: "first",
                ..Fake::default()
            }),
            Box::new(Fake {
                name: "second",
                fail: Some("write"),
                ..Fake::default()
            }),
        ]);
        let err = sinks.write_window(&window(120_000)).unwrap_err();
        assert_eq!(err.sink, "second");
        assert_eq!(err.step, SinkStep::Write { start_ms: 120_000 });
        let own = err
            .source
            .downcast_ref::<Refused>()
            .expect("the sink's own error");
        assert_eq!(own.0, "write");
        let text = crate::error::full_message(&err);
        assert!(text.contains("the sink second failed"), "{text}");
        assert!(text.contains("1970-01-01T00:02:00Z"), "{text}");
        assert!(text.contains("write refused"), "{text}");
    }

    #[test]
    fn commit_points_of_every_sink_that_has_one_are_returned_after_all_synced() {
        let synced = std::sync::Arc::default();
        let mut sinks = Sinks::new(vec![
            Box::new(Fake {
                name: "a",
                file: Some(10),
                synced: std::sync::Arc::clone(&synced),
                ..Fake::default()
            }),
            Box::new(Fake {
                name: "table",
                synced: std::sync::Arc::clone(&synced),
                ..Fake::default()
            }),
            Box::new(Fake {
                name: "b",
                file: Some(20),
                synced: std::sync::Arc::clone(&synced),
                ..Fake::default()
            }),
        ]);
        sinks.write_window(&window(0)).unwrap();
        sinks.write_window(&window(60_000)).unwrap();
        let commits = sinks.sync(120_000).unwrap();
        let ids: Vec<_> = commits.iter().map(|c| (c.file, c.committed_len)).collect();
        assert_eq!(
            ids,
            vec![
                (Some(FileIdentity { dev: 1, ino: 10 }), 2),
                (Some(FileIdentity { dev: 1, ino: 20 }), 2)
            ]
        );
        assert_eq!(sinks.describe(), vec!["a", "table", "b"]);
        let counted: Vec<_> = sinks
            .meters()
            .snapshot()
            .into_iter()
            .map(|m| (m.name, m.windows))
            .collect();
        assert_eq!(
            counted,
            vec![("a".into(), 2), ("table".into(), 2), ("b".into(), 2)]
        );
        // Each sink was told the frontier of the checkpoint it syncs for.
        assert_eq!(
            *synced.lock().unwrap(),
            vec![("a", 120_000), ("table", 120_000), ("b", 120_000)]
        );
    }

    #[test]
    fn no_commit_points_when_a_sink_fails_to_sync() {
        let mut sinks = Sinks::new(vec![
            Box::new(Fake {
                name: "a",
                file: Some(10),
                ..Fake::default()
            }),
            Box::new(Fake {
                name: "b",
                file: Some(20),
                fail: Some("sync"),
                ..Fake::default()
            }),
        ]);
        let err = sinks.sync(60_000).unwrap_err();
        assert_eq!((err.sink.as_str(), err.step), ("b", SinkStep::Sync));
        assert!(err.source.downcast_ref::<Refused>().is_some());
        let mut sinks = Sinks::new(vec![Box::new(Fake {
            name: "c",
            fail: Some("finish"),
            ..Fake::default()
        })]);
        let err = sinks.finish().unwrap_err();
        assert_eq!((err.sink.as_str(), err.step), ("c", SinkStep::Finish));
    }
}
