//! `kind = "prometheus_remote_write"`: closed windows to a Prometheus
//! Remote-Write 1.0 receiver (docs/prometheus.md, "Remote write").
//!
//! [`Sink::write_window`] encodes a window into requests (`encode`, framed by
//! `frame`) and queues them (`queue`); a sender thread (`sender`) sends them
//! in order, one in flight at a time, retrying 5xx, 429 and transport errors
//! forever with backoff (a down receiver is back-pressure, not a failure)
//! until the job stops. [`Sink::sync`] waits until every queued request was acknowledged, so
//! a checkpoint never claims a window the receiver does not hold.
//!
//! Exactness across a crash is idempotence at the receiver (the sink's commit
//! point is `None`): the windows after the last checkpoint are handed over
//! again, encoded into the same requests, sent in the same order. The receiver
//! applies a request atomically, so each resent one is either held whole
//! already (Prometheus answers 200 for an exact duplicate at a series' newest
//! timestamp, or 400 "out of order": rolled back, and the data is there) or
//! new. The TSDB ends with every sample exactly once.

mod encode;
mod frame;
mod proto;
mod queue;
mod response;
mod sender;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use thiserror::Error;
use tidemark_engine::stats::sink::SinkMeter;
use tidemark_engine::ClosedWindow;
use tidemark_jobs::{RemoteWrite, RemoteWriteAuth, SeriesChoice, Source};
use tidemark_sources::file::roots::AllowedRoots;

use crate::{BoxError, Sink};
use encode::Encoder;
use queue::Queue;
use response::{Backoff, Resend};
use sender::Sender;

/// Why the sender stopped sending (the sink fails with it).
#[derive(Debug, Clone, Error)]
pub enum SendFailure {
    #[error(
        "the remote-write receiver {url} refused the request for the window of {window} \
         ({answer}). hint: {hint}. Nothing from that window on was committed: once fixed, \
         run the job again and they are sent"
    )]
    Refused {
        url: String,
        window: String,
        /// Status and the first bytes of the body.
        answer: String,
        hint: &'static str,
    },
    #[error(
        "cannot send to the remote-write receiver {url}: the request cannot be built \
         ({error}); it never could be, so it is not tried again. hint: check the url and \
         the secret files. Nothing unacknowledged was committed"
    )]
    Unsendable { url: String, error: String },
    #[error(
        "the job stopped while the remote-write receiver was failing; {pending} samples \
         were not sent and are not committed (the next run sends them)"
    )]
    Stopped { pending: u64 },
    #[error(
        "the remote-write sender stopped unexpectedly (a bug: please report it with the log); \
         nothing unacknowledged was committed, the next run sends it"
    )]
    Panicked,
}

/// Why the sink could not open.
#[derive(Debug, Error)]
pub enum OpenError {
    #[error(
        "cannot read the remote-write sink's {what} {}: {source}. hint: the file holds \
         the secret alone, on one line; check its path and permissions",
        path.display()
    )]
    Secret {
        what: &'static str,
        path: PathBuf,
        source: crate::secret::SecretError,
    },
    #[error("cannot start the remote-write sender thread: {0}")]
    Thread(#[source] std::io::Error),
}

pub struct RemoteWriteSink {
    url: String,
    encoder: Encoder,
    queue: Arc<Queue>,
    meter: Arc<SinkMeter>,
}

