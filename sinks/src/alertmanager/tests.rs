//! The sink against a mock Alertmanager on 127.0.0.1:0: what goes over the
//! wire, when, and what the sink makes of the answers. (The real Alertmanager
//! is in sinks/tests/alertmanager.rs.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tidemark_engine::alert_event::{AlertChange, AlertInstance, AlertState, AlertUpdate};
use tidemark_engine::stats::sink::{Rejection, SinkState};
use tidemark_engine::Labels;

use super::*;

/// What the mock answers a request with.
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    /// Closes the connection without a word.
    HangUp,
}

struct Request {
    head: String,
    body: String,
}

/// A scripted HTTP server: answers its requests with `script`, then 200.
struct Mock {
    url: String,
    seen: Arc<(Mutex<Vec<Request>>, Condvar)>,
}

impl Mock {
    fn start(script: Vec<Answer>) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<(Mutex<Vec<Request>>, Condvar)> = Arc::default();
        let s = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut script = script.into_iter();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut head = String::new();
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let answer = script.next().unwrap_or(Answer::Status(200));
                if let Answer::Status(code) = answer {
                    let text = format!("answer {code}\nERROR forged line");
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
                        text.len()
                    );
                }
                drop(conn);
                let (list, cv) = &*s;
                list.lock().unwrap().push(Request {
                    head,
                    body: String::from_utf8(body).unwrap(),
                });
                cv.notify_all();
            }
        });
        Mock { url, seen }
    }

    /// Waits until `n` requests came (a generous deadline: a loaded machine).
    fn wait_for(&self, n: usize) -> Vec<(String, Value)> {
        let (list, cv) = &*self.seen;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut g = list.lock().unwrap();
        while g.len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} requests came",
                g.len()
            );
            g = cv.wait_timeout(g, Duration::from_millis(100)).unwrap().0;
        }
        g.iter()
            .map(|r| (r.head.clone(), serde_json::from_str(&r.body).unwrap()))
            .collect()
    }

    fn count(&self) -> usize {
        self.seen.0.lock().unwrap().len()
    }
}

/// A clock that moves only when told.
#[derive(Default)]
struct FakeClock {
    mono_ms: AtomicU64,
    wall_ms: AtomicI64,
}

