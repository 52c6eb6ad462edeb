//! The alert evaluator (`[[alert]]`, docs/alerts.md): on worker 0, next to the
//! sinks, it steps every alert instance once per closed window, in event time.
//!
//! Windows without records are not handed over, so before a window the
//! evaluator steps every window since the last one it evaluated with every
//! series absent ("gap windows"): `for` counts consecutive windows of event
//! time, not windows that happened to have records. The collector also
//! advances it to the output frontier, so an alert whose series stopped
//! resolves once the windows after it close, not when the next record comes.
//!
//! Its state after exactly the windows below a checkpoint's frontier is saved
//! in that checkpoint ([`AlertsCheckpoint`]), so a resumed run continues the
//! same transcript; a replay starts fresh at its range's start.

pub mod machine;
pub mod saved;

use std::collections::BTreeMap;
use std::sync::Arc;

use tidemark_jobs::alert::{Alert, SeriesOrigin};
use tidemark_jobs::Job;

use crate::alert_event::{AlertChange, AlertInstance, AlertState, AlertUpdate};
use crate::labels::Labels;
use crate::series::{ClosedWindow, Origin};
use crate::time::EventMs;
use machine::Instance;
pub use saved::AlertsCheckpoint;

/// What stepping the alerts over windows counted (added to `JobStats`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AlertCounts {
    /// (alert, window) evaluations.
    pub evaluated: u64,
    /// Changes (firing or resolved) of any instance.
    pub transitions: u64,
    /// Series left out because another series of the same window gave the same
    /// instance (the alert's `labels` overwrote what told them apart).
    pub collisions: u64,
}

/// Every alert instance of a job, and how far in event time they were stepped.
pub struct AlertEvaluator {
    alerts: Arc<[Alert]>,
    names: Vec<Arc<str>>,
    window_ms: EventMs,
    /// Of each alert's definition, in `alerts`' order ([`saved::fingerprint`]).
    fingerprints: Vec<String>,
    /// Firing instances of alerts changed or removed since the checkpoint this
    /// run resumed from: resolved in the next window stepped.
    to_resolve: Vec<saved::Dropped>,
    /// Whether updates carry the firing set (an alertmanager sink re-sends it;
    /// nothing else reads it, so it is not built every window for nothing).
    firing_wanted: bool,
    /// A replay's warm-up ([`AlertEvaluator::warm_up_before`]): windows ending
    /// at or before it are stepped but say nothing. `None`: no warm-up, or over.
    quiet_until: Option<EventMs>,
    /// End of the last window stepped: every window below it has been.
    evaluated_below: Option<EventMs>,
    /// By (alert index, instance labels).
    instances: BTreeMap<(usize, Labels), Instance>,
    counts: AlertCounts,
}

impl AlertEvaluator {
    /// The evaluator of `job`'s alerts, fresh; `None` when it has none.
    pub fn for_job(job: &Job) -> Option<AlertEvaluator> {
        if job.alerts.is_empty() {
            return None;
        }
        let window_ms = job.window.size.as_millis() as EventMs;
        let mut e = AlertEvaluator::new(job.alerts.clone(), window_ms);
        e.firing_wanted = job
            .sinks
            .iter()
            .any(|s| matches!(s.kind, tidemark_jobs::SinkKind::Alertmanager(_)));
        Some(e)
    }

    /// A fresh evaluator of `alerts` over windows of `window_ms`.
    pub fn new(alerts: Vec<Alert>, window_ms: EventMs) -> AlertEvaluator {
        let fingerprints = alerts
            .iter()
            .map(|a| saved::fingerprint(a, window_ms))
            .collect();
        AlertEvaluator {
            names: alerts.iter().map(|a| Arc::from(a.name.as_str())).collect(),
            alerts: alerts.into(),
            window_ms,
            fingerprints,
            to_resolve: Vec::new(),
            firing_wanted: true,
            quiet_until: None,
            evaluated_below: None,
            instances: BTreeMap::new(),
            counts: AlertCounts::default(),
        }
    }

    /// How many windows before a replay's range its alerts read to warm up:
    /// the longest `for`, `keep_firing_for` or `average_over` of the job's.
    pub fn warm_up_windows(job: &Job) -> u32 {
        job.alerts
            .iter()
            .map(|a| {
                a.for_windows
                    .max(a.keep_firing_windows)
                    .max(a.average_windows)
            })
            .max()
            .unwrap_or(0)
    }

    /// A replay that starts reading before its range: the windows ending at
    /// or before `from_ms` only warm the alerts up (their updates are empty);
    /// the first window after says, as a `firing` change, each instance that
    /// was already firing then (with the time it started).
    pub fn warm_up_before(&mut self, from_ms: EventMs) {
        self.quiet_until = Some(from_ms);
    }

    /// End of the last window stepped (`None`: none yet).
    pub fn evaluated_below(&self) -> Option<EventMs> {
        self.evaluated_below
    }

    /// Takes what was counted since the last call.
    pub fn take_counts(&mut self) -> AlertCounts {
        std::mem::take(&mut self.counts)
    }

