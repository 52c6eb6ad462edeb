//! The discovery pass (a finite run's, or a live run's catch-up) as the source
//! operator drives it: opened before the reading proper, stepped until every stream
//! of the range is known ([`super::discover`]), and watched by `broker_timeout` like
//! the reading.

use std::time::{Duration, Instant};

use super::consumer::Reader;
use super::{discover, ScanPhase, SourceState, Step, POLL_AGAIN, RECORDS_PER_ACTIVATION};
use crate::time::wall_clock_ms;

impl SourceState {
    /// Opens the discovery pass over `reader`'s range (a live reader's: up to the
    /// ends its partitions had when it connected); the reader waits
    /// (paused) until it is done.
    pub(super) fn start_scan(&mut self, reader: &mut Reader, kafka: &tidemark_jobs::KafkaSource) {
        match reader.scanner(kafka, &self.ctx.job.name) {
            Ok(scan) => {
                reader.pace(|_| false);
                self.scan = ScanPhase::Running(Box::new(discover::Scan::new(scan, self.ctx.follow)));
            }
            Err(e) => tracing::warn!(
                "kafka source of job {:?}: cannot start the discovery pass ({e}): the backlog's windows close at its end",
                self.ctx.job.name
            ),
        }
    }

    /// A step of the discovery pass while it runs (`None` once it is done).
    pub(super) fn scan_step(&mut self, now: Instant) -> Option<Step> {
        // Out of `self` while it reads (`stalled` needs `self`).
        let mut scan = match std::mem::replace(&mut self.scan, ScanPhase::Off) {
            ScanPhase::Running(scan) => scan,
            other => {
                self.scan = other;
                return None;
            }
        };
        // Not read yet: it holds the job's other workers back meanwhile.
        self.ctx.pacer.horizon([crate::pacing::Lane::Reading(None)]);
        let cx = discover::FindCx {
            parser: self.parser.as_mut().expect("built in step"),
            plan: &self.ctx.plan,
            source: &self.ctx.job.source,
            wall_ms: wall_clock_ms(),
            now,
        };
        match scan.step(RECORDS_PER_ACTIVATION, cx) {
            discover::Progress::Busy => {
                self.quiet_since = None;
                self.scan = ScanPhase::Running(scan);
                Some(Step::Wait(Duration::ZERO))
            }
            // Brokers that die during the pass end a finite run as they would
            // during the reading proper (`broker_timeout`).
            discover::Progress::Waiting => {
                let gave = scan.take_progress();
                let failed = self.stalled(scan.reader(), gave, now);
                self.scan = ScanPhase::Running(scan);
                Some(failed.unwrap_or(Step::Wait(POLL_AGAIN)))
            }
            discover::Progress::Done(found) => {
                tracing::debug!(
                    "kafka source of job {:?}: worker {}: the discovery pass found {} stream(s)",
                    self.ctx.job.name,
                    self.index,
                    found.len()
                );
                self.quiet_since = None;
                self.scan = ScanPhase::Done(found);
                None
            }
        }
    }
}
