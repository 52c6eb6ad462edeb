//! The hub against real inotify, on temporary folders.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn counting(dirs: &[PathBuf]) -> (Subscription, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let s = WatchHub::global().subscribe(dirs, move || {
        c.fetch_add(1, Ordering::SeqCst);
    });
    (s, count)
}

/// Waits (up to a generous 60 s, for a loaded machine) for `count` to exceed
/// `before`.
fn fired(count: &AtomicUsize, before: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if count.load(Ordering::SeqCst) > before {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Past `fs.inotify.max_user_instances` (128 by default) jobs, each job's own
/// watcher failed (EMFILE) and the job polled. Through the hub, 300 share one.
#[test]
fn three_hundred_jobs_all_get_change_notification_not_just_the_first_128() {
    let tmp = tempfile::tempdir().unwrap();
    let subs: Vec<(Subscription, Arc<AtomicUsize>, PathBuf)> = (0..300)
        .map(|i| {
            let d = tmp.path().join(format!("j{i}"));
            std::fs::create_dir(&d).unwrap();
            let (s, c) = counting(std::slice::from_ref(&d));
            (s, c, d)
        })
        .collect();
    for (s, _, _) in &subs {
        assert!(s.is_active(), "{:?}", s.warning());
    }
    let (_, count, dir) = &subs[299];
    let before = count.load(Ordering::SeqCst);
    std::fs::write(dir.join("access.log"), b"x\n").unwrap();
    assert!(fired(count, before));
}

#[test]
fn an_event_reaches_only_the_jobs_watching_its_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    let (sa, ca) = counting(std::slice::from_ref(&a));
    let (sb, cb) = counting(&[a.clone(), b.clone()]);
    assert!(sa.is_active() && sb.is_active());

    std::fs::write(b.join("x.log"), b"x\n").unwrap();
    assert!(fired(&cb, 0));
    // Events are delivered in order: once a's marker reached job a, b's event
    // would have too.
    std::fs::write(a.join("marker"), b"").unwrap();
    assert!(fired(&ca, 0));
    let after_marker = ca.load(Ordering::SeqCst);
    assert!(after_marker <= 2, "job a woke for b's file: {after_marker}");

    // A folder both watch stays watched when one of them goes.
    drop(sa);
    let before = cb.load(Ordering::SeqCst);
    std::fs::write(a.join("y.log"), b"x\n").unwrap();
    assert!(fired(&cb, before));
}

#[test]
fn two_jobs_reaching_one_folder_by_two_paths_both_hear_of_it() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("releases-42");
    std::fs::create_dir(&real).unwrap();
    let link = tmp.path().join("current");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let (sa, ca) = counting(std::slice::from_ref(&real));
    let (sb, cb) = counting(std::slice::from_ref(&link));
    assert!(sa.is_active() && sb.is_active());
    std::fs::write(real.join("x.log"), b"x\n").unwrap();
    assert!(fired(&ca, 0) && fired(&cb, 0));
    // One of them going does not silence the other.
    drop(sb);
    let before = ca.load(Ordering::SeqCst);
    std::fs::write(real.join("y.log"), b"x\n").unwrap();
    assert!(fired(&ca, before));
}

#[test]
fn a_missing_folder_is_reported_then_watched_once_it_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let later = tmp.path().join("nginx");
    let dirs = [tmp.path().to_path_buf(), later.clone()];
    let (mut s, count) = counting(&dirs);
    assert!(!s.is_active());
    let warning = s.warning().unwrap();
    assert!(
        warning.contains("nginx") && warning.contains("polling"),
        "{warning}"
    );
    std::fs::create_dir(&later).unwrap();
    s.set_dirs(&dirs);
    assert!(s.is_active(), "{:?}", s.warning());
    let before = count.load(Ordering::SeqCst);
    std::fs::write(later.join("access.log"), b"x\n").unwrap();
    assert!(fired(&count, before));
}

/// Waits (up to a generous 60 s: the retry runs every 2 s) for `done`.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn watched(s: &Subscription) -> BTreeSet<PathBuf> {
    s.state.lock().unwrap().watched.clone()
}

#[test]
fn a_folder_missing_at_start_is_watched_once_it_appears_without_an_event() {
    let tmp = tempfile::tempdir().unwrap();
    // Neither the folder nor its parent is watched: its creation is no event.
    let later = tmp.path().join("app/nginx");
    let (s, count) = counting(std::slice::from_ref(&later));
    assert!(!s.is_active());
    std::fs::create_dir_all(&later).unwrap();
    assert!(
        eventually(|| s.is_active()),
        "never watched: {:?}",
        s.warning()
    );
    // Its job is told (to rescan) right after the watch is in place, and hears
    // of changes in it now.
    assert!(fired(&count, 0));
    let before = count.load(Ordering::SeqCst);
    std::fs::write(later.join("access.log"), b"x\n").unwrap();
    assert!(fired(&count, before));
}

