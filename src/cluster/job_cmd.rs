//! `tidemark job submit|list|status|stop`: the control API's command-line client.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::os::unix::fs::MetadataExt;

use tidemark_api::listener::ListenerError;
use tidemark_api::{Client, ClientError, TokenSource};

use crate::run::EXIT_INVALID;

/// Where `tidemark job` looks for the cluster's token when neither `--state-dir`
/// nor `TIDEMARK_STATE_DIR` names the state folder (deploy/'s unit uses it).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/tidemark";

/// The environment variable naming the state folder for `tidemark job`.
pub const STATE_DIR_ENV: &str = "TIDEMARK_STATE_DIR";

/// `tidemark job ...`
#[derive(clap::Subcommand)]
pub enum JobCommand {
    /// Validate a job file on the cluster and install it.
    Submit { job: PathBuf },
    /// List the cluster's jobs.
    List,
    /// A job's state, output frontier, last window, lines/s and error counts.
    Status { name: String },
    /// Stop a job (windows already written stay) and forget it.
    Stop { name: String },
}

/// Runs `tidemark job`. The token is `--token-file`, else `$TIDEMARK_API_TOKEN`,
/// else the cluster's own token file in its state folder: `--state-dir`, else
/// `$TIDEMARK_STATE_DIR`, else [`DEFAULT_STATE_DIR`]. It is sent to an address of
/// this host only when the listener there is trusted ([`check_who_listens`]).
pub fn job(
    cmd: JobCommand,
    api: &str,
    token_file: Option<&Path>,
    state_dir: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let state_dir = state_dir
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(STATE_DIR_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    let (token, source) =
        match tidemark_api::client_token(token_file, tidemark_api::TOKEN_ENV, &state_dir) {
            Ok(found) => found,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        };
    let client = match Client::new(api, Some(token)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    if let Err(e) = check_who_listens(client.base_url(), &source) {
        eprintln!("error: {e}");
        return Ok(ExitCode::from(1));
    }
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
            );
            // Said again where a person looks, outside the JSON.
            for w in &s.warnings {
                eprintln!("warning: {w}");
            }
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

/// Before the token goes to an address of this host: the socket listening there must
/// belong to root, to us, or to the owner of the token file, who can all read the
/// token anyway. Whatever the token's source: a user who takes the port while the
/// cluster is down would get an explicit token as surely as the state folder's.
/// (See [`tidemark_api::listener`] for what this cannot tell apart.)
fn check_who_listens(base_url: &str, source: &TokenSource) -> Result<(), ListenerError> {
    use std::net::ToSocketAddrs;
    let host = base_url.trim_start_matches("http://");
    // ureq's default port when the URL names none (`[::1]` or `localhost`).
    let has_port = if host.starts_with('[') {
        !host.ends_with(']')
    } else {
        host.contains(':')
    };
    let with_port = if has_port {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    // Fail closed: a name this cannot resolve the HTTP client might still reach
    // (it parses the URL its own way), and then the token would go unchecked.
    let targets = with_port
        .to_socket_addrs()
        .map_err(|source| ListenerError::Unresolved {
            host: host.to_string(),
            source,
        })?;
    let mut trusted = vec![0];
    if let Ok(me) = tidemark_api::listener::current_uid() {
        trusted.push(me);
    }
    if let TokenSource::File(path) | TokenSource::StateFolder { path, .. } = source {
        if let Ok(meta) = std::fs::metadata(path) {
            trusted.push(meta.uid());
        }
    }
    let targets: Vec<_> = targets.collect();
    tidemark_api::listener::check_targets(&targets, &trusted)
}

/// 2 for what the user must fix (an invalid job, an unknown name, a duplicate),
/// 1 for the rest (the cluster cannot be reached or failed).
fn exit_code(e: &ClientError) -> u8 {
    match e.status() {
        Some(400..=499) => EXIT_INVALID,
        _ => 1,
    }
}
