//! `tidemark replay --format openmetrics`, black-box, with the real promtool and
//! Prometheus: the file is OpenMetrics that `promtool tsdb create-blocks-from
//! openmetrics` turns into blocks, and a Prometheus started on those blocks holds
//! exactly the JSONL replay's records — every series, every window, named as the
//! record, stamped at the window's end (or start), value for value. Refusals and
//! Ctrl-C (no file at all) at the end.

mod replay_fixture;
mod stack;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use replay_fixture::*;

/// A series: its labels with `__name__`.
type SeriesKey = BTreeMap<String, String>;
/// Every series' samples: (ms, value) in time order.
type Samples = BTreeMap<SeriesKey, Vec<(i64, f64)>>;

/// The JSONL replay's records as the samples Prometheus should hold: named as
/// the record, at the window's end (or start). Values are read from the text
/// (Rust's parse rounds correctly; they must come back as the same f64).
fn expected(jsonl: &[u8], at_start: bool) -> Samples {
    let mut out = Samples::new();
    for line in jsonl.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = std::str::from_utf8(line).unwrap();
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let mut key: SeriesKey = v["labels"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        key.insert("__name__".into(), v["record"].as_str().unwrap().into());
        let at = v[if at_start { "start" } else { "end" }].as_str().unwrap();
        let text = line.rsplit_once("\"value\":").unwrap().1;
        let text = text.strip_suffix('}').unwrap();
        let value = if text == "null" {
            f64::NAN
        } else {
            text.parse().unwrap()
        };
        out.entry(key).or_default().push((secs(at) * 1000, value));
    }
    out
}

/// Every raw sample Prometheus holds in `(end - span, end]`.
fn stored(prom: &stack::Component, end_s: i64, span_s: i64) -> Samples {
    let q = stack::url_encode(&format!("{{__name__=~\".+\"}}[{span_s}s]"));
    let (status, body) = prom.get(&format!("/api/v1/query?query={q}&time={end_s}"));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["resultType"], "matrix", "{body}");
    let mut out = Samples::new();
    for r in v["data"]["result"].as_array().unwrap() {
        let key: SeriesKey = r["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let samples = r["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let ms = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                (ms, p[1].as_str().unwrap().parse::<f64>().unwrap())
            })
            .collect();
        assert!(out.insert(key, samples).is_none());
    }
    out
}

/// Equal series, timestamps and values (bit for bit; NaN equals NaN).
fn assert_same_samples(what: &str, got: &Samples, want: &Samples) {
    let names = |s: &Samples| s.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(got), names(want), "{what}: the series differ");
    for (key, w) in want {
        let g = &got[key];
        let same = g.len() == w.len()
            && g.iter().zip(w).all(|(a, b)| {
                a.0 == b.0 && (a.1.to_bits() == b.1.to_bits() || (a.1.is_nan() && b.1.is_nan()))
            });
        assert!(same, "{what}: {key:?}\n got {g:?}\nwant {w:?}");
    }
}

/// The file's shape: `# TYPE NAME gauge` opens each family; a family's
/// samples, and a series' samples, are contiguous; a series' times ascend; the
/// last line is `# EOF`. Returns how many samples it holds.
fn check_shape(text: &str) -> usize {
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    assert_eq!(lines.pop(), Some("# EOF\n"), "the file ends with # EOF");
    let (mut families, mut series) = (Vec::<String>::new(), Vec::<String>::new());
    let mut last_time = f64::MIN;
    let mut samples = 0;
    for line in lines {
        let line = line
            .strip_suffix('\n')
            .expect("every line ends in a newline");
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert_eq!(kind, "gauge", "{line}");
            assert!(!families.iter().any(|f| f == name), "family {name} twice");
            families.push(name.to_string());
            continue;
        }
        samples += 1;
        // `NAME{labels} VALUE TIME`: the label values of these logs hold no space.
        let mut parts = line.rsplitn(3, ' ');
        let time: f64 = parts.next().unwrap().parse().unwrap();
        let _value = parts.next().unwrap();
        let s = parts.next().unwrap();
        let name = s.split('{').next().unwrap();
        assert_eq!(families.last().map(String::as_str), Some(name), "{line}");
        if series.last().map(String::as_str) == Some(s) {
            assert!(time > last_time, "times of {s} do not ascend: {line}");
        } else {
            assert!(!series.iter().any(|x| x == s), "series {s} is split");
            series.push(s.to_string());
        }
        last_time = time;
    }
    samples
}

