//! `tidemark cluster` (a long-lived member serving the control API) and
//! `tidemark job submit|list|status|stop` (its command-line client).
//!
//! - [`flags`]: what a member's flags mean: checked, then turned into timely's
//!   configuration, its roots, and the rules a submitted job must follow.
//! - [`control`]: what the API calls on the member.
//! - [`job_cmd`]: `tidemark job`.

mod control;
mod flags;
mod job_cmd;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use tidemark_api::{Auth, HealthServer, JobControl, ServeOptions, ServerHandle};
use tidemark_engine::cluster::{self, Cluster, ClusterOptions, Peers};
use tidemark_jobs::brokers::BrokerAllowList;
use tidemark_jobs::{Env, Job};

use crate::run::EXIT_INVALID;
use control::Control;
use flags::{check_cluster_flags, output_roots, peer_addresses, SubmitRules};
pub use job_cmd::{job, JobCommand};

#[derive(clap::Args)]
pub struct ClusterArgs {
    /// Processes in the cluster (each runs `tidemark cluster` with its own -p).
    #[arg(short = 'n', long, default_value_t = 1)]
    pub processes: usize,
    /// This process's index.
    #[arg(short = 'p', long, default_value_t = 0)]
    pub process: usize,
    /// Hosts file: one host:port per process, as timely reads it.
    #[arg(long)]
    pub hosts: Option<PathBuf>,
    /// Worker threads in this process.
    #[arg(short = 'w', long, default_value_t = 1, value_parser = crate::parse_workers)]
    pub workers: usize,
    /// Submitted jobs and their checkpoints are kept here.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Address of the control API (served by process 0 only).
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub api: SocketAddr,
    /// File holding the API's bearer token (or set TIDEMARK_API_TOKEN). Without
    /// either, the member creates a random one in STATE_DIR/api-token (mode 0600).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// File holding a scrape-only token (process 0): accepted for `GET
    /// /metrics` and no other route, so Prometheus need not hold the API token
    /// (which it still may use).
    #[arg(long, value_name = "FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// API connections open at once; at the cap a new one closes the oldest
    /// that is between requests (process 0).
    #[arg(long, value_name = "N", default_value_t = tidemark_api::connections::DEFAULT_MAX_CONNECTIONS as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub api_max_connections: u64,
    /// How long an API connection may take to send a request's headers before
    /// it is closed (process 0).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::parse_positive_duration)]
    pub api_header_timeout: Duration,
    /// How long an API request, its body included, may take before it is
    /// answered 503 (process 0).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::parse_positive_duration)]
    pub api_request_timeout: Duration,
    /// Jobs may only read under these folders (repeatable; at least one;
    /// `--allow-root /` allows every file the member can read).
    #[arg(long = "allow-root", value_name = "DIR")]
    pub allow_roots: Vec<PathBuf>,
    /// Jobs' sinks may only write under these folders (repeatable; process 0;
    /// default STATE_DIR/output, created). None may hold the state folder.
    #[arg(long = "output-root", value_name = "DIR")]
    pub output_roots: Vec<PathBuf>,
    /// `${NAME}` in a submitted job may use this environment variable of the
    /// member (repeatable; any other is refused).
    #[arg(long = "job-env", value_name = "NAME")]
    pub job_env: Vec<String>,
    /// A secret environment variable of the member that a submitted job may use
    /// only as the value of a kafka password option, e.g. `"sasl.password" =
    /// "${KAFKA_PASSWORD}"` (repeatable; never shown in errors, status or logs).
    #[arg(long = "job-secret-env", value_name = "NAME")]
    pub job_secret_env: Vec<String>,
    /// The only Kafka brokers a submitted job's kafka source and sinks may connect
    /// to, `host:port` (several separated by commas, or the flag repeated; the same
    /// on every member). Default none: a submitted kafka job is refused.
    #[arg(long = "allow-kafka-brokers", value_name = "HOST:PORT,...")]
    pub allow_kafka_brokers: Vec<String>,
    /// Serve `GET /healthz` alone on this address, on every member (no token; for a
    /// readiness probe): 200 once this member is part of a formed cluster (on
    /// process 0: once every member reports, as the API's /healthz), else 503.
    #[arg(long, value_name = "ADDR")]
    pub health_addr: Option<SocketAddr>,
    /// Most jobs the cluster accepts; one more submit gets 409.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_jobs: u64,
    /// How often, at most, each job writes a checkpoint.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = crate::parse_duration_arg)]
    pub checkpoint_interval: Duration,
    /// Most files all jobs together keep open on this member: each job reserves
    /// its `max_open_files` (at most half the cap, lowered to what other jobs
    /// leave, logged); a submit that finds less than one per worker left gets
    /// 400. Default:
    /// the soft limit on open files − 64 − 1/8 of it, kept for the API and
    /// checkpoints.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_open_files: Option<u64>,
}

/// The flags' counts are u64 so clap can range-check them; on a 32-bit target a
/// larger count than usize holds means "no limit".
fn saturating_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

