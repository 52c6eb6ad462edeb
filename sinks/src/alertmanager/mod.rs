//! The `alertmanager` sink: carries a job's alerts (`[[alert]]`) to
//! Alertmanager's API v2 (`POST /api/v2/alerts`), as Prometheus does — see
//! [`book`] for what is sent when, docs/alerts.md ("Alertmanager") for the
//! user's view.
//!
//! Alerts are evaluated in event time, and that transcript is what a `jsonl`
//! sink keeps; what this sink sends is the *current* state of those alerts,
//! kept alive in Alertmanager on the wall clock: `endsAt` a few resend intervals
//! ahead of the sending time, re-sent every resend interval by a sender thread
//! while the job runs. Alertmanager identifies an alert by its labels, so
//! sending the same state twice (after a restart: the engine hands over the
//! whole firing set again) is harmless: the sink needs no commit point.
//!
//! Delivery never holds the job up: [`Sink::write_alerts`] folds the update
//! into the state and wakes the sender. An answer that says the alerts
//! themselves are wrong (a 4xx other than 408/429) fails the job, with the
//! status and a hint; anything else is retried with backoff, the state staying
//! current meanwhile.

mod body;
pub mod book;
pub mod http;
mod sender;
#[cfg(test)]
mod tests;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tidemark_engine::alert_event::AlertUpdate;
use tidemark_engine::stats::sink::SinkMeter;
use tidemark_engine::time::EventMs;
use tidemark_engine::ClosedWindow;

pub use body::{encode, rfc3339_ms, Postable};
use book::Book;
pub use http::Credentials;
use sender::Shared;
pub use sender::{Clock, SystemClock, MAX_BACKOFF, MIN_BACKOFF};

use crate::{BoxError, Sink};

/// A checked `alertmanager` sink's settings, secrets read.
#[derive(Debug, Clone)]
pub struct AlertmanagerConfig {
    /// The Alertmanager's base URL, `http://HOST[:PORT][/PREFIX]`.
    pub url: String,
    /// How often active alerts are re-sent.
    pub resend_interval: Duration,
    /// How often alerts are evaluated: the job's window size. Firing alerts are
    /// valid for 4 × max(resend interval, this), as Prometheus's are.
    pub eval_interval: Duration,
    /// How long one request may take.
    pub timeout: Duration,
    /// Every alert's `generatorURL`.
    pub generator_url: String,
    pub auth: Option<Credentials>,
}

/// The `generatorURL` of a job's alerts when its sink sets none:
/// `tidemark://HOST/jobs/JOB`, HOST this machine's name — a URI that says which
/// tidemark process and job an alert comes from (Alertmanager requires one;
/// there is no page to link to).
pub fn default_generator_url(job: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    let host = if !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        host
    } else {
        "localhost"
    };
    format!("tidemark://{host}/jobs/{job}")
}

/// Why the sink failed.
#[derive(Debug, Clone, Error)]
pub enum AlertmanagerError {
    #[error(
        "Alertmanager at {endpoint} refused the alerts with HTTP {status}{}; they are \
         not sent again in this run. hint: {hint}",
        if body.is_empty() { String::new() } else { format!(" ({body})") }
    )]
    Refused {
        endpoint: String,
        status: u16,
        /// The start of the answer's body.
        body: String,
        hint: &'static str,
    },
    #[error(
        "cannot send the alerts to Alertmanager at {endpoint}: the request cannot be \
         built ({why}); it never could be, so it is not tried again. hint: check the \
         url and the secret files"
    )]
    Unsendable { endpoint: String, why: String },
    #[error(
        "the last state of the alerts did not reach Alertmanager at {endpoint} within \
         {}s after the input ended (last attempt: {last}); alerts firing there expire \
         at their endsAt. hint: check that Alertmanager runs and answers at the sink's url",
        waited.as_secs()
    )]
    Undelivered {
        endpoint: String,
        waited: Duration,
        last: String,
    },
}

/// The sink. See the [module documentation](self).
pub struct AlertmanagerSink {
    shared: Arc<Shared>,
    describe: String,
    endpoint: String,
    /// How long [`Sink::finish`] waits for the last state to be delivered.
    finish_patience: Duration,
}

