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
//! and accepts one connection from every member above it. Between the index and
//! timely's first bytes, members greet each other ([`super::hello`]): a member of
//! another wire version is refused by name instead of being decoded as garbage.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::hello::{self, Answer, Hello, HELLO_LEN};
use super::peer_error::is_connection_error;
pub use super::peer_error::PeerError;
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
        let accepted = Accepting::new(self.process, &self.addresses).run(&self.listener)?;
        sockets.extend(accepted.into_iter().map(Some));
        Ok(sockets)
    }
}

/// A connection accepted that has not said which member it is yet.
struct Handshake {
    stream: TcpStream,
    from: SocketAddr,
    /// Its index (big-endian `u64`) and its [`Hello`].
    said: [u8; 8 + HELLO_LEN],
    read: usize,
    since: Instant,
}

/// What became of a [`Handshake`] after a read.
enum Heard {
    /// It said which member it is, and greeted so.
    Member(usize, Hello),
    /// Not all of its index has arrived yet.
    Waiting,
    /// Closed, failed or silent too long: the reason.
    Stray(String),
}

impl Handshake {
    fn read(&mut self) -> Heard {
        loop {
            match (&self.stream).read(&mut self.said[self.read..]) {
                Ok(0) => return Heard::Stray(self.cut_short("closed")),
                Ok(n) => {
                    self.read += n;
                    if self.read == self.said.len() {
                        return self.heard();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return if self.since.elapsed() > HANDSHAKE_TIMEOUT {
                        let secs = HANDSHAKE_TIMEOUT.as_secs();
                        Heard::Stray(self.cut_short(&format!("was silent for {secs} s")))
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

    /// Why a handshake that stopped (`how`) is a stray: one that gave a member
    /// index but no greeting is a member of a release from before greetings.
    fn cut_short(&self, how: &str) -> String {
        match <[u8; 8]>::try_from(&self.said[..8]) {
            Ok(index) if self.read >= 8 => format!(
                "said it is member {} but {how} before it greeted as a tidemark member \
                 does (a release from before members greeted each other? the members of a \
                 cluster must run the same release)",
                u64::from_be_bytes(index)
            ),
            _ => format!("{how} before it said which member it is"),
        }
    }

    /// What the whole handshake says.
    fn heard(&self) -> Heard {
        let (index, rest) = self.said.split_at(8);
        let Ok(index) = <[u8; 8]>::try_from(index) else {
            return Heard::Stray("sent a short index".into());
        };
        let Ok(member) = usize::try_from(u64::from_be_bytes(index)) else {
            return Heard::Stray("sent an index out of range".into());
        };
        match <&[u8; HELLO_LEN]>::try_from(rest)
            .ok()
            .and_then(Hello::decode)
        {
            Some(hello) => Heard::Member(member, hello),
            None => Heard::Stray(format!(
                "says it is member {member} but did not greet as a tidemark member does \
                 (a release from before members checked each other's version?)"
            )),
        }
    }
}

/// Member `process`'s wait for the members above it.
struct Accepting {
    process: usize,
    members: usize,
    /// Every member's address (the hosts file's), for messages.
    addresses: Vec<String>,
    /// One slot per member above this one.
    slots: Vec<Option<TcpStream>>,
    pending: Vec<Handshake>,
    strays: u32,
    /// Warnings about failed accepts said (running out of descriptors repeats).
    accept_warnings: u32,
}

impl Accepting {
    fn new(process: usize, addresses: &[String]) -> Accepting {
        let members = addresses.len();
        Accepting {
            process,
            members,
            addresses: addresses.to_vec(),
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
            busy |= self.hear()?;
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
                        said: [0; 8 + HELLO_LEN],
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

    /// Reads what the pending connections said; whether any finished. A member
    /// of another wire version is answered (so that it can say why too) and
    /// ends this member's start.
    fn hear(&mut self) -> Result<bool, PeerError> {
        let mut any = false;
        let mut i = 0;
        while i < self.pending.len() {
            let heard = match self.pending[i].read() {
                Heard::Waiting => {
                    i += 1;
                    continue;
                }
                Heard::Member(member, hello) => Ok((member, hello)),
                Heard::Stray(why) => Err(why),
            };
            any = true;
            let h = self.pending.remove(i);
            match heard {
                Ok((member, hello)) if member > self.process && member < self.members => {
                    if let Err(why) = answer(&h.stream) {
                        self.stray(h.from, &why);
                        continue;
                    }
                    let addr = self.addresses.get(member).map_or("?", String::as_str);
                    Hello::check(hello, member, addr)?;
                    let slot = &mut self.slots[member - self.process - 1];
                    if slot.is_some() {
                        tracing::info!(
                            "member {member} connected again from {}: its earlier connection is replaced (it was restarted)",
                            h.from
                        );
                    }
                    *slot = Some(h.stream);
                }
                Ok((member, _)) => self.stray(
                    h.from,
                    &format!(
                        "says it is member {member}, which does not connect to member {}",
                        self.process
                    ),
                ),
                Err(why) => self.stray(h.from, &why),
            }
        }
        Ok(any)
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

/// Sends this member's [`Hello`] on an accepted connection (non-blocking: the
/// few bytes fit its empty send buffer); why not, if it could not.
fn answer(mut stream: &TcpStream) -> Result<(), String> {
    match stream.write(&Hello::ours().encode()) {
        Ok(HELLO_LEN) => Ok(()),
        Ok(_) => Err("took only part of this member's greeting".into()),
        Err(e) => Err(format!("failed when greeted ({e})")),
    }
}

/// Errors after which accepting may succeed later (descriptors or memory freed).
fn is_resource_shortage(e: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Connects to `member` at `addr`, retrying until it is up, says who we are and
/// waits for its greeting ([`hello::greet`]); again from the start if it closes
/// the connection first (it restarted).
fn connect_to(member: usize, addr: &str, me: usize) -> Result<TcpStream, PeerError> {
    let mut attempts = 0u64;
    loop {
        let mut stream = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                // Said once, then every minute or so: the member may take long to start.
                if attempts.is_multiple_of(60) {
                    tracing::info!("waiting for member {member} at {addr}: {e}");
                }
                attempts += 1;
                std::thread::sleep(RETRY_EVERY);
                continue;
            }
        };
        stream
            .set_nodelay(true)
            .map_err(|source| PeerError::Socket { member, source })?;
        match hello::greet(&mut stream, me, member, addr)? {
            Answer::Agreed => return Ok(stream),
            Answer::Closed => {
                // A member restarting closes it once; one that keeps closing
                // it takes this member for another (or for a stray).
                if attempts.is_multiple_of(60) {
                    tracing::warn!(
                        "member {member} at {addr} closed the connection before it greeted: \
                         connecting again (if this goes on, check that every member has the \
                         same hosts file and that this member's -p, {me}, is its line)"
                    );
                }
                attempts += 1;
                std::thread::sleep(RETRY_EVERY);
            }
            Answer::Silent => {
                tracing::info!("member {member} at {addr} has not answered yet: connecting again");
            }
        }
    }
}

#[cfg(test)]
#[path = "peers_tests.rs"]
mod tests;