impl RemoteWriteSink {
    /// Opens the sink: reads its secret files (inside the job's read roots,
    /// as every file the job reads) and starts its sender. `resumed`: the run
    /// resumes from a checkpoint, so its first windows may be held already.
    pub fn open(
        rw: &RemoteWrite,
        series: SeriesChoice,
        source: &Source,
        resumed: bool,
    ) -> Result<RemoteWriteSink, OpenError> {
        let roots = AllowedRoots::of_source(source);
        let authorization = match &rw.auth {
            None => None,
            Some(RemoteWriteAuth::BearerTokenFile(p)) => Some(format!(
                "Bearer {}",
                read_secret(&roots, p, "bearer_token_file")?
            )),
            Some(RemoteWriteAuth::Basic {
                username,
                password_file,
            }) => {
                let password = read_secret(&roots, password_file, "basic_auth password_file")?;
                Some(basic(username, &password))
            }
        };
        let meter = SinkMeter::named(describe(&rw.url));
        let queue = Arc::new(Queue::new(rw.queue_capacity, meter.clone()));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // No proxy from the environment: credentials would go to it.
            .proxy(None)
            .http_status_as_error(false)
            // A redirect of a POST is a misconfigured url: said as such.
            .max_redirects(0)
            .timeout_global(Some(rw.timeout))
            .build()
            .into();
        let sender = Sender {
            agent,
            url: rw.url.clone(),
            shown: shown_url(&rw.url),
            authorization,
            queue: queue.clone(),
            meter: meter.clone(),
            backoff: Backoff::new(rw.min_backoff, rw.max_backoff),
            resend: Resend::new(resumed),
            down: None,
            last_warning: None,
            last_rejection_log: None,
            stop_seen: None,
            worker: None,
        };
        let guard = SenderGone(queue.clone());
        std::thread::Builder::new()
            .name("remote-write".into())
            .spawn(move || {
                let _guard = guard;
                sender.run()
            })
            .map_err(OpenError::Thread)?;
        Ok(RemoteWriteSink {
            url: rw.url.clone(),
            encoder: Encoder::new(
                series,
                rw.timestamp,
                rw.external_labels.clone(),
                rw.max_samples_per_send,
            ),
            queue,
            meter,
        })
    }
}

/// Fails the queue if the sender thread ends by a panic (a bug), so that no
/// `sync` waits forever for acknowledgements that cannot come.
struct SenderGone(Arc<Queue>);

impl Drop for SenderGone {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail(SendFailure::Panicked);
        }
    }
}

fn describe(url: &str) -> String {
    format!("prometheus_remote_write {}", shown_url(url))
}

/// `url` without its query (`?…` instead): a receiver may take a key there
/// (`?api_key=`), and the description goes to logs, `job status` and the
/// `/metrics` labels.
pub(crate) fn shown_url(url: &str) -> String {
    match url.split_once(['?', '#']) {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_string(),
    }
}

/// The secret in the file (see [`crate::secret::read_secret_file`]); a bearer
/// token is checked to be sendable in a header. Its contents never go into an
/// error.
fn read_secret(roots: &AllowedRoots, path: &Path, what: &'static str) -> Result<String, OpenError> {
    let err = |source| OpenError::Secret {
        what,
        path: path.to_path_buf(),
        source,
    };
    let secret = crate::secret::read_secret_file(roots, path).map_err(err)?;
    if what == "bearer_token_file" {
        crate::secret::check_bearer_token(&secret).map_err(err)?;
    }
    Ok(secret)
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

impl Sink for RemoteWriteSink {
    /// Never credentials: validation refuses a url with user info, and the
    /// query is left out.
    fn describe(&self) -> String {
        describe(&self.url)
    }

    /// The engine asks [`Sink::ready`] first, so this does not wait: the
    /// window's requests are queued whole, even past twice the capacity.
    fn write_window(&mut self, w: &ClosedWindow) -> Result<(), BoxError> {
        self.queue.wait_room()?;
        for b in self.encoder.window(w) {
            self.queue.push(b)?;
        }
        Ok(())
    }

    /// Below twice `queue_capacity` samples queued.
    fn ready(&self) -> bool {
        self.queue.ready()
    }

    /// Nothing queued or in flight: [`Sink::sync`] returns at once.
    fn settled(&self) -> bool {
        self.queue.idle()
    }

    /// Waits until the receiver acknowledged (or refused for good) every
    /// request queued so far: only then may the checkpoint claim the windows.
    fn sync(&mut self, _frontier_ms: i64) -> Result<(), BoxError> {
        Ok(self.queue.wait_idle()?)
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        Ok(self.queue.wait_idle()?)
    }

    fn meter(&self) -> Option<Arc<SinkMeter>> {
        Some(self.meter.clone())
    }

    fn watch_stop(&mut self, stop: Arc<AtomicBool>) {
        self.queue.watch_stop(stop);
    }
}

impl Drop for RemoteWriteSink {
    fn drop(&mut self) {
        // The sender ends after its current attempt (not joined: it may be
        // waiting out a timeout against a dead receiver).
        self.queue.close();
    }
}

#[cfg(test)]
mod tests;
