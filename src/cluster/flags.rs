//! What a member's flags mean: checked before the member touches its state
//! folder, then turned into the members' addresses, process 0's output roots and
//! the rules a submitted job must follow.

use std::path::PathBuf;

use tidemark_jobs::brokers::{check_kafka_brokers, BrokerAllowList};
use tidemark_jobs::{check_output_roots, check_roots, Diagnostics, Env, Job};

use super::ClusterArgs;

/// The default output root, inside the state folder.
const OUTPUT_DIR: &str = "output";

/// How a member turns a submitted job's TOML into a job it may run: paths must
/// be absolute, `${NAME}` expands only the `--job-env` variables, reads stay under
/// `--allow-root` and (on process 0, which writes the sinks) writes under the
/// output roots. The roots are also set on the job, so that every file opened is
/// checked again by its real path.
pub(super) struct SubmitRules {
    pub(super) env: Env,
    /// The brokers a job's kafka source and sinks may connect to.
    pub(super) kafka_brokers: BrokerAllowList,
    pub(super) read_roots: Vec<PathBuf>,
    /// Never read, whatever the roots: the state folder, the token file.
    pub(super) denied_reads: Vec<PathBuf>,
    /// `None` on members other than process 0: they write no sink.
    pub(super) output_roots: Option<Vec<PathBuf>>,
    /// Half the member's cap on open files: a job's `max_open_files` is lowered
    /// to it, so no job can take the descriptors another one needs.
    pub(super) max_open_files_per_job: usize,
}

impl SubmitRules {
    pub(super) fn validate(&self, text: &str, file: &str) -> Result<Job, Diagnostics> {
        let mut job = tidemark_jobs::submitted(text, file, &self.env)?;
        check_roots(&job, &self.read_roots).map_err(|e| e.to_diagnostics(file))?;
        check_kafka_brokers(&job, &self.kafka_brokers, file)?;
        job.source.allowed_roots = self.read_roots.clone();
        job.source.denied_reads = self.denied_reads.clone();
        if let Some(roots) = &self.output_roots {
            check_output_roots(&job, roots).map_err(|e| e.to_diagnostics(file))?;
            job.output_roots = roots.clone();
        }
        if job.source.max_open_files > self.max_open_files_per_job {
            tracing::info!(
                "job {:?}: max_open_files {} lowered to {}, half this member's cap \
                 (--max-open-files)",
                job.name,
                job.source.max_open_files,
                self.max_open_files_per_job
            );
            job.source.max_open_files = self.max_open_files_per_job;
        }
        Ok(job)
    }
}

/// The flags every member checks before it touches its state folder.
pub(super) fn check_cluster_flags(args: &ClusterArgs) -> Result<(), String> {
    if args.allow_roots.is_empty() {
        return Err(format!(
            "the cluster needs at least one --allow-root DIR: the folders submitted jobs may read files from\n  hint: e.g. --allow-root /var/log; `--allow-root /` lets jobs read every file this member can read (its state folder {} included)",
            args.state_dir.display()
        ));
    }
    for (flag, dirs) in [
        ("--allow-root", &args.allow_roots),
        ("--output-root", &args.output_roots),
    ] {
        for dir in dirs {
            if !dir.is_absolute()
                || dir
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
            {
                return Err(format!(
                    "{flag} {} must be an absolute path without `..`",
                    dir.display()
                ));
            }
        }
    }
    let names = args.job_env.iter().map(|n| ("--job-env", n));
    let secrets = args.job_secret_env.iter().map(|n| ("--job-secret-env", n));
    for (flag, name) in names.chain(secrets) {
        if !tidemark_jobs::env::is_var_name(name) {
            return Err(format!(
                "{flag} {name:?} is not a variable name\n  hint: give the name alone (letters, digits and `_`, not starting with a digit), e.g. {flag} LOG_ROOT"
            ));
        }
        if name == tidemark_api::TOKEN_ENV {
            return Err(format!(
                "{flag} {name} would let any submitted job use the API token (copy it into its output, or send it to a broker)\n  hint: leave it out"
            ));
        }
    }
    if let Some(name) = args
        .job_secret_env
        .iter()
        .find(|n| args.job_env.contains(n))
    {
        return Err(format!(
            "{name} is given with both --job-env and --job-secret-env: as a --job-env variable a job could use it anywhere, its output and host label included\n  hint: give a secret with --job-secret-env only"
        ));
    }
    Ok(())
}

