//! The evaluator's rules one by one, and its saved state; the oracle (a naive
//! recomputation of the whole transcript) is in `oracle`.

use std::sync::Arc;

use tidemark_jobs::alert::{Alert, CmpOp, SeriesOrigin, Template, TemplatePart};

use super::*;
use crate::series::{Series, Value};

const W: EventMs = 60_000;

fn alert(op: CmpOp, threshold: f64, resolve: f64, f: u32, k: u32, n: u32) -> Alert {
    Alert {
        name: "A".into(),
        expr: format!("x {} {threshold}", op.as_str()),
        record: "x".into(),
        origin: SeriesOrigin::Rule,
        matchers: Vec::new(),
        op,
        threshold,
        for_windows: f,
        keep_firing_windows: k,
        resolve_threshold: resolve,
        average_windows: n,
        labels: vec![("severity".into(), "page".into())],
        annotations: vec![(
            "summary".into(),
            Template(vec![
                TemplatePart::Label("severity".into()),
                TemplatePart::Text(" at ".into()),
                TemplatePart::Value,
            ]),
        )],
    }
}

/// Window `t` (start `t * W`) holding `x{status="500"} = v` if `v` is set, and
/// a record of another series if `other` (so the window is handed over even
/// without `x`).
fn window(t: usize, v: Option<f64>, other: bool) -> Option<ClosedWindow> {
    window2(t, [v, None], other)
}

/// [`window`] with `x{status="500"}` and `x{status="503"}`.
fn window2(t: usize, v: [Option<f64>; 2], other: bool) -> Option<ClosedWindow> {
    let mut series = Vec::new();
    for (status, v) in STATUSES.iter().zip(v) {
        if let Some(v) = v {
            series.push(Series {
                record: Arc::from("x"),
                labels: Labels::from_pairs(&[("status", *status)]),
                value: Value::Float(v),
                origin: Origin::Rule,
            });
        }
    }
    if other {
        series.push(Series {
            record: Arc::from("y"),
            labels: Labels::default(),
            value: Value::Int(1),
            origin: Origin::Rule,
        });
    }
    (!series.is_empty()).then(|| ClosedWindow {
        start_ms: t as EventMs * W,
        end_ms: (t as EventMs + 1) * W,
        series,
    })
}

const STATUSES: [&str; 2] = ["500", "503"];

/// A transcript line: (window start, state, firing since, value bits).
type Line = (EventMs, AlertState, EventMs, u64);

fn lines(updates: &[AlertUpdate]) -> Vec<Line> {
    lines_of(updates).into_iter().map(|(_, l)| l).collect()
}

/// A value's bits, every NaN as one (which NaN an average of infinities gives
/// depends on the order of the additions; every NaN prints as `null`).
fn bits(v: f64) -> u64 {
    if v.is_nan() {
        f64::NAN.to_bits()
    } else {
        v.to_bits()
    }
}

/// Each line with the instance's `status` label, in transcript order.
fn lines_of(updates: &[AlertUpdate]) -> Vec<(String, Line)> {
    updates
        .iter()
        .flat_map(|u| {
            u.changes.iter().map(move |c| {
                (
                    c.instance.labels.get("status").unwrap_or("").to_string(),
                    (
                        u.start_ms,
                        c.state,
                        c.instance.firing_since_ms,
                        bits(c.instance.value),
                    ),
                )
            })
        })
        .collect()
}

mod oracle;

fn evaluate_all(a: &Alert, values: &[Option<f64>]) -> Vec<Line> {
    let mut e = AlertEvaluator::new(vec![a.clone()], W);
    let mut out = Vec::new();
    for (t, v) in values.iter().enumerate() {
        if let Some(w) = window(t, *v, false) {
            out.extend(e.evaluate(&w));
        }
    }
    lines(&out)
}

#[test]
fn for_counts_consecutive_windows_of_event_time_not_windows_handed_over() {
    let a = alert(CmpOp::Gt, 5.0, 5.0, 3, 0, 1);
    // Three windows above, but the second and third are separated by a window
    // without records: it breaks the run.
    let got = evaluate_all(&a, &[Some(9.0), Some(9.0), None, Some(9.0), Some(9.0)]);
    assert!(got.is_empty(), "{got:?}");
    let got = evaluate_all(&a, &[Some(9.0), Some(9.0), Some(9.0), Some(1.0)]);
    assert_eq!(
        got,
        vec![
            (2 * W, AlertState::Firing, 3 * W, 9f64.to_bits()),
            (3 * W, AlertState::Resolved, 3 * W, 1f64.to_bits()),
        ]
    );
}

