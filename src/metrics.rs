//! `tidemark run --metrics-addr`: the job's self-metrics at `GET /metrics`,
//! rendered from its stats at each scrape (see `tidemark_engine::stats::export`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tidemark_api::MetricsServer;
use tidemark_engine::stats::export::{render, Format};
use tidemark_engine::stats::SharedStats;
use tidemark_engine::time::wall_clock_ms;

/// Binds `addr` and serves `/metrics` for the job `job` until dropped. Prints
/// the address bound (with the port picked for port 0) on stderr.
pub fn serve(addr: SocketAddr, job: &str, stats: SharedStats) -> anyhow::Result<MetricsServer> {
    let job = job.to_string();
    let server = MetricsServer::start(
        addr,
        Arc::new(move |accept| {
            let format = Format::negotiate(accept);
            // A copy, so the workers wait for the lock no longer than it takes.
            let snapshot = stats
                .lock()
                .map(|s| s.clone())
                .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
            let body = render(&[(job.as_str(), &snapshot)], wall_clock_ms(), format);
            (format.content_type(), body)
        }),
    )
    .with_context(|| format!("cannot serve /metrics on {addr}"))?;
    if !server.local_addr().ip().is_loopback() {
        tracing::warn!(
            "/metrics on {} has no token: whoever can reach it sees the job's file paths \
             (bind 127.0.0.1 unless that is intended)",
            server.local_addr()
        );
    }
    eprintln!("metrics: serving http://{}/metrics", server.local_addr());
    Ok(server)
}
