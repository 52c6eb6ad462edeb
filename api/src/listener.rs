//! Who listens on the API's port, before `tidemark job` sends it the token.
//!
//! `tidemark job` finds the cluster's token in its state folder by itself. When the
//! member is down, any local user can bind its port first and would receive that
//! token with the next command. So before sending a token to an address of this
//! host (loopback, `0.0.0.0`, or any address of its own interfaces), the client
//! looks the listening socket up in `/proc/net/tcp` and `/proc/net/tcp6` and
//! refuses unless its owner is one who could read the token anyway: root, the
//! user running the command, or the owner of the token file.
//!
//! What this does not catch, said plainly: a listener run by one of those users
//! (the same uid cannot be told apart), a port taken over in the instant between
//! the check and the connection, and addresses of other hosts (the owner of a
//! remote socket cannot be seen; reach a remote cluster through an SSH tunnel,
//! which listens on loopback as you). Linux only: elsewhere the check fails closed.
//!
//! `/proc` is parsed by hand: no crate this workspace uses reads socket tables, and
//! the format (one line per socket, hex fields) is small and stable since Linux 2.2.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// A listening TCP socket as `/proc/net/tcp{,6}` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub addr: SocketAddr,
    /// The user that created the socket.
    pub uid: u32,
    /// The socket's inode (`ls -l /proc/*/fd | grep socket:[INODE]` finds its process).
    pub inode: u64,
}

/// Why the token is not sent.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("refusing to send the API token to {target}: the socket listening there ({}, inode {inode}) belongs to uid {uid}, who is not root, you, or the owner of the token; another user may have taken the port while the cluster was down\n  hint: check who listens (`ss -ltnpe 'sport = :{}'`); start the cluster again once the port is free; if that listener is yours (a proxy run by another user), run this command as its user", listener.addr, target.port(), uid = listener.uid, inode = listener.inode)]
    NotTrusted {
        target: SocketAddr,
        listener: Listener,
    },
    #[error("cannot reach the tidemark API at {target}: nothing listens there\n  hint: check that the cluster is running and that --api names the control address of its process 0 (default http://127.0.0.1:7070)")]
    NothingListens { target: SocketAddr },
    #[error("cannot read {} to check who listens on {target} before sending it the API token: {source}\n  hint: this check needs Linux's /proc; on other systems reach the cluster from another host", path.display())]
    Proc {
        path: PathBuf,
        target: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// Whatever the HTTP client would connect to cannot be checked: fail closed.
    #[error("cannot resolve {host} to check who listens there, so not sending it the API token: {source}\n  hint: check the host name in --api (e.g. http://127.0.0.1:7070)")]
    Unresolved {
        host: String,
        #[source]
        source: io::Error,
    },
}

/// The user this process runs as (the owner of `/proc/self`), without `unsafe`.
pub fn current_uid() -> io::Result<u32> {
    Ok(std::fs::metadata("/proc/self")?.uid())
}

/// Checks, for a `target` on this host ([`is_this_host`]), that every socket that
/// may accept the connection belongs to a uid in `trusted`; other hosts' addresses
/// pass unchecked.
pub fn check_listener(target: SocketAddr, trusted: &[u32]) -> Result<(), ListenerError> {
    check_targets(&[target], trusted)
}

/// [`check_listener`] for every address a host name resolved to (`localhost` is
/// 127.0.0.1 and ::1), where the client may connect to any: every listener on them
/// on this host must be trusted, and at least one must listen unless the name
/// also leads to another host.
pub fn check_targets(targets: &[SocketAddr], trusted: &[u32]) -> Result<(), ListenerError> {
    let local: Vec<SocketAddr> = targets
        .iter()
        .filter(|t| is_this_host(t.ip()))
        .map(|t| SocketAddr::new(connected_ip(t.ip()), t.port()))
        .collect();
    let Some(&first) = local.first() else {
        return Ok(());
    };
    let elsewhere_too = local.len() < targets.len();
    let read = |path: &str| match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        // A kernel without IPv6 has no tcp6 table: no IPv6 listener then.
        Err(e) if e.kind() == io::ErrorKind::NotFound && path.ends_with('6') => Ok(String::new()),
        Err(source) => Err(ListenerError::Proc {
            path: PathBuf::from(path),
            target: first,
            source,
        }),
    };
    let mut all = parse_listeners(&read("/proc/net/tcp")?);
    all.extend(parse_listeners(&read("/proc/net/tcp6")?));
    match check_targets_in(&local, trusted, &all) {
        // The client may reach the other host: nothing here is not an error.
        Err(ListenerError::NothingListens { .. }) if elsewhere_too => Ok(()),
        checked => checked,
    }
}

