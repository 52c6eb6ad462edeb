use super::*;
use tidemark_engine::{Labels, Origin, Series, Value};

/// 2026-11-20T10:00:00Z.
const T0: i64 = 1_795_168_800_000;

fn series(record: &str, labels: &[(&str, &str)], value: Value, origin: Origin) -> Series {
    Series {
        record: record.into(),
        labels: Labels::from_pairs(labels),
        value,
        origin,
    }
}

/// Window `i` (one minute from T0): a rule, and a host histogram's three records.
fn window(i: i64) -> ClosedWindow {
    let v = i as u64;
    ClosedWindow {
        start_ms: T0 + i * 60_000,
        end_ms: T0 + (i + 1) * 60_000,
        series: vec![
            series(
                "http_request_duration_seconds",
                &[("host", "web-1"), ("quantile", "0.99")],
                Value::Float(0.25 + i as f64),
                Origin::Host,
            ),
            series(
                "http_request_duration_seconds_count",
                &[("host", "web-1")],
                Value::Int(10 + v),
                Origin::Host,
            ),
            series(
                "http_request_duration_seconds_sum",
                &[("host", "web-1")],
                Value::Float(1.5),
                Origin::Host,
            ),
            series(
                "status:http_requests:sum1m",
                &[("status", "5\"0\\0\n")],
                Value::Int(v),
                Origin::Rule,
            ),
        ],
    }
}

fn sink(dir: &Path, series: SeriesChoice, time: SampleTime) -> OpenMetricsSink {
    let opts = OpenMetricsOptions {
        series,
        time,
        ..OpenMetricsOptions::default()
    };
    OpenMetricsSink::create(&dir.join("out/x.om"), opts).unwrap()
}

fn with_buffer(buffer_bytes: usize) -> OpenMetricsOptions {
    OpenMetricsOptions {
        buffer_bytes,
        ..OpenMetricsOptions::default()
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_finished_replay_is_one_file_of_contiguous_gauge_families_stamped_at_window_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path(), SeriesChoice::All, SampleTime::End);
    for i in 0..2 {
        s.write_window(&window(i)).unwrap();
    }
    assert!(
        !dir.path().join("out/x.om").exists(),
        "nothing before the end"
    );
    s.finish().unwrap();
    let text = std::fs::read_to_string(dir.path().join("out/x.om")).unwrap();
    assert_eq!(
        text,
        "# TYPE http_request_duration_seconds gauge\n\
         http_request_duration_seconds{host=\"web-1\",quantile=\"0.99\"} 0.25 1795168860\n\
         http_request_duration_seconds{host=\"web-1\",quantile=\"0.99\"} 1.25 1795168920\n\
         # TYPE http_request_duration_seconds_count gauge\n\
         http_request_duration_seconds_count{host=\"web-1\"} 10 1795168860\n\
         http_request_duration_seconds_count{host=\"web-1\"} 11 1795168920\n\
         # TYPE http_request_duration_seconds_sum gauge\n\
         http_request_duration_seconds_sum{host=\"web-1\"} 1.5 1795168860\n\
         http_request_duration_seconds_sum{host=\"web-1\"} 1.5 1795168920\n\
         # TYPE status:http_requests:sum1m gauge\n\
         status:http_requests:sum1m{status=\"5\\\"0\\\\0\\n\"} 0 1795168860\n\
         status:http_requests:sum1m{status=\"5\\\"0\\\\0\\n\"} 1 1795168920\n\
         # EOF\n"
    );
    // Only the output: no temporary file left behind.
    assert_eq!(entries(&dir.path().join("out")), vec!["x.om"]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("out/x.om"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o007, 0, "not for every user: {mode:o}");
    assert_eq!(mode & 0o600, 0o600, "{mode:o}");
}

#[test]
fn series_choice_and_window_start_stamps() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sink(dir.path(), SeriesChoice::Rules, SampleTime::Start);
    s.write_window(&window(0)).unwrap();
    s.finish().unwrap();
    let text = std::fs::read_to_string(dir.path().join("out/x.om")).unwrap();
    assert_eq!(
        text,
        "# TYPE status:http_requests:sum1m gauge\n\
         status:http_requests:sum1m{status=\"5\\\"0\\\\0\\n\"} 0 1795168800\n\
         # EOF\n"
    );
}

