//! How the control API holds its connections, so that clients that never finish a
//! request cannot freeze it for everyone.
//!
//! `axum::serve` keeps a connection as long as its client wants: a client sending
//! its headers a byte at a time, or announcing a body it never sends, held a task
//! and a file descriptor each, without a token (the token is checked once the
//! headers are in). Enough of them exhaust the member's file descriptors, and then
//! nobody gets an answer. Here, with hyper's HTTP/1 server directly:
//!
//! - a connection must send a complete request head within
//!   [`ConnectionOptions::header_read_timeout`], idle keep-alive connections
//!   included, or it is closed;
//! - at most [`ConnectionOptions::max_connections`] connections are open at once;
//!   at the cap a new one closes the oldest connection that is not in a request,
//!   and waits only when all are in one;
//! - a request, reading its body included, must be answered within
//!   [`ConnectionOptions::request_timeout`], else it gets 503.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

use crate::model::ErrorBody;

/// Default of [`ConnectionOptions::header_read_timeout`]: 10 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`ConnectionOptions::max_connections`]: 64.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// Default of [`ConnectionOptions::request_timeout`]: 60 s.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Limits on the API's connections. [`Default`] gives the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// How long a connection may take to send a request's head (request line and
    /// headers), counted from when the server starts waiting for it: after
    /// connecting, and after each answer on a keep-alive connection. Default 10 s.
    pub header_read_timeout: Duration,
    /// Connections open at once. At the cap a new connection closes the oldest
    /// one that is not in a request, or waits when all are. Default 64 (`tidemark
    /// job` opens one per command).
    pub max_connections: usize,
    /// How long a request may take from its head to its answer, reading its body
    /// included; past it the answer is 503. Default 60 s.
    pub request_timeout: Duration,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// A warning said at most once per [`LOG_EVERY`], with how many times it happened
/// since it was last said (one per event would let a client flood the log).
struct RateLimited {
    what: &'static str,
    count: AtomicU64,
    last: Mutex<Option<Instant>>,
}

const LOG_EVERY: Duration = Duration::from_secs(10);

impl RateLimited {
    const fn new(what: &'static str) -> Self {
        RateLimited {
            what,
            count: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    fn happened(&self, detail: &dyn std::fmt::Display) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let n = self.count.swap(0, Ordering::Relaxed);
        tracing::warn!(times = n, "control API: {} ({detail})", self.what);
    }
}

/// The open connections, oldest first, so that at the cap the oldest one that is
/// not in a request can make room for a new client.
#[derive(Default)]
struct Open {
    next_id: u64,
    slots: Vec<Slot>,
}

struct Slot {
    id: u64,
    /// True from a request's head to its answer.
    busy: Arc<AtomicBool>,
    evict: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Open {
    /// Closes the oldest connection that is between requests (or has not sent its
    /// first); false when every connection is in a request.
    fn evict_oldest_idle(&mut self) -> bool {
        let Some(i) = self
            .slots
            .iter()
            .position(|s| !s.busy.load(Ordering::SeqCst))
        else {
            return false;
        };
        let mut slot = self.slots.remove(i);
        if let Some(evict) = slot.evict.take() {
            let _ = evict.send(());
        }
        true
    }
}

/// Serves `app` on `listener` with `options` until `shutdown` completes; then stops
/// accepting and waits for the open connections' requests to finish.
///
/// At the cap, a new connection closes the oldest one that is not in a request
/// (stalled clients are such ones), rather than wait behind it: waiting in the
/// listen queue, a client would sit behind every stalled connection opened before
/// it. Only when every connection is in a request (each bounded by the request
/// timeout) does the new one wait.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    options: ConnectionOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    static DROPPED: RateLimited = RateLimited::new(
        "closed a connection that did not send its request head in time, or broke off",
    );
    static EVICTED: RateLimited = RateLimited::new(
        "all connections are open; closed the oldest one waiting between requests to make room",
    );
    static AT_CAP: RateLimited =
        RateLimited::new("all connections are in a request; a new one waits until one ends");
    static ACCEPT: RateLimited = RateLimited::new("cannot accept a connection");

    let max = options.max_connections.max(1);
    let open = Arc::new(Mutex::new(Open::default()));
    let freed = Arc::new(tokio::sync::Notify::new());
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    tokio::pin!(shutdown);
    'accept: loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and the like: wait a little rather than spin.
                    ACCEPT.happened(&e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Make room, or wait for it.
        loop {
            let wait = freed.notified();
            {
                let Ok(mut o) = open.lock() else {
                    break 'accept;
                };
                if o.slots.len() < max {
                    break;
                }
                if o.evict_oldest_idle() {
                    EVICTED.happened(&format_args!("limit {max}"));
                    break;
                }
            }
            AT_CAP.happened(&format_args!("limit {max}"));
            tokio::select! {
                () = wait => {}
                () = &mut shutdown => break 'accept,
            }
        }
        let busy = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicBool::new(false));
        let (evict, mut evicted) = tokio::sync::oneshot::channel::<()>();
        let id = {
            let Ok(mut o) = open.lock() else {
                break 'accept;
            };
            let id = o.next_id;
            o.next_id += 1;
            o.slots.push(Slot {
                id,
                busy: busy.clone(),
                evict: Some(evict),
            });
            id
        };
        let inner = TowerToHyperService::new(app.clone());
        let served_by = served.clone();
        let service = hyper::service::service_fn(move |request| {
            busy.store(true, Ordering::SeqCst);
            served_by.store(true, Ordering::SeqCst);
            let answer = hyper::service::Service::call(&inner, request);
            let busy = busy.clone();
            async move {
                let response = answer.await;
                busy.store(false, Ordering::SeqCst);
                response
            }
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let (open, freed) = (open.clone(), freed.clone());
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => {
                    match ended {
                        Ok(()) => {}
                        // A keep-alive connection idle after its requests: normal.
                        Err(e) if e.is_timeout() && served.load(Ordering::SeqCst) => {
                            tracing::debug!(error = %e, "control API: closed an idle connection");
                        }
                        Err(e) => DROPPED.happened(&e),
                    }
                }
                // Dropping the connection closes it.
                Ok(()) = &mut evicted => {}
            }
            if let Ok(mut o) = open.lock() {
                o.slots.retain(|s| s.id != id);
            }
            freed.notify_one();
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Middleware answering 503 to a request not answered within `timeout` (its body
/// never arrived, or the cluster did not answer). A cluster call already running
/// on the blocking pool finishes on its own; its answer is dropped.
pub(crate) async fn request_timeout(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ErrorBody {
                error: format!(
                    "the request was not answered within {} s: its body did not arrive in \
                     time, or the cluster is busy; send the whole request at once, and retry \
                     (a submit may still have been installed: `tidemark job list` shows it)",
                    timeout.as_secs_f64()
                ),
                diagnostics: None,
            }),
        )
            .into_response(),
    }
}