impl FakeClock {
    fn advance(&self, d: Duration) {
        self.mono_ms
            .fetch_add(d.as_millis() as u64, Ordering::SeqCst);
        self.wall_ms
            .fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn mono(&self) -> Duration {
        Duration::from_millis(self.mono_ms.load(Ordering::SeqCst))
    }
    fn wall_ms(&self) -> i64 {
        self.wall_ms.load(Ordering::SeqCst)
    }
}

const WALL0: i64 = 1_764_868_800_000; // 2025-12-04T17:20:00Z

fn config(url: &str, auth: Option<Credentials>) -> AlertmanagerConfig {
    AlertmanagerConfig {
        url: url.to_string(),
        resend_interval: Duration::from_secs(60),
        eval_interval: Duration::from_secs(60),
        timeout: Duration::from_secs(10),
        generator_url: "http://tidemark.example/jobs/nginx".into(),
        auth,
    }
}

fn high_errors(value: f64) -> AlertInstance {
    AlertInstance {
        alert: Arc::from("HighErrors"),
        labels: Labels::from_pairs(&[("severity", "page"), ("status", "503")]),
        annotations: vec![("summary".into(), format!("503 errors at {value}/min"))],
        value,
        firing_since_ms: WALL0 - 600_000,
    }
}

fn fired(end_ms: i64) -> AlertUpdate {
    AlertUpdate {
        start_ms: end_ms - 60_000,
        end_ms,
        changes: vec![AlertChange {
            instance: high_errors(120.0),
            state: AlertState::Firing,
        }],
        firing: vec![high_errors(120.0)],
    }
}

fn resolved(end_ms: i64) -> AlertUpdate {
    AlertUpdate {
        start_ms: end_ms - 60_000,
        end_ms,
        changes: vec![AlertChange {
            instance: high_errors(3.0),
            state: AlertState::Resolved,
        }],
        firing: vec![],
    }
}

#[test]
fn a_fired_alert_is_posted_as_v2_json_and_resent_each_interval_on_its_clock() {
    let mock = Mock::start(vec![]);
    let clock = Arc::new(FakeClock::default());
    clock.wall_ms.store(WALL0, Ordering::SeqCst);
    let mut sink = AlertmanagerSink::start_with_clock(
        config(&mock.url, Some(Credentials::Bearer("t0ken".into()))),
        clock.clone(),
    )
    .unwrap();
    assert_eq!(sink.describe(), format!("alertmanager {}", mock.url));
    sink.write_alerts(&fired(WALL0 - 540_000)).unwrap();
    let got = mock.wait_for(1);
    let (head, body) = &got[0];
    assert!(
        head.starts_with("POST /api/v2/alerts HTTP/1.1\r\n"),
        "{head}"
    );
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("authorization: bearer t0ken"), "{head}");
    assert_eq!(
        body,
        &serde_json::json!([{
            "labels": {"alertname": "HighErrors", "severity": "page", "status": "503"},
            "annotations": {"summary": "503 errors at 120/min"},
            "startsAt": "2025-12-04T17:10:00Z",
            // The sending time + 4 × the resend interval.
            "endsAt": "2025-12-04T17:24:00Z",
            "generatorURL": "http://tidemark.example/jobs/nginx",
        }])
    );
    // Not re-sent before the interval is over (counted from when the sender
    // saw the answer: let it take it in before the clock moves)...
    assert_eq!(sink.settle(), 1);
    clock.advance(Duration::from_millis(59_999));
    assert_eq!(sink.settle(), 1);
    assert_eq!(mock.count(), 1);
    // ...and re-sent when it is, valid for four intervals from then.
    clock.advance(Duration::from_millis(1));
    let got = mock.wait_for(2);
    assert_eq!(got[1].1[0]["endsAt"], "2025-12-04T17:25:00Z");
    assert_eq!(got[1].1[0]["startsAt"], "2025-12-04T17:10:00Z");
    // A resolution goes out at once, with the end of its window.
    sink.write_alerts(&resolved(WALL0 - 300_000)).unwrap();
    let got = mock.wait_for(3);
    assert_eq!(got[2].1[0]["endsAt"], "2025-12-04T17:15:00Z");
    assert_eq!(got[2].1[0]["annotations"]["summary"], "503 errors at 3/min");
    sink.finish().unwrap();
    let m = sink.meter().unwrap().snapshot();
    assert_eq!((m.batches, m.records_written, m.failures), (3, 3, 0));
    assert_eq!(m.state, SinkState::Ok);
    // The run's summary speaks of alerts and sends, not samples and requests.
    assert_eq!((m.units.records, m.units.batches), ("alert(s)", "send(s)"));
}

#[test]
fn server_errors_and_hang_ups_are_retried_and_the_latest_state_is_sent() {
    let mock = Mock::start(vec![
        Answer::Status(503),
        Answer::HangUp,
        Answer::Status(429),
    ]);
    let mut sink = AlertmanagerSink::start(config(&mock.url, None)).unwrap();
    sink.write_alerts(&fired(WALL0)).unwrap();
    sink.write_alerts(&resolved(WALL0 + 60_000)).unwrap();
    let got = mock.wait_for(4);
    // Whatever the first attempts carried, the delivered one is the last state.
    assert_eq!(got[3].1[0]["endsAt"], "2025-12-04T17:21:00Z");
    sink.finish().unwrap();
    let m = sink.meter().unwrap().snapshot();
    assert_eq!((m.retries, m.failures, m.batches), (3, 3, 1));
    assert_eq!(m.state, SinkState::Ok);
}

