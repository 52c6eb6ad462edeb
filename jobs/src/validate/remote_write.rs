//! Phase 2 checks of a `prometheus_remote_write` [[sink]]'s own keys.

use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::diag::Report;
use super::names::{is_label_name, is_reserved_label, RESERVED_LABEL_HINT};
use super::paths::{expand_path, Relative};
use super::source::duration;
use crate::env::Env;
use crate::job::{RemoteWrite, RemoteWriteAuth, SampleTime};
use crate::model::SinkFile;

/// The sink's kind as written in a job file.
pub const KIND: &str = "prometheus_remote_write";

/// Largest `max_samples_per_send` / `queue_capacity`: a request or a queue past
/// these would hold gigabytes; a typo, not a setting.
const MAX_SAMPLES_PER_SEND: i64 = 1_000_000;
const MAX_QUEUE_CAPACITY: i64 = 100_000_000;

const HTTPS_HINT: &str = "https is not supported yet: put a TLS-terminating proxy in front, or use http on a private network";

/// Checks the keys of a remote-write sink; `None` after reporting a problem.
pub fn check(
    r: &mut Report<'_>,
    sink: &Spanned<SinkFile>,
    relative: Relative<'_>,
    env: &Env,
) -> Option<RemoteWrite> {
    let s = sink.get_ref();
    let before = r.diags.len();
    if let Some(p) = &s.path {
        r.on(
            p,
            "a prometheus_remote_write sink does not take a `path`",
            "give the receiver's endpoint as url = \"http://prometheus:9090/api/v1/write\""
                .to_string(),
        );
    }
    let url = match &s.url {
        Some(u) => check_url(r, u),
        None => {
            r.on(
                sink,
                "a prometheus_remote_write sink needs a `url`",
                "add url = \"http://prometheus:9090/api/v1/write\" (Prometheus runs with --web.enable-remote-write-receiver)".to_string(),
            );
            None
        }
    };
    let timestamp = match &s.timestamp {
        None => Some(SampleTime::End),
        Some(t) => SampleTime::parse(t.get_ref()).or_else(|| {
            r.on(
                t,
                format!("unknown timestamp choice `{}`", t.get_ref()),
                "use \"end\" (a window's sample is stamped with its end, the default) or \"start\""
                    .to_string(),
            );
            None
        }),
    };
    let external_labels = s
        .external_labels
        .as_ref()
        .map_or(Some(Vec::new()), |l| check_labels(r, l));
    let auth = check_auth(r, s, relative, env);
    let timeout = positive(
        r,
        s.timeout.as_ref(),
        "timeout",
        RemoteWrite::DEFAULT_TIMEOUT,
    );
    let min_backoff = positive(
        r,
        s.min_backoff.as_ref(),
        "min_backoff",
        RemoteWrite::DEFAULT_MIN_BACKOFF,
    );
    let max_backoff = positive(
        r,
        s.max_backoff.as_ref(),
        "max_backoff",
        RemoteWrite::DEFAULT_MAX_BACKOFF,
    );
    if let (Some(min), Some(max)) = (min_backoff, max_backoff) {
        if max < min {
            let at = s.max_backoff.as_ref().or(s.min_backoff.as_ref());
            if let Some(at) = at {
                r.on(
                    at,
                    format!(
                        "max_backoff ({}) is shorter than min_backoff ({})",
                        crate::duration::format_duration(max),
                        crate::duration::format_duration(min)
                    ),
                    "the wait between retries starts at min_backoff and doubles up to max_backoff; make max_backoff at least min_backoff".to_string(),
                );
            }
        }
    }
    let max_samples = count(
        r,
        s.max_samples_per_send.as_ref(),
        "max_samples_per_send",
        RemoteWrite::DEFAULT_MAX_SAMPLES_PER_SEND,
        MAX_SAMPLES_PER_SEND,
    );
    let queue_capacity = count(
        r,
        s.queue_capacity.as_ref(),
        "queue_capacity",
        RemoteWrite::DEFAULT_QUEUE_CAPACITY,
        MAX_QUEUE_CAPACITY,
    );
    if r.diags.len() != before {
        return None;
    }
    Some(RemoteWrite {
        url: url?,
        timestamp: timestamp?,
        external_labels: external_labels?,
        auth: auth?,
        timeout: timeout?,
        max_samples_per_send: max_samples?,
        queue_capacity: queue_capacity?,
        min_backoff: min_backoff?,
        max_backoff: max_backoff?,
    })
}

