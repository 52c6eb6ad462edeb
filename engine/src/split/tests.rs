//! A split group's segments read after the files changed since the plan.

use std::io::Write;
use std::path::Path;

use tidemark_sources::file::FileGroup;
use tidemark_sources::parse::LineParser;

use super::run::SplitRun;
use super::source::{open_at_stop, read_failure};
use super::SplitPlan;
use crate::plan::Plan;
use crate::stats::JobStats;
use crate::watermark::ClockState;

const LINES: usize = 20_000;

fn job(dir: &Path) -> tidemark_jobs::Job {
    let text = format!(
        "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [{:?}]\nsplit_from = \"4KiB\"\n\
         [parse]\nformat = \"json\"\n[[metric]]\nname = \"n\"\nkind = \"counter\"\n\
         [[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n",
        dir.join("*.log").to_string_lossy()
    );
    let env = tidemark_jobs::Env::empty();
    tidemark_jobs::from_str_with_env(&text, "j.toml", Path::new("/"), &env)
        .unwrap_or_else(|d| panic!("{d}"))
}

fn lines(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| {
            format!(
                "{{\"time\":\"2026-11-20T10:00:{:02}Z\"}}\n",
                (i / 1000) % 60
            )
        })
        .collect()
}

/// Plans the split of `dir/a.log`, lets `change` alter the file, then reads
/// every segment in order with the true clock: the lines read, or the error.
fn plan_change_read(change: impl FnOnce(&Path)) -> Result<JobStats, crate::error::EngineError> {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("a.log");
    std::fs::write(&live, lines(0, LINES)).unwrap();
    let job = job(d.path());
    let mut groups = vec![FileGroup {
        live: live.clone(),
        rotated: vec![],
    }];
    let (split, _) = SplitPlan::take(&job, &mut groups, 2);
    let n = split.queue.lock().unwrap().len();
    assert!(n > 1, "not split");
    change(&live);
    let plan = Plan::new(&job);
    let mut parser = LineParser::new(&job.parse, &plan.fields).unwrap();
    let mut stats = JobStats::default();
    let mut at = ClockState::default();
    while let Some((g, seg)) = split.pop() {
        let to_eof = split.groups[g].to_eof[seg.seq as usize];
        let planned = seg.clone();
        let mut run = SplitRun::open(g, seg, to_eof, Some(at), &plan, 1 << 16)
            .map_err(|e| read_failure(&planned, None, e))?;
        while !run
            .read(1 << 16, &mut parser, &plan, i64::MAX / 4)
            .map_err(|e| read_failure(&planned, Some(planned.start), e))?
        {}
        let mut unreadable = Default::default();
        run.hand_on(plan.window_ms, &mut stats, &mut unreadable, |_, _| {});
        at = run.clock();
    }
    Ok(stats)
}

#[test]
fn lines_appended_after_the_plan_are_read_by_the_files_last_segment() {
    let stats = plan_change_read(|live| {
        let mut f = std::fs::OpenOptions::new().append(true).open(live).unwrap();
        f.write_all(lines(LINES, 500).as_bytes()).unwrap();
    })
    .unwrap();
    assert_eq!(stats.lines_read, (LINES + 500) as u64);
}

/// A file cut short (or gone) under a split run stops it with a split run's
/// read error: the file named, what happened, and what to do — not "output
/// failed" nor a replay's words.
#[test]
fn a_file_that_shrinks_or_vanishes_is_a_split_read_error_saying_what_to_do() {
    let shrunk = plan_change_read(|live| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(live)
            .unwrap()
            .set_len(1000)
            .unwrap();
    })
    .unwrap_err();
    let gone = plan_change_read(|live| std::fs::remove_file(live).unwrap()).unwrap_err();
    for (e, what) in [(shrunk, "it shrank"), (gone, "is gone")] {
        assert!(
            matches!(e, crate::error::EngineError::SplitRead { .. }),
            "{e:?}"
        );
        let text = crate::error::full_message(&e);
        for words in ["a.log: ", what, "run again", "`-w 1`", "`split_from`"] {
            assert!(text.contains(words), "{words:?} not in {text:?}");
        }
        assert!(!text.contains("replay"), "{text}");
    }
}