pub fn cluster(args: ClusterArgs) -> anyhow::Result<ExitCode> {
    let addresses = match peer_addresses(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    if let Err(e) = check_cluster_flags(&args) {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let kafka_brokers = match BrokerAllowList::parse(&args.allow_kafka_brokers) {
        Ok(list) => list,
        Err(e) => {
            eprintln!("error: --allow-kafka-brokers: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    if args.processes > 1 {
        exit_when_a_member_is_lost();
    }
    // Before anything is written in the state folder (the token included): a
    // second member on it, or a folder other users can write, stops here.
    let state_lock = match cluster::lock_state_folder(&args.state_dir) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    if let Err(e) = cluster::store::claim_identity(&args.state_dir, args.process, args.processes) {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let serves_api = args.process == 0;
    // Only process 0 writes sinks and serves the API.
    let (output_roots, auth) = if serves_api {
        let roots = match output_roots(&args) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        };
        let auth = match tidemark_api::member_token(
            args.token_file.as_deref(),
            tidemark_api::TOKEN_ENV,
            &args.state_dir,
        ) {
            Ok((token, source)) => match Auth::bearer(token) {
                Ok(auth) => {
                    eprintln!("tidemark cluster: {source}");
                    Some(auth)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            },
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        };
        let metrics_auth = match metrics_auth(args.metrics_token_file.as_deref()) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        };
        (Some(roots), auth.map(|a| (a, metrics_auth)))
    } else {
        (None, None)
    };
    let cap = args
        .max_open_files
        .map(saturating_usize)
        .unwrap_or_else(|| crate::fd_limit::default_cap(crate::fd_limit::soft_limit()));
    let rules = Arc::new(SubmitRules {
        env: Env::process().allowing_with_secrets(
            args.job_env.iter().cloned(),
            args.job_secret_env.iter().cloned(),
        ),
        kafka_brokers,
        read_roots: args.allow_roots.clone(),
        // A job whose roots cover them must not read the member's token or other
        // jobs' checkpoints.
        denied_reads: std::iter::once(args.state_dir.clone())
            .chain(args.token_file.clone())
            .collect(),
        output_roots,
        max_open_files_per_job: crate::fd_limit::per_job(cap),
    });
    // librdkafka's messages about a job's clients may quote part of an option's
    // value: the secret variables' values are taken out of every log line and of
    // what the API shows (review R15d).
    let secrets = tidemark_jobs::kafka_options::SecretScrubber::of_env(&rules.env);
    crate::log_scrub::set(secrets.clone());
    let member_rules = rules.clone();
    let validate_secrets = secrets.clone();
    let validate: cluster::Validate = Arc::new(move |toml: &str| {
        member_rules
            .validate(toml, SUBMITTED)
            .map_err(|d| validate_secrets.scrub(&d.to_string()).into_owned())
    });
    let make_output: cluster::MakeOutput = Arc::new(|job: &Job, start| {
        tidemark_sinks::open(job, start)
            // The engine says "cannot open the job's sinks" itself.
            .map_err(Into::into)
    });
    let (health_check, _health_server) = serve_health(&args)?;
    // Bound before anything waits on the other members, so the port is known
    // (and said) even when the hosts file gives this member port 0.
    let peers = match addresses {
        None => None,
        Some(addresses) => {
            let peers = Peers::bind(addresses, args.process).context("cannot start the cluster")?;
            let addr = peers
                .local_addr()
                .context("cannot read this member's peer address")?;
            eprintln!(
                "tidemark cluster: peers connect to member {} of {} on {addr}",
                args.process, args.processes
            );
            Some(peers)
        }
    };
    let (member, workers) = cluster::start(ClusterOptions {
        peers,
        process: args.process,
        processes: args.processes,
        workers: args.workers.max(1),
        state_dir: args.state_dir.clone(),
        checkpoint_interval: args.checkpoint_interval,
        make_output,
        validate,
        max_jobs: saturating_usize(args.max_jobs),
        max_open_files: cap,
        state_lock,
    })
    .context("cannot start the cluster")?;
    if !serves_api {
        return member_only(&args, member, workers, &health_check);
    }
    let control = Arc::new(Control::new(member.clone(), args.processes as u32, secrets));
    let api_view = control.clone();
    let _ = health_check.set(Arc::new(move || api_view.health()));
    let Some((auth, metrics_auth)) = auth else {
        anyhow::bail!("internal error: process 0 has no API token");
    };
    let options = ServeOptions {
        validate: Arc::new(move |text: &str, file: &str| rules.validate(text, file)),
        connections: tidemark_api::ConnectionOptions {
            max_connections: saturating_usize(args.api_max_connections),
            header_read_timeout: args.api_header_timeout,
            request_timeout: args.api_request_timeout,
        },
        metrics_auth,
        ..ServeOptions::new(auth)
    };
    let server = match ServerHandle::start(args.api, control, options) {
        Ok(s) => s,
        Err(e) => {
            // The kept jobs may be installing: stop them cleanly first. Before
            // the cluster formed, no job runs and the workers wait for the other
            // members, so joining them would hang: exit at once instead.
            if member.registry().connected() {
                member.shutdown();
                let _ = workers.join();
            }
            return Err(anyhow::anyhow!(e))
                .with_context(|| format!("cannot listen on {}", args.api));
        }
    };
    eprintln!(
        "tidemark cluster: member 0 of {}; control API on http://{}; state in {}; stop with Ctrl-C or SIGTERM",
        args.processes,
        server.local_addr(),
        args.state_dir.display()
    );
    on_signal_shut_down(&member)?;
    let result = workers.join();
    let _ = server.shutdown();
    ended(result)
}

/// A member other than process 0: no API; it runs until the cluster shuts down
/// (from any member) or it is stopped, which stops the whole cluster cleanly.
fn member_only(
    args: &ClusterArgs,
    member: Arc<Cluster>,
    workers: cluster::member::Workers,
    health_check: &HealthSlot,
) -> anyhow::Result<ExitCode> {
    eprintln!(
        "tidemark cluster: member {} of {}; state in {}; the control API is on member 0; stopping this member (Ctrl-C, SIGTERM) stops the whole cluster cleanly",
        args.process,
        args.processes,
        args.state_dir.display()
    );
    let local = member.clone();
    let processes = args.processes as u32;
    let _ = health_check.set(Arc::new(move || control::member_health(&local, processes)));
    on_signal_shut_down(&member)?;
    ended(workers.join())
}

fn on_signal_shut_down(member: &Arc<Cluster>) -> anyhow::Result<()> {
    let stopping = member.clone();
    let asked = std::sync::atomic::AtomicBool::new(false);
    ctrlc::set_handler(move || {
        if asked.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
        if !stopping.registry().connected() {
            // The cluster never formed: no job ran, nothing to checkpoint.
            eprintln!("stopping: the cluster had not formed yet");
            std::process::exit(0);
        }
        eprintln!(
            "stopping: every job checkpoints what is written, then the cluster's members exit (again to exit at once)"
        );
        stopping.shutdown();
    })
    .context("cannot install the signal handler")
}

fn ended(
    result: std::thread::Result<Result<(), tidemark_engine::error::EngineError>>,
) -> anyhow::Result<ExitCode> {
    match result {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(e)) => Err(anyhow::anyhow!(e)).context("the cluster failed"),
        Err(_) => anyhow::bail!(
            "the cluster's workers failed (a member stopped or the connection to one was lost); restart every member and the jobs resume from their checkpoints"
        ),
    }
}

/// `--health-addr`: `GET /healthz`, bound before the member starts (a port that
/// cannot be bound stops it before anything runs, as for the peers' port). Until
/// the member sets its check in the returned slot, it answers 503.
fn serve_health(args: &ClusterArgs) -> anyhow::Result<(HealthSlot, Option<HealthServer>)> {
    let slot: HealthSlot = Arc::new(OnceLock::new());
    let Some(addr) = args.health_addr else {
        return Ok((slot, None));
    };
    let expected = args.processes as u32;
    let read = slot.clone();
    let check: tidemark_api::health::Check = Arc::new(move || match read.get() {
        Some(check) => check(),
        None => tidemark_api::Health {
            ok: false,
            status: Some(tidemark_api::HealthStatus::Unavailable),
            members: 0,
            expected_members: expected,
            jobs: 0,
            failed_jobs: 0,
            detail: Some("the member is starting".into()),
            open_files: None,
        },
    });
    let server = HealthServer::start(addr, check)
        .with_context(|| format!("cannot listen on {addr} (--health-addr)"))?;
    eprintln!(
        "tidemark cluster: member {} health on http://{}/healthz",
        args.process,
        server.local_addr()
    );
    Ok((slot, Some(server)))
}

/// Where a member puts its `/healthz` check once it runs.
type HealthSlot = Arc<OnceLock<tidemark_api::health::Check>>;

/// timely panics in its network threads when a member's connection breaks, and
/// the workers then fail one by one. Say what happened once and exit at once, so a
/// service manager restarts the member; the state on disk is crash-safe.
fn exit_when_a_member_is_lost() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("timely communication error") || msg.contains("MergeQueue poisoned") {
            eprintln!(
                "error: lost the connection to another cluster member ({msg}). This member exits; once every member runs again, the jobs resume from their checkpoints"
            );
            std::process::exit(1);
        }
        default_hook(info);
    }));
}

const SUBMITTED: &str = tidemark_api::server::SUBMITTED_JOB;

/// The scrape-only token from `--metrics-token-file`, if given. Errors name
/// the file, never its content.
fn metrics_auth(file: Option<&std::path::Path>) -> anyhow::Result<Option<Auth>> {
    use anyhow::Context;
    let Some(file) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(file).with_context(|| {
        format!(
            "cannot read the metrics token file {} (--metrics-token-file)",
            file.display()
        )
    })?;
    let auth = Auth::bearer(text.trim()).with_context(|| {
        format!(
            "{}: the metrics token must be one word of printable ASCII (--metrics-token-file)",
            file.display()
        )
    })?;
    Ok(Some(auth))
}
