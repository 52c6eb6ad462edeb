//! A checkpoint `tidemark run` cannot resume from, through the real binary: the
//! run is refused with the exit code that says who must act (2: the user must
//! choose `--reset-checkpoint`; 1: another process holds the state), stderr names
//! the file and the flags that resolve it, and the output is left as it was.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tidemark(args: &[&str], job: &Path, state: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("run")
        .arg(job)
        .args(["--until-eof", "--state-dir"])
        .arg(state)
        .args(args)
        .env("TIDEMARK_LOG", "warn")
        .output()
        .expect("spawn tidemark")
}

struct Finished {
    _dir: tempfile::TempDir,
    job: PathBuf,
    state: PathBuf,
    out: PathBuf,
    /// The output after the first, complete run.
    good: Vec<u8>,
}

impl Finished {
    fn checkpoint(&self) -> PathBuf {
        self.state.join("nginx/checkpoint")
    }

    /// Runs again, expecting a refusal with `code`; returns stderr after checking
    /// that the output was not touched.
    fn refused(&self, code: i32) -> String {
        let o = tidemark(&[], &self.job, &self.state);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(code), "{err}");
        assert_eq!(
            std::fs::read(&self.out).unwrap(),
            self.good,
            "output untouched: {err}"
        );
        err
    }
}

/// The demo's job run once to its end with a state folder: a checkpoint and the
/// output it names.
fn finished() -> Finished {
    let d = tempfile::tempdir().unwrap();
    let demo = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["demo", "--dir"])
        .arg(d.path())
        .env("TIDEMARK_LOG", "warn")
        .output()
        .unwrap();
    assert!(demo.status.success());
    let out = d.path().join("out/nginx.jsonl");
    // The run below writes its own output, named by its checkpoint.
    std::fs::remove_file(&out).unwrap();
    let job = d.path().join("nginx.toml");
    let state = d.path().join("state");
    let first = tidemark(&[], &job, &state);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let good = std::fs::read(&out).unwrap();
    Finished {
        _dir: d,
        job,
        state,
        out,
        good,
    }
}

/// The `hint:` lines of stderr.
fn hints(err: &str) -> Vec<&str> {
    err.lines()
        .filter_map(|l| l.trim_start().strip_prefix("hint: "))
        .collect()
}

#[test]
fn a_damaged_checkpoint_exits_2_with_both_reset_choices_instead_of_1() {
    type Damage = fn(&Path);
    let damages: [(&str, Damage); 3] = [
        ("truncated", |ck| {
            let bytes = std::fs::read(ck).unwrap();
            std::fs::write(ck, &bytes[..bytes.len() / 2]).unwrap();
        }),
        ("a byte flipped", |ck| {
            let mut bytes = std::fs::read(ck).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x55;
            std::fs::write(ck, bytes).unwrap();
        }),
        ("deleted", |ck| std::fs::remove_file(ck).unwrap()),
    ];
    for (what, damage) in damages {
        let f = finished();
        damage(&f.checkpoint());
        let err = f.refused(2);
        assert!(
            err.contains(&f.checkpoint().display().to_string()),
            "{what}: names the checkpoint: {err}"
        );
        let hints = hints(&err);
        // The checkpoint can no longer name the output: rewriting it needs
        // --overwrite too, and the hint says so.
        assert!(
            hints
                .iter()
                .any(|h| h.contains("--reset-checkpoint=beginning --overwrite")),
            "{what}: {err}"
        );
        assert!(
            hints.iter().any(|h| h.contains("--reset-checkpoint=end")),
            "{what}: {err}"
        );
        // Running again without choosing is refused the same way.
        f.refused(2);
        // The choice the hint gives works.
        let o = tidemark(
            &["--reset-checkpoint=beginning", "--overwrite"],
            &f.job,
            &f.state,
        );
        assert!(
            o.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(std::fs::read(&f.out).unwrap(), f.good, "{what}: recomputed");
    }
}

#[test]
fn changed_settings_exit_2_with_a_reset_hint_that_needs_no_overwrite() {
    let f = finished();
    let text = std::fs::read_to_string(&f.job).unwrap();
    std::fs::write(&f.job, text.replace("size = \"1m\"", "size = \"5m\"")).unwrap();
    let err = f.refused(2);
    assert!(
        err.contains(&f.checkpoint().display().to_string()),
        "names the checkpoint: {err}"
    );
    assert!(err.contains("window.size"), "{err}");
    let hints = hints(&err);
    // This checkpoint still names its output: beginning replaces it by itself.
    assert!(
        hints
            .iter()
            .any(|h| h.contains("`--reset-checkpoint=beginning`")),
        "{err}"
    );
    assert!(
        hints.iter().any(|h| h.contains("--reset-checkpoint=end")),
        "{err}"
    );
    let o = tidemark(&["--reset-checkpoint=beginning"], &f.job, &f.state);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_held_state_lock_names_the_lock_file_in_a_hint() {
    let f = finished();
    // Another process's lock, as a live run holds it for its whole life.
    let lock = f.state.join("nginx/lock");
    let held = std::fs::OpenOptions::new().write(true).open(&lock).unwrap();
    held.try_lock().unwrap();
    let err = f.refused(1);
    // The way out: stop the other run, or give this one its own folder.
    assert!(err.contains("--state-dir"), "{err}");
    let hints = hints(&err);
    assert!(
        hints
            .iter()
            .any(|h| h.contains(&lock.display().to_string())),
        "{err}"
    );
    drop(held);
    let o = tidemark(&[], &f.job, &f.state);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn another_jobs_checkpoint_exits_2_with_a_state_dir_hint() {
    let f = finished();
    // The job renamed, and its old state folder copied to the new name's.
    let text = std::fs::read_to_string(&f.job).unwrap();
    assert!(text.contains("name = \"nginx\""), "{text}");
    std::fs::write(&f.job, text.replace("name = \"nginx\"", "name = \"copy\"")).unwrap();
    std::fs::create_dir(f.state.join("copy")).unwrap();
    for file in ["checkpoint", "tidemark-state"] {
        let from = f.state.join("nginx").join(file);
        if from.exists() {
            std::fs::copy(&from, f.state.join("copy").join(file)).unwrap();
        }
    }
    let err = f.refused(2);
    assert!(err.contains("belongs to job \"nginx\""), "{err}");
    assert!(
        hints(&err).iter().any(|h| h.contains("--state-dir")),
        "{err}"
    );
}

#[test]
fn reset_checkpoint_without_a_state_dir_exits_2_as_bad_usage_not_1() {
    let f = finished();
    let o = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .arg("run")
        .arg(&f.job)
        .args(["--until-eof", "--reset-checkpoint=end"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--state-dir"), "{err}");
    assert_eq!(std::fs::read(&f.out).unwrap(), f.good, "output untouched");
}

/// Regression (issue 11 review): with typed errors the binary printed an I/O
/// error's cause twice ("cannot open …/lock: Not a directory (os error 20): Not a
/// directory (os error 20)"): the lock error says its cause and keeps it as its
/// source too. Each cause is printed once.
#[test]
fn a_state_folder_that_is_a_file_is_refused_saying_its_cause_once() {
    let f = finished();
    let not_a_folder = f.state.with_file_name("state-file");
    std::fs::write(&not_a_folder, b"not a folder\n").unwrap();
    let o = tidemark(&[], &f.job, &not_a_folder);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("Not a directory"), "{err}");
    assert_eq!(err.matches("(os error 20)").count(), 1, "{err}");
}
