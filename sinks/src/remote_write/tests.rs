//! The sink against a scripted HTTP receiver on 127.0.0.1:0 (a mock: the real
//! Prometheus is in tests/remote_write.rs).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tidemark_engine::stats::sink::{Rejection, SinkState};
use tidemark_engine::{ClosedWindow, Labels, Origin, Series, Value};
use tidemark_jobs::{RemoteWrite, RemoteWriteAuth, SampleTime, SeriesChoice};

use super::encode::decode;
use super::proto::WriteRequest;
use super::*;

/// What the receiver saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    headers: Vec<(String, String)>,
    body: WriteRequest,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first label value of each series other than `__name__`'s.
    fn values(&self) -> Vec<f64> {
        self.body
            .timeseries
            .iter()
            .map(|t| t.samples[0].value)
            .collect()
    }
}

/// Answers requests with `script` in turn (then 204), recording each; status
/// 0 answers 204 only after a second.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn receiver(script: Vec<(u16, &'static str, Option<&'static str>)>) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut script = script.into_iter();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some((n, v)) = line.trim_end().split_once(':') {
                    headers.push((n.trim().to_string(), v.trim().to_string()));
                }
            }
            let len: usize = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            log.lock().unwrap().push(Seen {
                headers,
                body: decode(&body),
            });
            let (mut status, text, retry_after) = script.next().unwrap_or((204, "", None));
            if status == 0 {
                // Too slow: the client's timeout is shorter.
                std::thread::sleep(Duration::from_millis(1000));
                status = 204;
            }
            let extra = retry_after
                .map(|v| format!("Retry-After: {v}\r\n"))
                .unwrap_or_default();
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{text}",
                text.len()
            );
        }
    });
    Receiver { url, seen }
}

fn config(url: &str) -> RemoteWrite {
    RemoteWrite {
        url: url.to_string(),
        timestamp: SampleTime::End,
        external_labels: vec![],
        auth: None,
        timeout: Duration::from_secs(30),
        max_samples_per_send: 2,
        queue_capacity: 100,
        min_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(20),
    }
}

fn source() -> tidemark_jobs::Source {
    let job = tidemark_jobs::from_str(
        "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [\"/l/*.log\"]\n[parse]\nformat = \"nginx\"\n[[metric]]\nname = \"r\"\nkind = \"counter\"\n[[sink]]\nkind = \"stdout\"\nseries = \"hosts\"\n",
        "j.toml",
        Path::new("/"),
    )
    .unwrap();
    job.source
}

fn open(rw: &RemoteWrite, resumed: bool) -> RemoteWriteSink {
    RemoteWriteSink::open(rw, SeriesChoice::All, &source(), resumed).unwrap()
}

/// A window of `n` series `x{i="0"}`.. with values start_min*100 + i.
fn window(start_min: i64, n: usize) -> ClosedWindow {
    ClosedWindow {
        start_ms: start_min * 60_000,
        end_ms: (start_min + 1) * 60_000,
        series: (0..n)
            .map(|i| Series {
                record: "x".into(),
                labels: Labels::from_pairs(&[("i", i.to_string())]),
                value: Value::Int(start_min as u64 * 100 + i as u64),
                origin: Origin::Rule,
            })
            .collect(),
    }
}

