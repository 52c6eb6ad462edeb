//! The evaluator's state in a checkpoint, and what tells whether it still fits
//! the job's alerts.
//!
//! Alerts do not change what a window holds, so they are not in the checkpoint's
//! semantics fingerprint: a job whose alerts changed resumes like any other. The
//! saved state of an alert is only meaningful for the definition it was computed
//! with, though, so each alert's is kept with a fingerprint of that definition,
//! by name. On resume an alert whose fingerprint matches continues; one that
//! changed (or is new) starts fresh at the resume point, and says so. Instances
//! of a changed or removed alert that were firing are resolved in the first
//! window the resumed run steps: a receiver never sees `firing` twice without a
//! `resolved` between.

use std::collections::BTreeMap;

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
    /// Of each alert's definition (and the window size) its state was computed
    /// with, by alert name. Empty in a checkpoint of an older release, whose
    /// alerts then all start fresh.
    #[serde(default)]
    pub fingerprints: BTreeMap<String, String>,
    /// End of the last window stepped (`None`: none yet).
    pub evaluated_below: Option<EventMs>,
    /// Every instance that is not idle, sorted by (alert, labels).
    pub instances: Vec<SavedInstance>,
    /// Instances that fired under a definition that is gone, still to be
    /// written as resolved (a crash between the resume and that window must not
    /// lose them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to_resolve: Vec<Dropped>,
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
    /// Its series' value in each of the last windows, oldest first, with runs
    /// of windows without one collapsed ([`Slot`]).
    pub recent: Vec<Slot>,
}

/// An entry of an instance's saved values: compact, since an instance with a
/// long `average_over` on a sparse series is mostly absent windows.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(untagged)]
pub enum Slot {
    /// A window's value, as `f64::to_bits` (so a resumed moving average is bit
    /// for bit the one an uninterrupted run computes; JSON has no NaN).
    Value(u64),
    /// `-n`: `n` consecutive windows without a value.
    Gap(i64),
    /// `null`: one window without a value (checkpoints of an older release).
    Absent(()),
}

/// `recent` as saved: each value, and each run of absent windows as one entry.
pub fn encode(recent: &std::collections::VecDeque<Option<f64>>) -> Vec<Slot> {
    let mut out = Vec::new();
    for v in recent {
        match (v, out.last_mut()) {
            (Some(v), _) => out.push(Slot::Value(v.to_bits())),
            (None, Some(Slot::Gap(n))) => *n -= 1,
            (None, _) => out.push(Slot::Gap(-1)),
        }
    }
    out
}

/// The values [`encode`] saved, the last `span` of them at most (whatever a
/// damaged checkpoint claims, nothing larger is built).
pub fn decode(saved: &[Slot], span: usize) -> std::collections::VecDeque<Option<f64>> {
    let mut out = std::collections::VecDeque::with_capacity(span.min(saved.len()));
    let push = |v: Option<f64>, out: &mut std::collections::VecDeque<Option<f64>>| {
        out.push_back(v);
        if out.len() > span {
            out.pop_front();
        }
    };
    for slot in saved {
        match *slot {
            Slot::Value(bits) => push(Some(f64::from_bits(bits)), &mut out),
            Slot::Gap(n) => {
                let n = usize::try_from(n.unsigned_abs())
                    .unwrap_or(usize::MAX)
                    .min(span);
                for _ in 0..n {
                    push(None, &mut out);
                }
            }
            Slot::Absent(()) => push(None, &mut out),
        }
    }
    out
}

/// A firing instance whose alert changed or was removed: resolved at the first
/// window the resumed run steps.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Dropped {
    /// The alert's name.
    pub alert: String,
    /// The instance's labels.
    pub labels: Labels,
    /// End of the window in which it started firing.
    pub since_ms: EventMs,
}

