//! One alert instance's state machine, stepped once per window: `for`,
//! `keep_firing_for`, hysteresis and the moving average.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use tidemark_jobs::alert::Alert;

use crate::alert_event::AlertState;
use crate::time::EventMs;

/// Where an instance is. Windows are counted, not time: gap windows (no records)
/// are stepped too, with the series absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Its condition does not hold.
    Inactive,
    /// Its condition held in the last `windows` windows, fewer than `for`.
    Pending {
        /// Consecutive windows it held, so far.
        windows: u32,
    },
    /// Firing, and its value is on the firing side of the resolve threshold.
    Firing {
        /// End of the window in which it started firing.
        since_ms: EventMs,
    },
    /// Firing only because of `keep_firing_for`: its value crossed the resolve
    /// threshold (or is absent) in the last `quiet` windows.
    KeptFiring {
        /// End of the window in which it started firing.
        since_ms: EventMs,
        /// Consecutive windows since it stopped holding.
        quiet: u32,
    },
}

impl Phase {
    /// When it started firing, if it fires.
    pub fn firing_since(self) -> Option<EventMs> {
        match self {
            Phase::Firing { since_ms } | Phase::KeptFiring { since_ms, .. } => Some(since_ms),
            Phase::Inactive | Phase::Pending { .. } => None,
        }
    }
}

/// One instance: its phase and the values of its series in the last windows
/// (as many as the alert's `average_over` spans), oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Where it is.
    pub phase: Phase,
    /// The series' value in each of the last windows, `None` where absent.
    pub recent: VecDeque<Option<f64>>,
    /// The compared value at the last window stepped (`None`: absent).
    pub value: Option<f64>,
}

impl Default for Instance {
    fn default() -> Self {
        Instance {
            phase: Phase::Inactive,
            recent: VecDeque::new(),
            value: None,
        }
    }
}

/// The value an alert compares, from the series' values in its last windows:
/// the average of those present (absent windows are left out), `None` when
/// none is present.
pub fn compared(recent: &VecDeque<Option<f64>>) -> Option<f64> {
    let mut sum = 0.0;
    let mut n = 0u32;
    for v in recent.iter().flatten() {
        sum += v;
        n += 1;
    }
    (n > 0).then(|| sum / f64::from(n))
}

impl Instance {
    /// Steps the window `[.., end_ms)` in which the series' value is `value`
    /// (`None`: absent); returns the change it made, if any.
    pub fn step(
        &mut self,
        alert: &Alert,
        value: Option<f64>,
        end_ms: EventMs,
    ) -> Option<AlertState> {
        let span = alert.average_windows.max(1) as usize;
        self.recent.push_back(value);
        while self.recent.len() > span {
            self.recent.pop_front();
        }
        let v = compared(&self.recent);
        self.value = v;
        let holds = v.is_some_and(|v| alert.op.holds(v, alert.threshold));
        // Once firing, it stays while the value is on the firing side of the
        // resolve threshold (hysteresis); the threshold's side was validated,
        // so `holds` implies `stays`.
        let stays = v.is_some_and(|v| alert.op.holds(v, alert.resolve_threshold));
        let need = alert.for_windows.max(1);
        let (next, change) = match self.phase {
            Phase::Inactive | Phase::Pending { .. } if !holds => (Phase::Inactive, None),
            Phase::Inactive => Self::pending(1, need, end_ms),
            Phase::Pending { windows } => Self::pending(windows + 1, need, end_ms),
            Phase::Firing { since_ms } | Phase::KeptFiring { since_ms, .. } if stays => {
                (Phase::Firing { since_ms }, None)
            }
            Phase::Firing { since_ms } => Self::quiet(since_ms, 1, alert),
            Phase::KeptFiring { since_ms, quiet } => Self::quiet(since_ms, quiet + 1, alert),
        };
        self.phase = next;
        change
    }

    fn pending(windows: u32, need: u32, end_ms: EventMs) -> (Phase, Option<AlertState>) {
        if windows >= need {
            (Phase::Firing { since_ms: end_ms }, Some(AlertState::Firing))
        } else {
            (Phase::Pending { windows }, None)
        }
    }

    fn quiet(since_ms: EventMs, quiet: u32, alert: &Alert) -> (Phase, Option<AlertState>) {
        if quiet > alert.keep_firing_windows {
            (Phase::Inactive, Some(AlertState::Resolved))
        } else {
            (Phase::KeptFiring { since_ms, quiet }, None)
        }
    }

    /// Whether it holds nothing worth keeping: inactive, and no value among
    /// those that stay in its moving-average span of `span` windows at the next
    /// window (the last `span - 1`): a new instance would behave the same. So an
    /// inactive instance of an alert without `average_over` is always forgotten,
    /// and the state a checkpoint keeps grows with the instances that are
    /// pending, firing or averaging, not with every series an alert reads.
    pub fn is_idle(&self, span: u32) -> bool {
        let keep = span.max(1) as usize - 1;
        self.phase == Phase::Inactive && self.recent.iter().rev().take(keep).all(Option::is_none)
    }
}
