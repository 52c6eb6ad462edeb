//! Groups over real folders: balance, allowed roots, one file one group.

use super::*;
use std::path::Path;

#[test]
fn balance_splits_by_size_largest_first() {
    let d = tempfile::tempdir().unwrap();
    let mut groups = Vec::new();
    for (name, len) in [("a", 100), ("b", 60), ("c", 50), ("d", 10)] {
        let p = d.path().join(name);
        std::fs::write(&p, vec![b'x'; len]).unwrap();
        groups.push(FileGroup {
            live: p,
            rotated: vec![],
        });
    }
    // a→0 (100), b→1 (60), c→1 (110), d→0 (110).
    assert_eq!(balance(&groups, 2), vec![0, 1, 1, 0]);
    assert_eq!(balance(&groups, 1), vec![0, 0, 0, 0]);
}

/// A json job reading `include`, limited to `roots` as the cluster sets them.
pub(super) fn job(include: &[String], roots: &[&Path]) -> Job {
    let list = include
        .iter()
        .map(|g| format!("{g:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [{list}]\n\
         [parse]\nformat = \"json\"\n[[metric]]\nname = \"n\"\nkind = \"counter\"\n\
         [[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n"
    );
    let env = tidemark_jobs::Env::empty();
    let mut job = tidemark_jobs::from_str_with_env(&text, "j.toml", Path::new("/"), &env)
        .unwrap_or_else(|d| panic!("{d}"));
    job.source.allowed_roots = roots.iter().map(|r| r.to_path_buf()).collect();
    job
}

/// Discovers and reads everything `job` reads (not following), as one worker.
fn run(job: Job, swap: impl FnOnce()) -> (Vec<PathBuf>, JobStats) {
    let resume = Arc::new(ResumePlan::default());
    let initial = initial_groups(&job, &resume).unwrap();
    let lives = initial.iter().map(|g| g.live.clone()).collect();
    let owners = balance(&initial, 1);
    let initial = Arc::new(initial.into_iter().zip(owners).collect());
    let plan = Arc::new(Plan::new(&job));
    let tail = plan.tail.clone();
    let board = crate::resume::ResumeBoard::new();
    let mut gs = GroupSet::new(
        Arc::new(job),
        plan,
        resume,
        board,
        tail,
        initial,
        false,
        0,
        (0, 1),
        ProcessFiles::new(1024),
    );
    let mut stats = JobStats::default();
    let wall = crate::time::wall_clock_ms();
    gs.discover_if_due(Instant::now(), false, EventMs::MIN, wall, &mut stats)
        .unwrap();
    // Files changed after discovery are caught when they are opened.
    swap();
    for _ in 0..1000 {
        gs.read_round(1 << 20, 1 << 20, Instant::now(), wall, &mut stats);
        if gs.groups.iter().all(|g| g.is_finished()) {
            break;
        }
    }
    (lives, stats)
}

/// The cluster sets `allowed_roots` on a job: groups are found, and files read,
/// only where the real path is inside them.
#[test]
fn only_files_inside_the_allowed_roots_are_discovered_and_read() {
    use std::os::unix::fs::symlink;
    let d = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(d.path()).unwrap();
    let (root, out) = (base.join("root"), base.join("out"));
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let line = |n: u32| format!("{{\"time\":\"2026-01-01T00:00:{n:02}Z\"}}\n");
    std::fs::write(root.join("app.log"), line(1) + &line(2)).unwrap();
    std::fs::write(root.join("sub/x.log"), line(3)).unwrap();
    std::fs::write(out.join("secret"), line(4).repeat(10)).unwrap();
    std::fs::write(out.join("x.log"), line(5).repeat(10)).unwrap();
    symlink(out.join("secret"), root.join("evil.log")).unwrap();
    symlink(out.join("secret"), root.join("app.log.1")).unwrap();
    symlink(&out, root.join("x")).unwrap();
    let r = root.display();
    let include = [format!("{r}/*.log"), format!("{r}/*/x.log")];
    let swapped = root.join("app.log.2");

    let (lives, stats) = run(job(&include, &[&root]), || {
        symlink(out.join("secret"), &swapped).unwrap();
    });
    assert_eq!(lives, [root.join("app.log"), root.join("sub/x.log")]);
    assert_eq!(stats.file_groups, 2);
    assert_eq!(stats.lines_read, 3, "{stats:?}");
    assert_eq!(stats.files_opened, 2, "{stats:?}");
    // evil.log and x/x.log left out by discovery; app.log.1 and app.log.2
    // refused by the tailer.
    assert_eq!(stats.file_open_errors, 4, "{stats:?}");

    // Without roots the links are read; `secret` once, as `app.log.1` (the
    // group `evil.log` is another path to it).
    std::fs::remove_file(&swapped).unwrap();
    let (lives, stats) = run(job(&include, &[]), || {});
    assert_eq!(lives.len(), 3, "{lives:?}");
    assert_eq!(stats.lines_read, 3 + 10 + 10, "{stats:?}");
    assert_eq!(stats.file_open_errors, 0);
}

/// One file reached by two paths is one group at start too: the path the
/// checkpoint knows is kept, and a checkpointed group that is another path to
/// a group found (an older version read both) is not read twice.
#[test]
fn initial_groups_read_one_file_once_preferring_the_checkpointed_path() {
    let d = tempfile::tempdir().unwrap();
    let logs = std::fs::canonicalize(d.path()).unwrap().join("logs");
    std::fs::create_dir_all(logs.join("web-1")).unwrap();
    std::fs::write(logs.join("web-1/app.log"), "x\n").unwrap();
    std::os::unix::fs::symlink("web-1", logs.join("current")).unwrap();
    let j = job(&[format!("{}/*/app.log", logs.display())], &[]);
    let resume_of = |paths: &[&str]| ResumePlan {
        groups: paths
            .iter()
            .map(|p| {
                let r = crate::resume::Resume {
                    position: None,
                    max_seen_ms: None,
                    floor_ms: None,
                    suspect_ms: None,
                    at_tail: false,
                    kept: Vec::new(),
                };
                (logs.join(p), r)
            })
            .collect(),
        ..ResumePlan::default()
    };
    let lives = |r: &ResumePlan| -> Vec<PathBuf> {
        initial_groups(&j, r)
            .unwrap()
            .into_iter()
            .map(|g| g.live)
            .collect()
    };
    // The real path, not the link, names the group.
    assert_eq!(lives(&ResumePlan::default()), [logs.join("web-1/app.log")]);
    let known = resume_of(&["current/app.log"]);
    assert_eq!(lives(&known), [logs.join("current/app.log")]);
    let both = resume_of(&["web-1/app.log", "current/app.log"]);
    assert_eq!(lives(&both).len(), 1);
}

/// An idle live job re-evaluated its globs every 500 ms in every worker, with or
/// without inotify: 300 idle jobs spent most of an idle member's CPU on it. With
/// the watcher seeing every folder, only a change (a poke) or the 5 s safety net
/// triggers it. Simulated time: 60 s of 50 ms activations.
#[test]
fn an_idle_watched_job_does_not_rescan_its_globs_every_500ms() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.log"), "").unwrap();
    let job = job(&[format!("{}/*.log", d.path().display())], &[]);
    let scans = |watching: bool, pokes: &[u64]| {
        let resume = Arc::new(ResumePlan::default());
        let plan = Arc::new(Plan::new(&job));
        let mut gs = GroupSet::new(
            Arc::new(job.clone()),
            plan.clone(),
            resume,
            crate::resume::ResumeBoard::new(),
            plan.tail.clone(),
            Arc::new(Vec::new()),
            true,
            0,
            (0, 1),
            ProcessFiles::new(1024),
        );
        gs.set_watching(watching);
        let (start, mut stats) = (Instant::now(), JobStats::default());
        let mut at = Vec::new(); // the ticks with a scan
        for tick in 0..1200u64 {
            let now = start + Duration::from_millis(50 * tick);
            let before = gs.discoveries();
            gs.discover_if_due(now, pokes.contains(&tick), EventMs::MIN, 0, &mut stats)
                .unwrap();
            if gs.discoveries() > before {
                at.push(tick);
            }
        }
        at
    };
    // Not watched: every 500 ms, as before (the first one at start).
    assert_eq!(scans(false, &[]).len(), 120);
    // Watched: the first, then one per 5 s at most; generous bound.
    let watched = scans(true, &[]);
    assert!(watched.len() <= 13, "scans at ticks {watched:?}");
    // A reported change is acted on at once.
    let poked = scans(true, &[7, 333]);
    assert!(poked.contains(&7) && poked.contains(&333), "{poked:?}");
}