#[test]
fn a_re_pointed_folder_link_is_watched_at_its_new_target() {
    let tmp = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(tmp.path()).unwrap();
    let (old, new) = (base.join("releases/42"), base.join("releases/43"));
    std::fs::create_dir_all(&old).unwrap();
    std::fs::create_dir_all(&new).unwrap();
    let link = base.join("current");
    std::os::unix::fs::symlink(&old, &link).unwrap();
    let (s, count) = counting(std::slice::from_ref(&link));
    assert!(s.is_active());
    assert_eq!(watched(&s), BTreeSet::from([old.clone()]));
    // Re-pointed as deploy tools do (a new link renamed over the old one), in a
    // folder nobody watches.
    std::os::unix::fs::symlink(&new, base.join("current.new")).unwrap();
    std::fs::rename(base.join("current.new"), &link).unwrap();
    assert!(
        eventually(|| watched(&s) == BTreeSet::from([new.clone()])),
        "still watching {:?}",
        watched(&s)
    );
    assert!(s.is_active());
    let before = count.load(Ordering::SeqCst);
    std::fs::write(new.join("access.log"), b"x\n").unwrap();
    assert!(fired(&count, before));
}

/// A write to a file is told as a write to that file, so its job only wakes
/// the reader; a file created, renamed or deleted is a layout change, so
/// its job looks for new files.
#[test]
fn writes_are_told_apart_from_layout_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(tmp.path()).unwrap();
    let log = dir.join("access.log");
    std::fs::write(&log, b"").unwrap();
    let seen: Arc<Mutex<Vec<Change>>> = Arc::default();
    let s = {
        let seen = seen.clone();
        WatchHub::global().subscribe_changes(std::slice::from_ref(&dir), move |c| {
            seen.lock().unwrap().push(c.clone())
        })
    };
    assert!(s.is_active(), "{:?}", s.warning());
    let count = || seen.lock().unwrap().len();
    let wait = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while count() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, b"line\n").unwrap();
    wait(1);
    assert_eq!(seen.lock().unwrap()[0], Change::Written(log.clone()));
    let writes = count();
    std::fs::rename(&log, dir.join("access.log.1")).unwrap();
    std::fs::write(&log, b"").unwrap();
    wait(writes + 1);
    let after = seen.lock().unwrap()[writes..].to_vec();
    assert_eq!(after.first(), Some(&Change::Layout), "{after:?}");
}

/// The notifier pauses after passing on a write, except for the events of
/// the same batch (handled back to back: read with it, or queued during the
/// pause): a batch pauses once, not once per event, however long it takes to
/// drain (the pause used to come back 500 µs after the last one ended, so
/// 2,000 files written at once drained at ~100 events per 25 ms pause).
#[test]
fn the_notifier_pauses_once_per_batch_after_a_write() {
    let mut t = Throttle::default();
    let us = Duration::from_micros;
    let t0 = Instant::now();
    assert_eq!(
        t.handled(t0, t0 + us(5), true),
        Some(WRITE_PAUSE),
        "first write"
    );
    let mut now = t0 + us(5) + WRITE_PAUSE;
    t.resumed(now);
    // A long batch (what queued up during the pause): 10,000 writes, 5 µs of
    // work each, 1 µs apart, 60 ms in all: none pauses.
    for i in 0..10_000 {
        let began = now + us(1);
        now = began + us(5);
        assert_eq!(
            t.handled(began, now, true),
            None,
            "write {i} of the batch paused"
        );
    }
    // Something else after a gap: no pause, but a batch of its own.
    now += SAME_BATCH + us(1);
    assert_eq!(t.handled(now, now + us(5), false), None);
    now += us(5);
    assert_eq!(t.handled(now + us(1), now + us(6), true), None);
    now += us(6);
    // A write after a gap (the queue ran dry, a new wake): pauses again.
    let began = now + SAME_BATCH + us(1);
    assert_eq!(t.handled(began, began + us(5), true), Some(WRITE_PAUSE));
}

