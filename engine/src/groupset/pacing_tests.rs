//! Event-time pacing of a worker's groups (see [`crate::pacing`]): only a few
//! windows are alive at once whatever the number of groups, and a quiet, waiting
//! or finished group holds no one back.

use super::*;
use std::path::Path;

const MINUTE: i64 = 60_000;
const BOUND: i64 = crate::pacing::FILE_GROUP_BOUND_WINDOWS;

/// A json job over `dir/*/app.log`, one-minute windows, each folder a host.
fn job(dir: &Path, max_open_files: usize) -> Job {
    let text = format!(
        "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [\"{}/*/app.log\"]\n\
         max_open_files = {max_open_files}\n\
         host = {{ path_regex = '/(?P<host>h[0-9]+)/' }}\n\
         [parse]\nformat = \"json\"\n[window]\nsize = \"1m\"\n\
         [[metric]]\nname = \"n\"\nkind = \"counter\"\n\
         [[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n",
        dir.display()
    );
    let env = tidemark_jobs::Env::empty();
    tidemark_jobs::from_str_with_env(&text, "j.toml", Path::new("/"), &env)
        .unwrap_or_else(|d| panic!("{d}"))
}

/// Host `h` writes `per_minute` lines a minute for `minutes` minutes.
fn write_host(dir: &Path, h: usize, minutes: i64, per_minute: i64) -> u64 {
    let folder = dir.join(format!("h{h}"));
    std::fs::create_dir_all(&folder).unwrap();
    let mut text = String::new();
    for i in 0..minutes * per_minute {
        let ms = i * MINUTE / per_minute;
        let t = jiff::Timestamp::from_millisecond(1_767_225_600_000 + ms).unwrap();
        text.push_str(&format!("{{\"time\":\"{t}\",\"pad\":\"{:080}\"}}\n", i));
    }
    std::fs::write(folder.join("app.log"), text).unwrap();
    (minutes * per_minute) as u64
}

fn groupset(job: Job, follow: bool, paced: bool) -> GroupSet {
    let resume = Arc::new(ResumePlan::default());
    let initial = initial_groups(&job, &resume).unwrap();
    let owners = balance(&initial, 1);
    let initial = Arc::new(initial.into_iter().zip(owners).collect());
    let plan = Arc::new(Plan::new(&job));
    let tail = plan.tail.clone();
    let gs = GroupSet::new(
        Arc::new(job),
        plan,
        resume,
        crate::resume::ResumeBoard::new(),
        tail,
        initial,
        follow,
        0,
        (0, 1),
        ProcessFiles::new(1024),
    );
    if paced {
        gs
    } else {
        // A bound no run reaches: reading by bytes only, as before pacing.
        gs.with_pacer(Pacer::new(EventMs::MAX / 4, PaceBoard::new(1), 0))
    }
}

/// What a finite run of `gs` left alive at worst: windows between the
/// worker's frontier and the furthest group (what the stages after the source
/// hold), and the groups' open windows summed.
struct Alive {
    windows: i64,
    group_windows: usize,
    /// Most files held open at once, after any round.
    files_held: usize,
    lines: u64,
    rounds: u32,
}

fn read_all(gs: &mut GroupSet, stats: &mut JobStats) -> Alive {
    let wall = crate::time::wall_clock_ms();
    gs.discover_if_due(Instant::now(), false, EventMs::MIN, wall, stats)
        .unwrap();
    let mut alive = Alive {
        windows: 0,
        group_windows: 0,
        files_held: 0,
        lines: 0,
        rounds: 0,
    };
    while alive.rounds < 100_000 {
        alive.rounds += 1;
        let busy = gs.read_round(1 << 20, 4 << 20, Instant::now(), wall, stats);
        let held = gs.groups.iter().filter(|g| g.holds_file()).count();
        alive.files_held = alive.files_held.max(held);
        let open: usize = gs.groups.iter().map(|g| g.open_windows()).sum();
        alive.group_windows = alive.group_windows.max(open);
        for g in &mut gs.groups {
            g.close_windows(|_, _| {});
        }
        let frontier = gs.first_open(wall);
        let ahead = gs.groups.iter().map(|g| g.watermark_window()).max();
        if let Some(ahead) = ahead.filter(|_| frontier != WindowTime::MAX) {
            let span = (ahead as i64 - frontier as i64) / MINUTE + 1;
            alive.windows = alive.windows.max(span);
        }
        if !busy && gs.groups.iter().all(|g| g.is_finished()) {
            break;
        }
    }
    alive.lines = stats.lines_read;
    alive
}