#[test]
fn hysteresis_and_keep_firing_hold_an_alert_and_the_update_says_what_fires() {
    // > 5, resolves at or below 2, kept firing one more window.
    let a = alert(CmpOp::Gt, 5.0, 2.0, 1, 1, 1);
    let mut e = AlertEvaluator::new(vec![a], W);
    let at =
        |e: &mut AlertEvaluator, t: usize, v: f64| e.evaluate(&window(t, Some(v), false).unwrap());
    let u = at(&mut e, 0, 6.0);
    assert_eq!(u[0].changes[0].state, AlertState::Firing);
    let i = &u[0].firing[0];
    assert_eq!(
        i.labels,
        Labels::from_pairs(&[("severity", "page"), ("status", "500")])
    );
    assert_eq!(
        i.annotations,
        vec![("summary".to_string(), "page at 6".to_string())]
    );
    assert_eq!(i.firing_since_ms, W);
    // 3 is below the threshold but above the resolve threshold: still firing.
    let u = at(&mut e, 1, 3.0);
    assert!(u[0].changes.is_empty());
    assert_eq!(u[0].firing.len(), 1);
    // 2 crosses it: kept firing for one window, then resolved.
    let u = at(&mut e, 2, 2.0);
    assert!(u[0].changes.is_empty() && u[0].firing.len() == 1);
    let u = at(&mut e, 3, 1.5);
    assert_eq!(u[0].changes[0].state, AlertState::Resolved);
    assert_eq!(u[0].changes[0].instance.firing_since_ms, W);
    assert!(u[0].firing.is_empty());
    assert_eq!(e.firing_now(), 0);
}

#[test]
fn a_moving_average_leaves_absent_windows_out() {
    let a = alert(CmpOp::Ge, 4.0, 4.0, 1, 0, 3);
    // Averages: 2, (2+6)/2 = 4 -> fires; then absent: still 4 (6 and 2 in the
    // last three windows); then only 6 is left in the span... then none.
    let got = evaluate_all(&a, &[Some(2.0), Some(6.0)]);
    assert_eq!(got, vec![(W, AlertState::Firing, 2 * W, 4f64.to_bits())]);
    let mut e = AlertEvaluator::new(vec![a], W);
    e.evaluate(&window(0, Some(2.0), false).unwrap());
    e.evaluate(&window(1, Some(6.0), false).unwrap());
    // The series stops; the frontier passes windows 2..5.
    let u = e.advance_to(5 * W);
    let resolved: Vec<_> = lines(&u);
    // Window 2: avg(2, 6) = 4, firing; window 3: avg(6) = 6; window 4: absent.
    assert_eq!(
        resolved,
        vec![(4 * W, AlertState::Resolved, 2 * W, f64::NAN.to_bits())]
    );
    assert_eq!(e.evaluated_below(), Some(5 * W));
    // Idle instances are forgotten, and a long gap costs nothing.
    e.advance_to(1_000_000_000 * W);
    assert_eq!(e.evaluated_below(), Some(1_000_000_000 * W));
    assert!(e.save().instances.is_empty());
}

/// After a restart the restored firing set reached Alertmanager only with the
/// first window evaluated: the run now hands it over as it starts.
#[test]
fn a_restored_evaluator_says_what_fires_without_a_change() {
    let a = alert(CmpOp::Gt, 5.0, 5.0, 1, 0, 1);
    let mut e = AlertEvaluator::new(vec![a.clone()], W);
    assert_eq!(e.firing_update(), None, "nothing stepped yet");
    let mut last = None;
    for t in 0..3 {
        last = e.evaluate(&window(t, Some(9.0), false).unwrap()).pop();
    }
    let last = last.unwrap();
    assert_eq!(last.firing.len(), 1);
    let mut back = AlertEvaluator::new(vec![a.clone()], W);
    back.restore(Some(&e.save()), 3 * W);
    let u = back.firing_update().expect("it fires");
    assert!(u.changes.is_empty());
    assert_eq!((u.start_ms, u.end_ms), (2 * W, 3 * W));
    assert_eq!(u.firing, last.firing);
    // Fresh at the resume point (other definitions): nothing fires.
    let mut fresh = AlertEvaluator::new(vec![alert(CmpOp::Gt, 4.0, 4.0, 1, 0, 1)], W);
    fresh.restore(Some(&e.save()), 3 * W);
    assert_eq!(fresh.firing_update(), None);
}

