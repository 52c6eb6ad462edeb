//! The evaluator against a naive recomputation of the whole transcript from the
//! series' history (the oracle), with gaps, frontier steps, restarts from a
//! saved state (with the same or a changed definition), every comparison, and
//! NaN and ±Inf values.

use proptest::prelude::*;
use tidemark_jobs::alert::{Alert, CmpOp};

use super::super::{saved, AlertEvaluator, AlertsCheckpoint};
use super::{alert, bits, lines_of, window2, Line, STATUSES, W};
use crate::alert_event::AlertState;
use crate::time::EventMs;

/// The transcript recomputed from the whole history, from the definitions:
/// the compared value of window t is the average of the values present in the
/// last N windows; an instance that is not firing fires at t when the condition
/// held in each of the last F windows; one that fires keeps firing at t while
/// its value was on the firing side of the resolve threshold in one of the last
/// K + 1 windows. History starts at the first window with any record.
fn oracle(a: &Alert, values: &[Option<f64>], first: usize, end: usize) -> Vec<Line> {
    let c = |t: usize| -> Option<f64> {
        let from = (t + 1)
            .saturating_sub(a.average_windows as usize)
            .max(first);
        let present: Vec<f64> = values[from..=t].iter().flatten().copied().collect();
        (!present.is_empty()).then(|| present.iter().sum::<f64>() / present.len() as f64)
    };
    let cond = |t: usize| c(t).is_some_and(|v| a.op.holds(v, a.threshold));
    let stay = |t: usize| c(t).is_some_and(|v| a.op.holds(v, a.resolve_threshold));
    let mut out = Vec::new();
    let mut firing_since: Option<EventMs> = None;
    for t in first..end {
        let end_ms = (t as EventMs + 1) * W;
        let value = bits(c(t).unwrap_or(f64::NAN));
        let f = a.for_windows.max(1) as usize;
        match firing_since {
            None => {
                if t + 1 >= first + f && (t + 1 - f..=t).all(cond) {
                    firing_since = Some(end_ms);
                    out.push((t as EventMs * W, AlertState::Firing, end_ms, value));
                }
            }
            Some(since) => {
                let k = a.keep_firing_windows as usize;
                if !(t.saturating_sub(k).max(first)..=t).any(stay) {
                    firing_since = None;
                    out.push((t as EventMs * W, AlertState::Resolved, since, value));
                }
            }
        }
    }
    out
}

/// Runs the evaluator over the history as the collector would: only windows with
/// records are handed over; `advance` says after which windows the frontier
/// moves on to the next window start; `cut` restarts it from its saved state.
/// Returns the transcript and the first and end window of the history.
fn run(
    a: &Alert,
    values: &[[Option<f64>; 2]],
    others: &[bool],
    advance: &[bool],
    cut: Option<usize>,
) -> (Vec<(String, Line)>, Option<usize>, usize) {
    let mut e = AlertEvaluator::new(vec![a.clone()], W);
    let mut updates = Vec::new();
    let mut first = None;
    let mut end = 0;
    for t in 0..values.len() {
        if cut == Some(t) {
            let saved = e.save();
            let frontier = e.evaluated_below().unwrap_or(EventMs::MIN);
            // Through the checkpoint's JSON, as a restart reads it.
            let text = serde_json::to_string(&saved).unwrap();
            let back: AlertsCheckpoint = serde_json::from_str(&text).unwrap();
            e = AlertEvaluator::new(vec![a.clone()], W);
            e.restore(Some(&back), frontier);
        }
        if let Some(w) = window2(t, values[t], others[t]) {
            first.get_or_insert(t);
            end = t + 1;
            updates.extend(e.evaluate(&w));
        }
        if advance[t] && first.is_some() {
            updates.extend(e.advance_to((t as EventMs + 1) * W));
            end = t + 1;
        }
    }
    (lines_of(&updates), first, end)
}

