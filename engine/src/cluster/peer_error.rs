//! Why a member cannot reach the others, and which errors of a connection are
//! its own (the member goes on) rather than the listener's.

use std::io;

use thiserror::Error;

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
    /// A member speaks another version of the data members exchange.
    #[error(
        "member {member} ({addr}) runs tidemark {their_release} (wire version {theirs}), this \
         member tidemark {our_release} (wire version {ours}): the members of a cluster must \
         run the same release; stop them all and start them on one (docs/cluster.md, \"Upgrades\")"
    )]
    Version {
        /// The other member's index.
        member: usize,
        /// Its address.
        addr: String,
        /// Its wire version.
        theirs: u32,
        /// Its release.
        their_release: String,
        /// This member's wire version.
        ours: u32,
        /// This member's release.
        our_release: String,
    },
    /// A member connected to did not greet as a tidemark member does.
    #[error(
        "member {member} ({addr}) did not answer as a tidemark member: it runs a release \
         from before members checked each other's version, or another program listens \
         there; the members of a cluster must run the same release (docs/cluster.md, \
         \"Upgrades\")"
    )]
    NotAMember {
        /// The other member's index.
        member: usize,
        /// Its address.
        addr: String,
    },
}

/// Errors of one incoming connection, not of the listener: the next accept can
/// succeed.
pub(super) fn is_connection_error(e: &io::Error) -> bool {
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