#[test]
fn paced_groups_keep_only_a_few_windows_alive() {
    let d = tempfile::tempdir().unwrap();
    let lines: u64 = (0..12).map(|h| write_host(d.path(), h, 60, 6)).sum();
    let mut stats = JobStats::default();
    let paced = read_all(&mut groupset(job(d.path(), 256), false, true), &mut stats);
    assert_eq!(paced.lines, lines);
    assert!(stats.paced_turns > 0, "{stats:?}");
    assert!(
        paced.windows <= BOUND + 2,
        "{} windows alive at once",
        paced.windows
    );
    assert!(
        paced.group_windows <= 12 * (BOUND as usize + 2),
        "{}",
        paced.group_windows
    );
    // Read by bytes, each group reads its whole hour in one turn.
    let mut stats = JobStats::default();
    let unpaced = read_all(&mut groupset(job(d.path(), 256), false, false), &mut stats);
    assert_eq!(unpaced.lines, lines);
    assert!(
        unpaced.group_windows >= 12 * 59,
        "{} group windows alive",
        unpaced.group_windows
    );
}

/// Groups waiting for a descriptor hold no one back, and the ones holding a
/// descriptor read on to free it: no deadlock.
#[test]
fn groups_waiting_for_a_descriptor_do_not_deadlock_the_others() {
    let d = tempfile::tempdir().unwrap();
    let lines: u64 = (0..4).map(|h| write_host(d.path(), h, 30, 4)).sum();
    let mut stats = JobStats::default();
    let run = read_all(&mut groupset(job(d.path(), 1), false, true), &mut stats);
    assert_eq!(run.lines, lines, "rounds {}", run.rounds);
}

/// A host whose file ends early (finished) does not hold the others at its
/// last minute.
#[test]
fn a_finished_group_holds_no_one_back() {
    let d = tempfile::tempdir().unwrap();
    let mut lines = write_host(d.path(), 0, 1, 2);
    lines += write_host(d.path(), 1, 40, 4);
    let mut stats = JobStats::default();
    let run = read_all(&mut groupset(job(d.path(), 16), false, true), &mut stats);
    assert_eq!(run.lines, lines);
    assert!(run.windows <= BOUND + 2, "{}", run.windows);
}

/// Live mode: a host idle at the end of its file (a quiet host) does not stall
/// a host catching up on a backlog.
#[test]
fn a_quiet_host_does_not_stall_a_live_fleet() {
    let d = tempfile::tempdir().unwrap();
    write_host(d.path(), 0, 1, 2);
    let backlog = write_host(d.path(), 1, 40, 4);
    let mut gs = groupset(job(d.path(), 16), true, true);
    let mut stats = JobStats::default();
    let wall = crate::time::wall_clock_ms();
    gs.discover_if_due(Instant::now(), false, EventMs::MIN, wall, &mut stats)
        .unwrap();
    let mut rounds = 0;
    while stats.lines_read < backlog + 2 && rounds < 10_000 {
        gs.read_round(1 << 20, 4 << 20, Instant::now(), wall, &mut stats);
        rounds += 1;
    }
    assert_eq!(
        stats.lines_read,
        backlog + 2,
        "stalled after {rounds} rounds"
    );
    assert!(!gs.groups[0].is_finished() && !gs.groups[1].is_finished());
}

/// More groups than descriptors: the groups ahead close their files mid-read
/// for the ones behind, so the fleet still reads in step, within its share.
#[test]
fn more_groups_than_descriptors_still_read_in_step() {
    let d = tempfile::tempdir().unwrap();
    let lines: u64 = (0..12).map(|h| write_host(d.path(), h, 60, 20)).sum();
    let mut stats = JobStats::default();
    let alive = read_all(&mut groupset(job(d.path(), 3), false, true), &mut stats);
    assert!(alive.files_held <= 3, "{} files open", alive.files_held);
    assert_eq!(alive.lines, lines);
    assert!(
        alive.windows <= BOUND + 2,
        "{} windows alive at once",
        alive.windows
    );
    assert!(stats.reopens > 0, "{stats:?}");
}