#[test]
fn a_refusal_fails_the_job_naming_the_status_with_a_hint_and_is_not_retried() {
    for (code, hint) in [
        (401, "bearer_token_file"),
        (404, "/api/v2/alerts"),
        (400, "generator_url"),
    ] {
        let mock = Mock::start(vec![Answer::Status(code)]);
        let mut sink = AlertmanagerSink::start(config(&mock.url, None)).unwrap();
        sink.write_alerts(&fired(WALL0)).unwrap();
        mock.wait_for(1);
        let err = sink.finish().unwrap_err().to_string();
        assert!(err.contains(&format!("HTTP {code}")), "{err}");
        assert!(err.contains(hint), "{err}");
        assert!(err.contains("/api/v2/alerts"), "{err}");
        assert!(
            err.contains(&format!("(answer {code} ERROR forged line)")),
            "{err}"
        );
        let again = sink.write_alerts(&fired(WALL0 + 60_000)).unwrap_err();
        assert!(again.to_string().contains(&format!("HTTP {code}")));
        assert!(sink
            .write_window(&tidemark_engine::ClosedWindow {
                start_ms: 0,
                end_ms: 60_000,
                series: vec![],
            })
            .is_err());
        let m = sink.meter().unwrap().snapshot();
        assert_eq!(m.state, SinkState::Failed);
        assert_eq!(m.failures, 1);
        assert_eq!(m.rejected[2], (Rejection::Refused, 1));
        assert_eq!(mock.count(), 1, "a {code} is never retried");
    }
}

#[test]
fn finish_gives_up_on_an_alertmanager_that_never_answers_well() {
    let mock = Mock::start(vec![Answer::Status(503); 1000]);
    let mut sink = AlertmanagerSink::start(config(&mock.url, None)).unwrap();
    sink.finish_patience = Duration::from_secs(1);
    sink.write_alerts(&fired(WALL0)).unwrap();
    let err = sink.finish().unwrap_err().to_string();
    assert!(err.contains("did not reach Alertmanager"), "{err}");
    assert!(err.contains("HTTP 503"), "{err}");
    assert!(mock.count() >= 1);
}

#[test]
fn nothing_is_sent_while_no_alert_ever_fired() {
    let mock = Mock::start(vec![]);
    let clock = Arc::new(FakeClock::default());
    let mut sink =
        AlertmanagerSink::start_with_clock(config(&mock.url, None), clock.clone()).unwrap();
    for i in 0..3 {
        sink.write_alerts(&AlertUpdate {
            start_ms: i * 60_000,
            end_ms: (i + 1) * 60_000,
            changes: vec![],
            firing: vec![],
        })
        .unwrap();
        clock.advance(Duration::from_secs(600));
        assert_eq!(sink.settle(), 0);
    }
    sink.finish().unwrap();
    assert_eq!(mock.count(), 0);
}

#[test]
fn an_alertmanager_that_hangs_never_holds_the_job_up_and_the_state_stays_one() {
    // Accepts connections and never answers: a send stays in flight for the
    // whole (hour-long) timeout.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (accepted, first) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
            let _ = accepted.send(());
        }
    });
    let mut cfg = config(&url, None);
    cfg.timeout = Duration::from_secs(3600);
    let mut sink = AlertmanagerSink::start(cfg).unwrap();
    sink.write_alerts(&fired(WALL0)).unwrap();
    first.recv_timeout(Duration::from_secs(60)).unwrap();
    // The job goes on while the send hangs: a thousand windows, each with a
    // new instance firing, each taken at once (within the generous deadline,
    // far below the hour the send may take).
    let (done, finished) = std::sync::mpsc::channel();
    let meter = sink.meter().unwrap();
    std::thread::spawn(move || {
        for i in 1..=1000i64 {
            let mut u = fired(WALL0 + i * 60_000);
            let mut inst = high_errors(1.0);
            inst.labels = Labels::from_pairs(&[("status", &format!("{}", 500 + i % 7))]);
            u.firing.push(inst);
            sink.write_alerts(&u).unwrap();
        }
        let _ = done.send(sink);
    });
    let _sink = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("write_alerts waited for the hanging Alertmanager");
    // What waits is the state (8 instances), not a thousand updates.
    assert_eq!(meter.queue_records.load(Ordering::Relaxed), 8);
}
