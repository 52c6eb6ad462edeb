//! The jsonl sink's tests: writing, rolling back, refusing what it did not write.

use super::*;
use tidemark_engine::{Origin, Series, Value};

fn window(start_min: i64, n: u64) -> ClosedWindow {
    ClosedWindow {
        start_ms: start_min * 60_000,
        end_ms: (start_min + 1) * 60_000,
        series: vec![Series {
            record: "status:http_requests:sum1m".into(),
            labels: tidemark_engine::Labels::from_pairs(&[("status", "200")]),
            value: Value::Int(n),
            origin: Origin::Rule,
        }],
    }
}

/// A fresh sink, as for a first run.
fn create(path: &Path, series: SeriesChoice) -> Result<JsonlSink, SinkError> {
    JsonlSink::create(path, series, Existing::Refuse, &OutputRoots::any())
}

/// A commit point of a checkpoint that names no file (format 1).
fn unnamed(path: &Path, committed_len: u64) -> SinkCommit {
    SinkCommit {
        path: path.to_path_buf(),
        committed_len,
        file: None,
        tail: None,
    }
}

fn write(sink: &mut JsonlSink, windows: std::ops::Range<i64>) {
    for m in windows {
        sink.write_window(&window(m, m as u64 * 10)).unwrap();
    }
}

#[test]
fn rollback_then_rewrite_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, resumed) = (tmp.path().join("whole.jsonl"), tmp.path().join("r.jsonl"));
    let mut a = create(&whole, SeriesChoice::All).unwrap();
    write(&mut a, 0..6);
    a.finish().unwrap();

    let mut b = create(&resumed, SeriesChoice::All).unwrap();
    write(&mut b, 0..3);
    b.sync().unwrap();
    let commit = b.commit_point().unwrap();
    assert_eq!(commit.committed_len, b.committed_len());
    assert_eq!(
        commit.committed_len,
        std::fs::metadata(&resumed).unwrap().len()
    );
    // Windows written after the checkpoint, then a crash.
    write(&mut b, 3..5);
    drop(b);

    let mut c =
        JsonlSink::open_at(&resumed, SeriesChoice::All, &commit, &OutputRoots::any()).unwrap();
    assert_eq!(c.committed_len(), commit.committed_len);
    write(&mut c, 3..6);
    c.finish().unwrap();
    assert_eq!(
        std::fs::read(&whole).unwrap(),
        std::fs::read(&resumed).unwrap()
    );
    assert_eq!(
        c.committed_len(),
        std::fs::metadata(&resumed).unwrap().len()
    );
}

/// A window's records, several per record name and the names interleaved:
/// each line as the one-record formatter writes it (the sink renders a name's
/// head once and reuses it).
#[test]
fn each_record_is_written_whole_whatever_the_record_names_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("out.jsonl");
    let mut sink = create(&p, SeriesChoice::All).unwrap();
    let rec = |record: &str, status: &str, n: u64| Series {
        record: record.into(),
        labels: tidemark_engine::Labels::from_pairs(&[("status", status)]),
        value: Value::Int(n),
        origin: Origin::Host,
    };
    let w = ClosedWindow {
        start_ms: 0,
        end_ms: 60_000,
        series: vec![
            rec("a", "200", 1),
            rec("a", "404", 2),
            rec("b\"", "200", 3),
            rec("a", "500", 4),
            rec("ab", "200", 5),
        ],
    };
    sink.write(&w).unwrap();
    let (start, end) = (rfc3339(w.start_ms), rfc3339(w.end_ms));
    let mut want = String::new();
    for s in &w.series {
        crate::format::jsonl_record(&w, s, &start, &end, &mut want);
    }
    assert_eq!(std::fs::read_to_string(&p).unwrap(), want);
    assert!(
        want.contains(r#""record":"a","labels":{"status":"500"},"value":4}"#),
        "{want}"
    );
}

#[test]
fn open_at_the_current_length_appends() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("o.jsonl");
    let mut a = create(&p, SeriesChoice::All).unwrap();
    write(&mut a, 0..2);
    let commit = a.commit_point().unwrap();
    drop(a);
    let mut b = JsonlSink::open_at(&p, SeriesChoice::All, &commit, &OutputRoots::any()).unwrap();
    write(&mut b, 2..3);
    b.finish().unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(text.lines().nth(2).unwrap().contains("00:02:00Z"));
}

