//! Checkpoint store: round trip, first run, and every kind of damaged or missing
//! checkpoint seen after crashes, each of which must be a clear error offering the
//! `--reset-checkpoint` choices rather than a silent start-over.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tidemark_engine::checkpoint::{
    Checkpoint, CheckpointError, CheckpointFile, CheckpointFs, CheckpointStore, Damage,
    FileIdentity, GroupCheckpoint, RealFs, ResetChoice, SinkCommit, TailCheck, CHECKPOINT_FILE,
    MARKER_FILE, TEMP_FILE,
};
use tidemark_sources::tail::{FileId, Position};

fn sample(frontier_ms: i64) -> Checkpoint {
    Checkpoint {
        job: "nginx".into(),
        frontier_ms,
        sinks: vec![SinkCommit {
            path: "/out/nginx.jsonl".into(),
            committed_len: 12_345,
            file: Some(FileIdentity { dev: 2049, ino: 77 }),
            tail: Some(TailCheck {
                len: 4096,
                crc32: 0x1234_5678,
            }),
        }],
        groups: vec![
            GroupCheckpoint {
                live: "/var/log/nginx/web-1/access.log".into(),
                resume: Some(Position {
                    file: FileId {
                        dev: 2049,
                        ino: 131_072,
                        fingerprint: 0xdead_beef_cafe_f00d,
                        fingerprint_len: 1024,
                    },
                    path: "/var/log/nginx/web-1/access.log.1".into(),
                    offset: 987_654_321,
                    gzip: false,
                }),
                max_seen_ms: Some(frontier_ms + 59_000),
                floor_ms: Some(frontier_ms + 30_000),
                // A line two hours ahead, waiting for the next to confirm it.
                suspect_ms: Some(frontier_ms + 7_200_000),
                at_tail: true,
                kept: vec![tidemark_engine::resume::KeptLine {
                    window_ms: frontier_ms + 7_200_000,
                    text: "ts=1 msg=\"far ahead\"".into(),
                }],
            },
            GroupCheckpoint {
                live: "/var/log/nginx/web-2/access.log".into(),
                resume: None,
                max_seen_ms: None,
                floor_ms: None,
                suspect_ms: None,
                at_tail: false,
                kept: Vec::new(),
            },
        ],
        written_unix_ms: 1_790_000_000_000,
        semantics: None,
        start_at_end: false,
        limited_windows: 0,
        alerts: None,
        kafka: None,
    }
}

/// Asserts `err` is the "damaged or missing, choose a reset" kind and its message
/// names the file and both choices.
fn assert_clear_reset_error(err: &CheckpointError, file: &Path, what: &str) {
    let msg = err.to_string();
    assert!(err.needs_reset_choice(), "{msg}");
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(msg.contains(what), "expected {what:?} in: {msg}");
    assert!(msg.contains("--reset-checkpoint=beginning"), "{msg}");
    assert!(msg.contains("--reset-checkpoint=end"), "{msg}");
    // A cluster job has no --reset-checkpoint: its way out is said too.
    let cluster = &msg[msg.find("In a cluster").expect("a cluster hint")..];
    assert!(
        cluster.contains("stop the job") && cluster.contains("move"),
        "{cluster}"
    );
}

fn saved_store(dir: &Path) -> CheckpointStore {
    let mut store = CheckpointStore::open(dir, "nginx").unwrap();
    store.save(&sample(60_000)).unwrap();
    store
}

#[test]
fn first_run_has_no_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state/nginx");
    let store = CheckpointStore::open(&dir, "nginx").unwrap();
    assert!(dir.is_dir(), "open creates the state folder");
    assert_eq!(store.load().unwrap(), None);
    assert_eq!(store.path(), dir.join(CHECKPOINT_FILE));
}

#[test]
fn round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = CheckpointStore::open(tmp.path(), "nginx").unwrap();
    let first = sample(60_000);
    store.save(&first).unwrap();
    assert_eq!(store.load().unwrap(), Some(first));
    let second = sample(120_000);
    store.save(&second).unwrap();
    // A new store (a restarted process) sees the latest checkpoint.
    let reopened = CheckpointStore::open(tmp.path(), "nginx").unwrap();
    assert_eq!(reopened.load().unwrap(), Some(second));
    assert!(!tmp.path().join(TEMP_FILE).exists());
    assert!(tmp.path().join(MARKER_FILE).exists());
}

