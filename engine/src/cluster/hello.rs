//! What members say to each other when they connect, after the index timely's
//! protocol starts with: that they are tidemark members, of which release, and
//! which version of the data members exchange (the wire version).
//!
//! Why: members exchange engine types (partials, merged series, rule inputs,
//! records) encoded by timely with bincode, which carries no schema. A member of
//! a release whose types differ would decode the other's bytes as garbage and
//! panic in timely's decoder (a rolling upgrade did). So a member checks its
//! peers' wire version before timely runs on the connections, and refuses a
//! different one by name.
//!
//! The connecting member (the one above) sends its index and its [`Hello`]; the
//! accepting one answers with its own `Hello`. Each then compares. A connection
//! whose first bytes are not a `Hello` is no member of a release that checks:
//! the accepting side drops it as a stray, the connecting side fails.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::peer_error::{is_connection_error, PeerError};

/// The version of the data members exchange. Bump it whenever a type sent
/// between members changes shape (the dataflows' `HostPartial`, `MergedSeries`,
/// `RuleInput`, `Series`; the cluster's `Command`, with `MemberStats`; and what
/// they hold), or how records are routed to workers (`route`); bincode has no
/// schema, and `#[serde(default)]` does nothing under it. `wire_shape_tests`
/// fails until you do. An upgrade of timely or bincode (their own framing)
/// needs a bump too.
pub const WIRE_VERSION: u32 = 1;

/// First bytes of a [`Hello`].
const MAGIC: [u8; 8] = *b"tidemark";

/// Bytes of a release name in a [`Hello`] (the crate version; longer is cut).
const RELEASE_LEN: usize = 16;

/// Bytes of an encoded [`Hello`].
pub const HELLO_LEN: usize = MAGIC.len() + 4 + RELEASE_LEN;

/// A member's greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    /// Its [`WIRE_VERSION`].
    pub wire: u32,
    /// Its release (`CARGO_PKG_VERSION`), NUL-padded.
    release: [u8; RELEASE_LEN],
}

impl Hello {
    /// This member's.
    pub fn ours() -> Hello {
        Hello::of(WIRE_VERSION, env!("CARGO_PKG_VERSION"))
    }

    pub(super) fn of(wire: u32, release: &str) -> Hello {
        let mut r = [0u8; RELEASE_LEN];
        let n = release.len().min(RELEASE_LEN);
        r[..n].copy_from_slice(&release.as_bytes()[..n]);
        Hello { wire, release: r }
    }

    /// The release it names.
    pub fn release(&self) -> String {
        let end = self.release.iter().position(|&b| b == 0);
        String::from_utf8_lossy(&self.release[..end.unwrap_or(RELEASE_LEN)]).into_owned()
    }

    /// Its bytes on the connection.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.wire.to_be_bytes());
        b[12..].copy_from_slice(&self.release);
        b
    }

    /// The `Hello` in `b`, `None` if `b` is not one (no magic).
    pub fn decode(b: &[u8; HELLO_LEN]) -> Option<Hello> {
        if b[..8] != MAGIC {
            return None;
        }
        let mut wire = [0u8; 4];
        wire.copy_from_slice(&b[8..12]);
        let mut release = [0u8; RELEASE_LEN];
        release.copy_from_slice(&b[12..]);
        Some(Hello {
            wire: u32::from_be_bytes(wire),
            release,
        })
    }

    /// Ok if `theirs`, from `member` at `addr`, speaks this member's wire version.
    pub fn check(theirs: Hello, member: usize, addr: &str) -> Result<(), PeerError> {
        let ours = Hello::ours();
        if theirs.wire == ours.wire {
            return Ok(());
        }
        Err(PeerError::Version {
            member,
            addr: addr.to_string(),
            theirs: theirs.wire,
            their_release: theirs.release(),
            ours: ours.wire,
            our_release: ours.release(),
        })
    }
}

/// What the member connected to answered.
pub enum Answer {
    /// Its `Hello`, of this wire version.
    Agreed,
    /// It closed the connection before answering (it restarted, or dropped us):
    /// connect again.
    Closed,
    /// Nothing for [`ANSWER_PATIENCE`]: connect again. It may be waiting for the
    /// members below it; or its host died without a word, and only a new
    /// connection finds out (a member restarted there then gets one).
    Silent,
}

/// How long the connecting member waits for an answer on one connection.
const ANSWER_PATIENCE: Duration = Duration::from_secs(60);

/// Says who this member is (`me`) on `stream`, connected to `member` at `addr`,
/// and waits for its answer (it answers once it accepts members, which may
/// wait for the members below it) up to [`ANSWER_PATIENCE`].
pub fn greet(
    stream: &mut TcpStream,
    me: usize,
    member: usize,
    addr: &str,
) -> Result<Answer, PeerError> {
    let socket_error = |source| PeerError::Socket { member, source };
    let mut said = [0u8; 8 + HELLO_LEN];
    said[..8].copy_from_slice(&(me as u64).to_be_bytes());
    said[8..].copy_from_slice(&Hello::ours().encode());
    stream.write_all(&said).map_err(socket_error)?;
    stream
        .set_read_timeout(Some(ANSWER_PATIENCE))
        .map_err(socket_error)?;
    let mut answer = [0u8; HELLO_LEN];
    let mut got = 0;
    while got < HELLO_LEN {
        match stream.read(&mut answer[got..]) {
            Ok(0) => return Ok(Answer::Closed),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(Answer::Silent);
            }
            Err(e) if is_connection_error(&e) => return Ok(Answer::Closed),
            Err(e) => return Err(socket_error(e)),
        }
    }
    stream.set_read_timeout(None).map_err(socket_error)?;
    match Hello::decode(&answer) {
        Some(theirs) => Hello::check(theirs, member, addr).map(|()| Answer::Agreed),
        None => Err(PeerError::NotAMember {
            member,
            addr: addr.to_string(),
        }),
    }
}

#[cfg(test)]
#[path = "wire_shape_tests.rs"]
mod wire_shape_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_reads_back_and_other_bytes_are_none() {
        let h = Hello::ours();
        assert_eq!(Hello::decode(&h.encode()), Some(h));
        assert_eq!(h.release(), env!("CARGO_PKG_VERSION"));
        let long = Hello::of(7, "0.1.0-a-very-long-prerelease-name");
        assert_eq!(long.release(), "0.1.0-a-very-lon");
        let mut timely_bytes = [0u8; HELLO_LEN];
        timely_bytes[..8].copy_from_slice(&3u64.to_be_bytes());
        assert_eq!(Hello::decode(&timely_bytes), None);
    }

    #[test]
    fn another_wire_version_is_refused_naming_both_releases() {
        let e = Hello::check(Hello::of(WIRE_VERSION + 1, "9.9.9"), 3, "10.0.0.3:7000").unwrap_err();
        let msg = e.to_string();
        for part in [
            "member 3",
            "10.0.0.3:7000",
            "9.9.9",
            env!("CARGO_PKG_VERSION"),
        ] {
            assert!(msg.contains(part), "{msg}");
        }
        assert!(Hello::check(Hello::of(WIRE_VERSION, "anything"), 3, "x").is_ok());
    }
}
