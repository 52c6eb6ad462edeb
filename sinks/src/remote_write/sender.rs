//! The sender thread: takes the queue's batches in order and sends each until
//! the receiver settled it, one request in flight at a time.
//!
//! Strictly in order and one at a time because Prometheus refuses any sample
//! older than a series' newest one: a later request overtaking an earlier one
//! would make the earlier one "out of order" and lose it.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tidemark_engine::stats::sink::{Rejection, SinkMeter, SinkState};

use super::frame::Batch;
use super::queue::Queue;
use super::response::{classify, Backoff, Resend, Verdict};
use super::SendFailure;
use crate::format::rfc3339;

/// How much of an error answer's body is kept for messages.
const BODY_SHOWN: usize = 200;
/// At most one warning per this long for each kind of trouble.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Once the job stops (or the sink is gone), how long the sender still tries
/// to get its queue acknowledged: a request in flight may finish, and a failed
/// one is tried again (one transient 503 must not turn a clean stop into a
/// failure); after it, the attempt in flight is abandoned, so that a stop never
/// waits out the sink's `timeout` against a receiver that does not answer.
pub const STOP_GRACE: Duration = Duration::from_secs(2);
/// How often an attempt in flight looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(50);

pub struct Sender {
    pub agent: ureq::Agent,
    pub url: String,
    /// The url as logs and errors show it: without its query (see
    /// [`super::shown_url`]).
    pub shown: String,
    /// The `Authorization` header's value; never logged.
    pub authorization: Option<String>,
    pub queue: Arc<Queue>,
    pub meter: Arc<SinkMeter>,
    pub backoff: Backoff,
    /// Whether "out of order" may still mean a window the last run had sent.
    pub resend: Resend,
    /// Since when the receiver has been failing, and how many retries since.
    pub down: Option<(Instant, u64)>,
    pub last_warning: Option<Instant>,
    pub last_rejection_log: Option<Instant>,
    /// When the sender first saw the job stopping (see [`STOP_GRACE`]).
    pub stop_seen: Option<Instant>,
    /// The thread that makes the requests, started with the first one (see
    /// [`Sender::attempt`]).
    pub worker: Option<RequestWorker>,
}

/// A long-lived thread that makes one request at a time for the sender, so that
/// the sender can watch the stop flag while a request is in flight. One thread
/// for the sink's life, not one per attempt: a receiver that stays down is
/// retried for hours, and each attempt must cost no more than the request.
pub struct RequestWorker {
    requests: std::sync::mpsc::SyncSender<(Request, std::sync::mpsc::SyncSender<Answer>)>,
}

impl RequestWorker {
    fn start() -> std::io::Result<RequestWorker> {
        let (requests, incoming) =
            std::sync::mpsc::sync_channel::<(Request, std::sync::mpsc::SyncSender<Answer>)>(1);
        std::thread::Builder::new()
            .name("remote-write-request".into())
            .spawn(move || {
                // Ends when the sender drops its end (the sink is gone, or it
                // abandoned this worker in the middle of a request).
                while let Ok((request, answer)) = incoming.recv() {
                    let _ = answer.send(request.send());
                }
            })?;
        Ok(RequestWorker { requests })
    }
}

/// One attempt's outcome, before classification.
pub enum Answer {
    Http {
        status: u16,
        body: String,
        retry_after: Option<String>,
    },
    Transport(String),
    /// The request could not be built or written here: it never can be.
    Unsendable(String),
    /// The job stopped and [`STOP_GRACE`] passed while the request was in
    /// flight: no longer waited for.
    Abandoned,
}

impl Sender {
    /// Sends until the sink is gone or the sender gave up.
    pub fn run(mut self) {
        while let Some(b) = self.queue.next() {
            self.deliver(&b);
        }
    }

