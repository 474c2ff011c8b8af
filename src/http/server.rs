//! The HTTP server's connections: what one client can hold, and for how
//! long (docs/security.md, "The HTTP port").
//!
//! - A request's headers must arrive within [`HEADER_READ_TIMEOUT`] of the
//!   connection's start, or of the previous answer on a kept-alive
//!   connection: a silent client, one that sends a byte at a time, and an
//!   idle kept-alive connection are all closed then.
//! - At most [`Limits::max_connections`] connections are open at once. A new
//!   connection beyond that closes the oldest one that is not in the middle
//!   of a request (silent, trickling or idle), so the probes and a scrape get
//!   in however many idle connections someone holds; when every connection
//!   is busy with a request, the new one is closed at once. The cap stays
//!   below the process's open-file limit, with room left for the database.
//! - A connection lives at most [`MAX_CONNECTION_AGE`] (a client that stops
//!   reading its answer holds it no longer).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a client may take to send a request's headers, and how long a
/// kept-alive connection may stay idle between requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The most connections served at once, when the open-file limit allows.
pub const MAX_CONNECTIONS: usize = 256;

/// The longest a connection lives, however busy; then it is closed after
/// the request in flight, or at most [`CLOSE_GRACE`] later.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);

/// How long a connection told to close may finish its request.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Descriptors kept for everything but the HTTP connections: the database's
/// sessions and files, the log, the listener, the runtime's own.
const DESCRIPTORS_BESIDE_CONNECTIONS: u64 = 64;

/// The pause after a failed accept (out of descriptors, most likely), so the
/// loop does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The connection cap for this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
}

impl Limits {
    /// [`MAX_CONNECTIONS`], or less when the open-file limit (`RLIMIT_NOFILE`)
    /// leaves less room beside the `database_descriptors` the store may use.
    pub fn for_this_process(database_descriptors: u64) -> Limits {
        let open_files = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(u64::MAX);
        Limits::within(open_files, database_descriptors)
    }

    fn within(open_files: u64, database_descriptors: u64) -> Limits {
        let room = open_files.saturating_sub(database_descriptors + DESCRIPTORS_BESIDE_CONNECTIONS);
        let max_connections = usize::try_from(room).unwrap_or(usize::MAX).clamp(1, MAX_CONNECTIONS);
        Limits { max_connections }
    }
}

/// Serves `router` on `listener` until `stop` is cancelled; each request
/// carries the client's address ([`ConnectInfo`]).
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, stop: CancellationToken) {
    let open = Arc::new(OpenConnections::new(limits.max_connections));
    let tasks = TaskTracker::new();
    let mut accept_errors = AcceptErrors::default();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_errors.note(&error);
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // Over the cap with every connection busy: closed at once (dropped).
        let Some(slot) = open.admit() else { continue };
        tasks.spawn(serve_connection(stream, peer, router.clone(), slot, stop.clone()));
    }
    tasks.close();
    tasks.wait().await;
}

/// One connection, until it ends, is evicted, gets too old or the server stops.
async fn serve_connection(stream: TcpStream, peer: SocketAddr, router: Router, slot: Slot, stop: CancellationToken) {
    let state = slot.state.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let request_guard = InRequest::enter(&state);
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await;
            drop(request_guard);
            Ok::<_, Infallible>(response.unwrap_or_else(|never| match never {}))
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let closing = tokio::select! {
        _ = &mut connection => return,
        // Idle when chosen: nothing is lost by dropping it.
        () = slot.state.evicted.cancelled() => return,
        () = tokio::time::sleep(MAX_CONNECTION_AGE) => "too old",
        () = stop.cancelled() => "stopping",
    };
    tracing::debug!(%peer, closing, "closing an HTTP connection after its request in flight");
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(CLOSE_GRACE, connection).await;
}

/// What the table knows of one open connection.
#[derive(Debug, Default)]
struct ConnectionState {
    /// Requests being answered (0 or 1 on HTTP/1): while there is one, the
    /// connection is not evicted.
    requests: AtomicUsize,
    /// Cancelled when a newer connection takes this one's place.
    evicted: CancellationToken,
}

/// Marks a connection busy for as long as it lives.
struct InRequest(Arc<ConnectionState>);

impl InRequest {
    fn enter(state: &Arc<ConnectionState>) -> InRequest {
        state.requests.fetch_add(1, Ordering::SeqCst);
        InRequest(state.clone())
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The open connections, oldest first.
struct OpenConnections {
    max: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    by_age: BTreeMap<u64, Arc<ConnectionState>>,
}

/// A connection's place in the table; dropping it gives the place back.
struct Slot {
    id: u64,
    state: Arc<ConnectionState>,
    open: Arc<OpenConnections>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.table.lock().unwrap_or_else(|e| e.into_inner()).by_age.remove(&self.id);
    }
}

impl OpenConnections {
    fn new(max: usize) -> OpenConnections {
        OpenConnections { max, table: Mutex::new(Table::default()) }
    }

    /// A place for a new connection: a free one, else the place of the
    /// oldest connection not answering a request (which is told to close);
    /// `None` when every connection is answering one.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.by_age.len() >= self.max {
            let idle = table.by_age.iter().find(|(_, state)| state.requests.load(Ordering::SeqCst) == 0);
            let (&id, _) = idle?;
            if let Some(evicted) = table.by_age.remove(&id) {
                evicted.evicted.cancel();
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let state = Arc::new(ConnectionState::default());
        table.by_age.insert(id, state.clone());
        Some(Slot { id, state, open: self.clone() })
    }
}

/// Failed accepts, logged at most once a minute with how many there were:
/// while descriptors run out, every attempt fails.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    fn note(&mut self, error: &std::io::Error) {
        self.unlogged += 1;
        if self.last_logged.is_some_and(|at| at.elapsed() < Duration::from_secs(60)) {
            return;
        }
        tracing::warn!(%error, failures = self.unlogged, "cannot accept HTTP connections");
        self.last_logged = Some(Instant::now());
        self.unlogged = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_the_database_within_the_open_file_limit() {
        assert_eq!(Limits::within(1024, 20).max_connections, MAX_CONNECTIONS);
        assert_eq!(Limits::within(256, 20).max_connections, 256 - 20 - 64);
        assert_eq!(Limits::within(50, 20).max_connections, 1);
        assert_eq!(Limits::within(u64::MAX, 20).max_connections, MAX_CONNECTIONS);
    }

    #[test]
    fn a_connection_beyond_the_cap_takes_the_place_of_the_oldest_idle_one() {
        let open = Arc::new(OpenConnections::new(2));
        let first = open.admit().unwrap();
        let second = open.admit().unwrap();
        let _busy = InRequest::enter(&first.state);
        let third = open.admit().expect("the second is idle");
        assert!(!first.state.evicted.is_cancelled(), "the first is answering a request");
        assert!(second.state.evicted.is_cancelled());
        let _also_busy = InRequest::enter(&third.state);
        assert!(open.admit().is_none(), "every connection answers a request");
        drop(second);
        assert_eq!(open.table.lock().unwrap().by_age.len(), 2, "an evicted place is not given back twice");
    }
}