#[test]
fn changed_definitions_start_fresh_at_the_resume_point() {
    let a = alert(CmpOp::Gt, 5.0, 5.0, 2, 0, 1);
    let mut e = AlertEvaluator::new(vec![a.clone()], W);
    e.evaluate(&window(0, Some(9.0), false).unwrap());
    let saved = e.save();
    assert_eq!(saved.instances.len(), 1);
    // Same definitions: the pending window counts.
    let mut same = AlertEvaluator::new(vec![a.clone()], W);
    same.restore(Some(&saved), W);
    let u = same.evaluate(&window(1, Some(9.0), false).unwrap());
    assert_eq!(u[0].changes.len(), 1);
    // Another threshold: fresh, so `for` starts again.
    let mut other = AlertEvaluator::new(vec![alert(CmpOp::Gt, 4.0, 4.0, 2, 0, 1)], W);
    other.restore(Some(&saved), W);
    let u = other.evaluate(&window(1, Some(9.0), false).unwrap());
    assert!(u[0].changes.is_empty());
    // Annotations are not part of the fingerprint.
    let mut reworded = a.clone();
    reworded.annotations.clear();
    assert_eq!(saved::fingerprint(&reworded, W), saved.fingerprints["A"]);
}

/// Review finding (issue 12 fix 2): the fingerprint was over the expression's
/// text and the alerts' order, so `lat > 100` → `lat>100`, or adding an alert
/// before it, reset every alert's state.
#[test]
fn respacing_an_expression_or_reordering_alerts_keeps_their_state() {
    let a = alert(CmpOp::Gt, 5.0, 5.0, 2, 0, 1);
    let mut e = AlertEvaluator::new(vec![a.clone()], W);
    e.evaluate(&window(0, Some(9.0), false).unwrap());
    let saved = e.save();
    let mut respaced = a.clone();
    respaced.expr = "x>5".into();
    let mut other = alert(CmpOp::Lt, 1.0, 1.0, 1, 0, 1);
    other.name = "B".into();
    other.record = "z".into();
    let mut resumed = AlertEvaluator::new(vec![other, respaced], W);
    resumed.restore(Some(&saved), W);
    // The pending window still counts: `for` of 2 is met at window 1.
    let u = resumed.evaluate(&window(1, Some(9.0), false).unwrap());
    assert_eq!(u[0].changes.len(), 1, "{u:?}");
    assert_eq!(u[0].changes[0].state, AlertState::Firing);
}

/// Review finding (issue 12 fix 2): changing one alert reset every alert, and
/// left the changed alert's firing instances never resolved. Now the unchanged
/// alert continues (no second `firing`), and the changed one's firing instance
/// is resolved in the first window the resumed run steps — also when that is a
/// gap window, and also after a second crash before it (it is saved).
#[test]
fn a_changed_alert_resolves_its_firing_instances_and_the_others_keep_their_state() {
    let a = alert(CmpOp::Gt, 5.0, 5.0, 1, 0, 1);
    let mut b = alert(CmpOp::Gt, 3.0, 3.0, 1, 0, 1);
    b.name = "B".into();
    let mut e = AlertEvaluator::new(vec![a.clone(), b.clone()], W);
    let u = e.evaluate(&window(0, Some(9.0), false).unwrap());
    assert_eq!(u[0].changes.len(), 2, "both fire: {u:?}");
    let saved = e.save();
    let mut b2 = b.clone();
    b2.threshold = 4.0;
    b2.resolve_threshold = 4.0;
    let resumed = |saved: &AlertsCheckpoint| {
        let mut r = AlertEvaluator::new(vec![a.clone(), b2.clone()], W);
        r.restore(Some(saved), W);
        r
    };
    // A crash before the resume window: the resolve is still owed.
    let again = resumed(&saved).save();
    assert_eq!(again.to_resolve.len(), 1, "{again:?}");
    for saved in [&saved, &again] {
        let mut r = resumed(saved);
        // A gap window first: the owed resolve is written there.
        let u = r.advance_to(2 * W);
        let changes: Vec<_> = u
            .iter()
            .flat_map(|u| u.changes.iter().map(move |c| (u.start_ms, c)))
            .map(|(t, c)| (t, c.instance.alert.to_string(), c.state))
            .collect();
        assert_eq!(
            changes,
            vec![
                (W, "A".to_string(), AlertState::Resolved),
                (W, "B".to_string(), AlertState::Resolved)
            ],
            "A resolves on its own (absent), B because it changed: {u:?}"
        );
        let mut r = resumed(saved);
        let u = r.evaluate(&window(1, Some(9.0), false).unwrap());
        let changes: Vec<_> = u[0]
            .changes
            .iter()
            .map(|c| {
                (
                    c.instance.alert.to_string(),
                    c.state,
                    c.instance.firing_since_ms,
                )
            })
            .collect();
        // A keeps firing (no second `firing`); B's old instance is resolved
        // before the changed B fires afresh.
        assert_eq!(
            changes,
            vec![
                ("B".to_string(), AlertState::Resolved, W),
                ("B".to_string(), AlertState::Firing, 2 * W),
            ],
            "{u:?}"
        );
        assert_eq!(u[0].firing.len(), 2);
        assert!(r.save().to_resolve.is_empty());
    }
    // A removed alert's firing instances are resolved too.
    let mut r = AlertEvaluator::new(vec![a.clone()], W);
    r.restore(Some(&saved), W);
    let u = r.evaluate(&window(1, Some(9.0), false).unwrap());
    assert_eq!(u[0].changes.len(), 1, "{u:?}");
    assert_eq!(&*u[0].changes[0].instance.alert, "B");
    assert_eq!(u[0].changes[0].state, AlertState::Resolved);
}

