//! The evaluator's state in a checkpoint, and what tells whether it still fits
//! the job's alerts.
//!
//! Alerts do not change what a window holds, so they are not in the checkpoint's
//! semantics fingerprint: a job whose alerts changed resumes like any other. The
//! saved alert state is only meaningful for the alerts it was computed with,
//! though, so it carries a fingerprint of their definitions; when they differ the
//! resumed run starts its alerts fresh at the resume point and says so.

use serde::{Deserialize, Serialize};
use tidemark_jobs::alert::Alert;

use super::machine::{Instance, Phase};
use super::AlertEvaluator;
use crate::labels::Labels;
use crate::time::EventMs;

/// The alert evaluator's state after exactly the windows below the checkpoint's
/// frontier.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AlertsCheckpoint {
    /// Of the alert definitions (and window size) the state was computed with.
    pub fingerprint: String,
    /// End of the last window stepped (`None`: none yet).
    pub evaluated_below: Option<EventMs>,
    /// Every instance that is not idle, sorted by (alert, labels).
    pub instances: Vec<SavedInstance>,
}

/// One instance's state.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SavedInstance {
    /// The alert's name.
    pub alert: String,
    /// The instance's labels.
    pub labels: Labels,
    /// Where it is.
    pub phase: Phase,
    /// Its series' value in each of the last windows (as `f64::to_bits`, so a
    /// resumed moving average is bit for bit the one an uninterrupted run
    /// computes), oldest first.
    pub recent: Vec<Option<u64>>,
}

/// FNV-1a of what decides an alert's state: every definition but its annotations
/// (which only decide what is printed), and the window size.
pub fn fingerprint(alerts: &[Alert], window_ms: EventMs) -> String {
    let mut text = format!("window={window_ms}\n");
    for a in alerts {
        text.push_str(&format!(
            "{}\t{}\t{:?}\t{}\t{}\t{}\t{}\t{}\t{}\t{:?}\n",
            a.name,
            a.expr,
            a.origin,
            a.threshold.to_bits(),
            a.for_windows,
            a.keep_firing_windows,
            a.resolve_threshold.to_bits(),
            a.average_windows,
            a.op.as_str(),
            a.labels,
        ));
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl AlertEvaluator {
    /// Its state, for a checkpoint at the frontier it was advanced to.
    pub fn save(&self) -> AlertsCheckpoint {
        AlertsCheckpoint {
            fingerprint: self.fingerprint.clone(),
            evaluated_below: self.evaluated_below,
            instances: self
                .instances
                .iter()
                .map(|((i, labels), inst)| SavedInstance {
                    alert: self.alerts[*i].name.clone(),
                    labels: labels.clone(),
                    phase: inst.phase,
                    recent: inst.recent.iter().map(|v| v.map(f64::to_bits)).collect(),
                })
                .collect(),
        }
    }

    /// Continues from `saved`, the state of a checkpoint at `frontier_ms`. A
    /// state computed for other alert definitions is dropped (with a warning):
    /// the alerts start fresh at the frontier. `saved` is `None` for a
    /// checkpoint written before alerts existed or without them: fresh too.
    pub fn restore(&mut self, saved: Option<&AlertsCheckpoint>, frontier_ms: EventMs) {
        let fresh_at = |e: &mut AlertEvaluator| {
            e.instances.clear();
            // Windows below the frontier are not handed over again: gaps are
            // counted from it.
            e.evaluated_below = (frontier_ms != EventMs::MIN).then_some(frontier_ms);
        };
        let Some(saved) = saved else {
            fresh_at(self);
            return;
        };
        if saved.fingerprint != self.fingerprint {
            tracing::warn!(
                "the job's [[alert]] definitions (or its window size) changed since the checkpoint: alert state starts fresh at the resume point (no alert fires before its `for` holds again from there)"
            );
            fresh_at(self);
            return;
        }
        self.instances.clear();
        for s in &saved.instances {
            let Some(i) = self.alerts.iter().position(|a| a.name == s.alert) else {
                continue;
            };
            let span = self.alerts[i].average_windows.max(1) as usize;
            let mut recent: std::collections::VecDeque<Option<f64>> =
                s.recent.iter().map(|v| v.map(f64::from_bits)).collect();
            while recent.len() > span {
                recent.pop_front();
            }
            let inst = Instance {
                phase: s.phase,
                value: super::machine::compared(&recent),
                recent,
            };
            self.instances.insert((i, s.labels.clone()), inst);
        }
        self.evaluated_below = saved.evaluated_below;
    }
}
