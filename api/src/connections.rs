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
//!   further ones wait in the listen queue until one closes (the header timeout
//!   bounds how long a stalled one holds its place);
//! - a request, reading its body included, must be answered within
//!   [`ConnectionOptions::request_timeout`], else it gets 503.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
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
use tokio::sync::Semaphore;

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
    /// Connections open at once; more wait to be accepted. Default 64 (`tidemark
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

/// Serves `app` on `listener` with `options` until `shutdown` completes; then stops
/// accepting and waits for the open connections' requests to finish.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    options: ConnectionOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    static DROPPED: RateLimited = RateLimited::new(
        "closed a connection that did not complete its request in time, or broke off",
    );
    static AT_CAP: RateLimited =
        RateLimited::new("all connections are in use; new ones wait until one closes");
    static ACCEPT: RateLimited = RateLimited::new("cannot accept a connection");

    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                AT_CAP.happened(&format_args!("limit {}", options.max_connections));
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
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
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                DROPPED.happened(&e);
            }
            drop(slot);
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
                     time, or the cluster is busy; send the whole request at once, and retry",
                    timeout.as_secs_f64()
                ),
                diagnostics: None,
            }),
        )
            .into_response(),
    }
}