#[test]
fn series_that_become_one_instance_are_counted_not_mixed() {
    // Validation refuses labels that overwrite the series' own; were one to
    // slip through, the first series in label order is compared and the rest
    // counted.
    let mut a = alert(CmpOp::Gt, 5.0, 5.0, 1, 0, 1);
    a.labels = vec![("status".into(), "5xx".into())];
    let mut e = AlertEvaluator::new(vec![a], W);
    let series = |status: &str, v: f64| Series {
        record: Arc::from("x"),
        labels: Labels::from_pairs(&[("status", status)]),
        value: Value::Float(v),
        origin: Origin::Rule,
    };
    let w = ClosedWindow {
        start_ms: 0,
        end_ms: W,
        series: vec![series("500", 9.0), series("503", 1.0)],
    };
    let u = e.evaluate(&w);
    assert_eq!(u[0].changes.len(), 1);
    assert_eq!(u[0].changes[0].instance.value, 9.0);
    assert_eq!(e.take_counts().collisions, 1);
}

#[test]
fn a_checkpoint_without_alert_state_still_loads() {
    let json = r#"{"job":"j","frontier_ms":60000,"sinks":[],"groups":[],"written_unix_ms":1}"#;
    let cp: crate::checkpoint::Checkpoint = serde_json::from_str(json).unwrap();
    assert_eq!(cp.alerts, None);
}

/// Review finding (issue 12 fix 4): each instance saved up to 10,000 values as
/// JSON bit patterns, absent windows included. Runs of absent windows are one
/// entry now; values stay exact, and checkpoints of the older form still load.
#[test]
fn a_checkpoint_keeps_runs_of_absent_windows_as_one_entry() {
    let a = alert(CmpOp::Gt, 5.0, 5.0, 1, 0, 500);
    let mut e = AlertEvaluator::new(vec![a.clone()], W);
    e.evaluate(&window(0, Some(0.1), false).unwrap());
    e.advance_to(300 * W);
    e.evaluate(&window(300, Some(9.0), true).unwrap());
    let saved = e.save();
    assert_eq!(saved.instances.len(), 1);
    let recent = &saved.instances[0].recent;
    assert_eq!(
        recent,
        &[
            saved::Slot::Value(0.1f64.to_bits()),
            saved::Slot::Gap(-299),
            saved::Slot::Value(9.0f64.to_bits())
        ]
    );
    let text = serde_json::to_string(&saved).unwrap();
    // The older form wrote 301 entries here, 299 of them `null` (about 1.6 KB).
    eprintln!("saved alert state: {} bytes", text.len());
    assert!(text.len() < 400, "{} bytes: {text}", text.len());
    let back: AlertsCheckpoint = serde_json::from_str(&text).unwrap();
    let mut r = AlertEvaluator::new(vec![a.clone()], W);
    r.restore(Some(&back), 301 * W);
    assert_eq!(r.instances, e.instances);
    // The older form: one `null` per absent window.
    assert_eq!(
        saved::decode(
            &[
                saved::Slot::Absent(()),
                saved::Slot::Value(7),
                saved::Slot::Gap(-2)
            ],
            3
        ),
        [Some(f64::from_bits(7)), None, None]
    );
    let old: Vec<saved::Slot> = serde_json::from_str("[null, 7, -2]").unwrap();
    assert_eq!(
        old,
        [
            saved::Slot::Absent(()),
            saved::Slot::Value(7),
            saved::Slot::Gap(-2)
        ]
    );
    // A damaged run length builds no more than the span.
    assert_eq!(saved::decode(&[saved::Slot::Gap(i64::MIN)], 4).len(), 4);
}

