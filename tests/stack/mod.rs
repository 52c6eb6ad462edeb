//! The real monitoring stack for integration tests: private Prometheus and
//! Alertmanager processes, and promtool.
//!
//! `scripts/test` (the README's test command) installs or finds the programs and
//! exports TIDEMARK_PROMETHEUS, TIDEMARK_PROMTOOL and TIDEMARK_ALERTMANAGER; run
//! alone, `cargo test` looks them up on PATH. A test that needs one that is not
//! there fails, naming it and how to get it: none skips silently.
//!
//! Each process listens on a port the OS picks (`127.0.0.1:0`), found afterwards
//! in /proc: the programs cannot be handed a listener, and a port picked by
//! binding and closing could be taken by another test in between.
#![allow(dead_code)] // Each test binary uses a part of it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a component gets to start on a loaded machine.
const START_PATIENCE: Duration = Duration::from_secs(120);

/// The program `var` names, or `names` on PATH; panics saying how to get it.
pub fn program(var: &str, names: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "this test needs {} (not on PATH, and {var} is not set). Run the suite with \
         scripts/test, which installs it on Debian (apt-get install prometheus \
         prometheus-alertmanager), or set {var} to the program",
        names[0]
    )
}

/// `promtool`.
pub fn promtool() -> PathBuf {
    program("TIDEMARK_PROMTOOL", &["promtool"])
}

/// A private process of the stack, killed when dropped; its output is kept in
/// its folder (`log`) and printed if it fails to start.
pub struct Component {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    name: &'static str,
}

impl Component {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn start(name: &'static str, mut cmd: Command, dir: tempfile::TempDir) -> Component {
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let mut c = Component {
            child,
            port: 0,
            dir,
            name,
        };
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            if let Ok(Some(status)) = c.child.try_wait() {
                panic!("{name} exited with {status} while starting:\n{}", c.log());
            }
            if let Some(port) = listening_port(c.child.id()) {
                c.port = port;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not listen within {START_PATIENCE:?}:\n{}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        c.wait_ready();
        c
    }

    fn wait_ready(&mut self) {
        let url = format!("{}/-/ready", self.url());
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            if let Ok(r) = ureq::get(&url).call() {
                if r.status() == 200 {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}:\n{}", self.name, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{} was not ready within {START_PATIENCE:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// GET `path` (with its query), as text; panics on a transport error.
    pub fn get(&self, path_and_query: &str) -> (u16, String) {
        let url = format!("{}{path_and_query}", self.url());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent
            .get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = r.status().as_u16();
        (status, r.body_mut().read_to_string().unwrap_or_default())
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private Prometheus with `config` (YAML) as its configuration, its TSDB in
/// its own folder (or `tsdb`, e.g. blocks made by promtool), and `flags` added
/// (e.g. `--web.enable-remote-write-receiver`).
pub fn prometheus(config: &str, tsdb: Option<&Path>, flags: &[&str]) -> Component {
    let bin = program("TIDEMARK_PROMETHEUS", &["prometheus"]);
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let data = match tsdb {
        Some(p) => p.to_path_buf(),
        None => dir.path().join("data"),
    };
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config.file={}", config_path.display()))
        .arg(format!("--storage.tsdb.path={}", data.display()))
        .arg("--web.listen-address=127.0.0.1:0")
        .args(flags);
    Component::start("prometheus", cmd, dir)
}

/// A private Alertmanager (no clustering) with `config` (YAML).
pub fn alertmanager(config: &str) -> Component {
    let bin = program(
        "TIDEMARK_ALERTMANAGER",
        &["prometheus-alertmanager", "alertmanager"],
    );
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("alertmanager.yml");
    std::fs::write(&config_path, config).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .arg("--cluster.listen-address=");
    Component::start("alertmanager", cmd, dir)
}

/// The TCP port process `pid` listens on (its first listening socket), read from
/// /proc: the socket inodes among its descriptors, matched against the kernel's
/// table of listening sockets.
pub fn listening_port(pid: u32) -> Option<u16> {
    let mut inodes = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy();
            if let Some(ino) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.push(ino.to_string());
            }
        }
    }
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT; state 0A is LISTEN; inode is column 9.
            if cols.len() > 9 && cols[3] == "0A" && inodes.iter().any(|i| i == cols[9]) {
                let port = cols[1].rsplit(':').next()?;
                return u16::from_str_radix(port, 16).ok();
            }
        }
    }
    None
}

/// Prometheus's `/api/v1/query` for `expr` at `time_s`: the result vector as
/// (labels, value) pairs, sorted.
pub fn query(
    prom: &Component,
    expr: &str,
    time_s: i64,
) -> Vec<(std::collections::BTreeMap<String, String>, String)> {
    let q: String = url_encode(expr);
    let (status, body) = prom.get(&format!("/api/v1/query?query={q}&time={time_s}"));
    assert_eq!(status, 200, "query {expr}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out: Vec<_> = v["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("query {expr}: {body}"))
        .iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            (labels, r["value"][1].as_str().unwrap().to_string())
        })
        .collect();
    out.sort();
    out
}

/// Percent-encodes everything but unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
