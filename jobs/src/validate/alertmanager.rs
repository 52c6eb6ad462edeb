//! Phase 2 checks of an `alertmanager` [[sink]]'s own keys. The url,
//! credentials and timeout are checked as a remote-write sink's are.

use toml::Spanned;

use super::diag::Report;
use super::paths::Relative;
use super::remote_write::{self, parse_http_url, UrlProblem};
use crate::env::Env;
use crate::job::Alertmanager;
use crate::model::SinkFile;

/// The sink's kind as written in a job file.
pub const KIND: &str = "alertmanager";

const EXAMPLE: &str = "url = \"http://alertmanager:9093\"";

/// Checks the keys of an alertmanager sink; `None` after reporting a problem.
pub fn check(
    r: &mut Report<'_>,
    sink: &Spanned<SinkFile>,
    relative: Relative<'_>,
    env: &Env,
) -> Option<Alertmanager> {
    let s = sink.get_ref();
    let before = r.diags.len();
    refuse_keys(r, s);
    let url = match &s.url {
        Some(u) => check_url(r, u),
        None => {
            r.on(
                sink,
                "an alertmanager sink needs a `url`",
                format!("add the Alertmanager's base URL, e.g. {EXAMPLE} (alerts go to its /api/v2/alerts)"),
            );
            None
        }
    };
    let auth = if let (Some(_), Some(b)) = (&s.bearer_token_file, &s.basic_auth) {
        r.on(
            b,
            "an alertmanager sink takes bearer_token_file or basic_auth, not both",
            "keep the one your Alertmanager (or the proxy in front of it) expects".to_string(),
        );
        None
    } else {
        remote_write::check_auth(r, s, relative, env)
    };
    let timeout = remote_write::positive(
        r,
        s.timeout.as_ref(),
        "timeout",
        Alertmanager::DEFAULT_TIMEOUT,
    );
    let resend_interval = remote_write::positive(
        r,
        s.resend_interval.as_ref(),
        "resend_interval",
        Alertmanager::DEFAULT_RESEND_INTERVAL,
    );
    if let (Some(d), Some(at)) = (resend_interval, &s.resend_interval) {
        if d < std::time::Duration::from_secs(1) {
            r.on(
                at,
                format!("resend_interval `{}` is shorter than 1s", at.get_ref()),
                "active alerts are re-sent this often to keep them alive in Alertmanager; Prometheus re-sends every 1m (the default)".to_string(),
            );
        }
    }
    let generator_url = s.generator_url.as_ref().map(|g| {
        if !is_absolute_uri(g.get_ref()) {
            r.on(
                g,
                format!("generator_url `{}` is not an absolute URI", g.get_ref()),
                "Alertmanager refuses alerts whose generatorURL is not a URI: write e.g. generator_url = \"http://grafana.example/d/nginx\", or leave it out for tidemark://HOST/jobs/JOB".to_string(),
            );
        }
        g.get_ref().clone()
    });
    if r.diags.len() != before {
        return None;
    }
    Some(Alertmanager {
        url: url?.trim_end_matches('/').to_string(),
        resend_interval: resend_interval?,
        timeout: timeout?,
        generator_url,
        auth: auth?,
    })
}

/// Reports the jsonl keys an alertmanager sink has no use for (the other sinks' keys:
/// [`super::sink_keys`]).
fn refuse_keys(r: &mut Report<'_>, s: &SinkFile) {
    if let Some(p) = &s.path {
        r.on(
            p,
            "an alertmanager sink does not take a `path`",
            format!("give the Alertmanager's base URL as {EXAMPLE}; to keep the alerts' transcript in a file, use a jsonl sink"),
        );
    }
    if let Some(v) = &s.series {
        r.on(
            v,
            "an alertmanager sink does not take `series`: it sends the job's alerts ([[alert]]), not its series",
            "remove `series`; the alerts' expressions choose the series they watch".to_string(),
        );
    }
}

fn check_url(r: &mut Report<'_>, u: &Spanned<String>) -> Option<String> {
    let url = u.get_ref();
    let problem = match parse_http_url(url) {
        Ok(()) if url.contains(['?', '#']) => {
            r.on(
                u,
                format!("the alertmanager url `{url}` has a query or fragment"),
                format!("give the Alertmanager's base URL only, e.g. {EXAMPLE}: the sink adds /api/v2/alerts"),
            );
            return None;
        }
        Ok(()) => return Some(url.clone()),
        Err(p) => p,
    };
    let (message, hint) = match problem {
        UrlProblem::Https => (
            format!("the alertmanager url `{url}` uses https, which this sink does not support yet"),
            "put a TLS-terminating proxy in front, or use http on a private network".to_string(),
        ),
        UrlProblem::UserInfo => (
            "the alertmanager url has a user name or password in it (before `@`): it would show in logs and `job status`".to_string(),
            "remove it from the url and use basic_auth = { username = \"...\", password_file = \"/path/to/password\" }".to_string(),
        ),
        UrlProblem::NotHttp => (format!("the alertmanager url `{url}` is not an http:// url"), format!("write e.g. {EXAMPLE}")),
        UrlProblem::NoHost => (format!("the alertmanager url `{url}` has no host"), format!("write e.g. {EXAMPLE}")),
        UrlProblem::BadPort(p) => (
            format!("the alertmanager url `{url}` has an invalid port `{p}`"),
            format!("a port is a number from 1 to 65535, e.g. {EXAMPLE}"),
        ),
        UrlProblem::Whitespace => (
            "the alertmanager url contains spaces or control characters".to_string(),
            format!("write e.g. {EXAMPLE}"),
        ),
    };
    r.on(u, message, hint);
    None
}

