//! What the sink tells Alertmanager, and when: the alerts it knows (firing, or
//! resolved and still repeated) and the sending schedule, as a plain state
//! machine over times handed in — the sender thread supplies the clocks, the
//! tests fake them.
//!
//! As Prometheus does (rules/alerting.go, `sendAlerts` and `needsSending`):
//! - a firing alert is sent with `endsAt` = the sending time + 4 × max(resend
//!   interval, evaluation interval), so Alertmanager keeps it if up to three
//!   sends are lost and lets it expire if tidemark stops sending;
//! - active alerts are re-sent every resend interval;
//! - a resolved alert is sent with its end time, and repeated with every send
//!   for [`RESOLVED_RETENTION`] after it resolved (Prometheus keeps resolved
//!   alerts 15 minutes), so that a resolution one send lost still arrives.
//!
//! One difference: each send carries the whole current state, not only what
//! changed. Updates that come while a send is pending or being retried are
//! folded into the state (the "queue" holds one state, never a backlog), so a
//! job catching up on history or an Alertmanager that is down never makes the
//! sink block, grow, or send stale states later.

use std::collections::BTreeMap;
use std::time::Duration;

use tidemark_engine::alert_event::{AlertInstance, AlertState, AlertUpdate};
use tidemark_engine::Labels;

use super::body::Postable;

/// How long a resolved alert is repeated in every send after it resolved, as
/// Prometheus's `resolvedRetention`.
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

/// An instance's identity: alert name and labels.
type Key = (String, Labels);

/// One alert instance as last reported.
#[derive(Debug, Clone)]
struct Entry {
    annotations: Vec<(String, String)>,
    starts_ms: i64,
    state: EntryState,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum EntryState {
    Firing,
    /// Resolved at the event time `end_ms` (the end of the window that resolved
    /// it); repeated until the monotonic instant `drop_at`.
    Resolved {
        end_ms: i64,
        drop_at: Duration,
    },
}

/// What the sender should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send [`Book::postable`] now.
    Send,
    /// Nothing before this monotonic instant (or an update).
    WaitUntil(Duration),
    /// Nothing until an update comes.
    Idle,
}

/// The alerts and the schedule. Times: `mono` is a monotonic clock (scheduling,
/// immune to wall-clock steps), `wall_ms` the wall clock in ms since the Unix
/// epoch (what Alertmanager reads).
#[derive(Debug)]
pub struct Book {
    alerts: BTreeMap<Key, Entry>,
    resend_interval: Duration,
    /// How long past the sending time a firing alert is valid.
    valid_for: Duration,
    /// Bumped by every update; `acked` is the generation the last successful
    /// send carried.
    generation: u64,
    acked: u64,
    last_sent: Option<Duration>,
    /// After a failed send: no attempt before this instant.
    retry_at: Option<Duration>,
}

impl Book {
    /// A book re-sending every `resend_interval`, for alerts evaluated every
    /// `eval_interval` (the job's window size).
    pub fn new(resend_interval: Duration, eval_interval: Duration) -> Book {
        Book {
            alerts: BTreeMap::new(),
            resend_interval,
            valid_for: resend_interval.max(eval_interval) * 4,
            generation: 0,
            acked: 0,
            last_sent: None,
            retry_at: None,
        }
    }

    /// Takes in what the alerts say after a window, at `mono`. As in
    /// Prometheus, only a change of what fires (a new firing, a resolution) is
    /// sent at once; a new value in an annotation goes with the next resend.
    pub fn apply(&mut self, u: &AlertUpdate, mono: Duration) {
        let resolved = |end_ms| EntryState::Resolved {
            end_ms,
            drop_at: mono + RESOLVED_RETENTION,
        };
        let mut changed = !u.changes.is_empty();
        for c in &u.changes {
            let key = key_of(&c.instance);
            let state = match c.state {
                AlertState::Firing => EntryState::Firing,
                AlertState::Resolved => resolved(u.end_ms),
            };
            self.alerts.insert(key, entry(&c.instance, state));
        }
        // The firing set is the whole truth about what fires (after a restart it
        // is all the sink hears): annotations carry this window's value.
        let mut firing: BTreeMap<Key, Entry> = u
            .firing
            .iter()
            .map(|i| (key_of(i), entry(i, EntryState::Firing)))
            .collect();
        for (k, e) in self.alerts.iter_mut() {
            if let Some(now) = firing.remove(k) {
                changed |= e.state != EntryState::Firing || e.starts_ms != now.starts_ms;
                *e = now;
            } else if e.state == EntryState::Firing {
                // Fired, left the firing set without a resolution: it ended
                // with this window all the same.
                e.state = resolved(u.end_ms);
                changed = true;
            }
        }
        changed |= !firing.is_empty();
        self.alerts.append(&mut firing);
        if changed {
            self.generation += 1;
        }
    }