#[test]
fn requests_carry_the_spec_headers_and_go_in_order_and_sync_waits_for_the_acks() {
    let rx = receiver(vec![]);
    let mut sink = open(&config(&rx.url), false);
    assert_eq!(
        sink.describe(),
        format!("prometheus_remote_write {}", rx.url)
    );
    sink.write_window(&window(1, 3)).unwrap();
    sink.write_window(&window(2, 1)).unwrap();
    sink.sync(180_000).unwrap();
    let seen = rx.seen.lock().unwrap().clone();
    // 3 series split 2 + 1, then window 2's one series and its 2 markers,
    // 2 + 1 again.
    let values: Vec<Vec<f64>> = seen.iter().map(Seen::values).collect();
    assert_eq!(values.len(), 4, "{values:?}");
    assert_eq!(values[0], [100.0, 101.0]);
    assert_eq!(values[1], [102.0]);
    assert_eq!(values[2][0], 200.0);
    assert!(values[2][1].is_nan() && values[3][0].is_nan());
    let first = &seen[0];
    assert_eq!(first.header("content-encoding"), Some("snappy"));
    assert_eq!(first.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(
        first.header("x-prometheus-remote-write-version"),
        Some("0.1.0")
    );
    assert!(first.header("user-agent").unwrap().starts_with("tidemark/"));
    assert_eq!(first.header("authorization"), None);
    let m = sink.meter().unwrap().snapshot();
    assert_eq!((m.records_written, m.batches, m.retries), (6, 4, 0));
    assert_eq!((m.queue_records, m.queue_bytes), (0, 0));
    assert_eq!(m.state, SinkState::Ok);
    sink.finish().unwrap();
}

#[test]
fn server_errors_and_429_are_retried_until_accepted() {
    let rx = receiver(vec![
        (503, "", None),
        (500, "disk trouble", None),
        (429, "slow down", Some("0")),
    ]);
    let mut sink = open(&config(&rx.url), false);
    sink.write_window(&window(1, 2)).unwrap();
    sink.write_window(&window(2, 2)).unwrap();
    sink.sync(0).unwrap();
    let seen = rx.seen.lock().unwrap().clone();
    let values: Vec<Vec<f64>> = seen.iter().map(Seen::values).collect();
    // The first request four times, then the second: nothing lost or reordered.
    assert_eq!(
        values,
        [
            vec![100.0, 101.0],
            vec![100.0, 101.0],
            vec![100.0, 101.0],
            vec![100.0, 101.0],
            vec![200.0, 201.0]
        ]
    );
    let m = sink.meter().unwrap().snapshot();
    assert_eq!((m.retries, m.failures, m.batches), (3, 3, 2));
    assert_eq!(m.state, SinkState::Ok);
}

#[test]
fn out_of_order_is_counted_never_retried_and_the_queue_moves_on() {
    let rx = receiver(vec![(400, "out of order sample", None)]);
    let mut sink = open(&config(&rx.url), false);
    sink.write_window(&window(1, 2)).unwrap();
    sink.write_window(&window(2, 2)).unwrap();
    sink.sync(0).unwrap();
    assert_eq!(rx.seen.lock().unwrap().len(), 2, "not retried");
    let m = sink.meter().unwrap();
    assert_eq!(m.rejected(Rejection::OutOfOrder), 2);
    assert_eq!(m.records_written.load(Ordering::Relaxed), 2);
    assert_eq!(m.resent_held.load(Ordering::Relaxed), 0);
}

#[test]
fn a_resumed_run_counts_out_of_order_of_resent_windows_as_already_held() {
    // Windows of 4 series: two requests each.
    let ooo = (400, "out of order sample", None);
    let ok = (204, "", None);
    let rx = receiver(vec![
        // Window 1: its first series were each's newest, the others had
        // newer samples: resent, held.
        ok, ooo, // Window 2, held.
        ooo, ooo, // Window 3, the one the last run had not finished: accepted whole.
        ok, ok, // Window 4 is new: a refusal is a loss.
        ooo,
    ]);
    let mut sink = open(&config(&rx.url), true);
    for m in 1..5 {
        sink.write_window(&window(m, 4)).unwrap();
    }
    sink.sync(0).unwrap();
    assert_eq!(rx.seen.lock().unwrap().len(), 8);
    let m = sink.meter().unwrap();
    assert_eq!(m.resent_held.load(Ordering::Relaxed), 6);
    assert_eq!(m.rejected(Rejection::OutOfOrder), 2);
    // Not resumed: every refusal is a loss.
    let rx = receiver(vec![(400, "out of order sample", None)]);
    let mut sink = open(&config(&rx.url), false);
    sink.write_window(&window(1, 2)).unwrap();
    sink.sync(0).unwrap();
    let m = sink.meter().unwrap();
    assert_eq!(m.resent_held.load(Ordering::Relaxed), 0);
    assert_eq!(m.rejected(Rejection::OutOfOrder), 2);
}

/// "duplicate sample for timestamp" (another value for a timestamp the
/// receiver holds) was counted as out of order, so a resumed run took it for
/// a window it had sent before: a conflict hidden as "already held".
#[test]
fn a_duplicate_sample_with_another_value_is_a_conflict_even_when_resumed() {
    let rx = receiver(vec![(400, "duplicate sample for timestamp", None)]);
    let mut sink = open(&config(&rx.url), true);
    sink.write_window(&window(1, 2)).unwrap();
    sink.sync(0).unwrap();
    let m = sink.meter().unwrap();
    assert_eq!(m.resent_held.load(Ordering::Relaxed), 0);
    assert_eq!(m.rejected(Rejection::Conflict), 2);
    assert_eq!(m.rejected(Rejection::OutOfOrder), 0);
}

#[test]
fn other_4xx_fail_the_sink_naming_status_url_body_and_a_hint() {
    for (status, hint) in [
        (401, "bearer_token_file"),
        (404, "--web.enable-remote-write-receiver"),
        (400, "refused"),
    ] {
        let rx = receiver(vec![(status, "go away\nforged line", None)]);
        let mut sink = open(&config(&rx.url), false);
        sink.write_window(&window(1, 1)).unwrap();
        let err = sink.sync(0).unwrap_err().to_string();
        // On one line: the receiver's newline must not forge a log line.
        assert!(
            err.contains(&format!("HTTP {status}: go away forged line")),
            "{err}"
        );
        assert!(err.contains(&rx.url), "{err}");
        assert!(err.contains(hint), "{err}");
        assert!(err.contains("1970-01-01T00:01:00Z"), "{err}");
        let m = sink.meter().unwrap();
        assert_eq!(m.state(), SinkState::Failed);
        assert_eq!(m.rejected(Rejection::Refused), 1);
        // Every later step fails too; nothing more is sent.
        assert!(sink.write_window(&window(2, 1)).is_err());
        assert_eq!(rx.seen.lock().unwrap().len(), 1);
    }
}

#[test]
fn a_stop_interrupts_the_retries_of_a_down_receiver() {
    // Nothing listens here any more: connection refused, retried forever.
    let url = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/api/v1/write", l.local_addr().unwrap())
    };
    let mut rw = config(&url);
    rw.queue_capacity = 1;
    let mut sink = open(&rw, false);
    let stop = Arc::new(AtomicBool::new(false));
    sink.watch_stop(stop.clone());
    sink.write_window(&window(1, 2)).unwrap();
    let meter = sink.meter().unwrap();
    // Back-pressure: two samples queued against a capacity of one.
    assert!(meter.is_backlogged());
    let stopper = {
        let (stop, meter) = (stop.clone(), meter.clone());
        std::thread::spawn(move || {
            while meter.retries.load(Ordering::Relaxed) < 3 {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(meter.state(), SinkState::Retrying);
            stop.store(true, Ordering::SeqCst);
        })
    };
    let err = sink.sync(0).unwrap_err().to_string();
    stopper.join().unwrap();
    assert!(err.contains("2 samples were not sent"), "{err}");
    assert!(!meter.is_backlogged());
}

#[test]
fn secrets_come_from_files_without_their_trailing_newline() {
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let rx = receiver(vec![]);
    let mut rw = config(&rx.url);
    rw.auth = Some(RemoteWriteAuth::BearerTokenFile(token.clone()));
    let mut sink = open(&rw, false);
    assert!(!sink.describe().contains("s3cret"));
    sink.write_window(&window(1, 1)).unwrap();
    sink.sync(0).unwrap();
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "open sesame\r\n").unwrap();
    rw.auth = Some(RemoteWriteAuth::Basic {
        username: "tm".into(),
        password_file: pw,
    });
    let mut sink = open(&rw, false);
    sink.write_window(&window(1, 1)).unwrap();
    sink.sync(0).unwrap();
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen[0].header("authorization"), Some("Bearer s3cret"));
    // base64("tm:open sesame")
    assert_eq!(
        seen[1].header("authorization"),
        Some("Basic dG06b3BlbiBzZXNhbWU=")
    );
    // A missing file is an error naming it, never its contents.
    rw.auth = Some(RemoteWriteAuth::BearerTokenFile(tmp.path().join("nope")));
    let err = RemoteWriteSink::open(&rw, SeriesChoice::All, &source(), false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("bearer_token_file") && err.contains("nope"),
        "{err}"
    );
    // Outside the job's read roots (a cluster's --allow-root): not read.
    let mut src = source();
    src.allowed_roots = vec![tmp.path().join("elsewhere")];
    std::fs::create_dir(tmp.path().join("elsewhere")).unwrap();
    rw.auth = Some(RemoteWriteAuth::BearerTokenFile(token));
    let err = RemoteWriteSink::open(&rw, SeriesChoice::All, &src, false)
        .err()
        .unwrap()
        .to_string();
    assert!(!err.contains("s3cret"), "{err}");
    assert!(err.contains("cannot read"), "{err}");
}