/// What the checks of [`parse_http_url`] refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlProblem {
    Https,
    NotHttp,
    UserInfo,
    NoHost,
    BadPort(String),
    Whitespace,
}

/// Checks that `url` is `http://host[:port][/path][?query]`, without user info.
/// Returns it unchanged: the HTTP client parses it again.
pub fn parse_http_url(url: &str) -> Result<(), UrlProblem> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UrlProblem::Whitespace);
    }
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(UrlProblem::Https);
    }
    let Some(rest) = lower.strip_prefix("http://").map(|_| &url[7..]) else {
        return Err(UrlProblem::NotHttp);
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(UrlProblem::UserInfo);
    }
    // `[::1]:9090`: the port follows the bracket.
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':')),
            None => return Err(UrlProblem::NoHost),
        },
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(UrlProblem::NoHost);
    }
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |n| n == 0) {
            return Err(UrlProblem::BadPort(p.to_string()));
        }
    }
    Ok(())
}

fn check_url(r: &mut Report<'_>, u: &Spanned<String>) -> Option<String> {
    let url = u.get_ref();
    let problem = match parse_http_url(url) {
        Ok(()) => return Some(url.clone()),
        Err(p) => p,
    };
    let (message, hint) = match problem {
        UrlProblem::Https => (
            format!("the remote-write url `{url}` uses https, which this sink does not support yet"),
            HTTPS_HINT.to_string(),
        ),
        UrlProblem::NotHttp => (
            format!("the remote-write url `{url}` is not an http:// url"),
            "write e.g. url = \"http://prometheus:9090/api/v1/write\"".to_string(),
        ),
        UrlProblem::UserInfo => (
            "the remote-write url has a user name or password in it (before `@`): it would show in logs and `job status`".to_string(),
            "remove it from the url and use basic_auth = { username = \"...\", password_file = \"/path/to/password\" }".to_string(),
        ),
        UrlProblem::NoHost => (
            format!("the remote-write url `{url}` has no host"),
            "write e.g. url = \"http://prometheus:9090/api/v1/write\"".to_string(),
        ),
        UrlProblem::BadPort(p) => (
            format!("the remote-write url `{url}` has an invalid port `{p}`"),
            "a port is a number from 1 to 65535, e.g. url = \"http://prometheus:9090/api/v1/write\"".to_string(),
        ),
        UrlProblem::Whitespace => (
            "the remote-write url contains spaces or control characters".to_string(),
            "write e.g. url = \"http://prometheus:9090/api/v1/write\" (percent-encode spaces)"
                .to_string(),
        ),
    };
    r.on(u, message, hint);
    None
}

fn check_labels(
    r: &mut Report<'_>,
    labels: &Spanned<std::collections::BTreeMap<String, Spanned<String>>>,
) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut ok = true;
    // Keys carry no span of their own here: each problem points at its value.
    for (name, value) in labels.get_ref() {
        if name == "__name__" {
            r.on(
                value,
                "external_labels may not set `__name__`: it is each series' record name",
                "remove it; to tell tidemark's series apart, add a label such as source = \"tidemark\"".to_string(),
            );
            ok = false;
        } else if is_reserved_label(name) {
            r.on(
                value,
                format!("external_labels may not set `{name}`"),
                RESERVED_LABEL_HINT.to_string(),
            );
            ok = false;
        } else if !is_label_name(name) {
            r.on(
                value,
                format!("`{name}` in external_labels is not a valid label name"),
                "a label name is letters, digits and `_`, not starting with a digit, e.g. cluster"
                    .to_string(),
            );
            ok = false;
        } else if value.get_ref().is_empty() {
            r.on(
                value,
                format!("external label `{name}` has an empty value"),
                "Prometheus drops a label with an empty value; give it a value or remove it"
                    .to_string(),
            );
            ok = false;
        } else {
            out.push((name.clone(), value.get_ref().clone()));
        }
    }
    // A BTreeMap iterates in byte order of the names: already sorted.
    ok.then_some(out)
}

