//! Turns off Nagle's algorithm (sets `TCP_NODELAY`) on the process's TCP
//! connections to the database server, as libpq and every other PostgreSQL
//! driver do, and as sqlx did until 0.9.0
//! (<https://github.com/transact-rs/sqlx/issues/4335>).
//!
//! Why it matters here: over TLS, a request larger than one TLS record
//! (16 KiB; a batch of more than about 1,300 job ids) leaves in two writes.
//! With Nagle on, the second waits until the server acknowledges the first,
//! and the server delays that acknowledgement (40 ms on Linux) while it
//! waits for the rest of the message: every such batch took 40 ms more.
//!
//! sqlx gives no access to its socket, so the sockets are found by their
//! descriptors (`/proc/self/fd`) and their peer's port: every TCP socket of
//! this process connected to that port. Setting the option on a socket that
//! is something else by then (a descriptor closed and reused in between) is
//! harmless: it fails on anything but a TCP socket, and on a TCP socket it
//! only sends small writes at once. Remove this once sqlx sets it again.

use std::os::fd::{BorrowedFd, RawFd};

/// Sets `TCP_NODELAY` on every TCP socket of this process connected to
/// `port`. Best effort: a socket it cannot set stays as it was.
pub fn set_on_connections_to(port: u16) {
    let Ok(descriptors) = std::fs::read_dir("/proc/self/fd") else { return };
    for entry in descriptors.flatten() {
        let Some(raw) = entry.file_name().to_str().and_then(|name| name.parse::<RawFd>().ok()) else { continue };
        // SAFETY: the descriptor is only passed to getpeername and
        // setsockopt, which fail cleanly on a descriptor that is closed or
        // not a socket; neither reads or writes memory through it.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        if peer_port(fd) == Some(port) {
            let _ = rustix::net::sockopt::set_tcp_nodelay(fd, true);
        }
    }
}

fn peer_port(fd: BorrowedFd<'_>) -> Option<u16> {
    let peer = rustix::net::getpeername(fd).ok()??;
    std::net::SocketAddr::try_from(peer).ok().map(|address| address.port())
}
