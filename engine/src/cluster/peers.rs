//! The connections between a cluster's members, made before timely runs on them.
//!
//! Timely can connect the members itself (`CommunicationConfig::Cluster`), but it
//! binds a member's listening port inside that call and never says which port it
//! got, so a hosts file had to name free ports chosen in advance: racy on a busy
//! machine, where another process may take one in between. Here a member binds
//! its own address first ([`Peers::bind`], port 0 allowed), can report the port it
//! got ([`Peers::local_addr`]), and only then connects to the others. The wire
//! protocol is timely's own (`timely_communication::networking`): member `i`
//! connects to every member below it and sends its index as a big-endian `u64`,
//! and accepts one connection from every member above it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use thiserror::Error;
use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::ProcessBuilder;
use timely::communication::{AllocatorBuilder, Hooks};

/// How long a member waits between attempts to reach a member that is not up yet
/// (timely waits as long).
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// How long a connection to this member's port may take to say which member it
/// is before it is dropped as a stray (a port scanner, a health check). A member
/// sends its index right after connecting; silent ones hold up nobody else.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a member waiting for the members above it looks for connections.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Connections waiting to say which member they are; past it the oldest is dropped.
const MAX_PENDING: usize = 64;

/// Stray connections warned about before they are only dropped.
const MAX_STRAY_WARNINGS: u32 = 10;

