//! A small HTTP/1.1 proxy in front of a real Prometheus for the remote-write
//! tests: it answers some requests itself (500 for a while, 400, 503 while "down")
//! and forwards the others, counting what it saw. Bound on 127.0.0.1:0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// What to answer request number `n` (from 0): `None` forwards it; status 0
/// closes the connection without an answer (a receiver that went away).
pub type Plan = dyn Fn(u64) -> Option<(u16, String)> + Send + Sync;

/// What the proxy saw.
#[derive(Default)]
pub struct Counts {
    /// Requests received.
    pub requests: AtomicU64,
    /// Of those, forwarded to the upstream.
    pub forwarded: AtomicU64,
    /// Of those, answered by the proxy itself.
    pub answered: AtomicU64,
    /// Body bytes received.
    pub bytes: AtomicU64,
}

pub struct Proxy {
    pub port: u16,
    pub counts: Arc<Counts>,
    closed: Arc<AtomicBool>,
}

impl Proxy {
    /// Forwards to `upstream` (`http://host:port`) every request `plan` does not
    /// answer itself.
    pub fn start(upstream: String, plan: Box<Plan>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let counts = Arc::new(Counts::default());
        let closed = Arc::new(AtomicBool::new(false));
        let plan: Arc<Plan> = Arc::from(plan);
        {
            let (counts, closed) = (counts.clone(), closed.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if closed.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (counts, plan, upstream) = (counts.clone(), plan.clone(), upstream.clone());
                    std::thread::spawn(move || serve(conn, &upstream, &*plan, &counts));
                }
            });
        }
        Proxy {
            port,
            counts,
            closed,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> u64 {
        self.counts.requests.load(Ordering::SeqCst)
    }

    pub fn answered(&self) -> u64 {
        self.counts.answered.load(Ordering::SeqCst)
    }

    pub fn forwarded(&self) -> u64 {
        self.counts.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Serves the requests of one connection (keep-alive) until it closes.
fn serve(conn: TcpStream, upstream: &str, plan: &Plan, counts: &Counts) {
    let mut out = match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    };
    let mut input = BufReader::new(conn);
    while let Some(req) = read_request(&mut input) {
        let n = counts.requests.fetch_add(1, Ordering::SeqCst);
        counts
            .bytes
            .fetch_add(req.body.len() as u64, Ordering::SeqCst);
        let (status, body) = match plan(n) {
            Some(answer) => {
                counts.answered.fetch_add(1, Ordering::SeqCst);
                answer
            }
            None => {
                counts.forwarded.fetch_add(1, Ordering::SeqCst);
                forward(upstream, &req)
            }
        };
        if status == 0 {
            return;
        }
        let head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            reason(status),
            body.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(body.as_bytes()).is_err() {
            return;
        }
    }
}

fn read_request(input: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if input.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if input.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(len) = header("content-length") {
        body.resize(len.parse().ok()?, 0);
        input.read_exact(&mut body).ok()?;
    } else if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            input.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2]; // with its CRLF
            input.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn forward(upstream: &str, req: &Request) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{upstream}{}", req.path);
    assert_eq!(req.method, "POST", "the sink only POSTs");
    let mut call = agent.post(&url);
    for (k, v) in &req.headers {
        if [
            "content-type",
            "content-encoding",
            "x-prometheus-remote-write-version",
            "user-agent",
        ]
        .contains(&k.as_str())
        {
            call = call.header(k, v);
        }
    }
    match call.send(&req.body[..]) {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(e) => (502, format!("proxy: upstream failed: {e}")),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