#[test]
fn an_unfinished_replay_leaves_no_file_and_no_temporary_one() {
    let dir = tempfile::tempdir().unwrap();
    // A tiny buffer: the samples spilled to disk before the stop.
    let mut s = OpenMetricsSink::create(&dir.path().join("x.om"), with_buffer(10)).unwrap();
    for i in 0..50 {
        s.write_window(&window(i)).unwrap();
    }
    assert!(s.sorter.as_ref().unwrap().runs() > 1);
    drop(s);
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

#[test]
fn spilled_and_in_memory_outputs_are_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut texts = Vec::new();
    for (name, budget) in [("a.om", 1 << 30), ("b.om", 300)] {
        let path = dir.path().join(name);
        let mut s = OpenMetricsSink::create(&path, with_buffer(budget)).unwrap();
        for i in 0..100 {
            s.write_window(&window(i)).unwrap();
        }
        s.finish().unwrap();
        texts.push(std::fs::read(&path).unwrap());
    }
    assert!(texts[0] == texts[1]);
}

#[test]
fn an_existing_file_is_refused_unless_overwrite_and_never_a_link_or_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.om");
    std::fs::write(&path, "keep me").unwrap();
    let open = |overwrite| {
        let opts = OpenMetricsOptions {
            overwrite,
            ..OpenMetricsOptions::default()
        };
        OpenMetricsSink::create(&path, opts)
    };
    let overwrite = OpenMetricsOptions {
        overwrite: true,
        ..OpenMetricsOptions::default()
    };
    let e = open(false).err().unwrap();
    assert!(matches!(e, OpenMetricsError::Exists { len: 7, .. }), "{e}");
    assert!(e.is_usage());
    assert!(e.to_string().contains("--overwrite"), "{e}");
    let mut s = open(true).unwrap();
    // Kept until the replay is done.
    s.write_window(&window(0)).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    s.finish().unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().ends_with("# EOF\n"));

    // An empty file may be written without --overwrite.
    std::fs::write(&path, "").unwrap();
    let mut s = open(false).unwrap();
    s.finish().unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# EOF\n");

    // A file that appeared during the replay is not replaced, and the finished
    // output is kept (before: the synced temporary file was deleted).
    std::fs::remove_file(&path).unwrap();
    let mut s = open(false).unwrap();
    s.write_window(&window(0)).unwrap();
    std::fs::write(&path, "late").unwrap();
    let e = s.finish().unwrap_err();
    let om = e.downcast_ref::<OpenMetricsError>().expect("typed");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "late");
    let OpenMetricsError::NotPlaced { kept, cause, .. } = om else {
        panic!("{om}");
    };
    assert!(
        matches!(**cause, OpenMetricsError::Exists { len: 4, .. }),
        "{cause}"
    );
    assert!(om.is_usage());
    let text = std::fs::read_to_string(kept).unwrap();
    assert!(text.contains("http_request_duration_seconds_count") && text.ends_with("# EOF\n"));
    let msg = om.to_string();
    let mv = format!("mv {} {}", kept.display(), path.display());
    assert!(msg.contains(&mv) && msg.contains("--overwrite"), "{msg}");
    assert_eq!(entries(dir.path()).len(), 2, "{:?}", entries(dir.path()));
    std::fs::remove_file(kept).unwrap();
    assert_eq!(entries(dir.path()), vec!["x.om"]);

    let link = dir.path().join("link.om");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let e = OpenMetricsSink::create(&link, overwrite.clone())
        .err()
        .unwrap();
    assert!(matches!(e, OpenMetricsError::Symlink { .. }), "{e}");
    let e = OpenMetricsSink::create(dir.path(), overwrite)
        .err()
        .unwrap();
    assert!(
        matches!(
            e,
            OpenMetricsError::NotAFile {
                what: "a folder",
                ..
            }
        ),
        "{e}"
    );
}