    /// Instances firing now.
    pub fn firing_now(&self) -> u64 {
        self.instances
            .values()
            .filter(|i| i.phase.firing_since().is_some())
            .count() as u64
    }

    /// What fires after the windows stepped so far (a run resumed from a
    /// checkpoint: its restored state), as an update of the last window with
    /// no changes; `None` when nothing fires. Handed to the sinks as a resumed
    /// run starts: a sink that must keep telling its receiver what fires
    /// (Alertmanager expires an alert that is not sent again in time) has it
    /// at once, not only once the first window closes, however long that takes.
    pub fn firing_update(&self) -> Option<AlertUpdate> {
        let end_ms = self.evaluated_below?;
        let mut firing: Vec<AlertInstance> = self
            .instances
            .iter()
            .filter_map(|((i, labels), inst)| {
                let since = inst.phase.firing_since()?;
                let alert = &self.alerts[*i];
                Some(instance(&self.names[*i], alert, labels, inst.value, since))
            })
            .collect();
        if firing.is_empty() {
            return None;
        }
        firing.sort_by(|a, b| (&a.alert, &a.labels).cmp(&(&b.alert, &b.labels)));
        Some(AlertUpdate {
            start_ms: end_ms - self.window_ms,
            end_ms,
            changes: Vec::new(),
            firing,
        })
    }

    /// Steps the gap windows before `window` and then `window`; returns the
    /// updates to hand to the sinks, in window order: one for `window`, one for
    /// each gap window in which something changed or fires. A window below one
    /// already stepped is not stepped again, and logged: windows arrive in
    /// order, so it would be a bug, and stepping it would count it twice.
    pub fn evaluate(&mut self, window: &ClosedWindow) -> Vec<AlertUpdate> {
        if let Some(below) = self.evaluated_below.filter(|b| window.start_ms < *b) {
            tracing::error!(
                "internal error: alerts asked to evaluate the window starting at {} ms after windows up to {below} ms; its alerts are not evaluated",
                window.start_ms
            );
            return Vec::new();
        }
        let mut updates = self.advance_to(window.start_ms);
        let values = self.values_of(window);
        updates.push(self.step(window.start_ms, window.end_ms, &values));
        updates
    }

    /// Steps every gap window up to `frontier_ms` (exclusive): the windows below
    /// it without records are closed. Returns the updates of those in which
    /// something changed or fires.
    pub fn advance_to(&mut self, frontier_ms: EventMs) -> Vec<AlertUpdate> {
        let mut out = Vec::new();
        let Some(mut start) = self.evaluated_below else {
            // Fresh: the first window evaluated starts the history.
            return out;
        };
        let empty = BTreeMap::new();
        while start + self.window_ms <= frontier_ms {
            if self.instances.is_empty() && self.to_resolve.is_empty() {
                // Nothing to step: every further gap window leaves it empty.
                let windows = (frontier_ms - start) / self.window_ms;
                self.counts.evaluated += windows as u64 * self.alerts.len() as u64;
                start += windows * self.window_ms;
                self.evaluated_below = Some(start);
                break;
            }
            let update = self.step(start, start + self.window_ms, &empty);
            if !update.changes.is_empty() || !update.firing.is_empty() {
                out.push(update);
            }
            start += self.window_ms;
        }
        out
    }

