//! A mock cluster and a test server on 127.0.0.1:0, shared by the API tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use tidemark_api::{
    serve_with, Auth, ClosedWindow, ControlError, Health, JobControl, JobState, JobStatus,
    JobSummary, ServeOptions,
};

/// The token every test server but the auth tests' wants.
pub const TOKEN: &str = "test-token";

/// The header that sends [`TOKEN`].
pub const AUTH: &[(&str, &str)] = &[("authorization", "Bearer test-token")];

/// The server's side of [`TOKEN`].
pub fn auth() -> Auth {
    Auth::bearer(TOKEN).unwrap()
}

/// A job that passes validation as a submitted job (absolute paths only).
pub fn valid_job(name: &str) -> String {
    format!(
        r#"name = "{name}"

[source]
kind = "file"
include = ["/var/log/web/*/access.log"]
host = {{ path_regex = '/web/(?P<host>[^/]+)/' }}

[parse]
format = "nginx"

[[metric]]
name = "http_requests_total"
kind = "counter"
labels = ["status"]

[[rule]]
record = "status:http_requests:sum1m"
expr = "sum by (status) (http_requests_total)"

[[sink]]
kind = "jsonl"
path = "/srv/tidemark/out/{name}.jsonl"
series = "rules"
"#
    )
}

/// An in-memory cluster. `status("slow")` blocks until released (for the
/// graceful-shutdown test); `submit` fails with `submit_error` when set.
#[derive(Default)]
pub struct Mock {
    pub jobs: Mutex<BTreeMap<String, (JobSummary, String)>>,
    pub submit_error: Mutex<Option<ControlError>>,
    pub healthy: Mutex<bool>,
    pub slow: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
}

impl Mock {
    pub fn new() -> Arc<Mock> {
        Arc::new(Mock {
            healthy: Mutex::new(true),
            ..Mock::default()
        })
    }

    /// Makes the next `status("slow")` signal `entered`, then wait for `release`.
    pub fn arm_slow(&self) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel();
        *self.slow.lock().unwrap() = Some((entered_tx, release_rx));
        (entered_rx, release_tx)
    }
}

impl JobControl for Mock {
    fn submit(&self, job: tidemark_jobs::Job, toml: String) -> Result<JobSummary, ControlError> {
        if let Some(e) = self.submit_error.lock().unwrap().clone() {
            return Err(e);
        }
        let mut jobs = self.jobs.lock().unwrap();
        if jobs.contains_key(&job.name) {
            return Err(ControlError::Duplicate(job.name));
        }
        let summary = JobSummary {
            name: job.name.clone(),
            state: JobState::Running,
            submitted_at: Timestamp::now(),
        };
        jobs.insert(job.name, (summary.clone(), toml));
        Ok(summary)
    }

    fn list(&self) -> Vec<JobSummary> {
        let jobs = self.jobs.lock().unwrap();
        jobs.values().map(|(s, _)| s.clone()).collect()
    }

    fn status(&self, name: &str) -> Option<JobStatus> {
        if name == "slow" {
            let slow = self.slow.lock().unwrap().take();
            if let Some((entered, release)) = slow {
                entered.send(()).unwrap();
                release.recv().unwrap();
            }
            return Some(JobStatus {
                summary: JobSummary {
                    name: "slow".into(),
                    state: JobState::Running,
                    submitted_at: Timestamp::UNIX_EPOCH,
                },
                watermark: None,
                last_closed_window: None,
                lines_read: 0,
                lines_read_by_member: Default::default(),
                lines_per_sec: 0.0,
                errors: BTreeMap::new(),
                last_error: None,
                warnings: Vec::new(),
                open_files: Default::default(),
            });
        }
        let jobs = self.jobs.lock().unwrap();
        let (summary, _) = jobs.get(name)?;
        let start: Timestamp = "2026-11-20T10:01:00Z".parse().unwrap();
        let end: Timestamp = "2026-11-20T10:02:00Z".parse().unwrap();
        Some(JobStatus {
            summary: summary.clone(),
            watermark: Some("2026-11-20T10:02:03Z".parse().unwrap()),
            last_closed_window: Some(ClosedWindow { start, end }),
            lines_read: 0,
            lines_read_by_member: Default::default(),
            lines_per_sec: 1234.5,
            errors: BTreeMap::from([
                (JobStatus::LATE.to_string(), 3),
                (JobStatus::malformed_key("no_timestamp"), 2),
            ]),
            last_error: None,
            warnings: vec!["include glob `/x/*.log` matches no file on member 0".into()],
            open_files: Default::default(),
        })
    }

    fn stop(&self, name: &str) -> Result<(), ControlError> {
        match self.jobs.lock().unwrap().remove(name) {
            Some(_) => Ok(()),
            None => Err(ControlError::NotFound(name.to_string())),
        }
    }

    fn health(&self) -> Health {
        let ok = *self.healthy.lock().unwrap();
        Health {
            ok,
            members: if ok { 2 } else { 1 },
            expected_members: 2,
            jobs: self.jobs.lock().unwrap().len() as u32,
            failed_jobs: 0,
            status: None,
            detail: (!ok).then(|| "member 1 is not connected".to_string()),
            open_files: None,
        }
    }

    fn metrics(&self, accept: Option<&str>) -> (&'static str, String) {
        (
            "text/plain; version=0.0.4; charset=utf-8",
            format!("mock_scrape{{accept=\"{}\"}} 1\n", accept.unwrap_or("")),
        )
    }
}

/// `serve` running on a runtime of its own, on 127.0.0.1:0.
pub struct TestServer {
    pub addr: SocketAddr,
    pub mock: Arc<Mock>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    runtime: tokio::runtime::Runtime,
}

impl TestServer {
    pub fn start(auth: Auth) -> TestServer {
        TestServer::start_with(ServeOptions::new(auth))
    }

    /// [`TestServer::start`] with every option.
    pub fn start_with(options: ServeOptions) -> TestServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mock = Mock::new();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let control: Arc<dyn JobControl> = mock.clone();
        let task = runtime.spawn(serve_with(listener, control, options, async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            mock,
            shutdown: Some(tx),
            task: Some(task),
            runtime,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Completes the shutdown future (the server then drains and returns).
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            tx.send(()).unwrap();
        }
    }

    /// True once the `serve` future has returned.
    pub fn finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits (at most 10 s) for `serve` to return, and returns its result.
    pub fn join(&mut self) -> std::io::Result<()> {
        let task = self.task.take().expect("joined twice");
        self.runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), task)
                .await
                .expect("serve did not return within 10 s of the shutdown signal")
                .expect("serve panicked")
        })
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.signal_shutdown();
    }
}

/// A raw HTTP answer: status, headers we care about, and the body as JSON.
pub struct Answer {
    pub status: u16,
    pub www_authenticate: Option<String>,
    pub body: serde_json::Value,
}

/// Sends one request and returns whatever the server answered.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let req = builder.body(body.to_vec()).unwrap();
    let mut resp = agent
        .run(req)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let www_authenticate = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.body_mut().read_to_string().unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {url} answered {status} with non-JSON {text:?}: {e}"));
    Answer {
        status,
        www_authenticate,
        body,
    }
}

/// The `error` text of an error answer (asserting there is one).
pub fn error_text(a: &Answer) -> String {
    a.body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no `error` in {}", a.body))
        .to_string()
}
