//! `GET /healthz` on its own address, for a cluster member's `--health-addr`: a
//! readiness probe (Kubernetes, a load balancer) for every member, members other than
//! process 0 included, which serve no control API. No token: it says only whether the
//! member is up and part of a formed cluster, never a job's name.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::connections::ConnectionOptions;
use crate::model::Health;
use crate::MetricsServer;

/// This member's health, computed at each request.
pub type Check = Arc<dyn Fn() -> Health + Send + Sync>;

/// A router with `GET /healthz` only: 200 when `ok`, else 503, the same body.
pub fn router(check: Check) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|State(check): State<Check>| async move {
                let health = check();
                let code = if health.ok {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                (code, Json(health)).into_response()
            }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "this address serves only GET /healthz\n",
            )
                .into_response()
        })
        .layer(axum::middleware::from_fn_with_state(
            ConnectionOptions::default().request_timeout,
            crate::connections::request_timeout,
        ))
        .with_state(check)
}

/// `GET /healthz` on its own address, on a thread of its own, until dropped.
pub struct HealthServer(MetricsServer);

impl HealthServer {
    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub fn start(addr: SocketAddr, check: Check) -> io::Result<HealthServer> {
        MetricsServer::serve(addr, router(check), "tidemark-health").map(HealthServer)
    }

    /// The address it listens on (with the port chosen when binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr()
    }
}
