//! Turns off Nagle's algorithm (sets `TCP_NODELAY`) on the process's TCP
//! connections to a server engine's database server, as libpq and the other
//! client libraries do and as sqlx 0.9.0 does not.
//!
//! Why: over TLS, a batch larger than one TLS record leaves in two writes,
//! and with Nagle on the second waits for the server's delayed
//! acknowledgement of the first (`docs/operations.md`, "No send delay").
//! The TLS handshake itself has two such pairs of writes, so while a
//! session opens the option is set every millisecond.
//!
//! sqlx gives no access to its socket, so the sockets are found by their
//! descriptors (`/proc/self/fd`). Other threads may close a descriptor and
//! reuse its number meanwhile, so each socket is examined and set through a
//! duplicate of its own (`F_DUPFD_CLOEXEC`): the check and the set act on
//! the same socket, whatever happens to the number. Only sockets whose peer
//! is one of the server's addresses, with its port, are set. Closing a
//! duplicate would release a process's POSIX record locks on a file; only
//! numbers that were sockets a moment before are duplicated, and this
//! process takes no such locks while a server engine's store is open
//! (SQLite would). Remove this once sqlx sets the option again.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

/// How often the sockets are looked at while a session is being opened: the
/// handshake's first double write comes 1–2 ms after the connection is made.
const WHILE_CONNECTING_EVERY: Duration = Duration::from_millis(1);

/// The database server's host and port, when it is reached over TCP.
#[derive(Debug, Clone)]
pub(crate) struct TcpServer {
    host: String,
    port: u16,
}

impl TcpServer {
    pub fn new(host: &str, port: u16) -> TcpServer {
        TcpServer { host: host.to_owned(), port }
    }

    /// Runs `connecting`, which opens a session to the server, setting
    /// `TCP_NODELAY` on every TCP socket of this process connected to the
    /// server (each address its host resolves to, on its port) every
    /// [`WHILE_CONNECTING_EVERY`] until a scan finds a socket without it,
    /// and once more at its end: set before the TLS handshake's double
    /// writes, each saves a delayed acknowledgement (`docs/operations.md`,
    /// "No send delay"). The scans stop at the new session's socket, as
    /// `connecting` may go on for long (a migration) with nothing more to
    /// set. Best effort: a socket it cannot set stays as it was.
    pub async fn while_connecting<T>(&self, connecting: impl Future<Output = T>) -> T {
        let Some(servers) = self.addresses().await else { return connecting.await };
        let mut every = tokio::time::interval_at(Instant::now() + WHILE_CONNECTING_EVERY, WHILE_CONNECTING_EVERY);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut connecting = std::pin::pin!(connecting);
        loop {
            tokio::select! {
                biased;
                done = &mut connecting => {
                    set_on_sockets_connected_to(&servers);
                    return done;
                }
                _ = every.tick() => if set_on_sockets_connected_to(&servers) > 0 {
                    break;
                },
            }
        }
        let done = connecting.await;
        set_on_sockets_connected_to(&servers);
        done
    }

    /// Sets `TCP_NODELAY` on the process's connections to the server now
    /// (a session opened where no [`TcpServer::while_connecting`] watched).
    pub async fn set_nodelay_on_connections(&self) {
        if let Some(servers) = self.addresses().await {
            set_on_sockets_connected_to(&servers);
        }
    }

    /// Each address the server's host resolves to, with its port.
    async fn addresses(&self) -> Option<Vec<SocketAddr>> {
        let addresses = tokio::net::lookup_host((self.host.as_str(), self.port)).await.ok()?;
        Some(addresses.map(canonical).collect())
    }
}

/// [`TcpServer::while_connecting`] when there is a TCP server, else `connecting` as it is.
pub(crate) async fn nodelay_while<T>(server: Option<&TcpServer>, connecting: impl Future<Output = T>) -> T {
    match server {
        Some(server) => server.while_connecting(connecting).await,
        None => connecting.await,
    }
}

