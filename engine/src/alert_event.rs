//! What an alert says when a window closes: the interface between the alert
//! evaluator (issue 12 §4, `[[alert]]`) and the sinks that carry alerts (a
//! `jsonl` transcript, Alertmanager).
//!
//! Alerts are evaluated in event time, once per closed window, after the
//! window went to the sinks: the same input gives the same [`AlertUpdate`]s
//! live, resumed after a crash, and replayed.
//!
//! Windows without records (gap windows) are windows too: every series is
//! absent in them. They are not handed to [`crate::sink::Sink::write_window`],
//! but an update for a gap window in which something changed or fires is handed
//! over, before the next window with records ([`crate::alerts`]).

use std::sync::Arc;

use crate::labels::Labels;
use crate::time::EventMs;

/// Whether an alert instance (an alert and one set of labels) is firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    /// Its condition held for `for` consecutive windows (or it is kept firing
    /// by `keep_firing_for`).
    Firing,
    /// It fired, and no longer does.
    Resolved,
}

impl AlertState {
    /// `firing` or `resolved`, as the transcript writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One alert instance at one window: its identity, what it says, and since when.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertInstance {
    /// The `[[alert]]`'s `name` (Alertmanager's `alertname`).
    pub alert: Arc<str>,
    /// Its identity: the compared series' labels, then the alert's `labels`
    /// (which win), sorted by name; without `alertname`.
    pub labels: Labels,
    /// The alert's `annotations`, rendered with this window's value, sorted by name.
    pub annotations: Vec<(String, String)>,
    /// The compared value at this window (after a moving average, if any).
    pub value: f64,
    /// Event time the instance started firing: the end of the window in which
    /// its `for` was fulfilled (Alertmanager's `startsAt`).
    pub firing_since_ms: EventMs,
}

/// A change of an instance's state, at the window that changed it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertChange {
    /// The instance, as of this window.
    pub instance: AlertInstance,
    /// Its new state.
    pub state: AlertState,
}

/// Everything the alerts say once a window closed: handed to every sink
/// ([`crate::sink::Sink::write_alerts`]) right after the window itself.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertUpdate {
    /// The window that was evaluated: `[start_ms, end_ms)`.
    pub start_ms: EventMs,
    /// Its end; resolved alerts end here (Alertmanager's `endsAt`).
    pub end_ms: EventMs,
    /// Instances that started firing or were resolved at this window, sorted by
    /// (alert, labels): the transcript.
    pub changes: Vec<AlertChange>,
    /// Every instance firing after this window, sorted by (alert, labels): what
    /// a receiver that must be reminded (Alertmanager) re-sends. After a restart
    /// the first update carries the whole firing set again, so a sink needs no
    /// state of its own. Left empty for a job without an alertmanager sink:
    /// no other sink reads it.
    pub firing: Vec<AlertInstance>,
}