/// Whether a connection to `ip` stays on this host. Loopback and the unspecified
/// address (which Linux connects to loopback) do; for the rest the kernel is
/// asked by binding a UDP socket to it, which succeeds only for this host's own
/// addresses. Std only and no `unsafe`, where listing interfaces needs
/// getifaddrs (a crate with libc), and it answers what routing answers: the
/// local table, addresses added after start and AnyIP routes included. A bind
/// that fails for another reason than "not this host's" counts as this host's:
/// checking too much fails closed, too little sends the token unchecked. (With
/// `net.ipv4.ip_nonlocal_bind` set, any address binds: then another host's
/// address is checked too, and refused as "nothing listens there".)
pub fn is_this_host(ip: IpAddr) -> bool {
    let ip = unmap(ip);
    if ip.is_loopback() || ip.is_unspecified() {
        return true;
    }
    match std::net::UdpSocket::bind(SocketAddr::new(ip, 0)) {
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::AddrNotAvailable,
    }
}

/// The address a connection to `ip` goes to: Linux sends one to the unspecified
/// address to loopback.
fn connected_ip(ip: IpAddr) -> IpAddr {
    match unmap(ip) {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// [`check_targets`] over a given socket table, for targets on this host: all
/// are checked.
pub fn check_targets_in(
    targets: &[SocketAddr],
    trusted: &[u32],
    all: &[Listener],
) -> Result<(), ListenerError> {
    let mut nothing = None;
    let mut listened = false;
    for &target in targets {
        match check_listeners(target, trusted, all) {
            Ok(()) => listened = true,
            Err(e @ ListenerError::NothingListens { .. }) => nothing = Some(e),
            Err(e) => return Err(e),
        }
    }
    match nothing {
        Some(e) if !listened => Err(e),
        _ => Ok(()),
    }
}

/// One target over a given socket table.
pub fn check_listeners(
    target: SocketAddr,
    trusted: &[u32],
    all: &[Listener],
) -> Result<(), ListenerError> {
    let candidates = accepting(target, all);
    if candidates.is_empty() {
        return Err(ListenerError::NothingListens { target });
    }
    match candidates.into_iter().find(|l| !trusted.contains(&l.uid)) {
        Some(listener) => Err(ListenerError::NotTrusted { target, listener }),
        None => Ok(()),
    }
}

/// The listeners a connection to `target` may reach: bound to its address (or its
/// IPv4-mapped form) or to a wildcard address, on its port. All are returned: which
/// one the kernel picks is not for the client to guess.
fn accepting(target: SocketAddr, all: &[Listener]) -> Vec<Listener> {
    let want = unmap(target.ip());
    all.iter()
        .filter(|l| l.addr.port() == target.port())
        .filter(|l| {
            let ip = unmap(l.addr.ip());
            ip == want
                || ip.is_unspecified()
                || (want.is_ipv4() && l.addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED))
        })
        .copied()
        .collect()
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The listening sockets (state `0A`) in the text of `/proc/net/tcp` or
/// `/proc/net/tcp6`. Lines that do not parse are skipped: a kernel that added a
/// column still lists the ones read here first.
pub fn parse_listeners(text: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                return None;
            }
            Some(Listener {
                addr: parse_addr(f[1])?,
                uid: f[7].parse().ok()?,
                inode: f[9].parse().ok()?,
            })
        })
        .collect()
}

