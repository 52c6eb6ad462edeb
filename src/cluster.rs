//! `tidemark cluster` (a long-lived member serving the control API) and
//! `tidemark job submit|list|status|stop` (its command-line client).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tidemark_api::{
    Auth, Client, ClientError, ClosedWindow, ControlError, Health, JobControl, JobState, JobStatus,
    JobSummary, ServeOptions, ServerHandle,
};
use tidemark_engine::cluster::{self, Cluster, ClusterOptions, JobInfo};
use tidemark_engine::WindowOutput;
use tidemark_jobs::{check_roots, from_str_with_env, Env, Job};
use tidemark_sinks::Outputs;

use crate::run::EXIT_INVALID;

pub struct ClusterArgs {
    pub processes: usize,
    pub process: usize,
    pub hosts: Option<PathBuf>,
    pub workers: usize,
    pub state_dir: PathBuf,
    pub api: SocketAddr,
    pub token_file: Option<PathBuf>,
    pub allow_roots: Vec<PathBuf>,
    pub checkpoint_interval: Duration,
}

pub fn cluster(args: ClusterArgs) -> anyhow::Result<ExitCode> {
    let config = match timely_config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    for root in &args.allow_roots {
        if !root.is_absolute()
            || root
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            eprintln!(
                "error: --allow-root {} must be an absolute path without `..`",
                root.display()
            );
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    }
    if args.processes > 1 {
        exit_when_a_member_is_lost();
    }
    if let Err(e) = cluster::store::claim_identity(&args.state_dir, args.process, args.processes) {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let serves_api = args.process == 0;
    let token = tidemark_api::load_token(args.token_file.as_deref(), tidemark_api::TOKEN_ENV)
        .context("cannot read the API token")?;
    if serves_api && token.is_none() && tidemark_api::require_token_for(&args.api) {
        eprintln!(
            "error: the API would listen on {} without a token: give --token-file FILE or set {}, or listen on 127.0.0.1",
            args.api,
            tidemark_api::TOKEN_ENV
        );
        return Ok(ExitCode::from(EXIT_INVALID));
    }
    let roots = Arc::new(args.allow_roots.clone());
    let validate_roots = roots.clone();
    let validate: cluster::Validate = Arc::new(move |toml: &str| {
        let mut job = from_str_with_env(toml, SUBMITTED, Path::new("/"), &Env::process())
            .map_err(|d| d.to_string())?;
        check_roots(&job, &validate_roots).map_err(|e| e.to_string())?;
        // Also checked on every file opened, through symlinks.
        job.source.allowed_roots = validate_roots.to_vec();
        Ok(job)
    });
    let make_output: cluster::MakeOutput = Arc::new(|job: &Job, start| {
        Outputs::open(job, start)
            .map(|o| Box::new(o) as Box<dyn WindowOutput>)
            .map_err(|e| format!("cannot open the job's sinks: {e}"))
    });
    let (member, workers) = cluster::start(ClusterOptions {
        config,
        process: args.process,
        processes: args.processes,
        workers: args.workers.max(1),
        state_dir: args.state_dir.clone(),
        checkpoint_interval: args.checkpoint_interval,
        make_output,
        validate,
    })
    .context("cannot start the cluster")?;
    if !serves_api {
        return member_only(&args, member, workers);
    }
    let control = Arc::new(Control {
        member: member.clone(),
        members: args.processes as u32,
        rates: Mutex::new(HashMap::new()),
    });
    let api_roots = roots.clone();
    let options = ServeOptions {
        auth: Auth::from_token(token),
        validate: Arc::new(move |text: &str, file: &str, base: &Path| {
            let job = from_str_with_env(text, file, base, &Env::process())?;
            check_roots(&job, &api_roots).map_err(|e| e.to_diagnostics(file))?;
            Ok(job)
        }),
        ..ServeOptions::default()
    };
    let server = match ServerHandle::start(args.api, control, options) {
        Ok(s) => s,
        Err(e) => {
            // The kept jobs may be installing: stop them cleanly first.
            member.shutdown();
            let _ = workers.join();
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
) -> anyhow::Result<ExitCode> {
    eprintln!(
        "tidemark cluster: member {} of {}; state in {}; the control API is on member 0; stopping this member (Ctrl-C, SIGTERM) stops the whole cluster cleanly",
        args.process,
        args.processes,
        args.state_dir.display()
    );
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
    result: std::thread::Result<Result<(), tidemark_engine::install::EngineError>>,
) -> anyhow::Result<ExitCode> {
    match result {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(e)) => Err(anyhow::anyhow!(e)).context("the cluster failed"),
        Err(_) => anyhow::bail!(
            "the cluster's workers failed (a member stopped or the connection to one was lost); restart every member and the jobs resume from their checkpoints"
        ),
    }
}

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

/// timely's configuration: one process, or member `-p` of `-n` at the addresses
/// in `--hosts` (one `host:port` per line; blank lines and `#` comments skipped).
fn timely_config(args: &ClusterArgs) -> Result<timely::Config, String> {
    let workers = args.workers.max(1);
    if args.processes == 0 {
        return Err("-n must be at least 1".into());
    }
    if args.process >= args.processes {
        return Err(format!(
            "-p {} is not a member of a {}-process cluster: give 0 to {}",
            args.process,
            args.processes,
            args.processes - 1
        ));
    }
    if args.processes == 1 {
        if let Some(h) = &args.hosts {
            return Err(format!(
                "--hosts {} is only for several processes; add -n N",
                h.display()
            ));
        }
        return Ok(timely::Config::process(workers));
    }
    let Some(hosts) = &args.hosts else {
        return Err(format!(
            "-n {} needs --hosts FILE: one host:port per member, the same file on every member",
            args.processes
        ));
    };
    let text = std::fs::read_to_string(hosts)
        .map_err(|e| format!("cannot read the hosts file {}: {e}", hosts.display()))?;
    let addresses = parse_hosts(&text).map_err(|e| format!("{}: {e}", hosts.display()))?;
    if addresses.len() != args.processes {
        return Err(format!(
            "{} lists {} addresses but -n is {}: give one host:port per member",
            hosts.display(),
            addresses.len(),
            args.processes
        ));
    }
    Ok(timely::Config {
        communication: timely::CommunicationConfig::Cluster {
            threads: workers,
            process: args.process,
            addresses,
            report: false,
            zerocopy: false,
        },
        worker: timely::WorkerConfig::default(),
    })
}

fn parse_hosts(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let ok = line.rsplit_once(':').is_some_and(|(host, port)| {
            let bracketed = host.starts_with('[') && host.ends_with(']');
            !host.is_empty() && (bracketed || !host.contains(':')) && port.parse::<u16>().is_ok()
        });
        if !ok {
            return Err(format!(
                "line {}: {line:?} is not host:port (e.g. 10.0.0.11:2101, or [fd00::11]:2101 for IPv6)",
                i + 1
            ));
        }
        if out.iter().any(|a| a == line) {
            return Err(format!(
                "line {}: {line} is listed twice: every member needs its own address",
                i + 1
            ));
        }
        out.push(line.to_string());
    }
    Ok(out)
}

/// What the API calls: the member plus a lines/s estimate per job.
struct Control {
    member: Arc<Cluster>,
    members: u32,
    rates: Mutex<HashMap<String, (Instant, u64, f64)>>,
}

impl JobControl for Control {
    fn submit(&self, job: Job, toml: String) -> Result<JobSummary, ControlError> {
        self.member.submit(&job, &toml).map_err(control_error)?;
        Ok(self
            .member
            .registry()
            .get(&job.name)
            .map(|j| summary(&j))
            .unwrap_or_else(|| JobSummary {
                name: job.name.clone(),
                state: JobState::Running,
                submitted_at: jiff::Timestamp::now(),
            }))
    }

    fn list(&self) -> Vec<JobSummary> {
        self.member.registry().list().iter().map(summary).collect()
    }

    fn status(&self, name: &str) -> Option<JobStatus> {
        let j = self.member.registry().get(name)?;
        let s = &j.stats;
        // Lines and errors of every member; the frontier is process 0's (it writes).
        let all = j.cluster_stats();
        let rate = self.rate(name, all.lines_read, j.submitted_ms);
        let mut errors = std::collections::BTreeMap::new();
        errors.insert(JobStatus::LATE.to_string(), all.late_lines);
        errors.insert(JobStatus::OVERSIZE.to_string(), all.oversize_lines);
        errors.insert(JobStatus::INVALID_UTF8.to_string(), all.invalid_utf8_lines);
        errors.insert(JobStatus::OUTLIER.to_string(), all.outlier_lines);
        errors.insert(
            JobStatus::CLOCK_BEHIND_GROUPS.to_string(),
            all.trailing_clock_groups,
        );
        for (reason, n) in &all.parse_errors {
            errors.insert(JobStatus::malformed_key(reason), *n);
        }
        let ts = |ms: i64| jiff::Timestamp::from_millisecond(ms).ok();
        Some(JobStatus {
            summary: summary(&j),
            watermark: s.frontier_ms.filter(|&f| f > 0).and_then(ts),
            last_closed_window: s.last_window_ms.and_then(|(start, end)| {
                Some(ClosedWindow {
                    start: ts(start)?,
                    end: ts(end)?,
                })
            }),
            lines_per_sec: rate,
            lines_read: all.lines_read,
            lines_read_by_member: std::iter::once((0, s.lines_read))
                .chain(j.members.iter().map(|(p, m)| (*p as u32, m.lines_read)))
                .collect(),
            errors,
            last_error: j.error.clone(),
        })
    }

    fn stop(&self, name: &str) -> Result<(), ControlError> {
        self.member.stop(name).map_err(control_error)
    }

    fn health(&self) -> Health {
        let jobs = self.member.registry().list();
        let failed: Vec<&str> = jobs
            .iter()
            .filter(|j| j.state == cluster::JobState::Failed)
            .map(|j| j.name.as_str())
            .collect();
        let running = self.member.is_running();
        let registry = self.member.registry();
        let connected = registry.connected();
        // The others report every second; a member silent for 5 s is in trouble
        // (a lost connection ends every member's workers).
        let members = if !running || !connected {
            u32::from(running)
        } else {
            1 + registry.members_heard(Duration::from_secs(5)) as u32
        };
        let first_reports_due = registry
            .connected_for()
            .is_some_and(|t| t < Duration::from_secs(5));
        let all_heard = members == self.members || (self.members > 1 && first_reports_due);
        Health {
            ok: running && connected && all_heard,
            members: if connected && first_reports_due {
                self.members
            } else {
                members
            },
            expected_members: self.members,
            jobs: jobs.len() as u32,
            detail: if !running {
                Some("the member's workers have stopped".into())
            } else if !connected {
                Some(format!(
                    "waiting for every member to connect ({} expected; see the hosts file)",
                    self.members
                ))
            } else if !all_heard {
                Some(format!(
                    "only {members} of {} members reported in the last 5 s",
                    self.members
                ))
            } else if !failed.is_empty() {
                Some(format!("failed jobs: {}", failed.join(", ")))
            } else {
                None
            },
        }
    }
}

impl Control {
    /// Lines per second since the previous status call at least a second ago; the
    /// first call averages since the job was submitted.
    fn rate(&self, name: &str, lines: u64, submitted_ms: i64) -> f64 {
        let now = Instant::now();
        let Ok(mut rates) = self.rates.lock() else {
            return 0.0;
        };
        // Forget jobs that are gone (a stopped job submitted again starts afresh).
        let registry = self.member.registry();
        rates.retain(|n, _| registry.contains(n));
        let e = rates.entry(name.to_string()).or_insert_with(|| {
            let secs = (tidemark_engine::time::wall_clock_ms() - submitted_ms) as f64 / 1000.0;
            let first = if secs > 0.0 { lines as f64 / secs } else { 0.0 };
            (now, lines, first)
        });
        let secs = now.duration_since(e.0).as_secs_f64();
        if secs >= 1.0 {
            e.2 = lines.saturating_sub(e.1) as f64 / secs;
            *e = (now, lines, e.2);
        }
        if e.2.is_finite() {
            e.2
        } else {
            0.0
        }
    }
}

fn summary(j: &JobInfo) -> JobSummary {
    JobSummary {
        name: j.name.clone(),
        state: match j.state {
            cluster::JobState::Running => JobState::Running,
            cluster::JobState::Stopping => JobState::Stopping,
            cluster::JobState::Failed => JobState::Failed,
        },
        submitted_at: jiff::Timestamp::from_millisecond(j.submitted_ms)
            .unwrap_or_else(|_| jiff::Timestamp::now()),
    }
}

fn control_error(e: cluster::member::ControlError) -> ControlError {
    match e {
        cluster::member::ControlError::Duplicate(n) => ControlError::Duplicate(n),
        cluster::member::ControlError::NotFound(n) => ControlError::NotFound(n),
        cluster::member::ControlError::Unavailable(m) => ControlError::Unavailable(m),
    }
}

const SUBMITTED: &str = tidemark_api::server::SUBMITTED_JOB;

/// `tidemark job ...`
pub enum JobCommand {
    Submit { job: PathBuf },
    List,
    Status { name: String },
    Stop { name: String },
}

pub fn job(cmd: JobCommand, api: &str, token_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let token = tidemark_api::load_token(token_file, tidemark_api::TOKEN_ENV)
        .context("cannot read the API token")?;
    let client = match Client::new(api, token) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let result = match cmd {
        JobCommand::Submit { job } => {
            let text = match std::fs::read_to_string(&job) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", job.display());
                    return Ok(ExitCode::from(EXIT_INVALID));
                }
            };
            client
                .submit_file(&text, &job.display().to_string())
                .map(|s| println!("submitted {} ({:?})", s.name, s.state))
        }
        JobCommand::List => client.list().map(|jobs| {
            for j in jobs {
                println!("{}\t{:?}\t{}", j.name, j.state, j.submitted_at);
            }
        }),
        JobCommand::Status { name } => client.status(&name).map(|s| {
            println!(
                "{}",
                serde_json::to_string_pretty(&s).unwrap_or_else(|_| format!("{s:?}"))
            )
        }),
        JobCommand::Stop { name } => client.stop(&name).map(|s| println!("stopping {}", s.name)),
    };
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(exit_code(&e)))
        }
    }
}

/// 2 for what the user must fix (an invalid job, an unknown name, a duplicate),
/// 1 for the rest (the cluster cannot be reached or failed).
fn exit_code(e: &ClientError) -> u8 {
    match e.status() {
        Some(400..=499) => EXIT_INVALID,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_hosts;

    #[test]
    fn hosts_files_skip_comments_and_refuse_what_timely_cannot_use() {
        let text = "# members\n10.0.0.11:2101  # zero\n\n[fd00::12]:2101\n";
        assert_eq!(
            parse_hosts(text).unwrap(),
            vec!["10.0.0.11:2101", "[fd00::12]:2101"]
        );
        for (bad, why) in [
            ("10.0.0.11\n", "is not host:port"),
            ("fd00::12:2101\n", "[fd00::11]:2101 for IPv6"),
            ("a:1\na:1\n", "listed twice"),
            ("a:99999\n", "is not host:port"),
        ] {
            let e = parse_hosts(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