/// The count of series-limited windows round-trips, and a checkpoint written
/// before it existed (no such field) loads with none.
#[test]
fn limited_windows_round_trip_and_default_to_none() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = CheckpointStore::open(tmp.path(), "nginx").unwrap();
    let limited = Checkpoint {
        limited_windows: 3,
        ..sample(60_000)
    };
    store.save(&limited).unwrap();
    assert_eq!(store.load().unwrap(), Some(limited));
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(store.path()).unwrap()[24..]).unwrap();
    assert_eq!(v["limited_windows"], 3);
    store.save(&sample(60_000)).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(store.path()).unwrap()[24..]).unwrap();
    assert!(v.get("limited_windows").is_none(), "left out at 0: {v}");
    assert_eq!(store.load().unwrap().unwrap().limited_windows, 0);
}

#[test]
fn payload_is_readable_json() {
    let tmp = tempfile::tempdir().unwrap();
    let store = saved_store(tmp.path());
    let bytes = fs::read(store.path()).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes[24..]).unwrap();
    assert_eq!(v["job"], "nginx");
    assert_eq!(v["groups"][0]["resume"]["offset"], 987_654_321);
}

#[test]
fn nul_filled_checkpoint_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = saved_store(tmp.path());
    let len = fs::metadata(store.path()).unwrap().len() as usize;
    // What ext4/XFS can leave after a power cut: the size was updated, the data not.
    fs::write(store.path(), vec![0u8; len]).unwrap();
    let err = store.load().unwrap_err();
    assert!(matches!(
        err,
        CheckpointError::Damaged {
            damage: Damage::NulFilled { .. },
            ..
        }
    ));
    assert_clear_reset_error(&err, store.path(), "NUL bytes");

    // NULs over the payload only (header intact) are caught by the checksum.
    let mut bytes = fs::read(saved_store(tmp.path()).path()).unwrap();
    bytes[24..].fill(0);
    fs::write(store.path(), &bytes).unwrap();
    let err = store.load().unwrap_err();
    assert!(matches!(
        err,
        CheckpointError::Damaged {
            damage: Damage::BadChecksum { .. },
            ..
        }
    ));
    assert_clear_reset_error(&err, store.path(), "checksum");
}

#[test]
fn truncated_checkpoint_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = saved_store(tmp.path());
    let full = fs::read(store.path()).unwrap();
    fs::write(store.path(), &full[..full.len() / 2]).unwrap();
    let err = store.load().unwrap_err();
    assert!(matches!(
        err,
        CheckpointError::Damaged {
            damage: Damage::Truncated { .. },
            ..
        }
    ));
    assert_clear_reset_error(&err, store.path(), "truncated");

    // Every shorter prefix, including an empty file and a torn header, is an error
    // of the same kind (never a panic, never a silent first run).
    for n in 0..full.len() {
        fs::write(store.path(), &full[..n]).unwrap();
        let err = store.load().unwrap_err();
        assert!(err.needs_reset_choice(), "prefix of {n} bytes: {err}");
    }
}

#[test]
fn damaged_header_or_payload_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = saved_store(tmp.path());
    let good = fs::read(store.path()).unwrap();

    let mut flipped = good.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0x20;
    fs::write(store.path(), &flipped).unwrap();
    assert_clear_reset_error(&store.load().unwrap_err(), store.path(), "checksum");

    fs::write(store.path(), b"{\"job\":\"nginx\"}").unwrap();
    assert_clear_reset_error(&store.load().unwrap_err(), store.path(), "magic");

    let mut version = good.clone();
    version[8] = 9;
    fs::write(store.path(), &version).unwrap();
    assert_clear_reset_error(&store.load().unwrap_err(), store.path(), "version 9");

    let mut longer = good.clone();
    longer.extend_from_slice(b"garbage");
    fs::write(store.path(), &longer).unwrap();
    assert_clear_reset_error(
        &store.load().unwrap_err(),
        store.path(),
        "7 unexpected bytes",
    );

    // A well-formed frame around a payload that is not a checkpoint.
    let payload = b"{\"job\":\"nginx\"}";
    let mut framed = good[..8].to_vec();
    framed.extend_from_slice(&1u32.to_le_bytes());
    framed.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    framed.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    framed.extend_from_slice(payload);
    fs::write(store.path(), &framed).unwrap();
    assert_clear_reset_error(
        &store.load().unwrap_err(),
        store.path(),
        "cannot be decoded",
    );
}