/// A token saved with a byte order mark, or holding a byte a header cannot
/// carry, made every request fail in the client ("authorization header is not
/// a string"), retried forever: the BOM is dropped, the other fails the open.
#[test]
fn a_token_file_with_a_bom_or_a_non_ascii_byte_never_reaches_the_retries() {
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "\u{feff}s3cret\n").unwrap();
    let rx = receiver(vec![]);
    let mut rw = config(&rx.url);
    rw.auth = Some(RemoteWriteAuth::BearerTokenFile(token.clone()));
    let mut sink = open(&rw, false);
    sink.write_window(&window(1, 1)).unwrap();
    sink.sync(0).unwrap();
    let seen = rx.seen.lock().unwrap().clone();
    assert_eq!(seen[0].header("authorization"), Some("Bearer s3cret"));
    std::fs::write(&token, "s3cr\u{e9}t\n").unwrap();
    let err = RemoteWriteSink::open(&rw, SeriesChoice::All, &source(), false)
        .err()
        .expect("a token a header cannot carry fails the open")
        .to_string();
    assert!(err.contains("byte 4 is not a visible ASCII"), "{err}");
    assert!(!err.contains("s3cr"), "{err}");
}

#[test]
fn a_request_that_times_out_is_retried() {
    let rx = receiver(vec![(0, "", None)]);
    let mut rw = config(&rx.url);
    rw.timeout = Duration::from_millis(200);
    let mut sink = open(&rw, false);
    sink.write_window(&window(1, 1)).unwrap();
    sink.sync(0).unwrap();
    let m = sink.meter().unwrap().snapshot();
    // Retried while the receiver sat on the first attempt (each retry timed
    // out waiting behind it), then acknowledged once.
    assert!(m.retries >= 1, "{m:?}");
    assert_eq!((m.batches, m.records_written), (1, 1));
    // The slow attempts reached the receiver too (it may hold them): every
    // retry is the same request, which is harmless.
    let seen = rx.seen.lock().unwrap().clone();
    assert!(seen.len() >= 2);
    assert!(seen.iter().all(|s| s.body == seen[0].body));
}