fn promtool_blocks(om: &Path, blocks: &Path) {
    let out = Command::new(stack::promtool())
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(om)
        .arg(blocks)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool create-blocks-from openmetrics failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Prometheus on `blocks`; the fixture's data is older than the default 15 days
/// of retention would keep once the calendar moves on.
fn prometheus_on(blocks: &Path) -> stack::Component {
    stack::prometheus(
        "global: {}\n",
        Some(blocks),
        &["--storage.tsdb.retention.time=100y"],
    )
}

#[test]
fn backfilled_openmetrics_replay_holds_the_jsonl_replays_values_in_prometheus() {
    let f = Fixture::new(THREE_HOSTS);
    let (from, to) = ("2026-11-20T10:07:00Z", "2026-11-20T10:23:00Z");
    let span = secs(to) - secs(from);
    let args = ["-w", "2", "--segment-bytes", "16384", "--progress", "none"];
    let jsonl = f.path("r.jsonl");
    replay_ok(&f.job, from, to, &jsonl, &args);
    let jsonl = std::fs::read(&jsonl).unwrap();
    assert_eq!(window_starts(&jsonl).len(), 16);

    // A small regrouping buffer: the samples spill to disk in many runs.
    let om = f.path("backfill/r.om");
    let err = replay_ok(
        &f.job,
        from,
        to,
        &om,
        &[
            &args[..],
            &["--format", "openmetrics", "--openmetrics-buffer", "4KiB"],
        ]
        .concat(),
    );
    assert!(
        err.contains(&format!("OpenMetrics written to {}", om.display())),
        "{err}"
    );
    // The command to load it names the real file (before: a literal `FILE`).
    assert!(
        err.contains(&format!(
            "promtool tsdb create-blocks-from openmetrics {} DIR",
            om.display()
        )),
        "{err}"
    );
    let text = std::fs::read_to_string(&om).unwrap();
    let want = expected(&jsonl, false);
    let n: usize = want.values().map(Vec::len).sum();
    assert_eq!(check_shape(&text), n, "one sample per JSONL record");
    // Histogram parts and rule records with `:` are there under their own names.
    for name in [
        "# TYPE http_request_duration_seconds gauge\n",
        "# TYPE http_request_duration_seconds_count gauge\n",
        "# TYPE http_request_duration_seconds_sum gauge\n",
        "# TYPE status:http_requests:sum1m gauge\n",
    ] {
        assert!(text.contains(name), "no {name:?}");
    }
    // Only the output is left in its folder (no spill or temporary file).
    let left: Vec<_> = std::fs::read_dir(f.path("backfill"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec!["r.om"]);

    let blocks = f.path("blocks");
    promtool_blocks(&om, &blocks);
    // The same range backfilled twice (or over the same data sent live): the
    // blocks overlap, and Prometheus (2.39 and later) merges identical samples.
    let block_dirs = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().join("meta.json").is_file())
            .count()
    };
    let once = block_dirs(&blocks);
    promtool_blocks(&om, &blocks);
    assert_eq!(block_dirs(&blocks), 2 * once, "overlapping blocks");
    let prom = prometheus_on(&blocks);
    // Samples stamped at window ends lie in (from, to].
    let got = stored(&prom, secs(to), span);
    assert_same_samples("stamped at window ends", &got, &want);
    // The values the live run wrote for these windows, too.
    let live = expected(&f.live_range(from, to), false);
    assert_same_samples("the live run's windows", &got, &live);
    drop(prom);

    // --timestamp start, and a job whose jsonl sink prints only the rules: the
    // OpenMetrics file prints the same series.
    let rules_job = f.path("rules.toml");
    std::fs::write(
        &rules_job,
        std::fs::read_to_string(&f.job)
            .unwrap()
            .replace("series = \"all\"", "series = \"rules\""),
    )
    .unwrap();
    let om = f.path("start.om");
    replay_ok(
        &rules_job,
        from,
        to,
        &om,
        &[
            &args[..],
            &["--format", "openmetrics", "--timestamp", "start"],
        ]
        .concat(),
    );
    let jsonl_rules = f.path("rules.jsonl");
    replay_ok(&rules_job, from, to, &jsonl_rules, &args);
    let want = expected(&std::fs::read(&jsonl_rules).unwrap(), true);
    assert!(
        want.keys().all(|k| k["__name__"].contains(':')),
        "rules only"
    );
    let blocks = f.path("blocks-start");
    promtool_blocks(&om, &blocks);
    let prom = prometheus_on(&blocks);
    // Samples stamped at window starts lie in [from, to): query (from - 1s, to - 1s].
    let got = stored(&prom, secs(to) - 1, span);
    assert_same_samples("stamped at window starts", &got, &want);
}

