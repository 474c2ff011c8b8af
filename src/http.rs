//! The daemon's HTTP endpoints on `metrics.listen` (SPEC §6): `/metrics` in
//! the Prometheus text format, `/healthz` (the process answers) and
//! `/readyz` (the store is open and the database answers; 503 otherwise),
//! and the status pages of [`crate::ui`] beside them.

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

/// How often the recorder's histogram buffers are drained between scrapes.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Whether the daemon can do its work, as `/readyz` reports it.
#[derive(Debug)]
pub struct Readiness(Mutex<Result<(), String>>);

impl Readiness {
    /// Not ready until the store is open.
    pub fn new() -> Readiness {
        Readiness(Mutex::new(Err("starting: the store is not open yet".into())))
    }

    /// Records the latest finding; logs when it changes.
    pub fn set(&self, finding: Result<(), String>) {
        let mut current = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match (&*current, &finding) {
            (Ok(()), Err(reason)) => tracing::warn!(reason, "not ready: /readyz answers 503"),
            (Err(_), Ok(())) => tracing::info!("ready: the database answers"),
            _ => {}
        }
        *current = finding;
    }

    pub fn get(&self) -> Result<(), String> {
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
/// `crate::ui`), until `stop` is cancelled.
pub fn serve(
    listener: TcpListener,
    metrics: PrometheusHandle,
    readiness: Arc<Readiness>,
    pages: Router,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let upkeep = metrics.clone();
    let router = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Endpoints { metrics, readiness })
        .merge(pages);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(METRICS_UPKEEP);
        let server = axum::serve(listener, router).with_graceful_shutdown(stop.clone().cancelled_owned()).into_future();
        tokio::pin!(server);
        loop {
            tokio::select! {
                result = &mut server => {
                    if let Err(error) = result {
                        tracing::error!(%error, "the HTTP server stopped");
                    }
                    return;
                }
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
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {reason}\n")),
    }
}