#[test]
fn a_redirect_is_a_refusal_not_followed_and_not_retried() {
    let rx = receiver(vec![(301, "moved", None)]);
    let mut sink = open(&config(&rx.url), false);
    sink.write_window(&window(1, 1)).unwrap();
    let err = sink.sync(0).unwrap_err().to_string();
    assert!(err.contains("HTTP 301"), "{err}");
    assert_eq!(rx.seen.lock().unwrap().len(), 1);
}

#[test]
fn a_sender_that_panics_fails_the_sink_instead_of_hanging_sync() {
    let meter = SinkMeter::named("rw");
    let queue = Arc::new(Queue::new(10, meter));
    let mut e = super::encode::Encoder::new(SeriesChoice::All, SampleTime::End, vec![], 10);
    for b in e.window(&window(1, 1)) {
        queue.push(b).unwrap();
    }
    let guard = SenderGone(queue.clone());
    let q = queue.clone();
    let t = std::thread::spawn(move || {
        let _guard = guard;
        let _in_flight = q.next();
        panic!("a bug in the sender");
    });
    assert!(t.join().is_err());
    let err = queue.wait_idle().unwrap_err().to_string();
    assert!(err.contains("stopped unexpectedly"), "{err}");
}

/// The sender went on sending every queued batch after the sink was dropped
/// (`Queue::next` popped batches before it looked at `closed`).
#[test]
fn a_dropped_sink_sends_at_most_the_request_in_flight() {
    // The first request is answered after a second; the others at once.
    let rx = receiver(vec![(0, "", None)]);
    let mut rw = config(&rx.url);
    rw.max_samples_per_send = 2;
    let mut sink = open(&rw, false);
    for m in 0..10 {
        sink.write_window(&window(m, 2)).unwrap();
    }
    let queue = sink.queue.clone();
    while rx.seen.lock().unwrap().is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(sink);
    // The sender thread ends (and lets go of the queue) after its attempt.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while Arc::strong_count(&queue) > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sender never ended"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let sent = rx.seen.lock().unwrap().len();
    assert_eq!(sent, 1, "requests after the drop");
}