impl AlertmanagerSink {
    /// Starts the sink and its sender thread (which only the system can refuse).
    pub fn start(cfg: AlertmanagerConfig) -> std::io::Result<AlertmanagerSink> {
        AlertmanagerSink::start_with_clock(cfg, Arc::new(SystemClock::new()))
    }

    /// [`AlertmanagerSink::start`] with the sender's clocks given (tests).
    pub fn start_with_clock(
        cfg: AlertmanagerConfig,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<AlertmanagerSink> {
        let url = cfg.url.trim_end_matches('/').to_string();
        let describe = format!("alertmanager {url}");
        let meter = SinkMeter::named(describe.clone());
        // It counts alerts sent (each send carries every alert due) and sends.
        meter.set_units(tidemark_engine::stats::sink::Units {
            records: "alert(s)",
            batches: "send(s)",
        });
        let book = Book::new(cfg.resend_interval, cfg.eval_interval);
        let shared = Arc::new(Shared::new(book, meter, clock));
        let client = http::Client::new(&url, cfg.timeout, cfg.auth);
        let endpoint = client.endpoint().to_string();
        let s = Arc::clone(&shared);
        let (d, g) = (describe.clone(), cfg.generator_url);
        // Not joined: a drop must not wait for a request in flight; the thread
        // ends after it, seeing `quit`.
        std::thread::Builder::new()
            .name("alertmanager-sender".into())
            .spawn(move || sender::run(s, client, g, d))?;
        Ok(AlertmanagerSink {
            shared,
            describe,
            endpoint,
            finish_patience: (cfg.timeout * 3).max(Duration::from_secs(10)),
        })
    }

    /// The error Alertmanager's refusal left, if any.
    fn failed(&self) -> Result<(), BoxError> {
        match &self.shared.lock().fatal {
            Some(e) => Err(Box::new(e.clone())),
            None => Ok(()),
        }
    }

    /// Wakes the sender to look at its clock again (tests with a fake clock),
    /// and waits until it did and found nothing due: returns how many attempts
    /// it made by then.
    #[cfg(test)]
    fn settle(&self) -> u64 {
        let mut g = self.shared.lock();
        let seen = g.waits;
        self.shared.notify();
        while g.waits == seen && g.fatal.is_none() {
            g = self.shared.wait(g, Some(Duration::from_millis(100)));
            self.shared.notify();
        }
        drop(g);
        self.shared.meter.batches.load(Ordering::Relaxed)
            + self.shared.meter.failures.load(Ordering::Relaxed)
    }
}

impl Sink for AlertmanagerSink {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    /// Windows are not this sink's business; a refusal from Alertmanager fails
    /// the job here at the latest.
    fn write_window(&mut self, _: &ClosedWindow) -> Result<(), BoxError> {
        self.failed()
    }

    fn write_alerts(&mut self, update: &AlertUpdate) -> Result<(), BoxError> {
        let mut g = self.shared.lock();
        if let Some(e) = &g.fatal {
            return Err(Box::new(e.clone()));
        }
        let now = self.shared.clock.mono();
        g.book.apply(update, now);
        if g.book.pending() {
            self.shared
                .meter
                .queue_records
                .store(g.book.len() as u64, Ordering::Relaxed);
        }
        drop(g);
        self.shared.notify();
        Ok(())
    }

    /// Nothing to make durable: alerts are state, sent again after a restart.
    fn sync(&mut self, _: EventMs) -> Result<(), BoxError> {
        self.failed()
    }

    /// Waits (a while) until the last state reached Alertmanager.
    fn finish(&mut self) -> Result<(), BoxError> {
        let deadline = Instant::now() + self.finish_patience;
        let mut g = self.shared.lock();
        loop {
            if let Some(e) = &g.fatal {
                return Err(Box::new(e.clone()));
            }
            if !g.book.pending() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Box::new(AlertmanagerError::Undelivered {
                    endpoint: self.endpoint.clone(),
                    waited: self.finish_patience,
                    last: g
                        .last_failure
                        .clone()
                        .unwrap_or_else(|| "still in flight".into()),
                }));
            }
            g = self.shared.wait(g, Some(left));
        }
    }

    fn meter(&self) -> Option<Arc<SinkMeter>> {
        Some(Arc::clone(&self.shared.meter))
    }
}

impl Drop for AlertmanagerSink {
    fn drop(&mut self) {
        self.shared.lock().quit = true;
        self.shared.notify();
    }
}