/// `scheme:rest` (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`),
/// without spaces or control characters.
fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut c = scheme.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic())
        && c.all(|ch| ch.is_ascii_alphanumeric() || "+-.".contains(ch))
        && !rest.is_empty()
        && !s.chars().any(|ch| ch.is_whitespace() || ch.is_control())
        && escapes_are_whole(s)
}

/// Every `%` starts a two-digit hex escape: Go's url.Parse (Alertmanager's)
/// refuses `http://x/%zz`, and so every alert that carries it.
fn escapes_are_whole(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || (b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

#[cfg(test)]
mod uri_tests {
    #[test]
    fn percent_escapes_must_be_two_hex_digits_as_go_requires() {
        assert!(super::is_absolute_uri("http://x/a%20b%C3%A9"));
        for bad in ["http://x/%zz", "http://x/a%2", "http://x/%", "http://x/%g0"] {
            assert!(!super::is_absolute_uri(bad), "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::job::{Alertmanager, RemoteWriteAuth, SinkKind};

    fn job(sink: &str) -> Result<crate::Job, String> {
        job_with(sink, "[[alert]]\nname = \"Many\"\nexpr = \"reqs > 10\"")
    }

    fn job_with(sink: &str, alert: &str) -> Result<crate::Job, String> {
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
{alert}
[[sink]]
kind = "jsonl"
path = "/out/j.jsonl"
series = "hosts"
[[sink]]
kind = "alertmanager"
{sink}
"#
        );
        crate::from_str(&text, "j.toml", Path::new("/srv")).map_err(|d| d.to_string())
    }

    fn am(j: &crate::Job) -> &Alertmanager {
        match &j.sinks[1].kind {
            SinkKind::Alertmanager(am) => am,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_every_key() {
        let j = job(r#"url = "http://am:9093/""#).unwrap();
        assert_eq!(
            *am(&j),
            Alertmanager {
                url: "http://am:9093".into(),
                resend_interval: Duration::from_secs(60),
                timeout: Duration::from_secs(10),
                generator_url: None,
                auth: None,
            }
        );
        let j = job(r#"url = "http://am:9093/prefix"
resend_interval = "30s"
timeout = "2s"
generator_url = "http://tidemark.example/jobs/j"
bearer_token_file = "secrets/token""#)
        .unwrap();
        let a = am(&j);
        assert_eq!(a.url, "http://am:9093/prefix");
        assert_eq!(
            (a.resend_interval, a.timeout),
            (Duration::from_secs(30), Duration::from_secs(2))
        );
        assert_eq!(
            a.generator_url.as_deref(),
            Some("http://tidemark.example/jobs/j")
        );
        assert_eq!(
            a.auth,
            Some(RemoteWriteAuth::BearerTokenFile(
                "/srv/secrets/token".into()
            ))
        );
        assert_eq!(j.sinks[1].kind.auth(), a.auth.as_ref());
    }

    #[test]
    fn bad_keys_are_refused_with_a_hint() {
        for (keys, says) in [
            ("", "needs a `url`"),
            (r#"url = "https://am:9093""#, "https"),
            (r#"url = "http://u:p@am:9093""#, "user name or password"),
            (r#"url = "http://am:9093/?x=1""#, "query or fragment"),
            ("url = \"http://am:9093\"\nseries = \"rules\"", "does not take `series`"),
            ("url = \"http://am:9093\"\npath = \"x.jsonl\"", "does not take a `path`"),
            ("url = \"http://am:9093\"\nresend_interval = \"0s\"", "resend_interval must be greater than 0s"),
            ("url = \"http://am:9093\"\nresend_interval = \"10ms\"", "shorter than 1s"),
            ("url = \"http://am:9093\"\ngenerator_url = \"jobs/nginx\"", "not an absolute URI"),
            ("url = \"http://am:9093\"\ngenerator_url = \"http://x/%zz\"", "not an absolute URI"),
            ("url = \"http://am:9093\"\ngenerator_url = \"http://x/a%2\"", "not an absolute URI"),
            ("url = \"http://am:9093\"\nqueue_capacity = 10", "`queue_capacity` is a setting of a prometheus_remote_write sink"),
            (
                "url = \"http://am:9093\"\nbearer_token_file = \"/t\"\nbasic_auth = { username = \"u\", password_file = \"/p\" }",
                "bearer_token_file or basic_auth, not both",
            ),
        ] {
            let err = job(keys).err().unwrap_or_default();
            assert!(err.contains(says), "{keys}: {err}");
            assert!(err.contains("j.toml:") && err.contains("hint:"), "{err}");
        }
        let err = job_with("url = \"http://am:9093\"", "").unwrap_err();
        assert!(
            err.contains(
                "an alertmanager sink sends the job's alerts, but the job has no [[alert]]"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_submitted_job_may_page_with_an_absolute_secret_path() {
        let text = format!(
            "{}[[alert]]\nname = \"Many\"\nexpr = \"reqs > 10\"\n[[sink]]\nkind = \"alertmanager\"\nurl = \"http://am:9093\"\nbearer_token_file = \"token\"\n",
            "name = \"j\"\n[source]\nkind = \"file\"\ninclude = [\"/logs/*.log\"]\n[parse]\nformat = \"nginx\"\n[[metric]]\nname = \"reqs\"\nkind = \"counter\"\n"
        );
        let env = crate::Env::from_vars(Vec::<(String, String)>::new());
        let err = crate::submitted(&text, "j.toml", &env)
            .err()
            .map(|d| d.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("bearer_token_file path `token` is a relative path"),
            "{err}"
        );
        let ok = text.replace("\"token\"", "\"/etc/tidemark/am-token\"");
        let job = crate::submitted(&ok, "j.toml", &env)
            .map_err(|d| d.to_string())
            .unwrap();
        assert!(matches!(job.sinks[0].kind, SinkKind::Alertmanager(_)));
    }
}