/// The scan itself, on this thread: `/proc/self/fd`, then a duplicate of
/// each socket found there. Returns how many sockets it set that were not
/// set before.
fn set_on_sockets_connected_to(servers: &[SocketAddr]) -> usize {
    let mut newly_set = 0;
    let Ok(descriptors) = std::fs::read_dir("/proc/self/fd") else { return newly_set };
    for entry in descriptors.flatten() {
        let Some(number) = entry.file_name().to_str().and_then(|name| name.parse::<RawFd>().ok()) else { continue };
        // "socket:[inode]": anything else (files, pipes, this directory) is left alone.
        let is_socket =
            std::fs::read_link(entry.path()).is_ok_and(|target| target.as_os_str().as_bytes().starts_with(b"socket:"));
        if !is_socket {
            continue;
        }
        let Some(socket) = duplicate(number) else { continue };
        if peer(&socket).is_some_and(|peer| servers.contains(&peer))
            && rustix::net::sockopt::tcp_nodelay(&socket) == Ok(false)
            && rustix::net::sockopt::set_tcp_nodelay(&socket, true).is_ok()
        {
            newly_set += 1;
        }
    }
    newly_set
}

/// A descriptor of this process's own for what `number` refers to now;
/// `None` when it is closed by now.
fn duplicate(number: RawFd) -> Option<OwnedFd> {
    // SAFETY: fcntl reads and writes no memory of ours; on a closed number it
    // fails (EBADF), on a reused one it duplicates whatever is there now, which
    // the checks on the duplicate then see.
    let duplicate = unsafe { libc::fcntl(number, libc::F_DUPFD_CLOEXEC, 0) };
    // SAFETY: a descriptor fcntl just returned is open and owned by no one else.
    (duplicate >= 0).then(|| unsafe { OwnedFd::from_raw_fd(duplicate) })
}

/// The address and port a TCP socket is connected to.
fn peer(socket: &OwnedFd) -> Option<SocketAddr> {
    let peer = rustix::net::getpeername(socket).ok()??;
    SocketAddr::try_from(peer).ok().map(canonical)
}

/// An IPv4 address mapped into IPv6 (`::ffff:127.0.0.1`) as plain IPv4, so
/// that a socket of either family compares equal to the resolved address.
fn canonical(address: SocketAddr) -> SocketAddr {
    let ip: IpAddr = address.ip().to_canonical();
    SocketAddr::new(ip, address.port())
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    fn nodelay(stream: &TcpStream) -> bool {
        stream.nodelay().unwrap()
    }

    /// Only the socket connected to the server's address and port is set: not
    /// one to the same port on another address, nor one to another port.
    #[test]
    fn only_connections_to_the_server_address_and_port_are_set() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let same_port_elsewhere = TcpListener::bind(("127.0.0.2", port)).unwrap();
        let other_port = TcpListener::bind("127.0.0.1:0").unwrap();
        let to_server = TcpStream::connect(server.local_addr().unwrap()).unwrap();
        let to_same_port = TcpStream::connect(same_port_elsewhere.local_addr().unwrap()).unwrap();
        let to_other_port = TcpStream::connect(other_port.local_addr().unwrap()).unwrap();
        assert!(!nodelay(&to_server) && !nodelay(&to_same_port) && !nodelay(&to_other_port));

        assert_eq!(set_on_sockets_connected_to(&[server.local_addr().unwrap()]), 1);
        assert!(nodelay(&to_server));
        assert_eq!(set_on_sockets_connected_to(&[server.local_addr().unwrap()]), 0, "set already");
        assert!(!nodelay(&to_same_port), "same port, another address");
        assert!(!nodelay(&to_other_port), "same address, another port");
    }

    /// A connection made while a session is being opened is set before the
    /// opening ends (the TLS handshake's writes follow within milliseconds).
    #[tokio::test]
    async fn connections_made_while_connecting_are_set_before_it_ends() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = server.local_addr().unwrap();
        let watched = TcpServer::new("127.0.0.1", address.port());
        let set_while_connecting = watched
            .while_connecting(async {
                let stream = tokio::net::TcpStream::connect(address).await.unwrap();
                for _ in 0..200 {
                    if stream.nodelay().unwrap() {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                false
            })
            .await;
        assert!(set_while_connecting, "not set within 200 ms of the connection");
    }
}