    /// Each alert's compared series in `window`, by instance labels.
    fn values_of(&mut self, window: &ClosedWindow) -> BTreeMap<(usize, Labels), f64> {
        let mut values = BTreeMap::new();
        for (i, alert) in self.alerts.iter().enumerate() {
            let origin = match alert.origin {
                SeriesOrigin::Rule => Origin::Rule,
                SeriesOrigin::Host => Origin::Host,
            };
            // Records are sorted by (record, labels): the alert's are one run.
            let first = window
                .series
                .partition_point(|s| &*s.record < alert.record.as_str());
            for s in window.series[first..]
                .iter()
                .take_while(|s| &*s.record == alert.record.as_str())
            {
                if s.origin != origin || !alert.selects(&s.record, alert.origin, s.labels.iter()) {
                    continue;
                }
                let key = (i, identity(alert, &s.labels));
                let v = match s.value {
                    crate::series::Value::Int(n) => n as f64,
                    crate::series::Value::Float(f) => f,
                };
                match values.entry(key) {
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(v);
                    }
                    std::collections::btree_map::Entry::Occupied(_) => self.counts.collisions += 1,
                }
            }
        }
        values
    }

    /// Steps every instance (and each new one in `values`) over the window
    /// `[start_ms, end_ms)`.
    fn step(
        &mut self,
        start_ms: EventMs,
        end_ms: EventMs,
        values: &BTreeMap<(usize, Labels), f64>,
    ) -> AlertUpdate {
        for (key, v) in values {
            // A new instance whose value does not hold, with nothing to
            // average, would be stepped to inactive and forgotten at once:
            // it is not made (a series that never fires costs no map entry).
            let alert = &self.alerts[key.0];
            let needed = alert.average_windows > 1 || alert.op.holds(*v, alert.threshold);
            if needed && !self.instances.contains_key(key) {
                // An instance may live for many windows: it must not keep its
                // first window's shared label buffer alive.
                self.instances
                    .insert((key.0, key.1.detached()), Instance::default());
            }
        }
        let warming = self.quiet_until.is_some_and(|q| end_ms <= q);
        // Before the instances' own changes: a changed alert's instance that
        // fires again at once is resolved first (the sort below is stable).
        let mut changes: Vec<AlertChange> = std::mem::take(&mut self.to_resolve)
            .into_iter()
            .map(|d| self.dropped(d))
            .collect();
        if !warming && self.quiet_until.take().is_some() {
            // The range starts: what fires since the warm-up, before it changes.
            changes.extend(self.firing_before_step());
        }
        let mut firing = Vec::new();
        // Both maps are sorted by (alert, labels): walk them side by side,
        // passing the values that made no instance.
        let mut values = values.iter().peekable();
        for (key, inst) in &mut self.instances {
            while values.next_if(|(k, _)| *k < key).is_some() {}
            let value = values.next_if(|(k, _)| *k == key).map(|(_, v)| *v);
            let (i, labels) = key;
            let alert = &self.alerts[*i];
            let before = inst.phase.firing_since();
            let change = inst.step(alert, value, end_ms);
            if let Some(state) = change {
                // A resolved instance keeps the time it started firing.
                let since = match state {
                    AlertState::Firing => end_ms,
                    AlertState::Resolved => before.unwrap_or(end_ms),
                };
                changes.push(AlertChange {
                    instance: instance(&self.names[*i], alert, labels, inst.value, since),
                    state,
                });
            }
            if let Some(since) = inst.phase.firing_since().filter(|_| self.firing_wanted) {
                firing.push(instance(&self.names[*i], alert, labels, inst.value, since));
            }
        }
        if warming {
            changes.clear();
            firing.clear();
        }
        let alerts = &self.alerts;
        self.instances
            .retain(|(i, _), inst| !inst.is_idle(alerts[*i].average_windows));
        self.evaluated_below = Some(end_ms);
        self.counts.evaluated += self.alerts.len() as u64;
        self.counts.transitions += changes.len() as u64;
        let by_name = |a: &AlertInstance, b: &AlertInstance| {
            (&a.alert, &a.labels).cmp(&(&b.alert, &b.labels))
        };
        changes.sort_by(|a, b| by_name(&a.instance, &b.instance));
        firing.sort_by(by_name);
        AlertUpdate {
            start_ms,
            end_ms,
            changes,
            firing,
        }
    }
}

impl AlertEvaluator {
    /// A `firing` change for each instance firing now (a replay's warm-up
    /// ended), with the time it started firing.
    fn firing_before_step(&self) -> Vec<AlertChange> {
        self.instances
            .iter()
            .filter_map(|((i, labels), inst)| {
                let since = inst.phase.firing_since()?;
                let alert = &self.alerts[*i];
                Some(AlertChange {
                    instance: instance(&self.names[*i], alert, labels, inst.value, since),
                    state: AlertState::Firing,
                })
            })
            .collect()
    }

    /// The `resolved` change of an instance whose definition is gone: with the
    /// alert's current annotations if it still exists, and no value.
    fn dropped(&self, d: saved::Dropped) -> AlertChange {
        let found = self.alerts.iter().position(|a| a.name == d.alert);
        let name = found.map_or_else(|| Arc::from(d.alert.as_str()), |i| self.names[i].clone());
        let annotations = found.map_or_else(Vec::new, |i| {
            let labels = &d.labels;
            self.alerts[i]
                .annotations
                .iter()
                .map(|(k, t)| (k.clone(), t.render("null", |n| labels.get(n))))
                .collect()
        });
        AlertChange {
            instance: AlertInstance {
                alert: name,
                labels: d.labels,
                annotations,
                value: f64::NAN,
                firing_since_ms: d.since_ms,
            },
            state: AlertState::Resolved,
        }
    }
}

/// An instance's labels: the series' own, then the alert's `labels` (which win).
fn identity(alert: &Alert, series: &Labels) -> Labels {
    if alert.labels.is_empty() {
        return series.clone();
    }
    let mut pairs: BTreeMap<&str, &str> = series.iter().collect();
    for (k, v) in &alert.labels {
        pairs.insert(k, v);
    }
    Labels::from_pairs(&pairs.into_iter().collect::<Vec<_>>())
}

/// What the sinks see of an instance.
fn instance(
    name: &Arc<str>,
    alert: &Alert,
    labels: &Labels,
    value: Option<f64>,
    firing_since_ms: EventMs,
) -> AlertInstance {
    let value = value.unwrap_or(f64::NAN);
    let shown = format_value(value);
    AlertInstance {
        alert: name.clone(),
        labels: labels.clone(),
        annotations: alert
            .annotations
            .iter()
            .map(|(k, t)| (k.clone(), t.render(&shown, |n| labels.get(n))))
            .collect(),
        value,
        firing_since_ms,
    }
}

/// A value as the JSONL output prints it: whole numbers without a decimal point,
/// others in the shortest form that reads back exactly, an absent one as `null`.
pub fn format_value(v: f64) -> String {
    if !v.is_finite() {
        "null".to_string()
    } else if v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests;
