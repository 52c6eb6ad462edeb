//! Clients that never finish a request: the API closes them and keeps answering
//! everyone else. Timeouts are short here; the asserts wait generously for the
//! property itself (a held connection closed, an answer arriving), never bound
//! how fast.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use common::{request, TestServer, AUTH};
use tidemark_api::{ConnectionOptions, ServeOptions};

/// How long the asserts wait for what must happen; the timeouts under test are
/// far shorter.
const GENEROUS: Duration = Duration::from_secs(30);

fn server(
    header_read_timeout: Duration,
    max_connections: usize,
    request_timeout: Duration,
) -> TestServer {
    let mut options = ServeOptions::new(common::auth());
    options.connections = ConnectionOptions {
        header_read_timeout,
        max_connections,
        request_timeout,
    };
    TestServer::start_with(options)
}

/// Whether the server closed `s` (EOF or reset) before `GENEROUS` ran out.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(GENEROUS)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // An error answer (e.g. 408) before the close is fine too.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Sends the start of a request head one byte every 50 ms until the server
/// closes the connection (or a minute passes).
fn dribble(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    let mut w = s.try_clone().unwrap();
    std::thread::spawn(move || {
        let head = b"GET /jobs HTTP/1.1\r\nHost: x\r\nX-Slow: ".repeat(40);
        for b in head {
            if w.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    s
}

/// Without a token (checked once the headers are in), a client could open
/// connections and send nothing, or its headers a byte at a time, and keep them
/// for ever; enough of them exhausted the member's file descriptors and nobody got
/// an answer. Now every connection must send its head within the header-read
/// timeout, and the connection cap fills with stalled clients only until then.
#[test]
fn an_unauthenticated_client_holding_connections_cannot_freeze_the_api() {
    let s = server(Duration::from_millis(300), 4, Duration::from_secs(60));
    // Twice the cap: half say nothing, half dribble their headers.
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .chain((0..4).map(|_| dribble(s.addr)))
        .collect();

    // Someone with the token still gets an answer.
    let (tx, rx) = mpsc::channel();
    let url = s.url("/jobs");
    std::thread::spawn(move || {
        let _ = tx.send(request("GET", &url, AUTH, b"").status);
    });
    assert_eq!(
        rx.recv_timeout(GENEROUS).ok(),
        Some(200),
        "the API did not answer while stalled clients held connections"
    );
    // And every stalled connection was closed by the server.
    for (i, c) in held.iter_mut().enumerate() {
        assert!(
            closed_by_server(c),
            "connection {i} ({}) is still open",
            if i < 4 { "silent" } else { "dribbling" }
        );
    }
}

/// With the cap full of stalled connections, a new client waited in the listen
/// queue behind every one of them until their header timeouts (10 s each, wave
/// after wave for a client that keeps opening more). Now it takes the place of the
/// oldest connection that is not in a request. The header timeout here is far
/// longer than the wait allowed, so only that can let the request in.
#[test]
fn stalled_connections_at_the_cap_make_room_for_a_new_client() {
    let s = server(Duration::from_secs(600), 4, Duration::from_secs(60));
    let _held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .chain((0..4).map(|_| dribble(s.addr)))
        .collect();
    for _ in 0..3 {
        let (tx, rx) = mpsc::channel();
        let url = s.url("/jobs");
        std::thread::spawn(move || {
            let _ = tx.send(request("GET", &url, AUTH, b"").status);
        });
        assert_eq!(
            rx.recv_timeout(GENEROUS).ok(),
            Some(200),
            "no answer while stalled clients filled the connection cap"
        );
    }
}

/// A client that announced a body and never sent it held its request (and its
/// connection) for ever. Now the request gets 503 after the request timeout.
#[test]
fn a_client_that_never_sends_its_body_gets_503_after_the_request_timeout() {
    let s = server(Duration::from_secs(10), 64, Duration::from_millis(300));
    let mut c = TcpStream::connect(s.addr).unwrap();
    write!(
        c,
        "POST /jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 1000\r\n\r\nname = ",
        common::TOKEN
    )
    .unwrap();
    c.set_read_timeout(Some(GENEROUS)).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") || !answer.ends_with(b"}") {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "no answer ({e}); got so far: {:?}",
                String::from_utf8_lossy(&answer)
            ),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("not answered within"), "{text}");
    assert!(s.mock.jobs.lock().unwrap().is_empty());
}