pub(super) fn check_auth(
    r: &mut Report<'_>,
    s: &SinkFile,
    relative: Relative<'_>,
    env: &Env,
) -> Option<Option<RemoteWriteAuth>> {
    match (&s.bearer_token_file, &s.basic_auth) {
        (Some(_), Some(b)) => {
            r.on(
                b,
                "a remote-write sink takes bearer_token_file or basic_auth, not both",
                "keep the one your receiver expects".to_string(),
            );
            None
        }
        (Some(t), None) => Some(Some(RemoteWriteAuth::BearerTokenFile(secret_path(
            r,
            t,
            "bearer_token_file",
            relative,
            env,
        )?))),
        (None, Some(b)) => {
            let b = b.get_ref();
            if b.username.get_ref().is_empty() || b.username.get_ref().contains(':') {
                r.on(
                    &b.username,
                    "the basic_auth username is empty or contains `:`",
                    "HTTP basic auth cannot carry a `:` in the user name; write the user name alone".to_string(),
                );
                return None;
            }
            let password_file = secret_path(
                r,
                &b.password_file,
                "basic_auth password_file",
                relative,
                env,
            )?;
            Some(Some(RemoteWriteAuth::Basic {
                username: b.username.get_ref().clone(),
                password_file,
            }))
        }
        (None, None) => Some(None),
    }
}

fn secret_path(
    r: &mut Report<'_>,
    p: &Spanned<String>,
    what: &str,
    relative: Relative<'_>,
    env: &Env,
) -> Option<PathBuf> {
    if p.get_ref().trim().is_empty() {
        r.on(
            p,
            format!("the {what} path is empty"),
            "write the path of a file holding the secret, e.g. \"/etc/tidemark/token\"".to_string(),
        );
        return None;
    }
    let expanded = expand_path(r, p, &format!("the {what} path"), env)?;
    relative
        .resolve(r, p, &expanded.text, &format!("the {what} path"))
        .map(PathBuf::from)
}

pub(super) fn positive(
    r: &mut Report<'_>,
    value: Option<&Spanned<String>>,
    key: &str,
    default: Duration,
) -> Option<Duration> {
    let (d, at) = duration(r, value, key, default)?;
    if let (true, Some(at)) = (d.is_zero(), at) {
        r.at(
            at,
            format!("{key} must be greater than 0s"),
            format!(
                "the default is \"{}\"",
                crate::duration::format_duration(default)
            ),
        );
        return None;
    }
    Some(d)
}

