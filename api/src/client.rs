//! A blocking client for the control API, used by `tidemark job submit|list|status|stop`.
//!
//! Built on [`ureq`] rather than `reqwest::blocking`: the CLI makes one request and
//! exits, so a blocking client without an async runtime is the natural fit, and ureq
//! is pure Rust with a small dependency tree (`reqwest::blocking` starts a tokio
//! runtime on a background thread per client and brings hyper, tower and a TLS
//! stack). ureq is used without TLS, matching the server, which speaks plain HTTP:
//! reach a remote cluster over a trusted network, an SSH tunnel or a TLS-terminating
//! proxy.

use std::time::Duration;

use serde::de::DeserializeOwned;
use ureq::http::StatusCode;

use crate::model::{ErrorBody, Health, JobStatus, JobSummary, Stopped};
use crate::server::DEFAULT_MAX_BODY_BYTES;

const API_HINT: &str = "pass --api as http://HOST:PORT, e.g. http://127.0.0.1:7070";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not something the client can use.
    #[error("invalid API address `{url}`: {reason}\n  hint: {API_HINT}")]
    BadUrl { url: String, reason: String },
    /// No HTTP answer: connection refused, unknown host, timeout, broken connection.
    #[error(
        "cannot reach the tidemark API at {url}: {source}\n  hint: check that the cluster \
         is running and that --api names the control address of its process 0 \
         (default http://127.0.0.1:7070)"
    )]
    Unreachable {
        url: String,
        #[source]
        source: ureq::Error,
    },
    /// The server answered with an error status and an error message.
    #[error("{message} (HTTP {}){}", status_text(*status), diagnostics_suffix(diagnostics))]
    Api {
        status: u16,
        /// The server's `error` text: what went wrong and what to do.
        message: String,
        /// For an invalid job: the `tidemark validate` text of its problems.
        diagnostics: Option<String>,
    },
    /// The server answered something that is not the control API's JSON.
    #[error(
        "unexpected answer from {url} (HTTP {}): {detail}\n  hint: check that --api names \
         a tidemark cluster's control address",
        status_text(*status)
    )]
    BadResponse {
        url: String,
        status: u16,
        detail: String,
    },
    /// The job file is larger than the server accepts; not sent.
    #[error(
        "the job file is {size} bytes, more than the {limit} bytes the API accepts\n  \
         hint: a job file is a few kilobytes; check that the right file was given"
    )]
    TooLarge { size: usize, limit: usize },
}

impl ClientError {
    /// The HTTP status of an error answer, if the server gave one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::BadResponse { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The validation messages of a rejected job, if that is what this is.
    pub fn diagnostics(&self) -> Option<&str> {
        match self {
            ClientError::Api { diagnostics, .. } => diagnostics.as_deref(),
            _ => None,
        }
    }
}

