//! Serving `GET /metrics`: alone for `tidemark run --metrics-addr` ([`MetricsServer`]),
//! and as a route of the control API ([`crate::server`], behind its token).
//!
//! The body is rendered by the caller at each scrape (from a snapshot of the
//! job's stats); this module only serves it, with the connection limits of
//! [`crate::connections`] so that a stalled client cannot pile up connections.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::connections::ConnectionOptions;

/// Renders the metrics for a scrape: given the request's `Accept` header, the
/// answer's content type and body.
pub type Render = Arc<dyn Fn(Option<&str>) -> (&'static str, String) + Send + Sync>;

/// Answers a scrape with `render`'s output, rendered on the blocking pool (it
/// takes the stats' lock, which a worker may hold for a moment).
pub(crate) async fn scrape(render: Render, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .map(str::to_string);
    match tokio::task::spawn_blocking(move || render(accept.as_deref())).await {
        Ok((content_type, body)) => {
            let mut response = body.into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering /metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering the metrics failed\n",
            )
                .into_response()
        }
    }
}

/// A router with `GET /metrics` only.
pub fn router(render: Render) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(
                |State(render): State<Render>, headers: HeaderMap| async move {
                    scrape(render, headers).await
                },
            ),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "this address serves only GET /metrics\n",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            ConnectionOptions::default().request_timeout,
            crate::connections::request_timeout,
        ))
        .with_state(render)
}

/// `GET /metrics` on its own address, on a thread of its own, until dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    /// The thread's name, for its messages.
    name: &'static str,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port) and starts serving; fails when the
    /// address cannot be bound.
    pub fn start(addr: SocketAddr, render: Render) -> io::Result<MetricsServer> {
        Self::serve(addr, router(render), "tidemark-metrics")
    }

    /// Serves `router` on `addr` as [`MetricsServer::start`] serves `/metrics`
    /// (also [`crate::health`]'s `/healthz`), on a thread named `name`.
    pub(crate) fn serve(
        addr: SocketAddr,
        router: Router,
        name: &'static str,
    ) -> io::Result<MetricsServer> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        // One thread is plenty for a scrape every few seconds; rendering runs
        // on the blocking pool.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .thread_name(name)
            .enable_io()
            .enable_time()
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(crate::connections::serve(
                    listener,
                    router,
                    ConnectionOptions::default(),
                    async move {
                        let _ = rx.await;
                    },
                ))
            })?;
        Ok(MetricsServer {
            addr,
            name,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The address it listens on (with the port chosen when binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "{} stopped with an error", self.name),
                Err(_) => tracing::warn!("{} panicked", self.name),
            }
        }
    }
}