#[test]
fn missing_checkpoint_in_used_state_dir_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = saved_store(tmp.path());
    fs::remove_file(store.path()).unwrap();
    let err = CheckpointStore::open(tmp.path(), "nginx")
        .unwrap()
        .load()
        .unwrap_err();
    assert!(matches!(err, CheckpointError::Missing { .. }));
    assert_clear_reset_error(&err, store.path(), "missing");
    assert!(err.to_string().contains(MARKER_FILE), "{err}");
}

#[test]
fn reset_makes_the_next_load_a_first_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = saved_store(tmp.path());
    fs::write(store.path(), b"\0\0\0\0").unwrap();
    assert!(store.load().is_err());
    store.reset().unwrap();
    assert_eq!(store.load().unwrap(), None);
    // And the folder is "used" again after the next save.
    store.save(&sample(0)).unwrap();
    fs::remove_file(store.path()).unwrap();
    assert!(matches!(
        store.load().unwrap_err(),
        CheckpointError::Missing { .. }
    ));
    assert_eq!("end".parse::<ResetChoice>(), Ok(ResetChoice::End));
    assert!("start".parse::<ResetChoice>().is_err());
}

#[test]
fn another_jobs_checkpoint_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    saved_store(tmp.path());
    let store = CheckpointStore::open(tmp.path(), "billing").unwrap();
    let err = store.load().unwrap_err();
    assert!(matches!(err, CheckpointError::WrongJob { .. }), "{err}");
    assert!(!err.needs_reset_choice());
    assert!(err.to_string().contains("--state-dir"), "{err}");
}

#[test]
fn leftover_temp_file_from_a_crash_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let store = saved_store(tmp.path());
    // A crash between writing the temp file and renaming it.
    fs::write(tmp.path().join(TEMP_FILE), b"TDMKCKPT half a che").unwrap();
    let reopened = CheckpointStore::open(tmp.path(), "nginx").unwrap();
    assert_eq!(reopened.load().unwrap(), Some(sample(60_000)));
    assert!(!tmp.path().join(TEMP_FILE).exists());
    drop(store);
}

// ---- injected failures -------------------------------------------------------

/// Failures to inject, shared between a test and the store that owns the fs.
#[derive(Default)]
struct Faults {
    /// Bytes each new file may take before writes fail with ENOSPC.
    write_budget: Mutex<Option<u64>>,
    fail_sync: AtomicBool,
    fail_rename: AtomicBool,
}

/// The real filesystem, except where `faults` says otherwise.
struct FaultyFs(Arc<Faults>);

/// ENOSPC on Linux; built from the raw code so the error reads exactly like the real one.
fn disk_full() -> io::Error {
    io::Error::from_raw_os_error(28)
}

struct LimitedFile {
    inner: Box<dyn CheckpointFile>,
    remaining: Option<u64>,
    fail_sync: bool,
}

