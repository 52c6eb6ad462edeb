//! One file, one group, however many paths reach it and whenever they appear:
//! link flips, `dateext` renames, two workers' discoveries (issue 10 §3
//! follow-up). Live mode, simulated time; counts are lines read from files.

use super::tests::job;
use super::*;
use std::path::Path;

/// `n` JSON lines, each file's own (`tag`): files with the same first bytes
/// are one content to the tailer.
fn lines(tag: &str, n: u32) -> String {
    (0..n)
        .map(|s| {
            format!(
                "{{\"time\":\"2026-01-01T00:00:{:02}Z\",\"f\":\"{tag}\"}}\n",
                s % 60
            )
        })
        .collect()
}

/// A live worker `index` of `local` over `job`, with the groups there now.
fn worker(job: &Job, index: usize, local: (usize, usize), files: &Arc<ProcessFiles>) -> GroupSet {
    let resume = Arc::new(ResumePlan::default());
    let initial = initial_groups(job, &resume).unwrap();
    let owners = balance(&initial, local.1);
    let plan = Arc::new(Plan::new(job));
    GroupSet::new(
        Arc::new(job.clone()),
        plan.clone(),
        resume,
        crate::resume::ResumeBoard::new(),
        plan.tail.clone(),
        Arc::new(initial.into_iter().zip(owners).collect()),
        true,
        index,
        local,
        files.clone(),
    )
}

/// Simulated time, shared by the workers of a test.
struct Clock(Instant);

impl Clock {
    fn tick(&mut self) -> Instant {
        self.0 += Duration::from_millis(600);
        self.0
    }
}

/// Discovers (due: time moved past the interval) and reads until nothing more.
fn pump(gs: &mut GroupSet, clock: &mut Clock, stats: &mut JobStats) {
    let wall = crate::time::wall_clock_ms();
    for _ in 0..4 {
        let now = clock.tick();
        gs.discover_if_due(now, true, EventMs::MIN, wall, stats)
            .unwrap();
        for _ in 0..20 {
            if !gs.read_round(1 << 20, 1 << 20, now, wall, stats) {
                break;
            }
        }
    }
}

fn base() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(d.path()).unwrap();
    (d, base)
}

/// Points the link `at` to `target`, atomically (as deploy tools do).
fn flip(at: &Path, target: &str) {
    let tmp = at.with_extension("tmp");
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, at).unwrap();
}

/// Regression: `current -> releases/41` re-pointed to `releases/42`, both
/// matched by the globs: `releases/41/app.log` became a group of its own once
/// `current/app.log` led elsewhere, and was read a second time.
#[test]
fn a_release_link_flip_does_not_count_the_new_release_twice() {
    let (_d, base) = base();
    for r in ["41", "42"] {
        std::fs::create_dir_all(base.join("releases").join(r)).unwrap();
    }
    std::fs::write(base.join("releases/41/app.log"), lines("41", 100)).unwrap();
    std::os::unix::fs::symlink("releases/41", base.join("current")).unwrap();
    let b = base.display();
    let job = job(
        &[
            format!("{b}/current/*.log"),
            format!("{b}/releases/*/*.log"),
        ],
        &[],
    );
    let files = ProcessFiles::new(1024);
    let mut gs = worker(&job, 0, (0, 1), &files);
    let (mut clock, mut stats) = (Clock(Instant::now()), JobStats::default());
    pump(&mut gs, &mut clock, &mut stats);
    assert_eq!(stats.lines_read, 100, "{stats:?}");

    std::fs::write(base.join("releases/42/app.log"), lines("42", 100)).unwrap();
    flip(&base.join("current"), "releases/42");
    pump(&mut gs, &mut clock, &mut stats);
    assert_eq!(stats.lines_read, 200, "{stats:?}");
    assert_eq!(stats.file_groups, 2, "{stats:?}");
    // And once more, back and forth: nothing is read again.
    flip(&base.join("current"), "releases/41");
    pump(&mut gs, &mut clock, &mut stats);
    assert_eq!(stats.lines_read, 200, "{stats:?}");
}