/// `0100007F:1F90` (IPv4) or 32 hex digits `:PORT` (IPv6): the address is printed
/// as 32-bit words in the kernel's byte order, the port as a number.
fn parse_addr(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = ip.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex4(ip: Ipv4Addr) -> String {
        format!("{:08X}", u32::from_ne_bytes(ip.octets()))
    }

    fn table(rows: &[(String, u16, u32, u64)]) -> String {
        let mut t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n".to_string();
        for (i, (ip, port, uid, inode)) in rows.iter().enumerate() {
            t.push_str(&format!(
                "   {i}: {ip}:{port:04X} 00000000:0000 0A 00000000:00000000 00:00000000 00000000 {uid:>5}        0 {inode} 1 0000000000000000 100 0 0 10 0\n"
            ));
        }
        // A connection (state 01) on the same port is not a listener.
        t.push_str(&format!("   9: {}:{:04X} 0100007F:9999 01 00000000:00000000 00:00000000 00000000  4321        0 77 1\n", hex4(Ipv4Addr::LOCALHOST), rows[0].1));
        t
    }

    #[test]
    fn proc_addresses_parse_in_kernel_byte_order() {
        let t = table(&[(hex4(Ipv4Addr::LOCALHOST), 7070, 1000, 42)]);
        assert_eq!(
            parse_listeners(&t),
            vec![Listener {
                addr: "127.0.0.1:7070".parse().unwrap(),
                uid: 1000,
                inode: 42
            }]
        );
        let mut v6 = String::new();
        for w in Ipv6Addr::LOCALHOST.octets().chunks(4) {
            v6.push_str(&format!(
                "{:08X}",
                u32::from_ne_bytes(w.try_into().unwrap())
            ));
        }
        let t = table(&[(v6, 7070, 0, 1)]);
        assert_eq!(parse_listeners(&t)[0].addr, "[::1]:7070".parse().unwrap());
    }

    #[test]
    fn a_listener_of_another_uid_or_on_the_wildcard_is_refused() {
        let target: SocketAddr = "127.0.0.1:7070".parse().unwrap();
        let ours = table(&[(hex4(Ipv4Addr::LOCALHOST), 7070, 1000, 1)]);
        assert!(check_listeners(target, &[0, 1000], &parse_listeners(&ours)).is_ok());
        let theirs = table(&[(hex4(Ipv4Addr::UNSPECIFIED), 7070, 1001, 5)]);
        let e = check_listeners(target, &[0, 1000], &parse_listeners(&theirs)).unwrap_err();
        assert!(e.to_string().contains("uid 1001"), "{e}");
        // Both bound: either may get the connection, so both must be trusted.
        let both = table(&[
            (hex4(Ipv4Addr::LOCALHOST), 7070, 1000, 1),
            (hex4(Ipv4Addr::UNSPECIFIED), 7070, 1001, 5),
        ]);
        assert!(check_listeners(target, &[0, 1000], &parse_listeners(&both)).is_err());
        let other_port = table(&[(hex4(Ipv4Addr::LOCALHOST), 7071, 1001, 1)]);
        assert!(matches!(
            check_listeners(target, &[0], &parse_listeners(&other_port)),
            Err(ListenerError::NothingListens { .. })
        ));
    }

    /// `localhost` resolved to 127.0.0.1 and ::1, the member listening on the
    /// first only: nothing on ::1 must not refuse (the client connects to either);
    /// another user's socket on ::1 must.
    #[test]
    fn localhost_with_a_member_on_one_of_its_addresses_is_not_refused() {
        let targets: Vec<SocketAddr> = vec![
            "127.0.0.1:7070".parse().unwrap(),
            "[::1]:7070".parse().unwrap(),
        ];
        let member = parse_listeners(&table(&[(hex4(Ipv4Addr::LOCALHOST), 7070, 999, 1)]));
        assert!(check_targets_in(&targets, &[0, 999], &member).is_ok());
        let mut squatted = member.clone();
        squatted.push(Listener {
            addr: "[::1]:7070".parse().unwrap(),
            uid: 1001,
            inode: 2,
        });
        assert!(matches!(
            check_targets_in(&targets, &[0, 999], &squatted),
            Err(ListenerError::NotTrusted { .. })
        ));
        assert!(matches!(
            check_targets_in(&targets, &[0, 999], &[]),
            Err(ListenerError::NothingListens { .. })
        ));
    }

    #[test]
    fn a_socket_this_process_owns_is_found_in_proc_with_its_uid() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let me = current_uid().unwrap();
        assert!(check_listener(addr, &[me]).is_ok());
        let e = check_listener(addr, &[me.wrapping_add(1)]).unwrap_err();
        assert!(e.to_string().contains(&format!("uid {me}")), "{e}");
        // Another host's address (TEST-NET-2): not checked.
        assert!(check_listener("198.51.100.1:7070".parse().unwrap(), &[]).is_ok());
    }

    /// Only loopback was checked: another user's socket on 0.0.0.0 got the token
    /// sent to this host's own address, though /proc lists it like any other.
    #[test]
    fn a_listener_of_another_user_on_this_hosts_own_address_does_not_get_the_token() {
        let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        // TEST-NET-3 is never this host's: the source address for it is ours.
        let own = match probe.connect("203.0.113.1:9").map(|()| probe.local_addr()) {
            Ok(Ok(a)) if !a.ip().is_loopback() => a.ip(),
            _ => {
                eprintln!("this host has no address but loopback: nothing to check");
                return;
            }
        };
        let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let target = SocketAddr::new(own, l.local_addr().unwrap().port());
        let me = current_uid().unwrap();
        assert!(check_listener(target, &[me]).is_ok());
        let e = check_listener(target, &[me.wrapping_add(1)]).unwrap_err();
        assert!(e.to_string().contains(&format!("uid {me}")), "{e}");
        assert!(is_this_host(own));
    }

    /// A connection to 0.0.0.0 goes to loopback on Linux: it was not checked.
    #[test]
    fn the_unspecified_address_is_checked_as_loopback() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), l.local_addr().unwrap().port());
        let me = current_uid().unwrap();
        assert!(check_listener(target, &[me]).is_ok());
        assert!(matches!(
            check_listener(target, &[me.wrapping_add(1)]),
            Err(ListenerError::NotTrusted { .. })
        ));
        assert!(is_this_host("127.0.0.5".parse().unwrap()));
        assert!(!is_this_host("198.51.100.1".parse().unwrap()));
    }
}