impl Write for LimitedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match self.remaining {
            None => buf.len(),
            Some(0) => return Err(disk_full()),
            // Like the kernel: a short write first, ENOSPC on the next call.
            Some(r) => buf.len().min(r as usize),
        };
        let n = self.inner.write(&buf[..n])?;
        if let Some(r) = &mut self.remaining {
            *r -= n as u64;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl CheckpointFile for LimitedFile {
    fn sync(&mut self) -> io::Result<()> {
        if self.fail_sync {
            // Delayed allocation: the space shortage can surface only at fsync.
            return Err(disk_full());
        }
        self.inner.sync()
    }
}

impl CheckpointFs for FaultyFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn CheckpointFile>> {
        Ok(Box::new(LimitedFile {
            inner: RealFs.create(path)?,
            remaining: *self.0.write_budget.lock().unwrap(),
            fail_sync: self.0.fail_sync.load(Ordering::SeqCst),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if self.0.fail_rename.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(5)); // EIO
        }
        RealFs.rename(from, to)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealFs.sync_dir(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealFs.remove_file(path)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        RealFs.read(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        RealFs.exists(path)
    }
}

fn faulty_store(dir: &Path) -> (CheckpointStore, Arc<Faults>) {
    let faults = Arc::new(Faults::default());
    let store =
        CheckpointStore::open_with_fs(dir, "nginx", Box::new(FaultyFs(faults.clone()))).unwrap();
    (store, faults)
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn disk_full_while_writing_a_checkpoint_keeps_the_old_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, faults) = faulty_store(tmp.path());
    let old = sample(60_000);
    store.save(&old).unwrap();
    let before = entries(tmp.path());

    // The disk fills up part-way through every possible point of the new file.
    let new = sample(120_000);
    let new_len = 24 + serde_json::to_vec_pretty(&new).unwrap().len() as u64 + 1;
    for budget in [0, 1, 10, 23, 24, 100, new_len - 1] {
        *faults.write_budget.lock().unwrap() = Some(budget);
        let err = store.save(&new).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("No space left on device"), "{msg}");
        assert!(msg.contains("previous checkpoint is kept"), "{msg}");
        assert_eq!(store.load().unwrap(), Some(old.clone()), "budget {budget}");
        assert_eq!(
            entries(tmp.path()),
            before,
            "temp file removed (budget {budget})"
        );
        // A restarted process sees the old checkpoint too.
        let reopened = CheckpointStore::open(tmp.path(), "nginx").unwrap();
        assert_eq!(reopened.load().unwrap(), Some(old.clone()));
    }

    // Space runs out only at fsync, or the rename fails: same guarantee.
    *faults.write_budget.lock().unwrap() = None;
    faults.fail_sync.store(true, Ordering::SeqCst);
    assert!(store.save(&new).is_err());
    assert_eq!(store.load().unwrap(), Some(old.clone()));
    assert_eq!(entries(tmp.path()), before);
    faults.fail_sync.store(false, Ordering::SeqCst);
    faults.fail_rename.store(true, Ordering::SeqCst);
    assert!(store.save(&new).is_err());
    assert_eq!(store.load().unwrap(), Some(old));
    assert_eq!(entries(tmp.path()), before);

    // Once space is back, saving works again.
    faults.fail_rename.store(false, Ordering::SeqCst);
    store.save(&new).unwrap();
    assert_eq!(store.load().unwrap(), Some(new));
}

#[test]
fn disk_full_on_the_first_save_is_still_a_first_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut store, faults) = faulty_store(tmp.path());
    *faults.write_budget.lock().unwrap() = Some(50);
    assert!(store.save(&sample(0)).is_err());
    // No checkpoint and no marker: nothing was committed, so starting from the
    // beginning (and rewriting the output) is correct, not a silent re-ingest.
    assert_eq!(store.load().unwrap(), None);
    assert!(entries(tmp.path()).is_empty());
}

// ---- semantics fingerprint (issue 10 §2b) -------------------------------------

fn nginx_job(window: &str) -> tidemark_jobs::Job {
    let text = format!(
        r#"name = "nginx"
[source]
kind = "file"
include = ["/var/log/nginx/*/access.log"]
[parse]
format = "nginx"
[window]
size = "{window}"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status"]
[[rule]]
record = "status:reqs"
expr = "sum by (status) (reqs)"
"#
    );
    tidemark_jobs::from_str(&text, "nginx.toml", Path::new("/")).unwrap()
}