/// Regression (engine/tests/discovery.rs failed on a loaded machine): a source
/// slept for its whole poll interval (1 h in that test) when every group was idle,
/// so discovery's own interval, the safety net for a folder whose creation no
/// watch reported, never came. The source now comes back by the time
/// `discovery_due_in` says, and discovery is due then.
#[test]
fn discovery_is_due_again_within_its_interval_whatever_the_poll_interval() {
    let d = tempfile::tempdir().unwrap();
    let job = job(&[format!("{}/*/app.log", d.path().display())], &[]);
    let plan = Arc::new(Plan::new(&job));
    let mut gs = GroupSet::new(
        Arc::new(job.clone()),
        plan.clone(),
        Arc::new(ResumePlan::default()),
        crate::resume::ResumeBoard::new(),
        plan.tail.clone(),
        Arc::new(Vec::new()),
        true,
        0,
        (0, 1),
        ProcessFiles::new(1024),
    );
    let (start, mut stats) = (Instant::now(), JobStats::default());
    assert_eq!(
        gs.discovery_due_in(start),
        Some(Duration::ZERO),
        "never ran"
    );
    for watching in [false, true] {
        gs.set_watching(watching);
        let at = start + Duration::from_secs(if watching { 100 } else { 0 });
        gs.discover_if_due(at, true, EventMs::MIN, 0, &mut stats)
            .unwrap();
        let due = gs.discovery_due_in(at).unwrap();
        let interval = if watching {
            WATCHED_DISCOVERY_INTERVAL
        } else {
            DISCOVERY_INTERVAL
        };
        assert_eq!(due, interval);
        // A folder no event reported appears; the source comes back when due.
        std::fs::create_dir_all(d.path().join(format!("h{watching}"))).unwrap();
        std::fs::write(d.path().join(format!("h{watching}/app.log")), "{}\n").unwrap();
        let before = stats.file_groups;
        gs.discover_if_due(at + due, false, EventMs::MIN, 0, &mut stats)
            .unwrap();
        assert_eq!(stats.file_groups, before + 1, "found when due ({watching})");
        assert_eq!(gs.discovery_due_in(at + due), Some(interval));
    }
}