#[test]
fn output_shorter_than_committed_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("o.jsonl");
    std::fs::write(&p, b"{\"x\":1}\n").unwrap();
    let msg = JsonlSink::open_at(
        &p,
        SeriesChoice::All,
        &unnamed(&p, 100),
        &OutputRoots::any(),
    )
    .err()
    .expect("shorter output must be refused")
    .to_string();
    assert!(msg.contains("damaged"), "{msg}");
    assert!(msg.contains("100 bytes"), "{msg}");
    assert!(msg.contains("has 8 bytes"), "{msg}");
    assert!(msg.contains("--reset-checkpoint=beginning"), "{msg}");
    // Refusing must not have touched the file.
    assert_eq!(std::fs::read(&p).unwrap(), b"{\"x\":1}\n");

    let gone = tmp.path().join("gone.jsonl");
    let msg = JsonlSink::open_at(
        &gone,
        SeriesChoice::All,
        &unnamed(&gone, 5),
        &OutputRoots::any(),
    )
    .err()
    .expect("missing committed output must be refused")
    .to_string();
    assert!(msg.contains("no longer exists"), "{msg}");
}

#[test]
fn open_at_zero_creates_a_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("sub/o.jsonl");
    let mut s =
        JsonlSink::open_at(&p, SeriesChoice::All, &unnamed(&p, 0), &OutputRoots::any()).unwrap();
    write(&mut s, 0..1);
    s.finish().unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap().lines().count(), 1);
}

#[test]
fn describe_escapes_a_newline_in_the_path() {
    // It goes into log lines and error messages: a file name must not forge a line.
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("a\nforged.jsonl");
    let s = create(&p, SeriesChoice::All).unwrap();
    let text = s.describe();
    assert!(!text.contains('\n'), "{text:?}");
    assert!(text.ends_with("a\\nforged.jsonl"), "{text:?}");
    assert!(text.starts_with("jsonl "), "{text:?}");
}

#[test]
fn committed_len_counts_only_selected_series() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("o.jsonl");
    let mut s = create(&p, SeriesChoice::Hosts).unwrap();
    write(&mut s, 0..3);
    s.sync().unwrap();
    assert_eq!(s.committed_len(), 0);
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
}

mod clobber_tests {
    use super::*;

    fn roots() -> OutputRoots {
        OutputRoots::any()
    }

    #[test]
    fn a_fresh_sink_does_not_clobber_a_file_it_did_not_write() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("notes.txt");
        std::fs::write(&p, b"my notes\n").unwrap();
        let err = JsonlSink::create(&p, SeriesChoice::All, Existing::Refuse, &roots())
            .err()
            .expect("a non-empty file must be refused");
        assert!(matches!(err, SinkError::Exists { len: 9, .. }), "{err}");
        assert!(err.to_string().contains("--overwrite"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"my notes\n");
        // An empty file has nothing to lose; Replace is the user's --overwrite.
        std::fs::write(&p, b"").unwrap();
        JsonlSink::create(&p, SeriesChoice::All, Existing::Refuse, &roots()).unwrap();
        std::fs::write(&p, b"my notes\n").unwrap();
        let s = JsonlSink::create(&p, SeriesChoice::All, Existing::Replace, &roots()).unwrap();
        assert_eq!(s.committed_len(), 0);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
    }

    #[test]
    fn a_checkpoint_cuts_back_only_the_file_it_names() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("o.jsonl");
        let mut a = JsonlSink::create(&p, SeriesChoice::All, Existing::Refuse, &roots()).unwrap();
        a.write_window(&tests_window()).unwrap();
        a.sync().unwrap();
        let commit = a.commit_point().unwrap();
        assert_eq!(commit.file, Some(a.identity()));
        drop(a);
        // Another file moved into its place (longer than the commit point).
        std::fs::rename(&p, tmp.path().join("mine.jsonl")).unwrap();
        let other = "other\n".repeat(100);
        std::fs::write(&p, &other).unwrap();
        let err = JsonlSink::open_at(&p, SeriesChoice::All, &commit, &roots())
            .err()
            .expect("another file must be refused");
        assert!(matches!(err, SinkError::NotTheFile { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("not the file"), "{msg}");
        assert!(msg.contains("--reset-checkpoint=beginning"), "{msg}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), other, "cut");
        // Shorter than the commit point: still another file, not a damaged output.
        std::fs::write(tmp.path().join("short"), b"x\n").unwrap();
        std::fs::rename(tmp.path().join("short"), &p).unwrap();
        let err = JsonlSink::open_at(&p, SeriesChoice::All, &commit, &roots())
            .err()
            .expect("another file must be refused");
        assert!(matches!(err, SinkError::NotTheFile { .. }), "{err}");
        // The named file, back at its path (a hard link is the same file): resumed.
        std::fs::remove_file(&p).unwrap();
        std::fs::hard_link(tmp.path().join("mine.jsonl"), &p).unwrap();
        JsonlSink::open_at(&p, SeriesChoice::All, &commit, &roots()).unwrap();
    }

    fn tests_window() -> ClosedWindow {
        ClosedWindow {
            start_ms: 0,
            end_ms: 60_000,
            series: vec![tidemark_engine::Series {
                record: "r".into(),
                labels: Default::default(),
                value: tidemark_engine::Value::Int(1),
                origin: tidemark_engine::Origin::Rule,
            }],
        }
    }
}
