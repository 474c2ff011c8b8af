//! The daemon's HTTP endpoints on `metrics.listen` (docs/design.md, "The daemon"): `/metrics` in
//! the Prometheus text format, `/healthz` (the process answers) and
//! `/readyz` (the store is open and the database answers; 503 otherwise),
//! and the status pages of [`crate::ui`] beside them. The probes read what
//! the daemon last found and never wait for the database. The connections
//! themselves (timeouts, the cap) are [`server`]'s.

mod server;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use server::{HEADER_READ_TIMEOUT, Limits, MAX_CONNECTIONS};

use crate::store::StoreError;

/// How often the recorder's histogram buffers are drained between scrapes.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Whether the daemon can do its work, as `/readyz` reports it.
#[derive(Debug)]
pub struct Readiness(Mutex<Result<(), NotReady>>);

/// Why the daemon is not ready: one word that `/readyz` may tell anyone,
/// and the details (which may name the database's address) for the log,
/// the status pages and `/readyz` on a loopback address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct NotReady {
    /// `starting`, `database_unreachable`, `read_only`, `not_migrated` or `database_error`.
    pub word: &'static str,
    pub detail: String,
}

impl NotReady {
    fn starting() -> NotReady {
        NotReady { word: "starting", detail: "starting: the store is not open yet".into() }
    }

    /// The database did not answer a check in time.
    pub fn no_answer(detail: String) -> NotReady {
        NotReady { word: "database_unreachable", detail }
    }

    /// The store's error, as a reason.
    pub fn of(error: &StoreError) -> NotReady {
        let word = match error {
            StoreError::Unreachable { .. } => "database_unreachable",
            StoreError::ReadOnly(_) => "read_only",
            StoreError::NotMigrated(_) => "not_migrated",
            _ => "database_error",
        };
        NotReady { word, detail: error.to_string() }
    }
}

impl Readiness {
    /// Not ready until the store is open.
    pub fn new() -> Readiness {
        Readiness(Mutex::new(Err(NotReady::starting())))
    }

    /// Records the latest finding; logs when it changes.
    pub fn set(&self, finding: Result<(), NotReady>) {
        let mut current = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match (&*current, &finding) {
            (Ok(()), Err(reason)) => {
                tracing::warn!(reason = reason.word, detail = %reason.detail, "not ready: /readyz answers 503");
            }
            (Err(_), Ok(())) => tracing::info!("ready: the database answers"),
            _ => {}
        }
        *current = finding;
    }

    pub fn get(&self) -> Result<(), NotReady> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness::new()
    }
}

#[derive(Clone)]
struct Endpoints {
    metrics: PrometheusHandle,
    readiness: Arc<Readiness>,
    /// Whether only this host can reach the server (`metrics.listen` is a
    /// loopback address): `/readyz` then tells the details, not only the word.
    loopback: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on metrics.listen = {address}: {source}")]
pub struct ListenError {
    address: String,
    #[source]
    source: std::io::Error,
}

/// Binds `address` now, so a port in use fails the start, not a later scrape.
pub async fn bind(address: SocketAddr) -> Result<TcpListener, ListenError> {
    TcpListener::bind(address).await.map_err(|source| ListenError { address: address.to_string(), source })
}

/// Serves the endpoints, and `pages` beside them (the status pages,
/// `crate::ui`), until `stop` is cancelled, within `limits`.
pub fn serve(
    listener: TcpListener,
    metrics: PrometheusHandle,
    readiness: Arc<Readiness>,
    pages: Router,
    limits: Limits,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let upkeep = metrics.clone();
    let loopback = listener.local_addr().is_ok_and(|address| address.ip().is_loopback());
    let router = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Endpoints { metrics, readiness, loopback })
        .merge(pages);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(METRICS_UPKEEP);
        let server = server::serve(listener, router, limits, stop);
        tokio::pin!(server);
        loop {
            tokio::select! {
                () = &mut server => return,
                _ = ticks.tick() => upkeep.run_upkeep(),
            }
        }
    })
}

async fn render_metrics(State(endpoints): State<Endpoints>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], endpoints.metrics.render())
}

async fn ready(State(endpoints): State<Endpoints>) -> impl IntoResponse {
    match endpoints.readiness.get() {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) if endpoints.loopback => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", reason.detail))
        }
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", reason.word)),
    }
}
