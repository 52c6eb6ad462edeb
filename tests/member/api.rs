//! Raw HTTP with a member's own token, and a member started on a folder of logs:
//! what the cluster's security tests share.

use super::{append_host, Member, T0};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

/// The file a member creates its API token in when none is given.
pub fn token_path(state: &Path) -> PathBuf {
    state.join("api-token")
}

/// One HTTP request; `(status, body)`.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let status = r[9..12].parse().unwrap();
    let body = r.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// The member's own token, if it made one.
pub fn member_token(state: &Path) -> Option<String> {
    std::fs::read_to_string(token_path(state))
        .ok()
        .map(|t| t.trim().to_string())
}

/// `POST /jobs` with the member's token (when it has one).
pub fn submit(m: &Member, state: &Path, toml: &str) -> (u16, String) {
    http(
        &m.api,
        "POST",
        "/jobs",
        member_token(state).as_deref(),
        toml,
    )
}

/// A job reading `include` and writing `sink`, with `host` as its host setting.
pub fn job_toml(name: &str, include: &str, sink: &str, host: &str) -> String {
    format!(
        r#"name = "{name}"
[source]
kind = "file"
include = ["{include}"]
host = {host}
poll_interval = "50ms"
[parse]
format = "nginx"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "jsonl"
path = "{sink}"
series = "hosts"
"#
    )
}

/// A tempdir with `logs/web-1/access.log`, a state folder path, and a member
/// started on them with `--allow-root logs` plus `extra`.
pub struct Setup {
    pub _dir: tempfile::TempDir,
    pub d: PathBuf,
    pub logs: PathBuf,
    pub state: PathBuf,
}

impl Setup {
    pub fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let logs = d.join("logs");
        append_host(&logs.join("web-1"), T0, 60);
        Setup {
            state: d.join("state"),
            _dir: dir,
            d,
            logs,
        }
    }

    pub fn start(&self, extra: &[&str], env: &[(&str, &str)]) -> Member {
        let mut args = vec!["--allow-root", self.logs.to_str().unwrap()];
        args.extend_from_slice(extra);
        Member::start_with(&self.state, &self.d.join("member.log"), &args, env, true)
    }

    pub fn include(&self) -> String {
        format!("{}/*/access.log", self.logs.display())
    }

    /// A sink inside the member's default output root.
    pub fn sink(&self, name: &str) -> String {
        format!("{}/output/{name}.jsonl", self.state.display())
    }
}
