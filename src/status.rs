//! The one-line status a live `tidemark run` prints to stderr every
//! `--status-interval` (off with `--no-status`): how fast it reads, how far its
//! output has got in event time and how far that is behind the wall clock, and
//! what it had to leave out so far.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tidemark_engine::stats::sink::SinkState;
use tidemark_engine::stats::SharedStats;
use tidemark_engine::time::wall_clock_ms;
use tidemark_engine::JobStats;
use tidemark_sinks::format::rfc3339;

/// What the previous line saw, for the rate.
#[derive(Debug, Clone, Copy)]
struct Seen {
    lines: u64,
    at: Instant,
}

/// Prints the status line until dropped.
pub struct StatusPrinter {
    thread: Option<JoinHandle<()>>,
    /// Dropped to stop the thread at once (its wait ends).
    stop: Option<mpsc::Sender<()>>,
}

impl StatusPrinter {
    /// Starts printing a line about `stats` every `every`.
    pub fn start(stats: SharedStats, every: Duration) -> StatusPrinter {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tidemark-status".into())
            .spawn(move || {
                let mut seen = Seen {
                    lines: 0,
                    at: Instant::now(),
                };
                // Ends when the sender is dropped (or sends).
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    let Ok(now) = stats.lock().map(|s| s.clone()) else {
                        return;
                    };
                    let at = Instant::now();
                    eprintln!("{}", status_line(&now, seen, at, wall_clock_ms()));
                    seen = Seen {
                        lines: now.lines_read,
                        at,
                    };
                }
            })
            .ok();
        StatusPrinter {
            thread,
            stop: Some(stop),
        }
    }
}

impl Drop for StatusPrinter {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `status: 12,345 lines/s; output complete to 2026-11-20T10:02:00Z (lag 3.2 s);
/// late 0; malformed 0`. "Complete to" is the job's frontier: every window that
/// ends by then is written. Before the first window: `no window closed yet`.
fn status_line(now: &JobStats, seen: Seen, at: Instant, wall_ms: i64) -> String {
    let secs = at.duration_since(seen.at).as_secs_f64();
    let rate = if secs > 0.0 {
        (now.lines_read.saturating_sub(seen.lines) as f64 / secs).round() as u64
    } else {
        0
    };
    let progress = match now.frontier_ms {
        Some(ms) if ms > i64::MIN => format!(
            "output complete to {} (lag {:.1} s)",
            rfc3339(ms),
            wall_ms.saturating_sub(ms) as f64 / 1000.0
        ),
        _ => "no window closed yet".to_string(),
    };
    let malformed: u64 = now.parse_errors.values().sum();
    let mut line = format!(
        "status: {} lines/s; {progress}; late {}; malformed {}",
        thousands(rate),
        now.late_lines,
        malformed
    );
    // A job with alerts says how many fire (the transcript says which).
    if now.alerts_evaluated > 0 {
        line.push_str(&format!("; alerts firing {}", now.alerts_firing));
    }
    // A sink that is not keeping up is why the output lags: say which.
    for sink in now.sink_meters.snapshot() {
        if sink.state != SinkState::Ok {
            line.push_str(&format!(
                "; sink {} {} ({} queued)",
                sink.name,
                sink.state.as_str(),
                thousands(sink.queue_records)
            ));
        }
    }
    // Why the rate is 0: back-pressure from a slow or down receiver.
    let backlogged: Vec<&str> = now
        .sink_meters
        .0
        .iter()
        .filter(|m| m.is_backlogged())
        .map(|m| m.name())
        .collect();
    if !backlogged.is_empty() {
        line.push_str(&format!(
            "; reads paused: {} backlogged",
            backlogged.join(", ")
        ));
    }
    line
}

/// `12345678` as `12,345,678`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_rate_progress_lag_and_what_was_left_out() {
        let start = Instant::now();
        let mut s = JobStats {
            lines_read: 25_000,
            late_lines: 3,
            frontier_ms: Some(1_795_168_920_000), // 2026-11-20T10:02:00Z
            ..JobStats::default()
        };
        s.parse_errors.insert("bad timestamp", 2);
        s.parse_errors.insert("too few fields", 5);
        let seen = Seen {
            lines: 5_000,
            at: start,
        };
        let line = status_line(&s, seen, start + Duration::from_secs(2), 1_795_168_923_250);
        assert_eq!(
            line,
            "status: 10,000 lines/s; output complete to 2026-11-20T10:02:00Z (lag 3.2 s); late 3; malformed 7"
        );
    }

    #[test]
    fn a_job_with_alerts_says_how_many_fire() {
        let now = Instant::now();
        let s = JobStats {
            alerts_evaluated: 10,
            alerts_firing: 2,
            ..JobStats::default()
        };
        let line = status_line(&s, Seen { lines: 0, at: now }, now, 0);
        assert!(line.ends_with("; malformed 0; alerts firing 2"), "{line}");
    }

    #[test]
    fn before_the_first_window_the_line_says_so() {
        let s = JobStats::default();
        let now = Instant::now();
        let line = status_line(&s, Seen { lines: 0, at: now }, now, 0);
        assert_eq!(
            line,
            "status: 0 lines/s; no window closed yet; late 0; malformed 0"
        );
    }

    #[test]
    fn the_line_says_when_reads_pause_for_a_backlogged_sink() {
        let slow = tidemark_engine::stats::SinkMeter::named(
            "prometheus_remote_write http://p:9090/api/v1/write",
        );
        let s = JobStats {
            sink_meters: tidemark_engine::stats::SinkMeters(vec![
                tidemark_engine::stats::SinkMeter::named("jsonl out/x.jsonl"),
                slow.clone(),
            ]),
            ..JobStats::default()
        };
        let now = Instant::now();
        let line = |s: &JobStats| status_line(s, Seen { lines: 0, at: now }, now, 0);
        assert!(!line(&s).contains("paused"), "{}", line(&s));
        slow.set_backlogged(true);
        assert_eq!(
            line(&s),
            "status: 0 lines/s; no window closed yet; late 0; malformed 0; \
             reads paused: prometheus_remote_write http://p:9090/api/v1/write backlogged"
        );
    }

    #[test]
    fn a_sink_that_is_not_keeping_up_is_named() {
        let ok = tidemark_engine::stats::SinkMeter::named("jsonl out.jsonl");
        let behind = tidemark_engine::stats::SinkMeter::named(
            "prometheus_remote_write http://p:9090/api/v1/write",
        );
        behind.set_state(SinkState::Retrying);
        behind
            .queue_records
            .store(12_000, std::sync::atomic::Ordering::Relaxed);
        let s = JobStats {
            sink_meters: tidemark_engine::stats::SinkMeters(vec![ok, behind]),
            ..JobStats::default()
        };
        let now = Instant::now();
        let line = status_line(&s, Seen { lines: 0, at: now }, now, 0);
        assert_eq!(
            line,
            "status: 0 lines/s; no window closed yet; late 0; malformed 0; sink \
             prometheus_remote_write http://p:9090/api/v1/write retrying (12,000 queued)"
        );
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }
}
