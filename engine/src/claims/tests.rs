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