/// What [`run_changed`] saw at its cut.
struct Cut {
    /// Lines written before the cut.
    before: usize,
    /// The first window the resumed evaluator steps (its history's start),
    /// if any.
    resume: Option<usize>,
    /// The instances firing at the cut: (status, since).
    firing: Vec<(String, EventMs)>,
}

/// [`run`] whose restart at `cut` resumes with `b`, another definition of the
/// same alert (so the saved state does not apply).
fn run_changed(
    a: &Alert,
    b: &Alert,
    values: &[[Option<f64>; 2]],
    others: &[bool],
    advance: &[bool],
    cut: usize,
) -> (Vec<(String, Line)>, Cut, usize) {
    let mut e = AlertEvaluator::new(vec![a.clone()], W);
    let mut updates = Vec::new();
    let mut end = 0;
    let mut seen = false;
    let mut at_cut = Cut {
        before: 0,
        resume: None,
        firing: Vec::new(),
    };
    for t in 0..values.len() {
        if cut == t {
            let saved = e.save();
            let frontier = e.evaluated_below().unwrap_or(EventMs::MIN);
            let text = serde_json::to_string(&saved).unwrap();
            let back: AlertsCheckpoint = serde_json::from_str(&text).unwrap();
            at_cut.before = lines_of(&updates).len();
            at_cut.firing = saved
                .instances
                .iter()
                .filter_map(|i| {
                    let status = i.labels.get("status").unwrap_or("").to_string();
                    i.phase.firing_since().map(|s| (status, s))
                })
                .collect();
            at_cut.resume = e.evaluated_below().map(|b| (b / W) as usize);
            e = AlertEvaluator::new(vec![b.clone()], W);
            e.restore(Some(&back), frontier);
        }
        if let Some(w) = window2(t, values[t], others[t]) {
            if t >= cut && at_cut.resume.is_none() {
                at_cut.resume = Some(t);
            }
            seen = true;
            end = t + 1;
            updates.extend(e.evaluate(&w));
        }
        if advance[t] && seen {
            updates.extend(e.advance_to((t as EventMs + 1) * W));
            end = t + 1;
        }
    }
    let lines = lines_of(&updates);
    if cut >= values.len() {
        // No restart: everything is "before".
        at_cut.before = lines.len();
    }
    (lines, at_cut, end)
}

fn op() -> impl Strategy<Value = CmpOp> {
    prop_oneof![
        Just(CmpOp::Gt),
        Just(CmpOp::Ge),
        Just(CmpOp::Lt),
        Just(CmpOp::Le),
        Just(CmpOp::Eq),
        Just(CmpOp::Ne)
    ]
}

/// A drawn value: 0..10 as is, then NaN, +Inf and -Inf (which averages carry
/// on: NaN compares false except with `!=`, Inf − Inf is NaN).
fn value_of(v: u8) -> f64 {
    match v {
        10 => f64::NAN,
        11 => f64::INFINITY,
        12 => f64::NEG_INFINITY,
        v => f64::from(v),
    }
}

/// The alert a drawn case defines; the resolve threshold on the side
/// validation allows (none for `==` / `!=`).
fn drawn(op: CmpOp, threshold: u8, margin: u8, f: u32, k: u32, n: u32) -> Alert {
    let threshold = f64::from(threshold);
    let resolve = match op {
        CmpOp::Gt | CmpOp::Ge => threshold - f64::from(margin),
        CmpOp::Lt | CmpOp::Le => threshold + f64::from(margin),
        CmpOp::Eq | CmpOp::Ne => threshold,
    };
    alert(op, threshold, resolve, f, k, n)
}