/// Process 0's output roots, real paths: the `--output-root` folders (which must
/// exist), or `STATE/output` (created). None may hold the state folder's own files
/// (`jobs/`, `submitted/`, the token), which a sink would otherwise overwrite.
pub(super) fn output_roots(args: &ClusterArgs) -> Result<Vec<PathBuf>, String> {
    let state = std::fs::canonicalize(&args.state_dir).map_err(|e| {
        format!(
            "cannot use the state folder {}: {e}",
            args.state_dir.display()
        )
    })?;
    let default = state.join(OUTPUT_DIR);
    if args.output_roots.is_empty() {
        tidemark_engine::cluster::state_folder::create_output_folder(&default)
            .map_err(|e| e.to_string())?;
    }
    let given = if args.output_roots.is_empty() {
        std::slice::from_ref(&default)
    } else {
        &args.output_roots[..]
    };
    let mut roots = Vec::new();
    for dir in given {
        let real = std::fs::canonicalize(dir).map_err(|e| {
            format!(
                "--output-root {}: {e}\n  hint: create the folder first, writable by this member's user",
                dir.display()
            )
        })?;
        if !real.is_dir() {
            return Err(format!("--output-root {} is not a folder", dir.display()));
        }
        let holds_state = state.starts_with(&real);
        let inside_state = real.starts_with(&state) && !real.starts_with(&default);
        if holds_state || inside_state {
            return Err(format!(
                "--output-root {} {} the state folder {}: a job's sink could overwrite the member's own files (its jobs, checkpoints and API token)\n  hint: give a folder outside the state folder, or leave --output-root out to write in {}",
                dir.display(),
                if holds_state { "holds" } else { "is inside" },
                state.display(),
                default.display()
            ));
        }
        roots.push(real);
    }
    Ok(roots)
}

/// The members' addresses: `None` for one process, else those of `--hosts` for
/// member `-p` of `-n` (one `host:port` per line; blank lines and `#` comments
/// skipped). A member's own line may say port 0 (it reports the port it got);
/// the lines of the members it connects to, those below it, may not.
pub(super) fn peer_addresses(args: &ClusterArgs) -> Result<Option<Vec<String>>, String> {
    let workers = args.workers.max(1);
    if args.processes == 0 {
        return Err("-n must be at least 1".into());
    }
    tidemark_engine::cluster::check_cluster_size(args.processes, workers)
        .map_err(|e| e.to_string())?;
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
        return Ok(None);
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
    if let Some((member, addr)) = addresses
        .iter()
        .enumerate()
        .take(args.process)
        .find(|(_, a)| port_of(a) == Some(0))
    {
        return Err(format!(
            "{}: member {} connects to member {member} at {addr}, but port 0 is only for a \
             member's own line: give the port member {member} reported (\"peers connect to \
             member {member} of {} on ...\")",
            hosts.display(),
            args.process,
            args.processes
        ));
    }
    Ok(Some(addresses))
}

/// The port of a `host:port` that [`parse_hosts`] accepted.
fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit_once(':')?.1.parse().ok()
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
        // Port 0 (any free port) is not an address two members could share.
        if port_of(line) != Some(0) && out.iter().any(|a| a == line) {
            return Err(format!(
                "line {}: {line} is listed twice: every member needs its own address",
                i + 1
            ));
        }
        out.push(line.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{parse_hosts, SubmitRules};

    #[test]
    fn a_submitted_job_may_send_to_remote_write_with_a_token_under_the_read_roots() {
        let rules = SubmitRules {
            env: tidemark_jobs::Env::from_vars(Vec::<(String, String)>::new()),
            kafka_brokers: Default::default(),
            read_roots: vec!["/var/log".into()],
            denied_reads: vec!["/var/lib/tidemark".into()],
            output_roots: Some(vec!["/var/lib/tidemark/output".into()]),
            max_open_files_per_job: 100,
        };
        let job = |token: &str| {
            format!(
                "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [\"/var/log/*.log\"]\n\
                 [parse]\nformat = \"nginx\"\n[[metric]]\nname = \"r\"\nkind = \"counter\"\n\
                 [[sink]]\nkind = \"prometheus_remote_write\"\nurl = \"http://p:9090/api/v1/write\"\n\
                 series = \"hosts\"\nbearer_token_file = \"{token}\"\n"
            )
        };
        let ok = rules.validate(&job("/var/log/tm/token"), "j.toml").unwrap();
        assert!(matches!(
            ok.sinks[0].kind,
            tidemark_jobs::SinkKind::RemoteWrite(_)
        ));
        let err = rules
            .validate(&job("/etc/tidemark/token"), "j.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bearer_token_file `/etc/tidemark/token`"),
            "{err}"
        );
    }

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
        // Port 0 is each member's own "any free port", not one shared address.
        assert_eq!(
            parse_hosts("127.0.0.1:0\n127.0.0.1:0\n").unwrap(),
            vec!["127.0.0.1:0", "127.0.0.1:0"]
        );
    }
}