/// 2,000 files in one watched folder, each written once (a fleet's host
/// folders): all 2,000 writes reach the subscriber promptly. The callback
/// spins 20 µs per event (a little more than `PokeBoard::written` costs):
/// 40 ms of work in all. Pausing per 500 µs of work instead of per batch took
/// at least 80 pauses of 25 ms (2 s; 8 s measured on a loaded machine); the
/// bound is 1.5 s past the last write, generous for a loaded machine.
#[test]
fn many_files_written_at_once_are_all_heard_promptly() {
    const N: usize = 2000;
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(tmp.path()).unwrap().join("hosts");
    std::fs::create_dir(&dir).unwrap();
    let files: Vec<PathBuf> = (0..N).map(|i| dir.join(format!("h{i}.log"))).collect();
    for f in &files {
        std::fs::write(f, b"").unwrap();
    }
    let heard = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let h = heard.clone();
    let _s = WatchHub::global().subscribe_changes(std::slice::from_ref(&dir), move |c: &Change| {
        let t = Instant::now();
        while t.elapsed() < Duration::from_micros(20) {}
        if let Change::Written(p) = c {
            h.lock().unwrap().insert(p.clone());
        }
    });
    // Let the creations' events pass.
    std::thread::sleep(Duration::from_millis(300));
    for f in &files {
        let mut file = std::fs::OpenOptions::new().append(true).open(f).unwrap();
        std::io::Write::write_all(&mut file, b"a line\n").unwrap();
    }
    let wrote = Instant::now();
    let deadline = wrote + Duration::from_secs(120);
    while heard.lock().unwrap().len() < N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = wrote.elapsed();
    let n = heard.lock().unwrap().len();
    eprintln!("heard {n} of {N} writes {took:?} after the last");
    assert_eq!(n, N);
    assert!(
        took < Duration::from_millis(1500),
        "the last of {N} writes was heard {took:?} after it was made"
    );
}

/// Sustained: 500 files written round-robin at ~4,000 writes/s for 3 s (500
/// busy hosts; distinct files' events are not merged by the kernel), the
/// callback spinning 20 µs per event (8% of the thread at that rate). The
/// notifier must keep up: the last write is heard promptly after the stream
/// ends, and a watch asked for meanwhile (another job starting, a new host
/// folder) is not held up — notify adds watches on the notifier's thread, once
/// its queue is drained. Pausing per 500 µs of work, it drained ~25 events per
/// 25 ms pause: the backlog grew for as long as the stream ran (seconds) and
/// the watch waited for it. Bounds: 1.5 s each, generous for a loaded machine.
#[test]
fn a_steady_stream_of_writes_to_many_files_keeps_up() {
    const N: usize = 500;
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::fs::canonicalize(tmp.path()).unwrap().join("hosts");
    std::fs::create_dir(&dir).unwrap();
    let mut files: Vec<std::fs::File> = (0..N)
        .map(|i| std::fs::File::create(dir.join(format!("h{i}.log"))).unwrap())
        .collect();
    let last = dir.join("last.log");
    std::fs::write(&last, b"").unwrap();
    let heard_last = Arc::new(Mutex::new(None::<Instant>));
    let (hl, lp) = (heard_last.clone(), last.clone());
    let _s = WatchHub::global().subscribe_changes(std::slice::from_ref(&dir), move |c: &Change| {
        let t = Instant::now();
        while t.elapsed() < Duration::from_micros(20) {}
        if matches!(c, Change::Written(p) if *p == lp) {
            *hl.lock().unwrap() = Some(Instant::now());
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let other = dir.parent().unwrap().join("other");
    std::fs::create_dir(&other).unwrap();
    let watching_other = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        let t = Instant::now();
        let s = WatchHub::global().subscribe(std::slice::from_ref(&other), || {});
        let took = t.elapsed();
        drop(s);
        took
    });
    let t0 = Instant::now();
    let mut k = 0usize;
    while t0.elapsed() < Duration::from_secs(3) {
        for _ in 0..40 {
            std::io::Write::write_all(&mut files[k % N], b"a line\n").unwrap();
            k += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let end = Instant::now();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap();
    std::io::Write::write_all(&mut f, b"x\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while heard_last.lock().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let lag = heard_last.lock().unwrap().map(|t| t.duration_since(end));
    let watch_took = watching_other.join().unwrap();
    eprintln!("{k} writes in {:?}; the last heard {lag:?} after; a watch asked for 1 s in took {watch_took:?}", end - t0);
    assert!(
        watch_took < Duration::from_millis(1500),
        "watching one more folder waited {watch_took:?} behind the backlog"
    );
    assert!(
        lag.is_some_and(|l| l < Duration::from_millis(1500)),
        "the last write was heard {lag:?} after the stream ended ({k} writes to {N} files)"
    );
}