    fn deliver(&mut self, b: &Batch) {
        loop {
            let answer = self.attempt(b);
            let (verdict, what) = match answer {
                Answer::Http {
                    status,
                    body,
                    retry_after,
                } => (
                    classify(status, &body, retry_after.as_deref(), SystemTime::now()),
                    format!("HTTP {status}: {}", printable(&body)),
                ),
                Answer::Transport(e) => (Verdict::Retry { after: None }, e),
                Answer::Abandoned => {
                    self.meter.failures.fetch_add(1, Ordering::Relaxed);
                    self.give_up("no answer before the stop");
                    return;
                }
                Answer::Unsendable(e) => {
                    self.meter.failures.fetch_add(1, Ordering::Relaxed);
                    self.meter.reject(Rejection::Refused, b.samples);
                    self.meter.set_state(SinkState::Failed);
                    self.queue.fail(SendFailure::Unsendable {
                        url: self.shown.clone(),
                        error: e,
                    });
                    return;
                }
            };
            match verdict {
                Verdict::Accepted => {
                    self.accepted(b);
                    return;
                }
                Verdict::Rejected(why) => {
                    self.rejected(b, why, &what);
                    return;
                }
                Verdict::Refused { hint } => {
                    self.meter.failures.fetch_add(1, Ordering::Relaxed);
                    self.meter.reject(Rejection::Refused, b.samples);
                    self.meter.set_state(SinkState::Failed);
                    self.queue.fail(SendFailure::Refused {
                        url: self.shown.clone(),
                        window: rfc3339(b.window_start_ms),
                        answer: what,
                        hint,
                    });
                    return;
                }
                Verdict::Retry { after } => {
                    self.meter.failures.fetch_add(1, Ordering::Relaxed);
                    if self.stop_grace_left() == Some(Duration::ZERO) {
                        self.give_up(&what);
                        return;
                    }
                    self.meter.retries.fetch_add(1, Ordering::Relaxed);
                    self.meter.set_state(SinkState::Retrying);
                    let wait = self.backoff.wait(after);
                    self.going_down(&what, wait);
                    if !self.queue.sleep(wait) {
                        // Stopping: one more try, within the grace, if any is left.
                        match self.stop_grace_left() {
                            Some(left) if !left.is_zero() => {
                                std::thread::sleep(wait.min(left));
                            }
                            _ => {
                                self.give_up(&what);
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    /// `None` while the job runs; once it stops, how much of [`STOP_GRACE`]
    /// is left (zero when it is over).
    fn stop_grace_left(&mut self) -> Option<Duration> {
        if !self.queue.stopping() {
            return None;
        }
        let seen = *self.stop_seen.get_or_insert_with(Instant::now);
        Some(STOP_GRACE.saturating_sub(seen.elapsed()))
    }

    /// One attempt, made by the [`RequestWorker`]: the sender waits for its
    /// answer looking at the stop flag, and abandons it (and the worker, which
    /// ends by itself at the request's `timeout`) once the job stopped and
    /// [`STOP_GRACE`] passed.
    fn attempt(&mut self, b: &Batch) -> Answer {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let request = Request {
            agent: self.agent.clone(),
            url: self.url.clone(),
            authorization: self.authorization.clone(),
            body: b.body.clone(),
        };
        let worker = match self.worker.take() {
            Some(w) => w,
            None => match RequestWorker::start() {
                Ok(w) => w,
                Err(e) => return Answer::Transport(format!("cannot start a request thread: {e}")),
            },
        };
        if worker.requests.send((request, tx)).is_err() {
            return Answer::Transport("the request thread ended".into());
        }
        loop {
            match rx.recv_timeout(STOP_CHECK) {
                Ok(answer) => {
                    self.worker = Some(worker);
                    return answer;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if self.stop_grace_left() == Some(Duration::ZERO) {
                        return Answer::Abandoned;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Answer::Transport("the request thread ended without an answer".into())
                }
            }
        }
    }
}

/// What one attempt needs, handed to the [`RequestWorker`].
pub struct Request {
    agent: ureq::Agent,
    url: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

impl Request {
    fn send(self) -> Answer {
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header(
                "User-Agent",
                concat!("tidemark/", env!("CARGO_PKG_VERSION")),
            )
            .header("X-Prometheus-Remote-Write-Version", "0.1.0");
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        match req.send(&self.body[..]) {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let mut body = Vec::new();
                // Only the start: it goes into messages, and a receiver may
                // send anything.
                let _ = resp
                    .body_mut()
                    .as_reader()
                    .take(BODY_SHOWN as u64)
                    .read_to_end(&mut body);
                Answer::Http {
                    status,
                    body: crate::http_error::text_only(body),
                    retry_after,
                }
            }
            Err(e) if crate::http_error::built_wrong(&e) => {
                Answer::Unsendable(printable(&e.to_string()))
            }
            Err(e) => Answer::Transport(printable(&e.to_string())),
        }
    }
}

impl Sender {
    fn accepted(&mut self, b: &Batch) {
        self.meter
            .records_written
            .fetch_add(b.samples, Ordering::Relaxed);
        self.meter.batches.fetch_add(1, Ordering::Relaxed);
        self.resend.settle(b.window_start_ms, true);
        self.answered();
        self.queue.done(b);
    }

    /// The receiver answered (it is up, whatever it said).
    fn answered(&mut self) {
        self.meter.set_state(SinkState::Ok);
        self.backoff.reset();
        if let Some((since, retries)) = self.down.take() {
            tracing::info!(
                "remote-write receiver {} is back after {:.1}s and {retries} retries",
                self.shown,
                since.elapsed().as_secs_f64()
            );
        }
    }

    fn rejected(&mut self, b: &Batch, why: Rejection, what: &str) {
        self.meter.failures.fetch_add(1, Ordering::Relaxed);
        self.answered();
        let resent = self.resend.settle(b.window_start_ms, false) && why == Rejection::OutOfOrder;
        if resent {
            self.meter
                .resent_held
                .fetch_add(b.samples, Ordering::Relaxed);
        } else {
            self.meter.reject(why, b.samples);
        }
        if due(&mut self.last_rejection_log) {
            let window = rfc3339(b.window_start_ms);
            if resent {
                tracing::info!(
                    "remote-write: {} already holds the {} samples of the window of {window} this resumed run sent again ({what}); not retried",
                    self.shown, b.samples
                );
            } else {
                tracing::warn!(
                    "remote-write: {} refused the {} samples of the window of {window} for good ({what}), e.g. {}; not retried, counted as rejected ({})",
                    self.shown,
                    b.samples,
                    b.first_series,
                    why.as_str()
                );
            }
        }
        self.queue.done(b);
    }

    fn going_down(&mut self, what: &str, wait: Duration) {
        let (since, retries) = self.down.get_or_insert((Instant::now(), 0));
        *retries += 1;
        let (since, retries) = (*since, *retries);
        if retries == 1 || due(&mut self.last_warning) {
            if retries == 1 {
                self.last_warning = Some(Instant::now());
            }
            tracing::warn!(
                "remote-write receiver {} is failing for {:.1}s ({retries} retries; last: {what}); retrying in {:?}; the job's reads pause while the queue is full (queue_capacity)",
                self.shown,
                since.elapsed().as_secs_f64(),
                wait,
            );
        }
    }

    fn give_up(&mut self, what: &str) {
        let pending = self.meter.queue_records.load(Ordering::Relaxed);
        tracing::warn!(
            "remote-write: the job is stopping while {} is failing ({what}); {pending} samples are not sent (nothing was committed for them: the next run sends them)",
            self.shown
        );
        self.queue.fail(SendFailure::Stopped { pending });
    }
}

/// The receiver's text on one line: it goes into log lines and errors, where
/// a newline from it would forge a line of ours.
fn printable(body: &str) -> String {
    body.trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Whether a rate-limited log line is due now (and marks it done).
fn due(last: &mut Option<Instant>) -> bool {
    match last {
        Some(t) if t.elapsed() < LOG_EVERY => false,
        _ => {
            *last = Some(Instant::now());
            true
        }
    }
}
