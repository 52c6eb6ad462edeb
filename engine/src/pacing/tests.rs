use proptest::prelude::*;

use super::*;

fn pacer(bound: EventMs) -> Pacer {
    Pacer::new(bound, PaceBoard::new(1), 0)
}

#[test]
fn the_furthest_behind_bounds_the_others() {
    let p = pacer(60_000);
    let h = p.horizon([Lane::Reading(Some(120_000)), Lane::Reading(Some(200_000))]);
    assert_eq!(h.stop_at(), 180_000);
    assert!(h.allows(Some(120_000)));
    assert!(h.allows(Some(179_999)));
    assert!(!h.allows(Some(180_000)));
    assert!(!h.allows(Some(200_000)));
}

#[test]
fn an_input_not_read_yet_is_the_furthest_behind() {
    let p = pacer(60_000);
    let h = p.horizon([Lane::Reading(None), Lane::Reading(Some(120_000))]);
    assert!(h.allows(None));
    assert!(!h.allows(Some(120_000)));
    assert!(!h.allows(Some(i64::MIN + 60_000)));
}

#[test]
fn quiet_inputs_hold_no_one_back() {
    let p = pacer(60_000);
    // Idle, blocked, parked, finished: all quiet, whatever their watermark.
    let h = p.horizon([Lane::Quiet, Lane::Reading(Some(10_000_000)), Lane::Quiet]);
    assert!(h.allows(Some(10_000_000)));
    assert_eq!(p.horizon([Lane::Quiet, Lane::Quiet]), Horizon::OPEN);
    assert_eq!(p.horizon([]), Horizon::OPEN);
    assert!(Horizon::OPEN.allows(Some(EventMs::MAX - 1)));
}

#[test]
fn workers_align_through_the_board() {
    let board = PaceBoard::new(2);
    let (a, b) = (
        Pacer::new(1_000, board.clone(), 0),
        Pacer::new(1_000, board.clone(), 1),
    );
    a.horizon([Lane::Reading(Some(5_000))]);
    // Worker 1 is far ahead: worker 0's slowest limits it.
    let hb = b.horizon([Lane::Reading(Some(50_000))]);
    assert!(!hb.allows(Some(50_000)));
    assert_eq!(hb.stop_at(), 6_000);
    // Worker 0 runs out of input: it no longer holds worker 1 back.
    a.release();
    assert!(b
        .horizon([Lane::Reading(Some(50_000))])
        .allows(Some(50_000)));
    // A worker that has not published yet sets no limit.
    let lone = PaceBoard::new(3);
    let c = Pacer::new(1_000, lone, 2);
    assert!(c.horizon([Lane::Reading(Some(9))]).allows(Some(9)));
}

/// One modelled input: a sorted list of event times, read a line at a time.
#[derive(Debug, Clone)]
struct Input {
    times: Vec<EventMs>,
    next: usize,
    wm: Option<EventMs>,
    /// Quiet for its first turns (waiting for a file).
    quiet_turns: u32,
}

impl Input {
    fn lane(&self) -> Lane {
        if self.next == self.times.len() || self.quiet_turns > 0 {
            Lane::Quiet
        } else {
            Lane::Reading(self.wm)
        }
    }
}

/// Rounds of turns as a source takes them: every input the horizon allows
/// reads until its watermark reaches the stop (at least one line). Checks that
/// no turn ends more than one line's jump past the slowest input plus the bound.
fn run(inputs: &mut [Input], bound: EventMs, max_step: EventMs) -> u64 {
    let p = pacer(bound);
    let mut rounds = 0u64;
    loop {
        let slowest = inputs
            .iter()
            .filter_map(|i| match i.lane() {
                Lane::Reading(wm) => Some(wm.unwrap_or(EventMs::MIN)),
                Lane::Quiet => None,
            })
            .min();
        let h = p.horizon(inputs.iter().map(Input::lane));
        let mut progress = false;
        for i in inputs.iter_mut() {
            if i.quiet_turns > 0 {
                i.quiet_turns -= 1;
                progress = true;
                continue;
            }
            if i.next == i.times.len() || !h.allows(i.wm) {
                continue;
            }
            let first = i.wm.is_none();
            while i.next < i.times.len() {
                let t = i.times[i.next];
                i.next += 1;
                i.wm = Some(i.wm.map_or(t, |w| w.max(t)));
                progress = true;
                if i.wm.is_some_and(|w| w >= h.stop_at()) {
                    break;
                }
            }
            if let (Some(s), Some(w)) = (slowest, i.wm) {
                let ok = w < s.saturating_add(bound).saturating_add(max_step) || first;
                assert!(
                    ok,
                    "ran to {w}: slowest {s}, bound {bound}, step {max_step}"
                );
            }
        }
        rounds += 1;
        if !progress {
            return rounds;
        }
        assert!(rounds < 1_000_000, "no progress: a deadlock");
    }
}

proptest! {
    /// Every input is read to its end (no deadlock, whatever is quiet), and no
    /// turn runs more than the bound plus one line's jump past the slowest
    /// input with lines to read.
    #[test]
    fn inputs_stay_within_the_bound_and_all_finish(
        specs in prop::collection::vec(
            (prop::collection::vec(0i64..5_000, 1..60), 0u32..4),
            1..12,
        ),
        bound in 1_000i64..20_000,
    ) {
        let mut inputs: Vec<Input> = specs
            .iter()
            .map(|(steps, quiet)| {
                let mut t = 0;
                Input {
                    times: steps.iter().map(|s| { t += s; t }).collect(),
                    next: 0,
                    wm: None,
                    quiet_turns: *quiet,
                }
            })
            .collect();
        let max_step = specs.iter().flat_map(|(s, _)| s.iter()).copied().max().unwrap_or(0);
        run(&mut inputs, bound, max_step);
        for i in &inputs {
            prop_assert_eq!(i.next, i.times.len());
        }
    }
}