/// At a stop the windows of the current read and of the parked reads are
/// counted, the parked ones once whichever worker stops first.
#[test]
fn a_stop_counts_the_windows_of_the_current_and_the_parked_reads() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("a.log");
    std::fs::write(&live, lines(0, LINES)).unwrap();
    let job = job(d.path());
    let mut groups = vec![FileGroup {
        live,
        rotated: vec![],
    }];
    let (split, _) = SplitPlan::take(&job, &mut groups, 2);
    let plan = Plan::new(&job);
    let mut parser = LineParser::new(&job.parse, &plan.fields).unwrap();
    let (_, first) = split.pop().unwrap();
    let (g, second) = split.pop().unwrap();
    // The second segment read whole ahead of the first, and parked.
    let mut ahead = SplitRun::open(g, second, false, None, &plan, 1 << 16).unwrap();
    while !ahead
        .read(1 << 16, &mut parser, &plan, i64::MAX / 4)
        .unwrap()
    {}
    let parked = ahead.open_windows() as u64;
    assert!(parked > 0);
    split.groups[g]
        .chain
        .lock()
        .unwrap()
        .parked
        .insert(ahead.seq(), ahead);
    // The first one partly read, with the true clock.
    let mut current =
        SplitRun::open(g, first, false, Some(ClockState::default()), &plan, 1 << 16).unwrap();
    assert!(!current
        .read(4096, &mut parser, &plan, i64::MAX / 4)
        .unwrap());
    let reading = current.open_windows() as u64;
    assert!(reading > 0);
    assert_eq!(open_at_stop(Some(current), &split), parked + reading);
    assert_eq!(open_at_stop(None, &split), 0, "counted twice");
}

/// A group gives out no segment while it has `max_waiting` finished reads
/// waiting for confirmation, and gives them out again once one is confirmed.
#[test]
fn reads_waiting_for_confirmation_are_bounded_per_group() {
    let d = tempfile::tempdir().unwrap();
    let live = d.path().join("a.log");
    std::fs::write(&live, lines(0, LINES)).unwrap();
    let job = job(d.path());
    let mut groups = vec![FileGroup {
        live,
        rotated: vec![],
    }];
    let (split, _) = SplitPlan::take(&job, &mut groups, 2);
    let plan = Plan::new(&job);
    assert_eq!(split.max_waiting, 4);
    assert!(split.queue.lock().unwrap().len() > 6);
    // Segment 0 is being read; the next four finished ahead of it.
    let (g, _) = split.pop().unwrap();
    for _ in 0..4 {
        let (g, seg) = split.pop().unwrap();
        let run = SplitRun::open(g, seg, false, None, &plan, 1 << 16).unwrap();
        split.groups[g]
            .chain
            .lock()
            .unwrap()
            .parked
            .insert(run.seq(), run);
    }
    assert!(split.pop().is_none(), "a fifth read ahead");
    assert!(!split.is_drained());
    split.groups[g].chain.lock().unwrap().parked.pop_first();
    assert!(split.pop().is_some());
}

/// Two split groups over the same minutes are queued in step by event time
/// (each group's segments still in order), not one whole after the other:
/// that kept every split group's windows of the whole range alive.
#[test]
fn split_groups_are_queued_in_step_by_event_time() {
    let d = tempfile::tempdir().unwrap();
    let mut groups = Vec::new();
    for name in ["a.log", "b.log"] {
        let live = d.path().join(name);
        std::fs::write(&live, lines(0, LINES)).unwrap();
        groups.push(FileGroup {
            live,
            rotated: vec![],
        });
    }
    let (split, _) = SplitPlan::take(&job(d.path()), &mut groups, 2);
    let q: Vec<(usize, u32)> = split
        .queue
        .lock()
        .unwrap()
        .iter()
        .map(|(g, s)| (*g, s.seq))
        .collect();
    for g in 0..2 {
        let seqs: Vec<u32> = q.iter().filter(|x| x.0 == g).map(|x| x.1).collect();
        assert!(seqs.len() > 2, "{q:?}");
        assert_eq!(seqs, (0..seqs.len() as u32).collect::<Vec<_>>(), "{q:?}");
    }
    let first_half: std::collections::HashSet<usize> =
        q[..q.len() / 2].iter().map(|x| x.0).collect();
    assert_eq!(first_half.len(), 2, "{q:?}");
}
