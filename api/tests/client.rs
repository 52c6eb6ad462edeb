//! The blocking client against the real server (with a mock cluster) on 127.0.0.1:0.

mod common;

use common::{valid_job, TestServer, TOKEN};
use tidemark_api::{Auth, Client, ClientError, JobState};

fn client(s: &TestServer, token: Option<&str>) -> Client {
    Client::new(&s.url(""), token.map(str::to_string)).unwrap()
}

#[test]
fn client_submits_lists_shows_and_stops_jobs() {
    let s = TestServer::start(common::auth());
    let c = client(&s, Some(TOKEN));
    let summary = c.submit(&valid_job("web")).unwrap();
    assert_eq!(summary.name, "web");
    assert_eq!(summary.state, JobState::Running);
    c.submit(&valid_job("api")).unwrap();

    let names: Vec<_> = c.list().unwrap().into_iter().map(|j| j.name).collect();
    assert_eq!(names, ["api", "web"]);

    let status = c.status("web").unwrap();
    assert_eq!(status.summary, summary);
    assert_eq!(
        status.watermark.unwrap().to_string(),
        "2026-11-20T10:02:03Z"
    );
    assert_eq!(status.errors["late"], 3);
    assert_eq!(status.lines_per_sec, 1234.5);

    let stopped = c.stop("web").unwrap();
    assert_eq!(stopped.name, "web");
    let names: Vec<_> = c.list().unwrap().into_iter().map(|j| j.name).collect();
    assert_eq!(names, ["api"]);

    let health = c.health().unwrap();
    assert!(health.ok);
    assert_eq!(health.jobs, 1);
}

#[test]
fn client_error_for_invalid_job_shows_message_status_and_validate_text() {
    let s = TestServer::start(common::auth());
    let c = client(&s, Some(TOKEN));
    let text = valid_job("9lives");
    let e = c.submit_file(&text, "jobs/web.toml").unwrap_err();
    let expected = tidemark_jobs::submitted(&text, "jobs/web.toml", &tidemark_jobs::Env::empty())
        .unwrap_err()
        .to_string();
    assert_eq!(e.status(), Some(400));
    assert_eq!(e.diagnostics(), Some(expected.as_str()));
    let shown = e.to_string();
    assert!(shown.contains("the job is invalid (1 problem)"), "{shown}");
    assert!(shown.contains("(HTTP 400 Bad Request)"), "{shown}");
    assert!(shown.ends_with(&expected), "{shown}");
    assert!(
        shown.contains("jobs/web.toml:1:8: error: job name `9lives` is not valid"),
        "{shown}"
    );
}

#[test]
fn client_errors_for_duplicate_and_unknown_jobs() {
    let s = TestServer::start(common::auth());
    let c = client(&s, Some(TOKEN));
    c.submit(&valid_job("web")).unwrap();

    let e = c.submit(&valid_job("web")).unwrap_err();
    assert_eq!(e.status(), Some(409));
    let shown = e.to_string();
    assert!(
        shown.starts_with("a job named `web` is already running"),
        "{shown}"
    );
    assert!(shown.ends_with("(HTTP 409 Conflict)"), "{shown}");

    for e in [c.status("nope").unwrap_err(), c.stop("nope").unwrap_err()] {
        assert_eq!(e.status(), Some(404));
        let shown = e.to_string();
        assert!(shown.contains("no job named `nope`"), "{shown}");
        assert!(shown.contains("(HTTP 404 Not Found)"), "{shown}");
    }

    // Names that are not URL-safe reach the server intact.
    let e = c.status("a b/c").unwrap_err();
    assert!(e.to_string().contains("no job named `a b/c`"), "{e}");
}

#[test]
fn client_sends_the_token() {
    let s = TestServer::start(Auth::bearer("s3cret").unwrap());
    let e = client(&s, None).list().unwrap_err();
    assert_eq!(e.status(), Some(401));
    let shown = e.to_string();
    assert!(shown.contains("this API requires a token"), "{shown}");
    assert!(shown.contains("(HTTP 401 Unauthorized)"), "{shown}");

    let e = client(&s, Some("wrong"))
        .submit(&valid_job("web"))
        .unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert!(e.to_string().contains("not accepted"), "{e}");

    let c = client(&s, Some("s3cret"));
    c.submit(&valid_job("web")).unwrap();
    assert_eq!(c.list().unwrap().len(), 1);
    c.status("web").unwrap();
    c.stop("web").unwrap();
    // Health needs no token.
    assert!(client(&s, None).health().unwrap().ok);
}

#[test]
fn client_reports_unhealthy_cluster_as_a_value() {
    let s = TestServer::start(common::auth());
    *s.mock.healthy.lock().unwrap() = false;
    let health = client(&s, Some(TOKEN)).health().unwrap();
    assert!(!health.ok);
    assert_eq!(health.detail.as_deref(), Some("member 1 is not connected"));
}

#[test]
fn client_connection_refused_names_the_url_and_the_api_flag() {
    // A port that was free a moment ago and has no listener now.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = Client::new(&format!("127.0.0.1:{port}"), None).unwrap();
    let e = c.list().unwrap_err();
    assert!(matches!(e, ClientError::Unreachable { .. }), "{e:?}");
    assert_eq!(e.status(), None);
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!(
            "cannot reach the tidemark API at http://127.0.0.1:{port}/jobs"
        )),
        "{shown}"
    );
    assert!(shown.contains("--api"), "{shown}");
}

#[test]
fn client_refuses_an_oversized_job_without_sending_it() {
    let s = TestServer::start(common::auth());
    let text = "#".repeat(2 * 1024 * 1024);
    let e = client(&s, Some(TOKEN)).submit(&text).unwrap_err();
    assert!(matches!(e, ClientError::TooLarge { .. }), "{e:?}");
    assert!(e.to_string().contains("bytes the API accepts"), "{e}");
}

#[test]
fn client_explains_an_answer_that_is_not_the_api() {
    // A server that answers every request with plain text: not a tidemark API.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).unwrap();
        let body = "hello from nginx";
        write!(
            stream,
            "HTTP/1.1 404 Not Found\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    });
    let e = Client::new(&format!("http://{addr}"), None)
        .unwrap()
        .list()
        .unwrap_err();
    server.join().unwrap();
    assert_eq!(e.status(), Some(404));
    let shown = e.to_string();
    assert!(shown.contains("unexpected answer from"), "{shown}");
    assert!(shown.contains("hello from nginx"), "{shown}");
    assert!(shown.contains("--api"), "{shown}");
}
