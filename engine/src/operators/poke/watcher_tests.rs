//! A write wakes only its reader — end to end, through the job's watcher and
//! the process's notifier, with the live path as discovery spells it.

use super::*;
use crate::watcher::JobWatcher;

fn dummy_activator() -> SyncActivator {
    timely::execute_directly(|worker| worker.sync_activator_for(vec![0]))
}

fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Two sources (two workers); `a` reads the group of `live` (the path as the
/// include glob spells it, which is what discovery registers). A write to the
/// file must set `a`'s flags and leave `b`'s alone.
fn only_the_reader_is_woken(include: &str, live: &Path, write_to: &Path) {
    let board: Poke = Arc::new(PokeBoard::default());
    let (a, b) = (
        board.register(dummy_activator()),
        board.register(dummy_activator()),
    );
    board.reads(&a, live);
    let _w = JobWatcher::start(
        vec![include.into()],
        board.clone(),
        Duration::from_secs(3600),
    );
    assert!(eventually(|| board.watching()), "the watcher never watched");
    // Let the start-up poke and its events pass.
    std::thread::sleep(Duration::from_millis(300));
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(write_to)
        .unwrap();
    writeln!(f, "ts=1795168801000 msg=more").unwrap();
    assert!(
        eventually(|| a.flags.writes.load(Ordering::SeqCst) != 0
            || b.flags.writes.load(Ordering::SeqCst) != 0),
        "nobody was told of the write"
    );
    std::thread::sleep(Duration::from_millis(100));
    assert_ne!(
        a.flags.writes.load(Ordering::SeqCst),
        0,
        "the reader was not woken"
    );
    assert_eq!(
        b.flags.writes.load(Ordering::SeqCst),
        0,
        "a write to {live:?} (include {include}) woke the source that does not read it"
    );
}

/// A plain host folder.
#[test]
fn a_write_in_a_plain_folder_wakes_only_its_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("web-1");
    std::fs::create_dir_all(&dir).unwrap();
    let live = dir.join("app.log");
    std::fs::write(&live, "ts=1795168800000 msg=first\n").unwrap();
    let include = format!("{}/*/app.log", tmp.path().display());
    only_the_reader_is_woken(&include, &live, &live);
}

/// A host folder reached through a link (`current` → `releases/42`, as deploy
/// tools do; `/var/log` on a symlinked volume; a job folder under a linked
/// path): the hub watches the folder by its real path and notify reports the
/// write under it, while the group's live path keeps the link. Registered by
/// that path only, no reader matched and every write woke every source.
#[test]
fn a_write_in_a_linked_folder_wakes_only_its_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("releases/42");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::write(real.join("app.log"), "ts=1795168800000 msg=first\n").unwrap();
    std::os::unix::fs::symlink(&real, tmp.path().join("current")).unwrap();
    let live = tmp.path().join("current/app.log");
    let include = format!("{}/current/app.log", tmp.path().display());
    only_the_reader_is_woken(&include, &live, &live);
}