/// Host 1 jumps ahead (minute 0, then minutes 30..60), host 0 reads on to its
/// end (minute 10). The round in which host 0 reaches its end defers host 1; it
/// used to end with `busy == false` (host 0 returned Idle/Finished) and
/// `pace_waiting() == false` (bytes were read), so the source slept for its
/// whole poll interval (250 ms finite, seconds live) although host 1 could read
/// at once. Every round after which something is left to read must ask to be
/// activated again soon.
fn write_jumping_hosts(dir: &Path) {
    let line = |h: usize, min: i64, i: i64| {
        let t = jiff::Timestamp::from_millisecond(1_767_225_600_000 + min * MINUTE + i).unwrap();
        format!(
            "{{\"time\":\"{t}\",\"pad\":\"{h}{i:06}{}\"}}\n",
            "x".repeat(20_000)
        )
    };
    let mut a = String::new();
    for m in 0..10 {
        a.push_str(&line(0, m, 0));
    }
    let mut b = line(1, 0, 0);
    for m in 30..60 {
        b.push_str(&line(1, m, 0));
    }
    for (h, text) in [(0, a), (1, b)] {
        let folder = dir.join(format!("h{h}"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("app.log"), text).unwrap();
    }
}

fn assert_no_sleep_with_lines_to_read(follow: bool) {
    let d = tempfile::tempdir().unwrap();
    write_jumping_hosts(d.path());
    let mut gs = groupset(job(d.path(), 16), follow, true);
    let mut stats = JobStats::default();
    let wall = crate::time::wall_clock_ms();
    gs.discover_if_due(Instant::now(), false, EventMs::MIN, wall, &mut stats)
        .unwrap();
    for round in 0..1000 {
        let busy = gs.read_round(1 << 20, 4 << 20, Instant::now(), wall, &mut stats);
        if stats.lines_read == 41 {
            return;
        }
        assert!(
            busy || gs.pace_waiting(),
            "round {round}: {} of 41 lines read, turns {:?}, but the source would \
             sleep its whole poll interval",
            stats.lines_read,
            gs.turns
        );
    }
    panic!("not all lines read: {}", stats.lines_read);
}

#[test]
fn a_deferred_group_is_not_left_until_the_next_poll_finite() {
    assert_no_sleep_with_lines_to_read(false);
}

#[test]
fn a_deferred_group_is_not_left_until_the_next_poll_live() {
    assert_no_sleep_with_lines_to_read(true);
}

/// `park_one_ahead` must not stop at the group furthest ahead: when that one
/// reads a compressed sibling (`park_paused` refuses), the next furthest is
/// closed instead. Trying only the first left the group behind without a
/// descriptor, and the others ran ahead without bound (43 windows alive).
#[test]
fn a_gzip_group_ahead_does_not_defeat_pacing() {
    use std::io::Write;
    let d = tempfile::tempdir().unwrap();
    let mut lines = 0;
    for h in 0..4 {
        lines += write_host(d.path(), h, 60, 20);
    }
    // Host 0's hour moves to a compressed rotated sibling, a short live file after it.
    let folder = d.path().join("h0");
    let text = std::fs::read(folder.join("app.log")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(folder.join("app.log.1.gz")).unwrap(),
        flate2::Compression::fast(),
    );
    gz.write_all(&text).unwrap();
    gz.finish().unwrap();
    let t = jiff::Timestamp::from_millisecond(1_767_225_600_000 + 61 * MINUTE).unwrap();
    std::fs::write(folder.join("app.log"), format!("{{\"time\":\"{t}\"}}\n")).unwrap();
    lines += 1;
    let mut stats = JobStats::default();
    let alive = read_all(&mut groupset(job(d.path(), 2), false, true), &mut stats);
    assert_eq!(alive.lines, lines);
    assert!(
        alive.windows <= BOUND + 2,
        "{} windows alive at once",
        alive.windows
    );
}

/// A group reading a rotated sibling is never closed mid-read (logrotate
/// deletes that file next, and its unread rest with it): when every group
/// ahead reads one, the group behind waits for a descriptor, every line is
/// still read once, and the stats count the turns pacing could not bound
/// (`paced_fd_waits`), rather than hiding them.
#[test]
fn groups_reading_rotated_siblings_are_not_closed_and_the_wait_is_counted() {
    let d = tempfile::tempdir().unwrap();
    let mut lines = 0;
    for h in 0..3 {
        lines += write_host(d.path(), h, 60, 20);
    }
    // Hosts 0 and 1: their hour in `app.log.1`, a short live file after it.
    for h in 0..2 {
        let folder = d.path().join(format!("h{h}"));
        std::fs::rename(folder.join("app.log"), folder.join("app.log.1")).unwrap();
        let t = jiff::Timestamp::from_millisecond(1_767_225_600_000 + 61 * MINUTE).unwrap();
        std::fs::write(folder.join("app.log"), format!("{{\"time\":\"{t}\"}}\n")).unwrap();
        lines += 1;
    }
    let mut gs = groupset(job(d.path(), 2), false, true);
    let mut stats = JobStats::default();
    let wall = crate::time::wall_clock_ms();
    gs.discover_if_due(Instant::now(), false, EventMs::MIN, wall, &mut stats)
        .unwrap();
    for _ in 0..100_000 {
        gs.read_round(1 << 20, 4 << 20, Instant::now(), wall, &mut stats);
        if gs.groups.iter().all(|g| g.is_finished()) {
            break;
        }
    }
    assert_eq!(stats.lines_read, lines, "{stats:?}");
    assert!(stats.paced_fd_waits > 0, "{stats:?}");
    assert!(
        stats.summary().contains("no group ahead could"),
        "{}",
        stats.summary()
    );
}
