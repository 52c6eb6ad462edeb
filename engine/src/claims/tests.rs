use super::*;

fn any() -> AllowedRoots {
    AllowedRoots::any()
}

fn group(live: &Path) -> FileGroup {
    FileGroup {
        live: live.to_path_buf(),
        rotated: Vec::new(),
    }
}

/// A second path to a claimed file is its owner's; a file with other first
/// bytes on the same inode (reused) is not.
#[test]
fn a_claimed_file_is_its_owners_under_any_name_until_its_inode_is_reused() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.log"), d.path().join("b.log"));
    std::fs::write(&a, "first\n").unwrap();
    std::fs::hard_link(&a, &b).unwrap();
    let claims = Claims::new(1024);
    assert_eq!(claims.claim_group(&group(&a), &any()), GroupClaim::Claimed);
    assert_eq!(
        claims.claim_group(&group(&a), &any()),
        GroupClaim::Claimed,
        "idempotent"
    );
    assert_eq!(
        claims.claim_group(&group(&b), &any()),
        GroupClaim::SameAs(a.clone())
    );
    assert_eq!(claims.owner_of(&b, false, &any()), Some(a.clone()));
    // Same inode, other content: a new file on a reused inode.
    std::fs::write(&b, "other\n").unwrap();
    assert_eq!(claims.owner_of(&b, false, &any()), None);
    assert_eq!(claims.claim_group(&group(&b), &any()), GroupClaim::Claimed);
}

/// A file claimed while empty is known by inode alone: a file with content on
/// its inode (reused, or the same file grown before its group read it) is not
/// taken for it, so it is never left unread.
#[test]
fn a_file_claimed_empty_is_not_taken_for_one_with_content() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.log"), d.path().join("b.log"));
    std::fs::write(&a, "").unwrap();
    std::fs::hard_link(&a, &b).unwrap();
    let claims = Claims::new(1024);
    assert_eq!(claims.claim_group(&group(&a), &any()), GroupClaim::Claimed);
    assert_eq!(
        claims.claim_group(&group(&b), &any()),
        GroupClaim::SameAs(a.clone())
    );
    std::fs::write(&b, "now with content\n").unwrap();
    assert_eq!(claims.owner_of(&b, false, &any()), None);
}

/// Review bug 2: a run's log that held only the banner is deleted, and the next
/// run's log, starting with the same banner, gets its inode (ext4 reuses it at
/// once). It is a new file and must be its own group's, not the deleted one's:
/// nobody would read it. Claims are kept after their file is gone, so the
/// birth time, not the first bytes, must tell the two apart.
#[test]
fn a_new_file_on_a_reused_inode_starting_like_the_deleted_one_is_read() {
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir().unwrap();
    let old = d.path().join("a-10.csv");
    std::fs::write(&old, "time,status\n").unwrap();
    let ino = std::fs::metadata(&old).unwrap().ino();
    let claims = Claims::new(1024);
    assert_eq!(
        claims.claim_group(&group(&old), &any()),
        GroupClaim::Claimed
    );
    std::fs::remove_file(&old).unwrap();
    // The freed inode is usually the next one handed out; a few more tries
    // cover a filesystem that hands out another first.
    let reused = (11..75).find_map(|n| {
        let p = d.path().join(format!("a-{n}.csv"));
        std::fs::write(&p, "time,status\n2026-12-04T11:00:00Z,200\n").unwrap();
        (std::fs::metadata(&p).unwrap().ino() == ino).then_some(p)
    });
    let Some(new) = reused else {
        // tmpfs and btrfs do not reuse inode numbers soon: the bug cannot
        // happen there, and there is nothing to check.
        eprintln!(
            "inode {ino} was not reused in {:?}: nothing to check",
            d.path()
        );
        return;
    };
    assert_eq!(
        claims.claim_group(&group(&new), &any()),
        GroupClaim::Claimed,
        "{} on the reused inode {ino}",
        new.display()
    );
    assert_eq!(claims.owner_of(&new, false, &any()), Some(new.clone()));
}

/// The file a group reads is claimed with the birth time its reader's open saw,
/// not by opening its path again (which may name another file by then, or
/// nothing): the same inode born at another time is another file.
#[test]
fn a_claim_takes_the_readers_birth_time_and_opens_nothing() {
    let d = tempfile::tempdir().unwrap();
    let gone = d.path().join("renamed-away.log");
    let id = FileId {
        dev: 1,
        ino: 42,
        fingerprint: 7,
        fingerprint_len: 6,
    };
    let t = |s| Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s));
    let claims = Claims::new(1024);
    let (a, b) = (Path::new("/l/a.log"), Path::new("/l/b.log"));
    assert_eq!(claims.claim(&id, &gone, a, t(100), &any()), None);
    // The same file (inode, birth, first bytes) read by another group: a's.
    assert_eq!(
        claims.claim(&id, &gone, b, t(100), &any()),
        Some(a.to_path_buf())
    );
    // The inode reused by a file born later: b's own.
    assert_eq!(claims.claim(&id, &gone, b, t(200), &any()), None);
}