/// FNV-1a of what decides one alert's state, from its parsed fields: record,
/// origin, matchers, comparison, thresholds, windows, labels, and the window
/// size. Not its name (the key it is kept by), not how the expression was
/// spelled, not the annotations (which only decide what is printed), not where
/// it is in the job.
pub fn fingerprint(alert: &Alert, window_ms: EventMs) -> String {
    let mut text = format!(
        "window={window_ms}\n{}\n{:?}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        alert.record,
        alert.origin,
        alert.op.as_str(),
        alert.threshold.to_bits(),
        alert.resolve_threshold.to_bits(),
        alert.for_windows,
        alert.keep_firing_windows,
        alert.average_windows,
    );
    // Matchers all hold at once: their order does not matter.
    let mut matchers: Vec<_> = alert
        .matchers
        .iter()
        .map(|m| format!("{:?} {:?} {:?}", m.label, m.op, m.value))
        .collect();
    matchers.sort();
    for m in matchers {
        text.push_str(&m);
        text.push('\n');
    }
    let mut labels = alert.labels.clone();
    labels.sort();
    text.push_str(&format!("{labels:?}"));
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
            fingerprints: self
                .alerts
                .iter()
                .zip(&self.fingerprints)
                .map(|(a, f)| (a.name.clone(), f.clone()))
                .collect(),
            evaluated_below: self.evaluated_below,
            instances: self
                .instances
                .iter()
                .map(|((i, labels), inst)| SavedInstance {
                    alert: self.alerts[*i].name.clone(),
                    labels: labels.clone(),
                    phase: inst.phase,
                    recent: encode(&inst.recent),
                })
                .collect(),
            to_resolve: self.to_resolve.clone(),
        }
    }

    /// Continues from `saved`, the state of a checkpoint at `frontier_ms`. An
    /// alert whose definition changed since (or that is new) starts fresh at the
    /// frontier, with a warning; the firing instances of a changed or removed
    /// alert are resolved at the first window stepped. `saved` is `None` for a
    /// checkpoint written before alerts existed or without them: fresh too.
    pub fn restore(&mut self, saved: Option<&AlertsCheckpoint>, frontier_ms: EventMs) {
        self.instances.clear();
        self.to_resolve.clear();
        let Some(saved) = saved else {
            // Windows below the frontier are not handed over again: gaps are
            // counted from it.
            self.evaluated_below = (frontier_ms != EventMs::MIN).then_some(frontier_ms);
            return;
        };
        self.evaluated_below = saved.evaluated_below;
        let kept: Vec<bool> = self
            .alerts
            .iter()
            .zip(&self.fingerprints)
            .map(|(a, f)| saved.fingerprints.get(&a.name) == Some(f))
            .collect();
        self.to_resolve.extend(saved.to_resolve.iter().cloned());
        let mut resolved: BTreeMap<&str, usize> = BTreeMap::new();
        for s in &saved.instances {
            let found = self.alerts.iter().position(|a| a.name == s.alert);
            let Some(i) = found.filter(|i| kept[*i]) else {
                if let Some(since_ms) = s.phase.firing_since() {
                    *resolved.entry(&s.alert).or_default() += 1;
                    self.to_resolve.push(Dropped {
                        alert: s.alert.clone(),
                        labels: s.labels.clone(),
                        since_ms,
                    });
                }
                continue;
            };
            let span = self.alerts[i].average_windows.max(1) as usize;
            let recent = decode(&s.recent, span);
            let inst = Instance {
                phase: s.phase,
                value: super::machine::compared(&recent),
                recent,
            };
            self.instances.insert((i, s.labels.clone()), inst);
        }
        self.to_resolve
            .sort_by(|a, b| (&a.alert, &a.labels).cmp(&(&b.alert, &b.labels)));
        self.to_resolve
            .dedup_by(|a, b| (&a.alert, &a.labels) == (&b.alert, &b.labels));
        for (a, keep) in self.alerts.iter().zip(&kept) {
            if !keep && saved.fingerprints.contains_key(&a.name) {
                tracing::warn!(
                    "[[alert]] {}: its definition (or the window size) changed since the checkpoint: alert state starts fresh at the resume point (it fires again only once its `for` holds from there); {} firing instance(s) are resolved there",
                    a.name,
                    resolved.get(a.name.as_str()).copied().unwrap_or(0)
                );
            } else if !keep && !saved.fingerprints.is_empty() {
                tracing::info!(
                    "[[alert]] {}: new since the checkpoint, starts at the resume point",
                    a.name
                );
            }
        }
        for name in saved.fingerprints.keys() {
            if !self.alerts.iter().any(|a| &a.name == name) {
                tracing::warn!(
                    "[[alert]] {name}: removed since the checkpoint; {} firing instance(s) are resolved at the resume point",
                    resolved.get(name.as_str()).copied().unwrap_or(0)
                );
            }
        }
        if saved.fingerprints.is_empty() && !saved.instances.is_empty() {
            tracing::warn!(
                "the checkpoint's alert state is from an older release: alert state starts fresh at the resume point; its firing instances are resolved there"
            );
        }
    }
}