#[test]
fn openmetrics_output_is_refused_where_it_would_destroy_something_and_needs_output() {
    let f = Fixture::new(Spec {
        minutes: 5,
        ..THREE_HOSTS
    });
    let (from, to) = ("2026-11-20T10:01:00Z", "2026-11-20T10:04:00Z");
    let om = ["--format", "openmetrics", "--progress", "none"];
    let usage = |args: &[&str], out: Option<&Path>| -> String {
        let mut c = replay_cmd(&f.job, from, to, args);
        if let Some(out) = out {
            c.arg("--output").arg(out);
        }
        let o = c.output().unwrap();
        let err = stderr_of(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?} {out:?}: {err}");
        err
    };
    let err = usage(&om, None);
    assert!(err.contains("needs --output"), "{err}");
    let err = usage(
        &["--timestamp", "start", "--progress", "none"],
        Some(&f.path("x.jsonl")),
    );
    assert!(
        err.contains("--timestamp applies to --format openmetrics"),
        "{err}"
    );
    for (label, says) in [
        ("nope", "has no `=`"),
        ("1x=a", "is not a label name"),
        ("__name__=a", "reserved"),
    ] {
        let err = usage(
            &[&om[..], &["--external-label", label]].concat(),
            Some(&f.path("x.om")),
        );
        assert!(err.contains(says), "{label}: {err}");
    }
    let twice = ["--external-label", "a=1", "--external-label", "a=2"];
    let err = usage(&[&om[..], &twice].concat(), Some(&f.path("x.om")));
    assert!(err.contains("given twice"), "{err}");
    assert!(!f.path("x.om").exists());

    // The job file and an input, even with --overwrite: never touched.
    let job_before = std::fs::read(&f.job).unwrap();
    let err = usage(&[&om[..], &["--overwrite"]].concat(), Some(&f.job));
    assert!(err.contains("the job file"), "{err}");
    assert_eq!(std::fs::read(&f.job).unwrap(), job_before);
    let input = f.path("logs/web-1/access.log");
    let input_before = std::fs::read(&input).unwrap();
    let err = usage(&[&om[..], &["--overwrite"]].concat(), Some(&input));
    assert!(err.contains("--output"), "{err}");
    assert_eq!(std::fs::read(&input).unwrap(), input_before);
    // The job's own JSONL output, the live run's.
    let err = usage(
        &[&om[..], &["--overwrite"]].concat(),
        Some(&f.path("out/live.jsonl")),
    );
    assert!(err.contains("the job's own JSONL output"), "{err}");
    assert!(std::fs::read(f.path("out/live.jsonl")).unwrap() == f.live);

    // An existing file: refused, then replaced with --overwrite.
    let out = f.path("exists.om");
    std::fs::write(&out, "keep").unwrap();
    let err = usage(&om, Some(&out));
    assert!(
        err.contains("already exists") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep");
    replay_ok(
        &f.job,
        from,
        to,
        &out,
        &[&om[..], &["--overwrite"]].concat(),
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("# TYPE ") && text.ends_with("\n# EOF\n"),
        "{text}"
    );
}

#[test]
fn ctrl_c_leaves_no_openmetrics_file_and_exits_130() {
    // Slow (as in replay_cli_progress.rs): 256 KiB/s over about 0.7 MB.
    let f = Fixture::with_job(THREE_HOSTS, r#"read_chunk = "16KiB""#);
    let dir = f.path("om");
    std::fs::create_dir(&dir).unwrap();
    let out = dir.join("interrupted.om");
    let mut child = replay_cmd(
        &f.job,
        "2026-11-20T09:00:00Z",
        "2026-11-20T12:00:00Z",
        &[
            "-w",
            "2",
            "--rate-limit",
            "256KiB/s",
            "--segment-bytes",
            "32768",
            "--progress",
            "plain",
            "--progress-interval",
            "100ms",
            "--format",
            "openmetrics",
            "--openmetrics-buffer",
            "1KiB",
        ],
    )
    .arg("--output")
    .arg(&out)
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until windows were handed to the sink (and spilled), then Ctrl-C.
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut buf = [0u8; 4096];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    all.push_str(&String::from_utf8_lossy(&buf[..n]));
                    let _ = tx.send(all.clone());
                }
            }
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
        if seen
            .lines()
            .any(|l| l.starts_with("progress:") && !l.contains(" 0 windows written"))
        {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("replay ended ({status:?}) before the interrupt");
        }
        assert!(Instant::now() < deadline, "no window written within 60 s");
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_bounded(&mut child, Duration::from_secs(20), "replay after SIGINT");
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(130), "exit after SIGINT: {err}");
    assert!(err.contains("nothing was written to"), "{err}");
    // No output, and nothing else either (no temporary or spill file).
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn hostile_label_values_and_extreme_values_come_back_exactly_from_prometheus() {
    let d = tempfile::tempdir().unwrap();
    // Label values the text format must escape (`"`, `\`, newline) or keep
    // as they are (tab, space, `{}=,#`, non-ASCII); gauge values that print
    // with an exponent, negative, tiny and huge.
    let agents = [
        r#"q\"uote"#,
        r"back\\slash",
        r"new\nline",
        r"tab\there",
        "with space {}=,# ok",
        "ünïcödé ✓",
    ];
    let values = ["1e300", "2.5e-7", "-3.75", "0.1", "123456789.123", "1e-320"];
    let t0 = secs("2026-11-20T10:00:00Z");
    let mut lines = String::new();
    for s in 0..5 * 60 {
        let i = s as usize;
        let ts = jiff::Timestamp::from_second(t0 + s).unwrap();
        lines.push_str(&format!(
            "{{\"time\":\"{ts}\",\"ua\":\"{}\",\"v\":{}}}\n",
            agents[i % agents.len()],
            values[(i / 7) % values.len()]
        ));
    }
    std::fs::create_dir_all(d.path().join("logs/web-1")).unwrap();
    std::fs::write(d.path().join("logs/web-1/app.log"), lines).unwrap();
    let job = d.path().join("job.toml");
    std::fs::write(
        &job,
        r#"name = "hostile"
[source]
kind = "file"
include = ["logs/*/app.log"]
host = { path_regex = '/logs/(?P<host>[^/]+)/' }
[parse]
format = "json"
[window]
size = "1m"
[[metric]]
name = "requests"
kind = "counter"
labels = ["ua"]
[[metric]]
name = "last_v"
kind = "gauge"
field = "v"
labels = ["ua"]
[[rule]]
record = "ua:requests:sum1m"
expr = "sum by (ua) (requests)"
[[rule]]
record = "job:requests:sum1m"
expr = "sum(requests)"
[[sink]]
kind = "jsonl"
path = "out.jsonl"
series = "all"
"#,
    )
    .unwrap();
    let (from, to) = ("2026-11-20T10:00:00Z", "2026-11-20T10:05:00Z");
    let jsonl = d.path().join("r.jsonl");
    replay_ok(&job, from, to, &jsonl, &["--progress", "none"]);
    let jsonl = std::fs::read(&jsonl).unwrap();
    let om = d.path().join("r.om");
    replay_ok(
        &job,
        from,
        to,
        &om,
        &[
            "--progress",
            "none",
            "--format",
            "openmetrics",
            "--external-label",
            "cluster=eu-1",
            "--external-label",
            "ua=none",
        ],
    );
    let mut want = expected(&jsonl, false);
    let uas: std::collections::BTreeSet<&str> = want
        .keys()
        .filter_map(|k| k.get("ua"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        uas.len(),
        agents.len(),
        "every label value is a series: {uas:?}"
    );
    assert!(
        uas.contains("new\nline") && uas.contains("q\"uote"),
        "{uas:?}"
    );
    // External labels: added to every series, never over a label it has.
    want = want
        .into_iter()
        .map(|(mut k, v)| {
            k.insert("cluster".into(), "eu-1".into());
            k.entry("ua".into()).or_insert_with(|| "none".into());
            (k, v)
        })
        .collect();
    assert!(
        want.keys().any(|k| k["ua"] == "none"),
        "a series without ua"
    );
    let blocks = d.path().join("blocks");
    promtool_blocks(&om, &blocks);
    let prom = prometheus_on(&blocks);
    let got = stored(&prom, secs(to), secs(to) - secs(from));
    assert_same_samples("hostile labels and values", &got, &want);
}
