//! One `POST /api/v2/alerts`, and what its answer means for the sender: done,
//! try again later, or give up (the job fails).

use std::time::Duration;

use ureq::http::StatusCode;

/// How the sink authenticates; the secrets were read from their files when the
/// sink opened. Never printed: `Debug` shows only which kind it is.
#[derive(Clone)]
pub enum Credentials {
    /// `Authorization: Bearer TOKEN`.
    Bearer(String),
    /// `Authorization: Basic base64(USER:PASSWORD)`.
    Basic { username: String, password: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Bearer(_) => f.write_str("Bearer(<secret>)"),
            Credentials::Basic { username, .. } => {
                write!(f, "Basic {{ username: {username:?}, password: <secret> }}")
            }
        }
    }
}

impl Credentials {
    fn header(&self) -> String {
        match self {
            Credentials::Bearer(t) => format!("Bearer {t}"),
            Credentials::Basic { username, password } => {
                use base64::Engine;
                let pair = format!("{username}:{password}");
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
        }
    }
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Alertmanager took the alerts (2xx).
    Delivered,
    /// Not now (5xx, 429, 408, or no answer): try again after the backoff, or
    /// after `retry_after` if the receiver said so.
    Retry {
        why: String,
        retry_after: Option<Duration>,
    },
    /// Refused for good (another status): the request itself is wrong, and
    /// sending it again would not help.
    Refused {
        status: u16,
        body: String,
        hint: &'static str,
    },
    /// The request could not be built or written here (a header value the
    /// client refuses): it never can be, so the sink fails.
    Unsendable { why: String },
}

/// A client for one Alertmanager.
pub struct Client {
    agent: ureq::Agent,
    /// `BASE/api/v2/alerts`.
    endpoint: String,
    auth: Option<Credentials>,
}

impl Client {
    /// A client posting to `base`'s `/api/v2/alerts`, each attempt bounded by
    /// `timeout`.
    pub fn new(base: &str, timeout: Duration, auth: Option<Credentials>) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // Credentials go to the Alertmanager named, never to a proxy from
            // the environment.
            .proxy(None)
            .http_status_as_error(false)
            // A redirect is a wrong URL (fatal, said as such), not a detour for
            // the alerts and credentials.
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .build()
            .into();
        Client {
            agent,
            endpoint: format!("{}/api/v2/alerts", base.trim_end_matches('/')),
            auth,
        }
    }

    /// Where alerts go: `BASE/api/v2/alerts`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Posts `body` (a JSON array of alerts).
    pub fn post(&self, body: &str) -> Outcome {
        let mut req = self
            .agent
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("tidemark/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(a) = &self.auth {
            req = req.header("authorization", a.header());
        }
        match req.send(body) {
            Err(e) if crate::http_error::built_wrong(&e) => {
                Outcome::Unsendable { why: e.to_string() }
            }
            Err(e) => Outcome::Retry {
                why: e.to_string(),
                retry_after: None,
            },
            Ok(mut r) => {
                let status = r.status();
                let retry_after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let text = r
                    .body_mut()
                    .with_config()
                    .limit(4096)
                    .read_to_string()
                    .unwrap_or_default();
                let mut text = crate::http_error::text_only(text.into_bytes());
                if text.len() > 200 {
                    let mut cut = 200;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                    text.push('…');
                }
                // On one line: a newline in the answer would forge a log line.
                let text: String = text
                    .trim()
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                classify(status, text, retry_after)
            }
        }
    }
}

/// What `status` (with the answer's `body`) means for the sender.
pub fn classify(status: StatusCode, body: String, retry_after: Option<Duration>) -> Outcome {
    let code = status.as_u16();
    if status.is_success() {
        return Outcome::Delivered;
    }
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        return Outcome::Retry {
            why: format!(
                "HTTP {code}{}",
                if body.is_empty() {
                    String::new()
                } else {
                    format!(": {body}")
                }
            ),
            retry_after,
        };
    }
    let hint = match code {
        401 | 403 => "check the sink's bearer_token_file or basic_auth, and what the Alertmanager (or the proxy in front of it) expects",
        404 | 405 => "check the sink's url: it is the Alertmanager's base URL (e.g. http://alertmanager:9093, with its --web.route-prefix if it has one); the sink adds /api/v2/alerts, which Alertmanager 0.16 and later serve",
        400 | 422 => "Alertmanager refused the alerts themselves: check the sink's generator_url (an absolute URI) and the alert's labels and annotations",
        300..=399 => "the url redirects: give the sink the address the redirect leads to",
        _ => "check the sink's url and what answers there",
    };
    Outcome::Refused {
        status: code,
        body,
        hint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_as_delivered_retried_or_refused() {
        let c = |code: u16| classify(StatusCode::from_u16(code).unwrap(), "x".into(), None);
        for code in [200, 202, 204] {
            assert_eq!(c(code), Outcome::Delivered, "{code}");
        }
        for code in [500, 502, 503, 504, 429, 408] {
            assert!(matches!(c(code), Outcome::Retry { .. }), "{code}");
        }
        for code in [400, 401, 403, 404, 405, 413, 422, 301, 307] {
            assert!(
                matches!(c(code), Outcome::Refused { status, .. } if status == code),
                "{code}"
            );
        }
        let Outcome::Refused { hint, .. } = c(401) else {
            unreachable!()
        };
        assert!(hint.contains("bearer_token_file"), "{hint}");
        let Outcome::Refused { hint, .. } = c(404) else {
            unreachable!()
        };
        assert!(hint.contains("/api/v2/alerts"), "{hint}");
        let retry = classify(
            StatusCode::TOO_MANY_REQUESTS,
            String::new(),
            Some(Duration::from_secs(7)),
        );
        assert_eq!(
            retry,
            Outcome::Retry {
                why: "HTTP 429".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn basic_auth_is_base64_as_rfc_4648_says_and_debug_hides_secrets() {
        let c = Credentials::Basic {
            username: "am".into(),
            password: "s3cret".into(),
        };
        assert_eq!(c.header(), "Basic YW06czNjcmV0");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(!format!("{:?}", Credentials::Bearer("tok3n".into())).contains("tok3n"));
    }
}
