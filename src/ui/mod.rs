//! The status pages `retentiond run` serves beside `/metrics` (docs/design.md, "Status pages"):
//! the overview (`/`), the forecast (`/forecast`), the runs (`/runs`,
//! `/runs/{id}`), the audit search (`/audit`) and the held jobs (`/holds`).
//!
//! Server-rendered HTML (maud: templates checked at compile time, every
//! value escaped), one inline style sheet, charts as inline SVG, no script
//! and nothing fetched from elsewhere. GET only. Every list is one page of a
//! bounded size read from one index range, so a page costs the same at a
//! million jobs as at ten.
//!
//! - `access`: the password (when required), the `Host` check (when not)
//!   and the security headers;
//! - `failures`: what a wrong password costs (counted, logged, throttled);
//! - `params`: the query strings each page takes, validated;
//! - `pages`: the handlers and their HTML;
//! - `chart`: the forecast's SVG chart.

mod access;
mod chart;
mod failures;
mod pages;
mod params;

use std::sync::{Arc, OnceLock, RwLock};

use axum::Router;
use axum::middleware;
use axum::routing::get;
use chrono::{DateTime, Utc};

pub use access::Access;

use crate::config::Settings;
use crate::http::Readiness;
use crate::scheduler::{Timetable, Windows};
use crate::store::Store;

/// What the daemon shows its pages: the store once it is open, the settings
/// in force, readiness, and the schedule's timetable (ticks and windows).
pub struct DaemonView {
    store: OnceLock<Arc<dyn Store>>,
    settings: RwLock<Arc<Settings>>,
    readiness: Arc<Readiness>,
    timetable: Timetable,
}

impl DaemonView {
    pub fn new(settings: Arc<Settings>, readiness: Arc<Readiness>, timetable: Timetable) -> Arc<DaemonView> {
        Arc::new(DaemonView { store: OnceLock::new(), settings: RwLock::new(settings), readiness, timetable })
    }

    pub fn store_opened(&self, store: Arc<dyn Store>) {
        let _ = self.store.set(store);
    }

    pub fn settings_changed(&self, settings: Arc<Settings>) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = settings;
    }

    fn settings(&self) -> Arc<Settings> {
        self.settings.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn store(&self) -> Option<Arc<dyn Store>> {
        self.store.get().cloned()
    }

    /// The schedule's next tick, if it has one.
    fn next_tick(&self) -> Option<DateTime<Utc>> {
        self.timetable.next_tick().map(|tick| tick.at)
    }

    /// The windows in force (`schedule.window`).
    fn windows(&self) -> Arc<Windows> {
        self.timetable.windows()
    }
}

/// The pages' routes; with `ui.enabled = false` none (every page answers 404).
pub fn router(view: Arc<DaemonView>, access: Access) -> Router {
    if !view.settings().ui.enabled {
        return Router::new();
    }
    let access = Arc::new(access);
    Router::new()
        .route("/", get(pages::overview))
        .route("/forecast", get(pages::forecast))
        .route("/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/audit", get(pages::audit))
        .route("/holds", get(pages::holds))
        .with_state(view)
        .route_layer(middleware::from_fn_with_state(access, access::require_password))
        .layer(middleware::from_fn(access::security_headers))
}