fn steps() -> impl Strategy<Value = Vec<(Option<u8>, Option<u8>, bool, bool)>> {
    prop::collection::vec(
        (
            prop::option::weighted(0.7, 0u8..13),
            prop::option::weighted(0.5, 0u8..13),
            any::<bool>(),
            any::<bool>(),
        ),
        1..40,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The same transcript as the oracle, whatever the gaps, the frontier's
    /// steps and a restart from a saved state in between.
    #[test]
    fn the_evaluator_agrees_with_a_recomputation_from_the_whole_history(
        steps in steps(),
        op in op(),
        threshold in 0u8..10,
        margin in 0u8..4,
        f in 0u32..4,
        k in 0u32..3,
        n in 1u32..4,
        cut in prop::option::of(0usize..40),
    ) {
        let a = drawn(op, threshold, margin, f, k, n);
        let values: Vec<[Option<f64>; 2]> = steps
            .iter()
            .map(|s| [s.0.map(value_of), s.1.map(value_of)])
            .collect();
        let others: Vec<bool> = steps.iter().map(|s| s.2).collect();
        let advance: Vec<bool> = steps.iter().map(|s| s.3).collect();
        let (got, first, end) = run(&a, &values, &others, &advance, cut);
        // Each series on its own, merged in transcript order: by window, then
        // by labels.
        let mut want: Vec<(String, Line)> = Vec::new();
        if let Some(first) = first {
            for (i, status) in STATUSES.iter().enumerate() {
                let own: Vec<Option<f64>> = values.iter().map(|v| v[i]).collect();
                want.extend(
                    oracle(&a, &own, first, end)
                        .into_iter()
                        .map(|l| (status.to_string(), l)),
                );
            }
        }
        want.sort_by(|x, y| (x.1 .0, &x.0).cmp(&(y.1 .0, &y.0)));
        prop_assert_eq!(&got, &want, "alert {:?}", a);
        let (uncut, _, _) = run(&a, &values, &others, &advance, None);
        prop_assert_eq!(got, uncut);
    }

    /// A restart whose alert changed (its saved state does not apply): the
    /// lines before the cut are the uninterrupted run's; at the first window
    /// the resumed run steps, each instance that was firing is resolved; after
    /// that the transcript is the new definition's from a history starting
    /// there. So no instance fires twice without a resolve between.
    #[test]
    fn a_restart_with_a_changed_alert_resolves_what_fired_and_starts_the_new_one_fresh(
        steps in steps(),
        ops in (op(), op()),
        thresholds in (0u8..10, 0u8..10),
        margin in 0u8..4,
        f in 0u32..4,
        k in 0u32..3,
        n in 1u32..4,
        cut in 0usize..40,
    ) {
        let a = drawn(ops.0, thresholds.0, margin, f, k, n);
        let b = drawn(ops.1, thresholds.1, margin, k, f, n);
        prop_assume!(saved::fingerprint(&a, W) != saved::fingerprint(&b, W));
        let values: Vec<[Option<f64>; 2]> = steps
            .iter()
            .map(|s| [s.0.map(value_of), s.1.map(value_of)])
            .collect();
        let others: Vec<bool> = steps.iter().map(|s| s.2).collect();
        let advance: Vec<bool> = steps.iter().map(|s| s.3).collect();
        let (got, at, end) = run_changed(&a, &b, &values, &others, &advance, cut);
        let (uncut, _, _) = run(&a, &values, &others, &advance, None);
        prop_assert_eq!(&got[..at.before], &uncut[..at.before]);
        let mut want: Vec<(String, Line)> = Vec::new();
        if let Some(r) = at.resume.filter(|r| *r < end) {
            for (status, since) in &at.firing {
                let line = (r as EventMs * W, AlertState::Resolved, *since, f64::NAN.to_bits());
                want.push((status.clone(), line));
            }
            for (i, status) in STATUSES.iter().enumerate() {
                let own: Vec<Option<f64>> = values.iter().map(|v| v[i]).collect();
                want.extend(
                    oracle(&b, &own, r, end)
                        .into_iter()
                        .map(|l| (status.to_string(), l)),
                );
            }
        }
        // Stable: a resolve comes before the same instance's new line.
        want.sort_by(|x, y| (x.1 .0, &x.0).cmp(&(y.1 .0, &y.0)));
        prop_assert_eq!(&got[at.before..], &want[..], "{:?} then {:?}", a, b);
    }
}