    /// How often active alerts are re-sent.
    pub fn resend_interval(&self) -> Duration {
        self.resend_interval
    }

    /// Whether an update came since the last successful send.
    pub fn pending(&self) -> bool {
        self.generation != self.acked
    }

    /// How many alerts a send would carry.
    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    /// Whether a send would carry nothing.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// The current generation, to hand to [`Book::sent`] after a send of it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What to do at `mono`. Drops resolved alerts whose retention is over.
    pub fn next(&mut self, mono: Duration) -> Next {
        self.alerts.retain(|_, e| match e.state {
            EntryState::Resolved { drop_at, .. } => drop_at > mono,
            EntryState::Firing => true,
        });
        if let Some(at) = self.retry_at {
            if at > mono {
                return Next::WaitUntil(at);
            }
            return Next::Send;
        }
        if self.pending() {
            if self.alerts.is_empty() {
                // Nothing to say (no alert ever fired): nothing to send.
                self.acked = self.generation;
            } else {
                return Next::Send;
            }
        }
        if self.alerts.is_empty() {
            return Next::Idle;
        }
        match self.last_sent {
            Some(t) if t + self.resend_interval > mono => {
                // Resolved alerts drop out on their own time: wake for that too.
                let drop = self
                    .alerts
                    .values()
                    .filter_map(|e| match e.state {
                        EntryState::Resolved { drop_at, .. } => Some(drop_at),
                        EntryState::Firing => None,
                    })
                    .min();
                let due = t + self.resend_interval;
                Next::WaitUntil(drop.map_or(due, |d| d.min(due)))
            }
            _ => Next::Send,
        }
    }

    /// The alerts to send at the wall-clock time `wall_ms`.
    pub fn postable(&self, wall_ms: i64) -> Vec<Postable> {
        let valid_ms = i64::try_from(self.valid_for.as_millis()).unwrap_or(i64::MAX);
        self.alerts
            .iter()
            .map(|((name, labels), e)| {
                let mut l: Vec<(String, String)> = labels
                    .iter()
                    .filter(|(k, _)| *k != "alertname")
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                l.push(("alertname".into(), name.clone()));
                l.sort();
                Postable {
                    labels: l,
                    annotations: e.annotations.clone(),
                    starts_ms: e.starts_ms,
                    ends_ms: match e.state {
                        // From the later of the two: an event time ahead of
                        // this clock (a host's clock ahead, up to max_clock_skew)
                        // must not end before it starts (Alertmanager refuses
                        // that with 400).
                        EntryState::Firing => wall_ms.max(e.starts_ms).saturating_add(valid_ms),
                        EntryState::Resolved { end_ms, .. } => end_ms,
                    },
                }
            })
            .collect()
    }

    /// A send of `generation` was acknowledged at `mono`.
    pub fn sent(&mut self, generation: u64, mono: Duration) {
        self.acked = self.acked.max(generation);
        self.last_sent = Some(mono);
        self.retry_at = None;
    }

    /// A send failed at `mono`: the next attempt waits `backoff`.
    pub fn failed(&mut self, mono: Duration, backoff: Duration) {
        self.retry_at = Some(mono + backoff);
    }
}

fn key_of(i: &AlertInstance) -> Key {
    (i.alert.to_string(), i.labels.clone())
}