/// Review finding (issue 12 fix 7): the firing set was built every window even
/// for a job no alertmanager sink reads it in; and a series whose value does
/// not hold (no average) made and dropped a map entry every window.
#[test]
fn the_firing_set_is_built_only_for_an_alertmanager_sink_and_quiet_series_make_no_instance() {
    let job = |sink: &str| {
        let text = format!(
            r#"
name = "j"
[source]
kind = "file"
include = ["/nowhere/*.log"]
[parse]
format = "json"
[window]
size = "1m"
[[metric]]
name = "x"
kind = "gauge"
field = "v"
[[alert]]
name = "A"
expr = 'x > 5'
{sink}
"#
        );
        tidemark_jobs::from_str(&text, "j.toml", std::path::Path::new("/tmp")).unwrap()
    };
    let transcript =
        "[[sink]]\nkind = \"jsonl\"\npath = \"out.jsonl\"\nseries = \"none\"\nalerts = true\n";
    let am = "[[sink]]\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:9093\"\n";
    let w = |t: usize, v: f64| ClosedWindow {
        start_ms: t as EventMs * W,
        end_ms: (t as EventMs + 1) * W,
        series: vec![Series {
            record: Arc::from("x"),
            labels: Labels::from_pairs(&[("host", "a")]),
            value: Value::Float(v),
            origin: Origin::Host,
        }],
    };
    let mut e = AlertEvaluator::for_job(&job(transcript)).unwrap();
    let u = e.evaluate(&w(0, 9.0));
    assert_eq!(u[0].changes.len(), 1);
    assert!(u[0].firing.is_empty(), "{u:?}");
    assert_eq!(e.firing_now(), 1);
    let mut e = AlertEvaluator::for_job(&job(am)).unwrap();
    let u = e.evaluate(&w(0, 9.0));
    assert_eq!(u[0].firing.len(), 1, "{u:?}");
    // A value that does not hold makes no instance.
    let mut e = AlertEvaluator::new(vec![alert(CmpOp::Gt, 5.0, 5.0, 1, 0, 1)], W);
    e.evaluate(&window(0, Some(1.0), false).unwrap());
    assert!(e.instances.is_empty());
    assert_eq!(e.take_counts().evaluated, 1);
}

/// Review R17e: an instance of an alert over a host series whose labels are
/// read from its series key (`Labels::of_key`, the host records that reach the
/// sinks unsorted) kept that key's whole buffer — every series key of the
/// metric in that group's window — alive for as long as the instance lives
/// (f621f36). One instance made per window pins one window's keys each: a
/// job's memory grows by a window's keys per instance (measured: 20k series of
/// ~70-byte keys, one new instance a minute kept firing: peak RSS 48 MB before,
/// 156 MB after 90 minutes, growing ~1.2 MB a window).
#[test]
fn alert_instance_does_not_keep_the_windows_key_buffer() {
    use crate::key::{push_key_part, SeriesKey};
    use crate::labels::KeyNames;
    let mut a = alert(CmpOp::Gt, 0.0, 0.0, 0, 100, 1);
    a.origin = SeriesOrigin::Host;
    a.labels = Vec::new();
    a.annotations = Vec::new();
    let mut ev = AlertEvaluator::new(vec![a], W);
    let names = Arc::new(KeyNames::new(&[
        ("host".to_string(), 0),
        ("status".to_string(), 1),
    ]));
    let mut buffers = Vec::new();
    for t in 0..3usize {
        // A window's keys share one buffer, as `SeriesMap::drain_sorted` hands
        // them out; only one of its series is over the threshold.
        let mut bytes = Vec::new();
        for h in 0..1000 {
            push_key_part(&mut bytes, &format!("host-{t}-{h:050}"));
            push_key_part(&mut bytes, "500");
        }
        let mut first = Vec::new();
        push_key_part(&mut first, &format!("host-{t}-{:050}", 0));
        push_key_part(&mut first, "500");
        let buf = Arc::new(bytes);
        let window = ClosedWindow {
            start_ms: t as EventMs * W,
            end_ms: (t as EventMs + 1) * W,
            series: vec![Series {
                record: Arc::from("x"),
                labels: Labels::of_key(&names, SeriesKey::in_buffer(&buf, 0..first.len())),
                value: Value::Int(1),
                origin: Origin::Host,
            }],
        };
        let updates = ev.evaluate(&window);
        assert!(!updates.is_empty(), "window {t}: the alert fires");
        drop(updates);
        drop(window);
        buffers.push(buf);
    }
    assert_eq!(ev.firing_now(), 3);
    for (t, buf) in buffers.iter().enumerate() {
        assert_eq!(
            Arc::strong_count(buf),
            1,
            "window {t}'s key buffer ({} bytes) is still held after the window was written",
            buf.len()
        );
    }
}