fn status_text(status: u16) -> String {
    match StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

fn diagnostics_suffix(diagnostics: &Option<String>) -> String {
    diagnostics
        .as_deref()
        .map(|d| format!("\n{d}"))
        .unwrap_or_default()
}

/// A connection to one cluster's control API.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client for the API at `base_url` (`http://HOST:PORT`; a bare `HOST:PORT`
    /// means `http://HOST:PORT`), sending `token` as a bearer token when given.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Client, ClientError> {
        let trimmed = base_url.trim();
        let bad = |reason: &str| ClientError::BadUrl {
            url: base_url.to_string(),
            reason: reason.to_string(),
        };
        let base = match trimmed.split_once("://") {
            None => format!("http://{}", trimmed.trim_end_matches('/')),
            Some(("http", rest)) => format!("http://{}", rest.trim_end_matches('/')),
            Some(("https", _)) => {
                return Err(bad(
                    "https is not supported: the control API speaks plain HTTP \
                     (use an SSH tunnel or a TLS-terminating proxy for remote access)",
                ))
            }
            Some((scheme, _)) => {
                return Err(bad(&format!("`{scheme}` is not an http:// URL")));
            }
        };
        let host = &base["http://".len()..];
        if host.is_empty() {
            return Err(bad("it names no host"));
        }
        if host.contains(['/', '?', '#']) {
            return Err(bad("it must be just http://HOST:PORT, without a path"));
        }
        // The API takes no user name (only the bearer token), and a `user@` the
        // HTTP client strips would hide the host from `tidemark job`'s check of
        // who listens there before the token is sent.
        if host.contains('@') {
            return Err(bad(
                "it must not have a user name (`user@`): the API authenticates by its token only",
            ));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // No proxy from `http_proxy`/`ALL_PROXY`: the token would go to the
            // proxy, which `tidemark job`'s check of who listens never sees, in
            // clear text. Reach a remote cluster through an SSH tunnel instead.
            .proxy(None)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        Ok(Client { base, token, agent })
    }

    /// The base URL requests go to, e.g. `http://127.0.0.1:7070`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Submits a job (its TOML text). Diagnostics of an invalid job name the file
    /// `<submitted job>`; use [`Client::submit_file`] to name it.
    pub fn submit(&self, toml: &str) -> Result<JobSummary, ClientError> {
        self.submit_as(toml, None)
    }

    /// Submits a job read from `file_name`, which diagnostics then name, so they read
    /// like `tidemark validate FILE_NAME`.
    pub fn submit_file(&self, toml: &str, file_name: &str) -> Result<JobSummary, ClientError> {
        self.submit_as(toml, Some(file_name))
    }

    fn submit_as(&self, toml: &str, file_name: Option<&str>) -> Result<JobSummary, ClientError> {
        if toml.len() > DEFAULT_MAX_BODY_BYTES {
            return Err(ClientError::TooLarge {
                size: toml.len(),
                limit: DEFAULT_MAX_BODY_BYTES,
            });
        }
        let url = format!("{}/jobs", self.base);
        let mut request = self
            .agent
            .post(&url)
            .header("content-type", "application/toml");
        if let Some(file) = file_name {
            request = request.query("file", file);
        }
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let answer = request.send(toml);
        self.decode(&url, answer, |s| s == StatusCode::CREATED)
    }

    /// Every job in the cluster.
    pub fn list(&self) -> Result<Vec<JobSummary>, ClientError> {
        self.get("/jobs".to_string())
    }

    /// One job's status.
    pub fn status(&self, name: &str) -> Result<JobStatus, ClientError> {
        self.get(format!("/jobs/{}", encode_segment(name)))
    }

    /// Stops a job.
    pub fn stop(&self, name: &str) -> Result<Stopped, ClientError> {
        let url = format!("{}/jobs/{}", self.base, encode_segment(name));
        let mut request = self.agent.delete(&url);
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let answer = request.call();
        self.decode(&url, answer, |s| s.is_success())
    }

    /// The cluster's health. An unhealthy cluster (503) is still `Ok`, with
    /// `ok: false`.
    pub fn health(&self) -> Result<Health, ClientError> {
        let url = format!("{}/healthz", self.base);
        let answer = self.agent.get(&url).call();
        self.decode(&url, answer, |s| {
            s.is_success() || s == StatusCode::SERVICE_UNAVAILABLE
        })
    }

    fn get<T: DeserializeOwned>(&self, path: String) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.agent.get(&url);
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let answer = request.call();
        self.decode(&url, answer, |s| s.is_success())
    }

    /// Turns an answer into `T` when `expected(status)`, else into the server's error.
    fn decode<T: DeserializeOwned>(
        &self,
        url: &str,
        answer: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        expected: impl Fn(StatusCode) -> bool,
    ) -> Result<T, ClientError> {
        let unreachable = |source| ClientError::Unreachable {
            url: url.to_string(),
            source,
        };
        let mut response = answer.map_err(unreachable)?;
        let status = response.status();
        let body = response.body_mut().read_to_string().map_err(unreachable)?;
        if expected(status) {
            return serde_json::from_str(&body).map_err(|e| ClientError::BadResponse {
                url: url.to_string(),
                status: status.as_u16(),
                detail: format!("the JSON body does not fit: {e}"),
            });
        }
        match serde_json::from_str::<ErrorBody>(&body) {
            Ok(err) => Err(ClientError::Api {
                status: status.as_u16(),
                message: err.error,
                diagnostics: err.diagnostics,
            }),
            Err(_) => Err(ClientError::BadResponse {
                url: url.to_string(),
                status: status.as_u16(),
                detail: snippet(&body),
            }),
        }
    }
}

/// The first line of a body, shortened, for error messages.
fn snippet(body: &str) -> String {
    let line = body.trim().lines().next().unwrap_or("");
    if line.is_empty() {
        return "an empty body".to_string();
    }
    let mut s: String = line.chars().take(200).collect();
    if s.len() < line.len() {
        s.push('…');
    }
    format!("`{s}`")
}

/// Percent-encodes a URL path segment (everything but RFC 3986 unreserved bytes).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_forms() {
        let c = Client::new("127.0.0.1:7070", None).unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:7070");
        let c = Client::new(" http://h:1/ ", None).unwrap();
        assert_eq!(c.base_url(), "http://h:1");
        for bad in [
            "https://h:1",
            "ftp://h",
            "http://",
            "http://h:1/api",
            "http://x@127.0.0.1:1",
            "x:y@h:1",
        ] {
            let e = Client::new(bad, None).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("--api"), "{bad}: {text}");
        }
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("nginx-access_1"), "nginx-access_1");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn api_error_display_has_message_status_and_diagnostics() {
        let e = ClientError::Api {
            status: 400,
            message: "the job is invalid".into(),
            diagnostics: Some("f:1:1: error: x\n  hint: y".into()),
        };
        assert_eq!(
            e.to_string(),
            "the job is invalid (HTTP 400 Bad Request)\nf:1:1: error: x\n  hint: y"
        );
        assert_eq!(e.status(), Some(400));
    }
}
