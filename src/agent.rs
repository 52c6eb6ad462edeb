//! `tidemark agent AGENT.toml`: ship log files to Kafka (see `tidemark_agent` and
//! docs/agent.md), and `tidemark validate` for agent files.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use tidemark_agent::stats::{Stats, CONTENT_TYPE};
use tidemark_agent::Outcome;
use tidemark_api::MetricsServer;

use crate::run::EXIT_INVALID;

/// Runs the agent until SIGINT/SIGTERM (exit 0), or until an error it cannot get
/// past (exit 1; its checkpoint stays at the last line the broker acknowledged).
pub fn agent(path: &Path) -> anyhow::Result<ExitCode> {
    let agent = match tidemark_agent::load(path) {
        Ok(agent) => agent,
        Err(diags) => {
            eprintln!("{diags}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("stopping: waiting for the lines in flight to be acknowledged");
    })
    .context("cannot install the signal handler")?;
    let stats = Arc::new(Stats::default());
    let _metrics = match agent.metrics_addr {
        Some(addr) => Some(serve(addr, &agent.host, stats.clone())?),
        None => None,
    };
    match tidemark_agent::run(&agent, &stop, stats)? {
        Outcome::Drained => {}
        Outcome::InFlight(n) => tracing::warn!(
            "stopped with {n} records not acknowledged by the broker: their lines are sent \
             again on the next start"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `/metrics` of the agent (no token, as a job's: bind a loopback address unless
/// the network is trusted). Prints the address bound on stderr.
fn serve(
    addr: std::net::SocketAddr,
    host: &str,
    stats: Arc<Stats>,
) -> anyhow::Result<MetricsServer> {
    let host = host.to_string();
    let server = MetricsServer::start(
        addr,
        Arc::new(move |_accept| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            (CONTENT_TYPE, stats.render(&host, now))
        }),
    )
    .with_context(|| format!("cannot serve /metrics on {addr}"))?;
    if !server.local_addr().ip().is_loopback() {
        tracing::warn!(
            "/metrics on {} has no token: whoever can reach it sees the agent's counters",
            server.local_addr()
        );
    }
    eprintln!("metrics: serving http://{}/metrics", server.local_addr());
    Ok(server)
}

/// `tidemark validate FILE` for an agent file (one with a top-level `[agent]`
/// table); `None` for any other file, which is validated as a job.
pub fn validate_if_agent(path: &Path) -> Option<ExitCode> {
    let text = std::fs::read_to_string(path).ok()?;
    if !tidemark_agent::is_agent_file(&text) {
        return None;
    }
    Some(match tidemark_agent::load(path) {
        Ok(_) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(diags) => {
            eprintln!("{diags}");
            ExitCode::from(EXIT_INVALID)
        }
    })
}