/// A pause for back-pressure is not idleness (`crate::backpressure`): a group
/// idle at its end before a pause longer than `idle_timeout` must not have its
/// watermark follow the wall clock as the pause ends — the lines written during
/// the pause, unread yet, would be late. Without `after_pause` it would.
#[test]
fn a_pause_longer_than_idle_timeout_does_not_make_a_group_idle() {
    let d = tempfile::tempdir().unwrap();
    let t0: i64 = 1_795_168_800; // 2026-11-20T10:00:00Z
    let line = |t: i64| {
        let ts = jiff::Timestamp::from_second(t).unwrap();
        format!(
            "10.0.0.1 - - [{}] \"GET /x HTTP/1.1\" 200 1 \"-\" \"t\" 0.001\n",
            ts.strftime("%d/%b/%Y:%H:%M:%S +0000")
        )
    };
    let text: String = (0..60).map(|i| line(t0 + i)).collect();
    std::fs::create_dir_all(d.path().join("h")).unwrap();
    std::fs::write(d.path().join("h/access.log"), text).unwrap();
    let job_text = format!(
        "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [\"{}/*/access.log\"]\n\
         [parse]\nformat = \"nginx\"\n[window]\nsize = \"1m\"\nidle_timeout = \"1s\"\n\
         [[metric]]\nname = \"n\"\nkind = \"counter\"\n\
         [[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n",
        d.path().display()
    );
    let job = tidemark_jobs::from_str(&job_text, "j.toml", Path::new("/"))
        .unwrap_or_else(|e| panic!("{e}"));
    let run = |pause: bool| {
        let resume = Arc::new(ResumePlan::default());
        let initial = initial_groups(&job, &resume).unwrap();
        let owners = balance(&initial, 1);
        let initial = Arc::new(initial.into_iter().zip(owners).collect());
        let plan = Arc::new(Plan::new(&job));
        let mut gs = GroupSet::new(
            Arc::new(job.clone()),
            plan.clone(),
            resume,
            crate::resume::ResumeBoard::new(),
            plan.tail.clone(),
            initial,
            true,
            0,
            (0, 1),
            ProcessFiles::new(1024),
        );
        let mut stats = JobStats::default();
        let start = Instant::now();
        // The wall clock is just after the data: the group is caught up.
        let wall = (t0 + 61) * 1000;
        gs.discover_if_due(start, false, EventMs::MIN, wall, &mut stats)
            .unwrap();
        // Read to the end, then idle at it.
        for ms in [0, 1, 2] {
            gs.read_round(
                1 << 20,
                1 << 20,
                start + Duration::from_millis(ms),
                wall,
                &mut stats,
            );
        }
        assert_eq!(stats.lines_read, 60);
        let before = gs.first_open(wall);
        // Paused for 10 s (nothing read), then reading goes on.
        let later = start + Duration::from_secs(10);
        if pause {
            gs.after_pause();
        }
        for g in &mut gs.groups {
            g.apply_idle(later, wall + 10_000);
        }
        (before, gs.first_open(wall + 10_000))
    };
    let (before, after) = run(true);
    assert_eq!(after, before, "the pause moved the watermark");
    // The check can fail: without `after_pause` the stale idle timer fires.
    let (before, after) = run(false);
    assert!(after > before, "{after} {before}");
}