#[test]
fn a_checkpoint_of_other_semantics_is_refused_naming_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = CheckpointStore::for_job(tmp.path(), &nginx_job("1m")).unwrap();
    store.save(&sample(60_000)).unwrap();
    // The store stamps its job's semantics on every save.
    let loaded = store.load().unwrap().unwrap();
    assert_eq!(loaded.semantics.as_ref(), store.semantics());
    assert_eq!(
        CheckpointStore::for_job(tmp.path(), &nginx_job("60s"))
            .unwrap()
            .load()
            .unwrap(),
        Some(loaded),
        "the same window, spelled differently"
    );
    let err = CheckpointStore::for_job(tmp.path(), &nginx_job("5m"))
        .unwrap()
        .load()
        .unwrap_err();
    assert!(
        matches!(err, CheckpointError::SemanticsChanged { .. }),
        "{err}"
    );
    assert_clear_reset_error(&err, store.path(), "window.size was 1m, is now 5m");
    // A store opened by name only (no job) does not judge.
    assert!(CheckpointStore::open(tmp.path(), "nginx")
        .unwrap()
        .load()
        .is_ok());
}

#[test]
fn a_checkpoint_from_before_fingerprints_loads_and_the_next_save_records_them() {
    // Format 1, as the previous release wrote it: no semantics, no sink identity.
    let tmp = tempfile::tempdir().unwrap();
    let mut v1: serde_json::Value = serde_json::to_value(sample(60_000)).unwrap();
    v1.as_object_mut().unwrap().remove("semantics");
    v1["sinks"][0].as_object_mut().unwrap().remove("file");
    let mut payload = serde_json::to_vec_pretty(&v1).unwrap();
    payload.push(b'\n');
    let mut bytes = b"TDMKCKPT".to_vec();
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    fs::write(tmp.path().join(CHECKPOINT_FILE), &bytes).unwrap();

    let mut store = CheckpointStore::for_job(tmp.path(), &nginx_job("5m")).unwrap();
    let old = store
        .load()
        .unwrap()
        .expect("a format 1 checkpoint still loads");
    assert_eq!(old.semantics, None);
    assert_eq!(old.sinks[0].file, None);
    assert_eq!(old.frontier_ms, 60_000);
    store.save(&old).unwrap();
    let bytes = fs::read(store.path()).unwrap();
    assert_eq!(bytes[8..12], 2u32.to_le_bytes(), "saved as format 2");
    assert!(store.load().unwrap().unwrap().semantics.is_some());
    // From now on a change is caught.
    assert!(CheckpointStore::for_job(tmp.path(), &nginx_job("1m"))
        .unwrap()
        .load()
        .is_err());
}

#[test]
fn the_changed_settings_hint_tells_a_cluster_user_to_move_the_output() {
    // Stopping and submitting again is refused while the old output is at the
    // sink path (no checkpoint names it any more): the hint must say to move it.
    let tmp = tempfile::tempdir().unwrap();
    let mut store = CheckpointStore::for_job(tmp.path(), &nginx_job("1m")).unwrap();
    store.save(&sample(60_000)).unwrap();
    let err = CheckpointStore::for_job(tmp.path(), &nginx_job("5m"))
        .unwrap()
        .load()
        .unwrap_err()
        .to_string();
    let cluster = &err[err.find("In a cluster").expect("a cluster hint")..];
    assert!(cluster.contains("move"), "{cluster}");
}

#[test]
fn a_reset_keeps_the_old_checkpoints_outputs_until_the_new_one_is_written() {
    // `--reset-checkpoint=beginning` replaces only the outputs the old checkpoint
    // names; it reads them whatever the checkpoint's settings (they changed: that
    // is why the user resets), and nothing deletes it before the run writes its own.
    let tmp = tempfile::tempdir().unwrap();
    let mut store = CheckpointStore::for_job(tmp.path(), &nginx_job("1m")).unwrap();
    store.save(&sample(60_000)).unwrap();
    let store = CheckpointStore::for_job(tmp.path(), &nginx_job("5m")).unwrap();
    assert!(store.load().is_err(), "other settings");
    assert_eq!(store.named_outputs(), sample(60_000).sinks);
    // Unreadable: it names nothing.
    fs::write(store.path(), b"junk").unwrap();
    assert_eq!(store.named_outputs(), Vec::new());
}
