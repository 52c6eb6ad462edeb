//! Two `tidemark cluster` members on 127.0.0.1 for black-box tests: each reads
//! the files of its own "machine" (`${LOG_ROOT}` differs per member), and member 0
//! serves the API and writes the one output.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::member::{append_host, out_dir, text, tidemark, Member};

pub const TOKEN: &str = "s3cret-token";

/// A job reading `include`, one rule summing over both hosts, every series out.
pub fn job_toml(name: &str, include: &[String], out: &Path, idle: &str) -> String {
    let include: Vec<String> = include.iter().map(|g| format!("{g:?}")).collect();
    format!(
        r#"
name = "{name}"
[source]
kind = "file"
include = [{include}]
host = {{ path_regex = '/(?P<host>web-[0-9]+)/' }}
poll_interval = "50ms"
[parse]
format = "nginx"
[window]
size = "1m"
max_out_of_orderness = "5s"
idle_timeout = "{idle}"
[[metric]]
name = "reqs"
kind = "counter"
labels = ["status"]
[[metric]]
name = "bytes"
kind = "sum"
field = "body_bytes_sent"
[[rule]]
record = "status:reqs"
expr = "sum by (status) (reqs)"
[[rule]]
record = "all:bytes"
expr = "sum(bytes)"
[[sink]]
kind = "jsonl"
path = "{out}"
series = "all"
"#,
        include = include.join(", "),
        out = out.display()
    )
}

/// The job as submitted (`${LOG_ROOT}` expanded by each member) and as the
/// oracle runs it (both machines' folders in one process).
pub struct Job {
    pub name: &'static str,
    pub submitted: PathBuf,
    pub reference: String,
    pub out: PathBuf,
}

pub fn job(d: &Path, name: &'static str, idle: &str) -> Job {
    let out = out_dir(&d.join("state-0")).join(format!("{name}.jsonl"));
    let submitted = d.join(format!("{name}.toml"));
    let on_member = ["${LOG_ROOT}/*/access.log".to_string()];
    std::fs::write(&submitted, job_toml(name, &on_member, &out, idle)).unwrap();
    let both = [0, 1].map(|m| format!("{}/machine-{m}/*/access.log", d.display()));
    Job {
        name,
        submitted,
        reference: job_toml(name, &both, &out, idle),
        out,
    }
}

/// Machine `m` holds host `web-{m+1}`.
pub fn append(d: &Path, from: i64, secs: i64) {
    for m in 0..2 {
        append_host(&d.join(format!("machine-{m}/web-{}", m + 1)), from, secs);
    }
}

pub struct Cluster {
    pub zero: Member,
    pub one: Member,
}

/// Starts member 0 (with the API) on a port the OS picks, then member 1 with a
/// hosts file naming the port member 0 reported.
pub fn start(d: &Path, tag: &str) -> Cluster {
    start_with(d, tag, &[])
}

/// [`start`], with `extra` arguments for both members (e.g. `--allow-kafka-brokers`).
pub fn start_with(d: &Path, tag: &str, extra: &[&str]) -> Cluster {
    let token = d.join("token");
    let out = out_dir(&d.join("state-0"));
    let member = |p: usize, hosts: &Path| {
        let root = d.join(format!("machine-{p}"));
        std::fs::create_dir_all(&root).unwrap();
        let state = d.join(format!("state-{p}"));
        let log = d.join(format!("member-{p}-{tag}.log"));
        let p_arg = p.to_string();
        let mut args = vec![
            "-n",
            "2",
            "-p",
            &p_arg,
            "--hosts",
            hosts.to_str().unwrap(),
            "--checkpoint-interval",
            "50ms",
            "--allow-root",
            root.to_str().unwrap(),
            "--job-env",
            "LOG_ROOT",
            "--job-env",
            "ONLY_ON_0",
        ];
        if p == 0 {
            args.extend(["--token-file", token.to_str().unwrap()]);
            args.extend(["--output-root", out.to_str().unwrap()]);
        }
        args.extend_from_slice(extra);
        let only_on_0 = if p == 0 { "here" } else { "" };
        let mut env = vec![("LOG_ROOT", root.to_str().unwrap().to_string())];
        if p == 0 {
            env.push(("ONLY_ON_0", only_on_0.to_string()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Member::start_with(&state, &log, &args, &env, p == 0)
    };
    let zero = member(0, &hosts_of_member_0(d));
    let hosts_1 = d.join(format!("hosts-1-{tag}"));
    std::fs::write(&hosts_1, format!("{}\n127.0.0.1:0\n", zero.peer())).unwrap();
    let one = member(1, &hosts_1);
    let c = Cluster { zero, one };
    wait_healthy(&c);
    c
}

/// Member 0 connects to no one: its own line, port 0, is all it reads.
pub fn hosts_of_member_0(d: &Path) -> PathBuf {
    let hosts = d.join("hosts-0");
    std::fs::write(&hosts, "# member 0, member 1\n127.0.0.1:0\n\n127.0.0.1:0\n").unwrap();
    hosts
}

impl Cluster {
    pub fn job(&self, args: &[&str]) -> Output {
        tidemark()
            .arg("job")
            .args(args)
            .args(["--api", &self.zero.api])
            .env("TIDEMARK_API_TOKEN", TOKEN)
            .output()
            .unwrap()
    }

    pub fn logs(&self) -> String {
        format!(
            "--- member 0\n{}\n--- member 1\n{}",
            self.zero.log(),
            self.one.log()
        )
    }
}

pub fn http_get(addr: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let status = r[9..12].parse().unwrap();
    let body = r.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// Waits until `/healthz` says both members are up.
pub fn wait_healthy(c: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http_get(&c.zero.api, "/healthz", Some(TOKEN));
        if status == 200 && body.contains("\"members\":2") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not healthy: {status} {body}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn status(c: &Cluster, name: &str) -> serde_json::Value {
    let o = c.job(&["status", name]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

pub fn wait_until(c: &Cluster, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}