/// Regression: a group named by a link (`current/app.log`: the releases glob
/// did not match its real path), flipped onto a new release the other glob
/// matches. Discovery ran before the group's tailer moved to the new file, so
/// `releases/42/app.log` became a group too, and both read it.
#[test]
fn a_link_flip_onto_a_new_release_is_read_by_the_link_group_only() {
    let (_d, base) = base();
    for r in ["41", "42"] {
        std::fs::create_dir_all(base.join("releases").join(r)).unwrap();
    }
    std::fs::write(base.join("releases/41/app.log"), lines("41", 100)).unwrap();
    std::os::unix::fs::symlink("releases/41", base.join("current")).unwrap();
    let b = base.display();
    let job = job(
        &[
            format!("{b}/current/*.log"),
            format!("{b}/releases/4[2-9]/*.log"),
        ],
        &[],
    );
    let files = ProcessFiles::new(1024);
    let mut gs = worker(&job, 0, (0, 1), &files);
    let (mut clock, mut stats) = (Clock(Instant::now()), JobStats::default());
    pump(&mut gs, &mut clock, &mut stats);
    assert_eq!(stats.lines_read, 100, "{stats:?}");

    std::fs::write(base.join("releases/42/app.log"), lines("42", 100)).unwrap();
    flip(&base.join("current"), "releases/42");
    pump(&mut gs, &mut clock, &mut stats);
    assert_eq!(stats.lines_read, 200, "{stats:?}");
    assert_eq!(stats.file_groups, 1, "{stats:?}");
}

/// Regression: logrotate's `dateext` renames `app.log` to `app.log-20261204`;
/// with a glob that also matches the new name, the renamed file became a new
/// group and was read again. It is the first group's rotated file: the lines
/// the writer appends to it through its open handle are read by that group.
#[test]
fn a_dateext_rename_does_not_read_the_renamed_file_again() {
    let (_d, base) = base();
    let live = base.join("app.log");
    std::fs::write(&live, lines("a", 100)).unwrap();
    let job = job(&[format!("{}/app.log*", base.display())], &[]);
    let files = ProcessFiles::new(1024);
    let mut gs = worker(&job, 0, (0, 1), &files);
    let (mut clock, mut stats) = (Clock(Instant::now()), JobStats::default());
    pump(&mut gs, &mut clock, &mut stats);
    assert_eq!(stats.lines_read, 100, "{stats:?}");

    let renamed = base.join("app.log-20261204");
    std::fs::rename(&live, &renamed).unwrap();
    // The writer still holds the old file: its last lines land there.
    let mut old = std::fs::OpenOptions::new()
        .append(true)
        .open(&renamed)
        .unwrap();
    std::io::Write::write_all(&mut old, lines("a", 10).as_bytes()).unwrap();
    std::fs::write(&live, lines("b", 90)).unwrap();
    pump(&mut gs, &mut clock, &mut stats);
    assert_eq!(stats.lines_read, 200, "{stats:?}");
    assert_eq!(stats.file_groups, 1, "{stats:?}");
    assert_eq!(gs.groups.len(), 1);
    assert_eq!(gs.groups[0].live(), live);
    assert_eq!(stats.duplicate_paths, 1, "reported: {stats:?}");
}

/// Regression: each worker runs its own discovery. A hard link made between
/// worker 0's and worker 1's discoveries was a second group in worker 1 (it
/// sorts first), so both workers read the file.
#[test]
fn a_second_path_found_between_two_workers_discoveries_is_read_once() {
    let (_d, base) = base();
    let logs = base.join("logs");
    // Names whose groups the two workers would own apart.
    let first = logs.join("a/app.log");
    let second = (0..1000)
        .map(|n| logs.join(format!("b{n}/app.log")))
        .find(|p| path_hash(p) % 2 != path_hash(&first) % 2)
        .unwrap();
    let job = job(&[format!("{}/*/app.log", logs.display())], &[]);
    std::fs::create_dir_all(&logs).unwrap();
    let files = ProcessFiles::new(1024);
    let mut w0 = worker(&job, 0, (0, 2), &files);
    let mut w1 = worker(&job, 1, (0, 2), &files);
    let (mut clock, mut stats) = (Clock(Instant::now()), JobStats::default());
    pump(&mut w0, &mut clock, &mut stats);
    pump(&mut w1, &mut clock, &mut stats);

    std::fs::create_dir_all(second.parent().unwrap()).unwrap();
    std::fs::write(&second, lines("x", 100)).unwrap();
    pump(&mut w0, &mut clock, &mut stats);
    std::fs::create_dir_all(first.parent().unwrap()).unwrap();
    std::fs::hard_link(&second, &first).unwrap();
    for _ in 0..2 {
        pump(&mut w1, &mut clock, &mut stats);
        pump(&mut w0, &mut clock, &mut stats);
    }
    assert_eq!(stats.lines_read, 100, "{stats:?}");
    assert_eq!(stats.file_groups, 1, "{stats:?}");
}