fn entry(i: &AlertInstance, state: EntryState) -> Entry {
    Entry {
        annotations: i.annotations.clone(),
        starts_ms: i.firing_since_ms,
        state,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tidemark_engine::alert_event::AlertChange;

    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn inst(status: &str, since: i64, value: f64) -> AlertInstance {
        AlertInstance {
            alert: Arc::from("HighErrors"),
            labels: Labels::from_pairs(&[("status", status)]),
            annotations: vec![("summary".into(), format!("{status} at {value}"))],
            value,
            firing_since_ms: since,
        }
    }

    fn update(
        end_ms: i64,
        changes: Vec<(AlertInstance, AlertState)>,
        firing: Vec<AlertInstance>,
    ) -> AlertUpdate {
        AlertUpdate {
            start_ms: end_ms - 60_000,
            end_ms,
            changes: changes
                .into_iter()
                .map(|(instance, state)| AlertChange { instance, state })
                .collect(),
            firing,
        }
    }

    fn at(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_firing_alert_is_sent_at_once_then_every_resend_interval() {
        let mut b = Book::new(MIN, MIN);
        assert_eq!(b.next(at(0)), Next::Idle);
        let a = inst("503", 120_000, 7.0);
        b.apply(
            &update(120_000, vec![(a.clone(), AlertState::Firing)], vec![a]),
            at(5),
        );
        assert_eq!(b.next(at(5)), Next::Send);
        let g = b.generation();
        b.sent(g, at(5));
        assert_eq!(b.next(at(5)), Next::WaitUntil(at(65)));
        assert_eq!(b.next(at(64)), Next::WaitUntil(at(65)));
        assert_eq!(b.next(at(65)), Next::Send);
        b.sent(g, at(65));
        assert_eq!(b.next(at(66)), Next::WaitUntil(at(125)));
    }

    #[test]
    fn a_firing_alert_ends_four_intervals_after_the_send_as_in_prometheus() {
        let a = inst("503", 120_000, 7.0);
        let u = update(120_000, vec![(a.clone(), AlertState::Firing)], vec![a]);
        // ValidUntil = ts + 4 × max(resend delay, evaluation interval).
        for (resend, eval, valid) in [
            (MIN, MIN, 240_000),
            (MIN, 5 * MIN, 1_200_000),
            (2 * MIN, MIN, 480_000),
        ] {
            let mut b = Book::new(resend, eval);
            b.apply(&u, at(0));
            let p = b.postable(1_000_000);
            assert_eq!(p.len(), 1);
            assert_eq!(p[0].starts_ms, 120_000);
            assert_eq!(p[0].ends_ms, 1_000_000 + valid, "{resend:?} {eval:?}");
            assert_eq!(
                p[0].labels,
                vec![
                    ("alertname".to_string(), "HighErrors".to_string()),
                    ("status".to_string(), "503".to_string())
                ]
            );
        }
    }

    #[test]
    fn an_alert_that_starts_ahead_of_the_clock_ends_after_it_starts() {
        let mut b = Book::new(MIN, MIN);
        // Fired at an event time 8 minutes ahead of the sending clock.
        let a = inst("503", 1_480_000, 7.0);
        b.apply(
            &update(1_480_000, vec![(a.clone(), AlertState::Firing)], vec![a]),
            at(0),
        );
        let p = b.postable(1_000_000);
        assert_eq!((p[0].starts_ms, p[0].ends_ms), (1_480_000, 1_720_000));
    }

    #[test]
    fn a_resolved_alert_is_sent_with_its_end_and_repeated_for_fifteen_minutes() {
        let mut b = Book::new(MIN, MIN);
        let a = inst("503", 120_000, 7.0);
        b.apply(
            &update(
                120_000,
                vec![(a.clone(), AlertState::Firing)],
                vec![a.clone()],
            ),
            at(0),
        );
        b.sent(b.generation(), at(0));
        b.apply(
            &update(
                300_000,
                vec![(inst("503", 120_000, 1.0), AlertState::Resolved)],
                vec![],
            ),
            at(10),
        );
        assert_eq!(b.next(at(10)), Next::Send, "a resolution is sent at once");
        let p = b.postable(9_999_999);
        assert_eq!((p[0].starts_ms, p[0].ends_ms), (120_000, 300_000));
        assert_eq!(p[0].annotations[0].1, "503 at 1");
        b.sent(b.generation(), at(10));
        // Repeated with each resend while it is retained.
        assert_eq!(b.next(at(70)), Next::Send);
        b.sent(b.generation(), at(70));
        assert_eq!(b.len(), 1);
        // Dropped 15 minutes after it resolved (the wake-up comes before the
        // next resend); nothing left to send.
        b.sent(b.generation(), at(900));
        assert_eq!(
            b.next(at(10) + RESOLVED_RETENTION - at(1)),
            Next::WaitUntil(at(10) + RESOLVED_RETENTION)
        );
        assert_eq!(b.next(at(10) + RESOLVED_RETENTION), Next::Idle);
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn the_firing_set_is_the_truth_and_an_instance_missing_from_it_ends() {
        let mut b = Book::new(MIN, MIN);
        let (x, y) = (inst("500", 60_000, 1.0), inst("503", 120_000, 2.0));
        // As after a restart: no change, only the firing set.
        b.apply(&update(180_000, vec![], vec![x.clone(), y.clone()]), at(0));
        assert_eq!(b.len(), 2);
        // New annotation values come with the firing set; x vanished from it.
        b.apply(
            &update(240_000, vec![], vec![inst("503", 120_000, 9.0)]),
            at(1),
        );
        let p = b.postable(300_000);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].labels[1].1.as_str(), p[0].ends_ms), ("500", 240_000));
        assert_eq!(p[1].annotations[0].1, "503 at 9");
        assert_eq!(p[1].ends_ms, 300_000 + 4 * 60_000);
    }

    #[test]
    fn updates_while_failing_fold_into_one_state_and_wait_for_the_backoff() {
        let mut b = Book::new(MIN, MIN);
        let a = inst("503", 120_000, 7.0);
        b.apply(
            &update(
                120_000,
                vec![(a.clone(), AlertState::Firing)],
                vec![a.clone()],
            ),
            at(0),
        );
        let g1 = b.generation();
        b.failed(at(0), Duration::from_millis(500));
        // A change during the backoff does not skip it.
        b.apply(
            &update(180_000, vec![(a.clone(), AlertState::Resolved)], vec![]),
            at(0),
        );
        assert_eq!(b.next(at(0)), Next::WaitUntil(Duration::from_millis(500)));
        assert_eq!(b.next(Duration::from_millis(500)), Next::Send);
        // A send of the older state leaves the newer one pending.
        b.sent(g1, Duration::from_millis(500));
        assert!(b.pending());
        assert_eq!(b.next(Duration::from_millis(500)), Next::Send);
        b.sent(b.generation(), at(1));
        assert!(!b.pending());
    }

    #[test]
    fn a_new_annotation_value_alone_waits_for_the_resend_as_in_prometheus() {
        let mut b = Book::new(MIN, MIN);
        let a = inst("503", 120_000, 7.0);
        b.apply(
            &update(120_000, vec![(a.clone(), AlertState::Firing)], vec![a]),
            at(0),
        );
        b.sent(b.generation(), at(0));
        b.apply(
            &update(180_000, vec![], vec![inst("503", 120_000, 8.0)]),
            at(30),
        );
        assert!(!b.pending());
        assert_eq!(b.next(at(30)), Next::WaitUntil(at(60)));
        assert_eq!(b.postable(0)[0].annotations[0].1, "503 at 8");
        // Another instance firing is a change: sent at once.
        b.apply(
            &update(
                240_000,
                vec![(inst("500", 240_000, 6.0), AlertState::Firing)],
                vec![inst("500", 240_000, 6.0), inst("503", 120_000, 9.0)],
            ),
            at(31),
        );
        assert_eq!(b.next(at(31)), Next::Send);
    }

    #[test]
    fn updates_with_nothing_ever_firing_send_nothing() {
        let mut b = Book::new(MIN, MIN);
        b.apply(&update(60_000, vec![], vec![]), at(0));
        assert_eq!(b.next(at(0)), Next::Idle);
        assert!(!b.pending());
    }
}