fn count(
    r: &mut Report<'_>,
    value: Option<&Spanned<i64>>,
    key: &str,
    default: usize,
    max: i64,
) -> Option<usize> {
    let Some(v) = value else {
        return Some(default);
    };
    let n = *v.get_ref();
    if (1..=max).contains(&n) {
        return usize::try_from(n).ok();
    }
    r.on(
        v,
        format!("{key} = {n} is out of range"),
        format!("use a number from 1 to {max}; the default is {default}"),
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_without_user_info() {
        for ok in [
            "http://prometheus:9090/api/v1/write",
            "http://127.0.0.1:1/x",
            "HTTP://h",
            "http://[::1]:9090/api/v1/write",
            "http://h/api/v1/write?tenant=a",
        ] {
            assert_eq!(parse_http_url(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("https://p:9090/api/v1/write", UrlProblem::Https),
            ("ftp://p", UrlProblem::NotHttp),
            ("p:9090", UrlProblem::NotHttp),
            ("http://u:pw@p:9090/api/v1/write", UrlProblem::UserInfo),
            ("http:///api/v1/write", UrlProblem::NoHost),
            ("http://p:0/x", UrlProblem::BadPort("0".into())),
            ("http://p:99999/x", UrlProblem::BadPort("99999".into())),
            ("http://p/a b", UrlProblem::Whitespace),
        ] {
            assert_eq!(parse_http_url(bad), Err(why), "{bad}");
        }
    }
}

#[cfg(test)]
mod job_tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::job::{RemoteWrite, RemoteWriteAuth, SampleTime, SinkKind};

    fn job(sink: &str) -> Result<crate::Job, String> {
        let text = format!(
            r#"name = "j"
[source]
kind = "file"
include = ["/logs/*.log"]
[parse]
format = "nginx"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "prometheus_remote_write"
series = "hosts"
{sink}
"#
        );
        crate::from_str(&text, "j.toml", Path::new("/srv")).map_err(|d| d.to_string())
    }

    fn rw(j: &crate::Job) -> &RemoteWrite {
        match &j.sinks[0].kind {
            SinkKind::RemoteWrite(rw) => rw,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_every_key() {
        let j = job(r#"url = "http://p:9090/api/v1/write""#).unwrap();
        assert_eq!(
            *rw(&j),
            RemoteWrite {
                url: "http://p:9090/api/v1/write".into(),
                timestamp: SampleTime::End,
                external_labels: vec![],
                auth: None,
                timeout: Duration::from_secs(30),
                max_samples_per_send: 2000,
                queue_capacity: 100_000,
                min_backoff: Duration::from_millis(30),
                max_backoff: Duration::from_secs(5),
            }
        );
        let j = job(r#"url = "http://p:9090/api/v1/write"
timestamp = "start"
external_labels = { zone = "a", cluster = "eu1" }
basic_auth = { username = "u", password_file = "secrets/pw" }
timeout = "2s"
max_samples_per_send = 10
queue_capacity = 50
min_backoff = "1ms"
max_backoff = "1s""#)
        .unwrap();
        let rw = rw(&j);
        assert_eq!(rw.timestamp, SampleTime::Start);
        assert_eq!(
            rw.external_labels,
            vec![
                ("cluster".into(), "eu1".into()),
                ("zone".into(), "a".into())
            ]
        );
        assert_eq!(
            rw.auth,
            Some(RemoteWriteAuth::Basic {
                username: "u".into(),
                password_file: "/srv/secrets/pw".into()
            })
        );
        assert_eq!(
            (rw.timeout, rw.max_samples_per_send, rw.queue_capacity),
            (Duration::from_secs(2), 10, 50)
        );
        assert_eq!(
            (rw.min_backoff, rw.max_backoff),
            (Duration::from_millis(1), Duration::from_secs(1))
        );
        let j = job("url = \"http://p/w\"\nbearer_token_file = \"/etc/t\"").unwrap();
        assert_eq!(
            self::rw(&j).auth,
            Some(RemoteWriteAuth::BearerTokenFile("/etc/t".into()))
        );
    }

    #[test]
    fn a_submitted_job_needs_an_absolute_secret_path() {
        let text = r#"name = "j"
[source]
kind = "file"
include = ["/logs/*.log"]
[parse]
format = "nginx"
[[metric]]
name = "reqs"
kind = "counter"
[[sink]]
kind = "prometheus_remote_write"
series = "hosts"
url = "http://p:9090/api/v1/write"
bearer_token_file = "token"
"#;
        let err = crate::submitted(
            text,
            "j.toml",
            &crate::Env::from_vars(Vec::<(String, String)>::new()),
        )
        .err()
        .map(|d| d.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("bearer_token_file path `token` is a relative path"),
            "{err}"
        );
        let ok = text.replace("\"token\"", "\"/etc/tidemark/token\"");
        assert!(crate::submitted(
            &ok,
            "j.toml",
            &crate::Env::from_vars(Vec::<(String, String)>::new())
        )
        .is_ok());
    }
}
