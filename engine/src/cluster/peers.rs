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
use std::time::Duration;

use thiserror::Error;
use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::ProcessBuilder;
use timely::communication::{AllocatorBuilder, Hooks};

/// How long a member waits between attempts to reach a member that is not up yet
/// (timely waits as long).
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// How long a connection to this member's port may take to say which member it
/// is before it is dropped as a stray (a port scanner, a health check).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

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
    fn sockets(self) -> Result<Vec<Option<TcpStream>>, PeerError> {
        let mut sockets: Vec<Option<TcpStream>> = Vec::with_capacity(self.addresses.len());
        for (member, addr) in self.addresses.iter().enumerate().take(self.process) {
            sockets.push(Some(connect_to(member, addr, self.process)?));
        }
        sockets.push(None);
        let above = self.addresses.len() - self.process - 1;
        let mut accepted: Vec<Option<TcpStream>> = (0..above).map(|_| None).collect();
        if above > 0 {
            tracing::info!(
                "waiting for members {} to {} to connect",
                self.process + 1,
                self.addresses.len() - 1
            );
        }
        let mut strays = 0u32;
        while accepted.iter().any(Option::is_none) {
            let (stream, from) = self.listener.accept().map_err(PeerError::Accept)?;
            let why = match handshake(&stream) {
                Ok(member) if member > self.process && member < self.addresses.len() => {
                    let slot = &mut accepted[member - self.process - 1];
                    if slot.is_none() {
                        *slot = Some(stream);
                        continue;
                    }
                    format!("says it is member {member}, which is connected already")
                }
                Ok(member) => format!(
                    "says it is member {member}, which does not connect to member {}",
                    self.process
                ),
                Err(e) => format!("did not say which member it is ({e})"),
            };
            strays += 1;
            if strays <= MAX_STRAY_WARNINGS {
                tracing::warn!(
                    "a connection from {from} {why}: dropped{}",
                    if strays == MAX_STRAY_WARNINGS {
                        "; further ones are dropped without a warning"
                    } else {
                        ""
                    }
                );
            }
        }
        sockets.extend(accepted);
        Ok(sockets)
    }
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

/// Reads the index a connecting member sends first.
fn handshake(mut stream: &TcpStream) -> io::Result<usize> {
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut index = [0u8; 8];
    stream.read_exact(&mut index)?;
    stream.set_read_timeout(None)?;
    stream.set_nodelay(true)?;
    usize::try_from(u64::from_be_bytes(index))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "index out of range"))
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
}