/// A stop waited for the attempt in flight, up to the sink's `timeout` (30 s
/// by default), before the sender looked at it.
#[test]
fn a_stop_abandons_a_request_the_receiver_never_answers() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
    let connected = Arc::new(AtomicBool::new(false));
    {
        let connected = connected.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                held.push(conn);
                connected.store(true, Ordering::SeqCst);
            }
        });
    }
    let mut rw = config(&url);
    rw.timeout = Duration::from_secs(60);
    let mut sink = open(&rw, false);
    let stop = Arc::new(AtomicBool::new(false));
    sink.watch_stop(stop.clone());
    sink.write_window(&window(1, 2)).unwrap();
    while !connected.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stopped = std::time::Instant::now();
    stop.store(true, Ordering::SeqCst);
    let err = sink.sync(0).unwrap_err().to_string();
    let took = stopped.elapsed();
    assert!(err.contains("2 samples were not sent"), "{err}");
    // A property of the stop, not a timing test: far less than the timeout.
    assert!(took < rw.timeout / 2, "the stop took {took:?}");
    println!("the stop took {took:?}");
}

/// After a stop, one transient 503 during the final sync made a clean stop a
/// failure: the sender now tries again within a short grace.
#[test]
fn a_transient_error_during_the_final_sync_of_a_stop_is_tried_again() {
    let rx = receiver(vec![(503, "busy", None)]);
    let mut sink = open(&config(&rx.url), false);
    let stop = Arc::new(AtomicBool::new(true));
    sink.watch_stop(stop);
    sink.write_window(&window(1, 2)).unwrap();
    sink.sync(0).unwrap();
    assert_eq!(rx.seen.lock().unwrap().len(), 2);
    assert_eq!(sink.meter().unwrap().retries.load(Ordering::Relaxed), 1);
}

/// The url's query (`?api_key=...`) went into describe(), hence logs, job
/// status, /metrics labels and errors.
#[test]
fn the_url_query_is_never_shown() {
    let rx = receiver(vec![(401, "no", None)]);
    let url = format!("{}?api_key=s3cret", rx.url);
    let mut sink = open(&config(&url), false);
    assert_eq!(
        sink.describe(),
        format!("prometheus_remote_write {}?…", rx.url)
    );
    assert!(!sink.meter().unwrap().snapshot().name.contains("s3cret"));
    sink.write_window(&window(1, 1)).unwrap();
    let err = sink.sync(0).unwrap_err().to_string();
    assert!(err.contains("401") && !err.contains("s3cret"), "{err}");
    assert_eq!(rx.seen.lock().unwrap().len(), 1);
}