/// Why a member cannot reach the others; the cause is the error's source.
#[derive(Debug, Error)]
pub enum PeerError {
    /// `-p` is beyond the hosts file's lines.
    #[error("member {process} is not in the hosts file's {members} addresses")]
    NotListed {
        /// This member's index (`-p`).
        process: usize,
        /// How many addresses the hosts file lists.
        members: usize,
    },
    /// This member's own address cannot be bound (taken, or not this machine's).
    #[error("cannot listen for the other members on {addr}")]
    Bind {
        /// The address from the hosts file.
        addr: String,
        /// Why binding it failed.
        #[source]
        source: io::Error,
    },
    /// Accepting a connection on the bound port failed.
    #[error("cannot accept the other members' connections")]
    Accept(#[source] io::Error),
    /// A connection to a member below this one was made but could not be set up.
    #[error("cannot set up the connection to member {member}")]
    Socket {
        /// The other member's index.
        member: usize,
        /// Why setting it up failed.
        #[source]
        source: io::Error,
    },
    /// timely could not start its send and receive threads on the connections.
    #[error("cannot start the connections between members")]
    Network(#[source] io::Error),
}

/// This member's listening socket, bound, with the addresses of every member.
#[derive(Debug)]
pub struct Peers {
    process: usize,
    addresses: Vec<String>,
    listener: TcpListener,
}

impl Peers {
    /// Binds this member's own address (`addresses[process]`; port 0 takes any
    /// free port). The other members are not contacted yet.
    pub fn bind(addresses: Vec<String>, process: usize) -> Result<Peers, PeerError> {
        let Some(own) = addresses.get(process) else {
            return Err(PeerError::NotListed {
                process,
                members: addresses.len(),
            });
        };
        let listener = TcpListener::bind(own.as_str()).map_err(|source| PeerError::Bind {
            addr: own.clone(),
            source,
        })?;
        Ok(Peers {
            process,
            addresses,
            listener,
        })
    }

    /// The address this member listens on for the members above it: the port
    /// it got when its hosts-file line says port 0.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Connects to every other member (waiting for each as long as it takes),
    /// then builds timely's allocators for `workers` threads over those
    /// connections, as `CommunicationConfig::Cluster` would.
    pub(super) fn connect(
        self,
        workers: usize,
    ) -> Result<(Vec<AllocatorBuilder>, Box<dyn std::any::Any + Send>), PeerError> {
        let process = self.process;
        let sockets = self.sockets()?;
        let hooks = Hooks::default();
        let process_allocators =
            ProcessBuilder::new_typed_vector(workers, hooks.refill.clone(), hooks.spill.clone());
        let (builders, guard) = initialize_networking_from_sockets(
            process_allocators,
            sockets,
            process,
            workers,
            hooks,
        )
        .map_err(PeerError::Network)?;
        Ok((
            builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
            Box::new(guard),
        ))
    }

    /// One stream per member, in member order, `None` at this member's own place.
    /// Consumes the listener: no member connects after these.
    ///
    /// Connections from above are accepted and read without blocking, so a
    /// connection that says nothing holds up no other (a handshake read in turn
    /// would make each silent one cost the whole timeout). A member that connects
    /// again replaces its earlier connection, as in timely: it was restarted
    /// while the cluster formed. A connection that closed before the cluster
    /// formed is given up, so its member's next connection is awaited instead.
    fn sockets(self) -> Result<Vec<Option<TcpStream>>, PeerError> {
        let mut sockets: Vec<Option<TcpStream>> = Vec::with_capacity(self.addresses.len());
        for (member, addr) in self.addresses.iter().enumerate().take(self.process) {
            sockets.push(Some(connect_to(member, addr, self.process)?));
        }
        sockets.push(None);
        let above = self.addresses.len() - self.process - 1;
        if above > 0 {
            tracing::info!(
                "waiting for members {} to {} to connect",
                self.process + 1,
                self.addresses.len() - 1
            );
        }
        let accepted = Accepting::new(self.process, self.addresses.len()).run(&self.listener)?;
        sockets.extend(accepted.into_iter().map(Some));
        Ok(sockets)
    }
}

/// A connection accepted that has not said which member it is yet.
struct Handshake {
    stream: TcpStream,
    from: SocketAddr,
    index: [u8; 8],
    read: usize,
    since: Instant,
}

/// What became of a [`Handshake`] after a read.
enum Heard {
    /// It said which member it is.
    Member(usize),
    /// Not all of its index has arrived yet.
    Waiting,
    /// Closed, failed or silent too long: the reason.
    Stray(String),
}

impl Handshake {
    fn read(&mut self) -> Heard {
        loop {
            match (&self.stream).read(&mut self.index[self.read..]) {
                Ok(0) => return Heard::Stray("closed before it said which member it is".into()),
                Ok(n) => {
                    self.read += n;
                    if self.read == self.index.len() {
                        return match usize::try_from(u64::from_be_bytes(self.index)) {
                            Ok(member) => Heard::Member(member),
                            Err(_) => Heard::Stray("sent an index out of range".into()),
                        };
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return if self.since.elapsed() > HANDSHAKE_TIMEOUT {
                        Heard::Stray(format!(
                            "said nothing within {} s",
                            HANDSHAKE_TIMEOUT.as_secs()
                        ))
                    } else {
                        Heard::Waiting
                    };
                }
                Err(e) => {
                    return Heard::Stray(format!("failed before it said which member it is ({e})"))
                }
            }
        }
    }
}

/// Member `process`'s wait for the members above it.
struct Accepting {
    process: usize,
    members: usize,
    /// One slot per member above this one.
    slots: Vec<Option<TcpStream>>,
    pending: Vec<Handshake>,
    strays: u32,
    /// Warnings about failed accepts said (running out of descriptors repeats).
    accept_warnings: u32,
}

impl Accepting {
    fn new(process: usize, members: usize) -> Accepting {
        Accepting {
            process,
            members,
            slots: (process + 1..members).map(|_| None).collect(),
            pending: Vec::new(),
            strays: 0,
            accept_warnings: 0,
        }
    }

    fn run(mut self, listener: &TcpListener) -> Result<Vec<TcpStream>, PeerError> {
        listener.set_nonblocking(true).map_err(PeerError::Accept)?;
        loop {
            let mut busy = self.accept(listener)?;
            busy |= self.hear();
            self.forget_closed();
            if self.slots.iter().all(Option::is_some) {
                break;
            }
            if !busy {
                std::thread::sleep(POLL_EVERY);
            }
        }
        let mut streams = Vec::with_capacity(self.slots.len());
        for (i, slot) in self.slots.into_iter().enumerate() {
            let Some(stream) = slot else { continue };
            let member = self.process + 1 + i;
            let socket_error = |source| PeerError::Socket { member, source };
            stream.set_nonblocking(false).map_err(socket_error)?;
            stream.set_nodelay(true).map_err(socket_error)?;
            streams.push(stream);
        }
        Ok(streams)
    }

    /// Takes every connection waiting on `listener`; whether there was one.
    fn accept(&mut self, listener: &TcpListener) -> Result<bool, PeerError> {
        let mut any = false;
        loop {
            match listener.accept() {
                Ok((stream, from)) => {
                    any = true;
                    if let Err(e) = stream.set_nonblocking(true) {
                        self.stray(from, &format!("could not be set up ({e})"));
                        continue;
                    }
                    if self.pending.len() == MAX_PENDING {
                        // The oldest silent one goes: a flood of silent
                        // connections cannot keep a member out.
                        let old = self.pending.remove(0);
                        self.stray(old.from, "was still silent when too many others waited");
                    }
                    self.pending.push(Handshake {
                        stream,
                        from,
                        index: [0; 8],
                        read: 0,
                        since: Instant::now(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(any),
                // The client gave up between connecting and being accepted, or
                // its connection hit a network error: accept(2) says to treat
                // these like "nothing waiting".
                Err(e) if is_connection_error(&e) => {}
                Err(e) if is_resource_shortage(&e) => {
                    // Out of descriptors or buffers: tried again on the next poll.
                    self.accept_warnings += 1;
                    if self.accept_warnings == 1 || self.accept_warnings.is_multiple_of(600) {
                        tracing::warn!(
                            "cannot accept a member's connection yet: {e}; trying again"
                        );
                    }
                    return Ok(any);
                }
                Err(e) => return Err(PeerError::Accept(e)),
            }
        }
    }

    /// Reads what the pending connections said; whether any finished.
    fn hear(&mut self) -> bool {
        let mut any = false;
        let mut i = 0;
        while i < self.pending.len() {
            let heard = match self.pending[i].read() {
                Heard::Waiting => {
                    i += 1;
                    continue;
                }
                Heard::Member(member) => Ok(member),
                Heard::Stray(why) => Err(why),
            };
            any = true;
            let h = self.pending.remove(i);
            match heard {
                Ok(member) if member > self.process && member < self.members => {
                    let slot = &mut self.slots[member - self.process - 1];
                    if slot.is_some() {
                        tracing::info!(
                            "member {member} connected again from {}: its earlier connection is replaced (it was restarted)",
                            h.from
                        );
                    }
                    *slot = Some(h.stream);
                }
                Ok(member) => self.stray(
                    h.from,
                    &format!(
                        "says it is member {member}, which does not connect to member {}",
                        self.process
                    ),
                ),
                Err(why) => self.stray(h.from, &why),
            }
        }
        any
    }

    /// Gives up accepted connections whose member has gone (closed or reset:
    /// killed while the cluster formed), so the cluster does not form on a dead
    /// connection. Data waiting is no sign of death: a member whose own
    /// connections are all made starts sending at once.
    fn forget_closed(&mut self) {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(stream) = slot else { continue };
            let mut byte = [0u8; 1];
            let gone = match stream.peek(&mut byte) {
                Ok(0) => Some("closed its connection".to_string()),
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                Err(e) => Some(format!("lost its connection ({e})")),
            };
            if let Some(why) = gone {
                tracing::info!(
                    "member {} {why} before the cluster formed: waiting for it to connect again",
                    self.process + 1 + i
                );
                *slot = None;
            }
        }
    }

    fn stray(&mut self, from: SocketAddr, why: &str) {
        self.strays += 1;
        if self.strays <= MAX_STRAY_WARNINGS {
            tracing::warn!(
                "a connection from {from} {why}: dropped{}",
                if self.strays == MAX_STRAY_WARNINGS {
                    "; further ones are dropped without a warning"
                } else {
                    ""
                }
            );
        }
    }
}

/// Errors of one incoming connection, not of the listener: the next accept can
/// succeed.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) || matches!(
        // ENONET, EPROTO, ENOPROTOOPT, EOPNOTSUPP, ENETDOWN, ENETUNREACH,
        // EHOSTDOWN, EHOSTUNREACH (accept(2), "Error handling").
        e.raw_os_error(),
        Some(64 | 71 | 92 | 95 | 100 | 101 | 112 | 113)
    )
}

/// Errors after which accepting may succeed later (descriptors or memory freed).
fn is_resource_shortage(e: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Connects to `member` at `addr`, retrying until it is up, and says who we are.
fn connect_to(member: usize, addr: &str, me: usize) -> Result<TcpStream, PeerError> {
    let mut attempts = 0u64;
    let mut stream = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(e) => {
                // Said once, then every minute or so: the member may take long to start.
                if attempts.is_multiple_of(60) {
                    tracing::info!("waiting for member {member} at {addr}: {e}");
                }
                attempts += 1;
                std::thread::sleep(RETRY_EVERY);
            }
        }
    };
    let socket_error = |source| PeerError::Socket { member, source };
    stream.set_nodelay(true).map_err(socket_error)?;
    stream
        .write_all(&(me as u64).to_be_bytes())
        .map_err(socket_error)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_bound_on_port_0_connect_through_the_port_each_reports() {
        let zero = Peers::bind(vec!["127.0.0.1:0".into(), "127.0.0.1:0".into()], 0).unwrap();
        let port = zero.local_addr().unwrap().port();
        assert_ne!(port, 0);
        let one = Peers::bind(vec![format!("127.0.0.1:{port}"), "127.0.0.1:0".into()], 1).unwrap();
        let t = std::thread::spawn(move || zero.sockets().unwrap());
        let ones = one.sockets().unwrap();
        let zeros = t.join().unwrap();
        assert!(zeros[0].is_none() && zeros[1].is_some());
        assert!(ones[0].is_some() && ones[1].is_none());
    }

    #[test]
    fn a_stray_connection_is_dropped_and_the_member_still_waits_for_its_peer() {
        let zero = Peers::bind(vec!["127.0.0.1:0".into(), "127.0.0.1:0".into()], 0).unwrap();
        let addr = zero.local_addr().unwrap();
        let t = std::thread::spawn(move || zero.sockets().unwrap());
        // Says it is member 7 of 2, then a real member 1 comes.
        let mut stray = TcpStream::connect(addr).unwrap();
        stray.write_all(&7u64.to_be_bytes()).unwrap();
        let one = Peers::bind(vec![addr.to_string(), "127.0.0.1:0".into()], 1).unwrap();
        let mut ones = one.sockets().unwrap();
        let zeros = t.join().unwrap();
        // Member 0's stream for member 1 is member 1's, not the stray's.
        ones[0].as_mut().unwrap().write_all(b"!").unwrap();
        let mut got = [0u8; 1];
        zeros[1].as_ref().unwrap().read_exact(&mut got).unwrap();
        assert_eq!(&got, b"!");
        drop(stray);
    }

    /// Regression (issue 11 review): a member restarted while the cluster formed
    /// connected again and was dropped as "connected already"; member 0 kept the
    /// dead connection and every member failed once timely ran on it.
    #[test]
    fn a_member_restarted_while_the_cluster_forms_replaces_its_earlier_connection() {
        let three = || vec!["127.0.0.1:0".to_string(); 3];
        let zero = Peers::bind(three(), 0).unwrap();
        let addr = zero.local_addr().unwrap();
        let t = std::thread::spawn(move || zero.sockets().unwrap());
        // Member 2 connects, is killed, and connects again; one earlier
        // connection of it stays open (a restart that raced its own exit).
        let mut first = TcpStream::connect(addr).unwrap();
        first.write_all(&2u64.to_be_bytes()).unwrap();
        let mut dead = TcpStream::connect(addr).unwrap();
        dead.write_all(&2u64.to_be_bytes()).unwrap();
        drop(dead);
        let mut again = TcpStream::connect(addr).unwrap();
        again.write_all(&2u64.to_be_bytes()).unwrap();
        let mut one = TcpStream::connect(addr).unwrap();
        one.write_all(&1u64.to_be_bytes()).unwrap();
        let zeros = t.join().unwrap();
        // Closed first, so that a kept earlier connection reads as an end of file.
        drop(first);
        again.write_all(b"!").unwrap();
        let mut got = [0u8; 1];
        zeros[2]
            .as_ref()
            .unwrap()
            .read_exact(&mut got)
            .expect("member 0 kept an earlier connection of member 2");
        assert_eq!(&got, b"!");
    }

    /// Regression (issue 11 review): handshakes were read one at a time with a
    /// 30 s timeout, so each silent connection (a scanner, a health check) held
    /// the real members back 30 s.
    #[test]
    fn silent_connections_do_not_hold_back_the_members() {
        let zero = Peers::bind(vec!["127.0.0.1:0".into(), "127.0.0.1:0".into()], 0).unwrap();
        let addr = zero.local_addr().unwrap();
        let started = Instant::now();
        let t = std::thread::spawn(move || zero.sockets().unwrap());
        let silent: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let one = Peers::bind(vec![addr.to_string(), "127.0.0.1:0".into()], 1).unwrap();
        // Held open: member 0 gives up a connection that closes before it forms.
        let ones = one.sockets().unwrap();
        let zeros = t.join().unwrap();
        assert!(zeros[1].is_some() && ones[0].is_some());
        // Read in turn, the three silent ones cost 3 × HANDSHAKE_TIMEOUT = 90 s;
        // a loopback connection takes milliseconds, so 60 s is generous.
        assert!(
            started.elapsed() < HANDSHAKE_TIMEOUT * 2,
            "took {:?}",
            started.elapsed()
        );
        drop(silent);
    }

    /// Regression (issue 11 review): an accept error of one incoming connection
    /// (EPROTO, a host unreachable while the handshake was queued) ended the
    /// member's start; accept(2) says to go on as after EAGAIN. An error of the
    /// listener itself (EBADF, EINVAL) still ends it.
    #[test]
    fn an_error_of_one_incoming_connection_does_not_end_the_member() {
        for errno in [71, 101, 113] {
            assert!(
                is_connection_error(&io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        for errno in [9, 22] {
            assert!(
                !is_connection_error(&io::Error::from_raw_os_error(errno)),
                "{errno}"
            );
        }
        assert!(is_resource_shortage(&io::Error::from_raw_os_error(24)));
    }
}