/// Each worker evaluated the globs itself: with 2 workers, two walks of the
/// same folders per discovery (and a path seen by one and not the other).
/// Workers due at once share one run, and all learn its new groups.
#[test]
fn workers_share_one_discovery() {
    let (_d, base) = base();
    let job = job(&[format!("{}/*.log", base.display())], &[]);
    let files = ProcessFiles::new(1024);
    let mut w = [
        worker(&job, 0, (0, 2), &files),
        worker(&job, 1, (0, 2), &files),
    ];
    let (start, mut stats) = (Instant::now(), JobStats::default());
    let wall = crate::time::wall_clock_ms();
    for gs in &mut w {
        gs.discover_if_due(start, false, EventMs::MIN, wall, &mut stats)
            .unwrap();
    }
    for i in 0..10 {
        std::fs::write(base.join(format!("{i}.log")), lines("n", 1)).unwrap();
    }
    let later = start + DISCOVERY_INTERVAL;
    for gs in &mut w {
        gs.discover_if_due(later, false, EventMs::MIN, wall, &mut stats)
            .unwrap();
    }
    // The first discovery of each (the groups there at start), then one run.
    assert_eq!(w[0].discoveries() + w[1].discoveries(), 3);
    assert_eq!(files.runs(), 1);
    assert_eq!(stats.file_groups, 10, "each group once, by one of them");
    assert_eq!(w[0].groups.len() + w[1].groups.len(), 10);
}

/// logrotate's `copytruncate` of `app.log` (copied to `app.log.1`, truncated
/// in place, 5 new lines written), then a `dateext` rename of it to
/// `app.log-20261204` and a new `app.log`; the glob matches every name.
fn copytruncate_then_dateext(base: &Path) -> PathBuf {
    let live = base.join("app.log");
    std::fs::copy(&live, base.join("app.log.1")).unwrap();
    let mut f = std::fs::OpenOptions::new().write(true).open(&live).unwrap();
    f.set_len(0).unwrap();
    std::io::Write::write_all(&mut f, lines("b", 5).as_bytes()).unwrap();
    drop(f);
    std::fs::rename(&live, base.join("app.log-20261204")).unwrap();
    std::fs::write(&live, lines("c", 3)).unwrap();
    live
}

/// A followed group over `app.log*` that read 100 lines of `app.log`.
fn one_group_read_100(base: &Path) -> (GroupSet, Clock, JobStats) {
    std::fs::write(base.join("app.log"), lines("a", 100)).unwrap();
    let job = job(&[format!("{}/app.log*", base.display())], &[]);
    let files = ProcessFiles::new(1024);
    let mut gs = worker(&job, 0, (0, 1), &files);
    let (mut clock, mut stats) = (Clock(Instant::now()), JobStats::default());
    pump(&mut gs, &mut clock, &mut stats);
    assert_eq!(stats.lines_read, 100, "{stats:?}");
    (gs, clock, stats)
}

/// Regression (review R17s, lines read twice after a copytruncate then a
/// dateext rename): the group read the truncated file's new lines and left it
/// for the new `app.log` within one turn, and the claim table only heard of
/// the file it read at the end of the turn. The renamed file's claim kept the
/// first bytes it had before the truncation, so its new name, whose first
/// bytes differ, became a second group and its 5 lines were read again.
#[test]
fn a_copytruncate_then_dateext_rename_read_in_one_turn_is_not_read_twice() {
    let (_d, base) = base();
    let (mut gs, mut clock, mut stats) = one_group_read_100(&base);
    let live = copytruncate_then_dateext(&base);
    // The group reads before the next discovery (as in a live run, where a
    // discovery is due every few seconds and reads happen in between).
    let wall = crate::time::wall_clock_ms();
    let now = clock.tick();
    while gs.read_round(1 << 20, 1 << 20, now, wall, &mut stats) {}
    assert_eq!(stats.lines_read, 108, "{stats:?}");
    pump(&mut gs, &mut clock, &mut stats);
    assert_eq!(stats.lines_read, 108, "{stats:?}");
    assert_eq!(stats.file_groups, 1, "{stats:?}");
    assert_eq!(gs.groups[0].live(), live);
}

/// The same rotation found by a discovery before the group reads again: the
/// group still holds the truncated file open (its claim has the old first
/// bytes), so the renamed path is its file, not a new group's.
#[test]
fn a_copytruncate_then_dateext_rename_found_before_the_group_reads_is_not_read_twice() {
    let (_d, base) = base();
    let (mut gs, mut clock, mut stats) = one_group_read_100(&base);
    let live = copytruncate_then_dateext(&base);
    pump(&mut gs, &mut clock, &mut stats);
    assert_eq!(stats.lines_read, 108, "{stats:?}");
    assert_eq!(stats.file_groups, 1, "{stats:?}");
    assert_eq!(gs.groups[0].live(), live);
}
