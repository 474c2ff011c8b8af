//! The pages: one handler each, and the HTML they answer with. Every value
//! from the store or the request goes through maud's `( … )`, which escapes
//! it; links are built with their query strings percent-encoded.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{DOCTYPE, Markup, html};

use super::DaemonView;
use super::chart;
use super::params::{BadRequest, Params};
use crate::config::{Settings, format_duration, format_policy_retention};
use crate::forecast::{self, DEFAULT_DAYS, Forecast, MAX_DAYS};
use crate::model::{AuditEntry, Pauses, RunRecord, RunStatus};
use crate::policy::{self, PerPolicy, Policy};
use crate::scheduler::{WindowState, Windows, ZonedTime};
use crate::store::{AuditSearch, EligibleJobs, HeldKey, Store, StoreError};
use crate::sweep::paused_now::{self, PausedNow};

/// The pages' one style sheet, inline; the content security policy admits it by its hash.
pub const STYLE: &str = include_str!("style.css");

/// Runs on the overview.
const RECENT_RUNS: u32 = 10;

type Page = Result<Html<String>, PageError>;

/// Why a page cannot be shown.
pub enum PageError {
    BadRequest(String),
    NotFound(String),
    /// The store is not open yet, or the database does not answer.
    Unavailable(String),
}

impl From<BadRequest> for PageError {
    fn from(BadRequest(message): BadRequest) -> Self {
        PageError::BadRequest(message)
    }
}

impl From<StoreError> for PageError {
    fn from(error: StoreError) -> Self {
        PageError::Unavailable(format!("the store did not answer: {error}"))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            PageError::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            PageError::NotFound(message) => (StatusCode::NOT_FOUND, message),
            PageError::Unavailable(message) => (StatusCode::SERVICE_UNAVAILABLE, message),
        };
        error_page(status, &message).into_response()
    }
}

/// A page that says what went wrong.
pub fn error_page(status: StatusCode, message: &str) -> (StatusCode, Html<String>) {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! { p.bad { (message) } p { a href="/" { "Back to the overview" } } };
    (status, layout(title, None, body))
}

/// The pages of the navigation bar, in its order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nav {
    Overview,
    Forecast,
    Runs,
    Audit,
    Holds,
}

impl Nav {
    const ALL: [Nav; 5] = [Nav::Overview, Nav::Forecast, Nav::Runs, Nav::Audit, Nav::Holds];

    fn link(self) -> (&'static str, &'static str) {
        match self {
            Nav::Overview => ("/", "Overview"),
            Nav::Forecast => ("/forecast", "Forecast"),
            Nav::Runs => ("/runs", "Runs"),
            Nav::Audit => ("/audit", "Audit"),
            Nav::Holds => ("/holds", "Holds"),
        }
    }
}

fn layout(title: &str, current: Option<Nav>, body: Markup) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · retentiond" }
                link rel="icon" href="data:,";
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    nav {
                        span.brand { "retentiond" }
                        @for nav in Nav::ALL {
                            @let (href, label) = nav.link();
                            @if current == Some(nav) {
                                a href=(href) aria-current="page" { (label) }
                            } @else {
                                a href=(href) { (label) }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
                footer { "retentiond " (env!("CARGO_PKG_VERSION")) " · " (time(Utc::now())) }
            }
        }
    };
    Html(page.into_string())
}

/// The store, or 503 while it is not open yet.
fn store(view: &DaemonView) -> Result<Arc<dyn Store>, PageError> {
    view.store().ok_or_else(|| {
        let reason = view.readiness.get().err().map_or_else(|| "the store is not open yet".to_owned(), |r| r.detail);
        PageError::Unavailable(format!("not ready: {reason}"))
    })
}

fn time(timestamp: DateTime<Utc>) -> String {
    timestamp.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How long ago `then` was at `now`, roughly: `3d 4h`, `5h 2m`, `7m`, `40s`.
fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let seconds = (now - then).num_seconds().max(0);
    let (days, hours, minutes) = (seconds / 86_400, seconds % 86_400 / 3_600, seconds % 3_600 / 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

/// How long a run took, or has been running.
fn run_duration(run: &RunRecord, now: DateTime<Utc>) -> String {
    let end = run.finished_at.unwrap_or(now);
    let millis = (end - run.started_at).num_milliseconds().max(0);
    match millis {
        0..1_000 => format!("{millis} ms"),
        1_000..60_000 => format!("{:.1} s", millis as f64 / 1000.0),
        _ => age(end, run.started_at),
    }
}

/// A run's pauses for its replicas: `–`, or their count and total time.
fn paused(paused: Pauses) -> String {
    match paused.pauses {
        0 => "–".to_owned(),
        1 => format!("{:.1} s", paused.paused_ms as f64 / 1000.0),
        pauses => format!("{:.1} s ({pauses} pauses)", paused.paused_ms as f64 / 1000.0),
    }
}

/// `path?key=value&…` with the values percent-encoded; `path` alone without any.
fn link(path: &str, pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return path.to_owned();
    }
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        query.append_pair(key, value);
    }
    format!("{path}?{}", query.finish())
}

/// The `limit` pair, when not the default.
fn limit_pair(limit: u32) -> Vec<(&'static str, String)> {
    if limit == super::params::DEFAULT_PAGE_SIZE { Vec::new() } else { vec![("limit", limit.to_string())] }
}

/// Links to the first page (when not on it) and the next one (when there is more).
fn pager(first: Option<String>, next: Option<String>) -> Markup {
    html! {
        @if first.is_some() || next.is_some() {
            nav.pager aria-label="pages" {
                @if let Some(first) = first { a href=(first) { "← First page" } }
                @if let Some(next) = next { a href=(next) { "Next page →" } }
            }
        }
    }
}

/// Splits one row over `limit` off a page: whether there is a next page.
fn trim_page<T>(rows: &mut Vec<T>, limit: u32) -> bool {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    more
}

fn status_class(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Succeeded => "ok",
        RunStatus::Running => "muted",
        RunStatus::Failed | RunStatus::Abandoned => "bad",
        RunStatus::Interrupted => "warn",
    }
}

fn runs_table(runs: &[RunRecord], now: DateTime<Utc>) -> Markup {
    html! {
        div.scroll {
            table {
                thead { tr {
                    th.num { "Run" } th { "Status" } th { "Started (UTC)" } th.num { "Duration" }
                    th.num { "Deleted" } th.num { "completed / closed / creating_idle / retain_until" } th { "Stopped by" }
                    th.num { "Paused for replicas" }
                    th { "Trigger" } th { "Host" } th { "Error" }
                } }
                tbody {
                    @for run in runs {
                        tr {
                            td.num { a href=(format!("/runs/{}", run.run_id)) { (run.run_id) } }
                            td class=(status_class(run.status)) { (run.status.as_str()) }
                            td { (time(run.started_at)) }
                            td.num { (run_duration(run, now)) }
                            td.num { (run.total) }
                            td.num.muted { (run.counts.completed) " / " (run.counts.closed) " / " (run.counts.creating_idle) " / " (run.counts.retain_until) }
                            td { (run.stopped_by.as_deref().unwrap_or("–")) }
                            td.num { (paused(run.paused)) }
                            td { (run.trigger) }
                            td { (run.host) " (pid " (run.pid) ")" }
                            td.wrap { (run.error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

/// Audit rows; the run column only where rows of several runs may show.
fn audit_table(entries: &[AuditEntry], with_run: bool) -> Markup {
    html! {
        div.scroll {
            table {
                thead { tr {
                    th.num { "Audit id" } @if with_run { th.num { "Run" } } th { "Job" } th { "Type" } th { "Policy" }
                    th { "Cancelled" } th { "In final state since (UTC)" } th { "Deleted (UTC)" } th { "Deleted by" }
                } }
                tbody {
                    @for entry in entries {
                        tr {
                            td.num { (entry.id) }
                            @if with_run {
                                td.num {
                                    @if let Some(run_id) = entry.run_id {
                                        a href=(format!("/runs/{run_id}")) { (run_id) }
                                    } @else { "–" }
                                }
                            }
                            td { a href=(link("/audit", &[("job", entry.job_name.clone())])) { (entry.job_name) } }
                            td { (entry.job_type.as_str()) }
                            // A policy names its state; a manual delete does not.
                            td { (entry.policy) @if entry.policy == crate::model::MANUAL_POLICY { " (" (entry.state.as_str()) ")" } }
                            td { @if entry.cancel_requested { "yes" } @else { "–" } }
                            td { (time(entry.state_changed_at)) }
                            td { (time(entry.deleted_at)) }
                            td { (entry.deleted_by) }
                        }
                    }
                }
            }
        }
    }
}

fn nothing(what: &str) -> Markup {
    html! { p.muted { (what) } }
}

// ---------------------------------------------------------------------------
// Overview
// ---------------------------------------------------------------------------

pub async fn overview(State(view): State<Arc<DaemonView>>, RawQuery(query): RawQuery) -> Page {
    Params::parse(query.as_deref(), &[])?;
    let settings = view.settings();
    let readiness = view.readiness.get();
    let store = view.store();
    // The schedule starts once the store is open.
    let next_tick = if store.is_some() { view.next_tick() } else { None };
    let windows = view.windows();
    let paused = paused_now::current();
    let figures = match &store {
        Some(store) => Some(overview_figures(store.as_ref(), &settings).await),
        None => None,
    };
    let body = html! {
        div.cards {
            div.card {
                div.muted { "Database" }
                @match &readiness {
                    Ok(()) => div.big.ok { "ready" },
                    Err(reason) => { div.big.bad { "not ready" } div.wrap { (reason) } },
                }
            }
            div.card {
                div.muted { "Next sweep" }
                div.big { (next_tick.map_or_else(|| "–".to_owned(), |at| format!("in {}", age(at, Utc::now())))) }
                (schedule_line(&settings, next_tick, &windows))
            }
            @if !windows.any_time() {
                (window_card(&windows))
            }
            @if let Some(paused) = &paused {
                (paused_card(paused))
            }
            @if let Some(Ok(figures)) = &figures {
                div.card {
                    div.muted { "Eligible now (the next sweep deletes them)" }
                    div.big { (figures.backlog) }
                    div { "oldest: " (figures.oldest.map_or_else(|| "–".to_owned(), |oldest| age(figures.now, oldest))) }
                }
                div.card {
                    div.muted { "Held jobs (never deleted while held)" }
                    div.big { a href="/holds" { (figures.held) } }
                }
            }
        }
        @match &figures {
            None => p.bad { "The store is not open yet; the figures follow once it is." },
            Some(Err(error)) => p.bad { "The store did not answer: " (error) },
            Some(Ok(figures)) => {
                h2 { "Policies" }
                (policies_table(&settings, Some(figures)))
                h2 { "Last sweeps" }
                @if figures.runs.is_empty() { (nothing("No sweep has run yet.")) } @else {
                    (runs_table(&figures.runs, figures.now))
                    p { a href="/runs" { "All runs →" } }
                }
            },
        }
        @if !matches!(&figures, Some(Ok(_))) {
            h2 { "Policies" }
            (policies_table(&settings, None))
        }
    };
    Ok(layout("Overview", Some(Nav::Overview), body))
}

/// What the overview reads from the store.
struct OverviewFigures {
    now: DateTime<Utc>,
    eligible: PerPolicy<EligibleJobs>,
    backlog: u64,
    oldest: Option<DateTime<Utc>>,
    held: u64,
    runs: Vec<RunRecord>,
}

async fn overview_figures(store: &dyn Store, settings: &Settings) -> Result<OverviewFigures, StoreError> {
    let now = store.now().await?;
    let cutoffs = policy::cutoffs(&settings.retention.retentions(), now);
    let (eligible, held, runs) = futures::try_join!(
        store.eligible_jobs(&cutoffs),
        store.count_held(),
        store.runs(i64::MAX, Some(u64::from(RECENT_RUNS)))
    )?;
    let backlog = Policy::ALL.iter().map(|&policy| eligible[policy].count).sum();
    let oldest = Policy::ALL.iter().filter_map(|&policy| eligible[policy].oldest).min();
    Ok(OverviewFigures { now, eligible, backlog, oldest, held, runs })
}

fn schedule_line(settings: &Settings, next_tick: Option<DateTime<Utc>>, windows: &Windows) -> Markup {
    let schedule = &settings.schedule;
    html! {
        div { "at " (time_or_dash(next_tick)) }
        @if let Some(at) = next_tick {
            @if schedule.timezone != "UTC" {
                div { (local_time(windows.zoned(at))) }
            }
            @if matches!(windows.at(at), WindowState::Closed { .. }) {
                div.warn { "outside schedule.window: skipped" }
            }
        }
        div.muted { "cron " code { (schedule.cron) } " in " (schedule.timezone)
            @if schedule.singleton { " · one replica at a time" } }
    }
}

/// The sweep waiting now for a replica to catch up.
fn paused_card(paused: &PausedNow) -> Markup {
    html! {
        div.card {
            div.muted { "Sweep paused (retention.max_replica_lag)" }
            div.big.warn { "paused" }
            div.wrap { "for " code { (paused.replica) } ": " (paused.reason) }
            div { "since " (time(paused.since)) " (" (age(Utc::now(), paused.since)) ")" }
        }
    }
}

/// Whether a window is open now, until when, or when the next one opens.
fn window_card(windows: &Windows) -> Markup {
    let now = Utc::now();
    html! {
        div.card {
            div.muted { "Deletion window (schedule.window)" }
            @match windows.at(now) {
                WindowState::Open { closes } => {
                    div.big.ok { "open" }
                    @if let Some(closes) = closes {
                        div { "closes in " (age(closes, now)) ", at " (local_time(windows.zoned(closes))) }
                    }
                },
                WindowState::Closed { opens } => {
                    div.big.warn { "closed" }
                    @if let Some(opens) = opens {
                        div { "the next opens in " (age(opens, now)) ", at " (local_time(windows.zoned(opens))) }
                    } @else {
                        div { "no window opens within a week" }
                    }
                },
            }
            div.muted { (windows.describe()) " in " (windows.zoned(now).zone_name()) }
        }
    }
}

/// `2025-10-26 02:30:00 CET (Europe/Berlin)`.
fn local_time(time: ZonedTime) -> String {
    format!("{} ({})", time.at.with_timezone(&time.zone).format("%Y-%m-%d %H:%M:%S %Z"), time.zone_name())
}

fn time_or_dash(timestamp: Option<DateTime<Utc>>) -> String {
    timestamp.map_or_else(|| "–".to_owned(), time)
}

fn policies_table(settings: &Settings, figures: Option<&OverviewFigures>) -> Markup {
    let retentions = settings.retention.retentions();
    html! {
        div.scroll {
            table {
                thead { tr {
                    th { "Policy" } th { "Deletes jobs in" } th { "Aged from" } th { "Retention" }
                    th.num { "Eligible now" } th { "Oldest eligible" }
                } }
                tbody {
                    @for policy in Policy::ALL {
                        tr {
                            td { (policy.as_str()) }
                            td { (policy.states().iter().map(|state| state.as_str()).collect::<Vec<_>>().join(", ")) }
                            td { (policy.age_column()) }
                            td { (format_policy_retention(policy, &retentions)) }
                            @if let Some(figures) = figures {
                                td.num { (figures.eligible[policy].count) }
                                td { (figures.eligible[policy].oldest.map_or_else(|| "–".to_owned(), |oldest| {
                                    format!("{} ago ({})", age(figures.now, oldest), time(oldest))
                                })) }
                            } @else {
                                td.num { "–" } td { "–" }
                            }
                        }
                    }
                }
            }
        }
        p.muted {
            "Batch size " (settings.retention.batch_size) " · "
            @if settings.retention.max_deletes_per_run == 0 { "no cap on deletions per sweep" } @else {
                "at most " (settings.retention.max_deletes_per_run) " deletions per sweep" }
            " · run timeout " (format_duration(settings.retention.run_timeout))
            " · minimum retention " (format_duration(settings.retention.minimum))
        }
    }
}

// ---------------------------------------------------------------------------
// Forecast
// ---------------------------------------------------------------------------

pub async fn forecast(State(view): State<Arc<DaemonView>>, RawQuery(query): RawQuery) -> Page {
    let params = Params::parse(query.as_deref(), &["days"])?;
    let days = params.number("days", 1..=MAX_DAYS)?.unwrap_or(DEFAULT_DAYS);
    let store = store(&view)?;
    let settings = view.settings();
    let forecast = forecast::forecast(store.as_ref(), &settings.retention.retentions(), days, None).await?;
    let title = format!("Forecast: the next {days} days");
    let body = html! {
        form method="get" action="/forecast" {
            label { "Days ahead (1–" (MAX_DAYS) ")"
                input type="number" name="days" min="1" max=(MAX_DAYS) value=(days) required; }
            button type="submit" { "Show" }
        }
        p.muted { "From " (time(forecast.as_of)) " (the database's clock); day 1 is the next 24 hours. "
            "A job becomes eligible when its age reaches its policy's retention; held jobs are counted apart: they stay while held. "
            "What is eligible already is on the " a href="/" { "overview" } "." }
        (forecast_summary(&forecast))
        h2 { "Becoming eligible per day" }
        div.legend {
            @for policy in Policy::ALL { span { span class=(format!("swatch {}", policy.as_str())) {} (policy.as_str()) } }
        }
        div.scroll { (chart::eligible_per_day(&forecast)) }
        h2 { "Held jobs whose retention ends, per day" }
        div.legend { span { span class="swatch held" {} "held (kept while held)" } }
        div.scroll { (chart::held_per_day(&forecast)) }
        h2 { "Per day" }
        div.scroll {
            table {
                thead { tr {
                    th.num { "Day" } th { "From (UTC)" }
                    @for policy in Policy::ALL { th.num { (policy.as_str()) } }
                    th.num { "Total" } th.num { "Held" }
                } }
                tbody {
                    @for day in &forecast.per_day {
                        tr {
                            td.num { (day.day) } td { (time(day.from)) }
                            @for policy in Policy::ALL { td.num { (day.counts[policy]) } }
                            td.num { (day.total) } td.num { (day.held) }
                        }
                    }
                }
            }
        }
        p.muted { "The same numbers: " code { "retentiond forecast --days " (days) } " (" code { "--output json" } " for programs)." }
    };
    Ok(layout(&title, Some(Nav::Forecast), body))
}

fn forecast_summary(forecast: &Forecast) -> Markup {
    html! {
        div.scroll {
            table {
                thead { tr {
                    th { "Policy" } th { "Retention" } th.num { "Within " (forecast.days) " days" }
                    th.num { "Held, past retention" } th.num { "Held, retention ends within " (forecast.days) " days" }
                } }
                tbody {
                    @for policy in Policy::ALL {
                        @let part = &forecast.policies[policy];
                        tr {
                            td { (policy.as_str()) }
                            td { (part.retention.as_deref().unwrap_or("off")) }
                            td.num { (part.within_window) }
                            td.num { (part.held_past_retention) }
                            td.num { (part.held_within_window) }
                        }
                    }
                    tr.total {
                        td { "all" } td {}
                        td.num { (forecast.total) }
                        td.num colspan="2" { (forecast.held_total) " held" }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------

pub async fn runs(State(view): State<Arc<DaemonView>>, RawQuery(query): RawQuery) -> Page {
    let params = Params::parse(query.as_deref(), &["before", "limit"])?;
    let (before, limit) = (params.id("before")?, params.page_size()?);
    let store = store(&view)?;
    let (mut runs, now) =
        futures::try_join!(store.runs(before.unwrap_or(i64::MAX), Some(u64::from(limit) + 1)), store.now())?;
    let more = trim_page(&mut runs, limit);
    let first = before.map(|_| link("/runs", &limit_pair(limit)));
    let next = runs.last().filter(|_| more).map(|last| {
        let mut pairs = vec![("before", last.run_id.to_string())];
        pairs.extend(limit_pair(limit));
        link("/runs", &pairs)
    });
    let body = html! {
        p.muted { "One record per sweep, newest first. A run's page lists the jobs it deleted." }
        @if runs.is_empty() { (nothing("No runs here.")) } @else { (runs_table(&runs, now)) }
        (pager(first, next))
    };
    Ok(layout("Runs", Some(Nav::Runs), body))
}

pub async fn run(State(view): State<Arc<DaemonView>>, Path(id): Path<String>, RawQuery(query): RawQuery) -> Page {
    let run_id: i64 = id.parse().ok().filter(|id| *id > 0).ok_or_else(|| {
        let shown: String = id.chars().take(40).collect();
        PageError::BadRequest(format!("{shown:?} is not a run number"))
    })?;
    let params = Params::parse(query.as_deref(), &["before", "limit"])?;
    let (before, limit) = (params.id("before")?, params.page_size()?);
    let store = store(&view)?;
    let search = AuditSearch::Run { run_id, before: before.unwrap_or(i64::MAX) };
    let (record, mut entries, now) =
        futures::try_join!(store.run(run_id), store.audit(&search, Some(u64::from(limit) + 1)), store.now())?;
    let record = record.ok_or_else(|| PageError::NotFound(format!("there is no run {run_id}")))?;
    let more = trim_page(&mut entries, limit);
    let path = format!("/runs/{run_id}");
    let first = before.map(|_| link(&path, &limit_pair(limit)));
    let next = entries.last().filter(|_| more).map(|last| {
        let mut pairs = vec![("before", last.id.to_string())];
        pairs.extend(limit_pair(limit));
        link(&path, &pairs)
    });
    let body = html! {
        (runs_table(std::slice::from_ref(&record), now))
        h2 { "Deleted jobs" }
        p.muted { (record.total) " jobs deleted; their audit rows, newest first." }
        @if entries.is_empty() { (nothing("No audit rows here.")) } @else { (audit_table(&entries, false)) }
        (pager(first, next))
    };
    Ok(layout(&format!("Run {run_id}"), Some(Nav::Runs), body))
}

// ---------------------------------------------------------------------------
// Audit search
// ---------------------------------------------------------------------------

/// Job names: 1 to 64 of these characters (`crate::lifecycle::validate_name`).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The least string above every string that starts with `prefix` (job name
/// characters only, so the last one always has a successor).
fn after_prefix(prefix: &str) -> String {
    let mut until = prefix.to_owned();
    let last = until.pop().expect("a prefix is not empty");
    until.push(char::from(last as u8 + 1));
    until
}

pub async fn audit(State(view): State<Arc<DaemonView>>, RawQuery(query): RawQuery) -> Page {
    let params = Params::parse(query.as_deref(), &["job", "match", "run", "before", "after_job", "after_id", "limit"])?;
    let job = params.text("job");
    if let Some(job) = job
        && (job.chars().count() > 64 || !job.chars().all(is_name_char))
    {
        return Err(PageError::BadRequest(format!(
            "no job name is like {job:?}: names are at most 64 characters of A–Z, a–z, 0–9, - and _"
        )));
    }
    let prefix = match params.text("match") {
        None | Some("exact") => false,
        Some("prefix") => true,
        Some(other) => return Err(PageError::BadRequest(format!("match must be exact or prefix, not {other:?}"))),
    };
    let run_id = params.id("run")?;
    let (before, after_id, limit) = (params.id("before")?, params.id("after_id")?, params.page_size()?);
    let after_job = params.text("after_job");
    let search = match (job, prefix, run_id) {
        (Some(_), true, Some(_)) => {
            return Err(PageError::BadRequest(
                "a name prefix and a run cannot be searched together: give an exact name, or open the run's page"
                    .into(),
            ));
        }
        (Some(job), true, None) => AuditSearch::NameRange {
            until: after_prefix(job),
            after_name: after_job.unwrap_or(job).to_owned(),
            after_id: after_id.unwrap_or(i64::MIN),
        },
        (Some(job), false, run_id) => {
            AuditSearch::Name { name: job.to_owned(), run_id, before: before.unwrap_or(i64::MAX) }
        }
        (None, _, Some(run_id)) => AuditSearch::Run { run_id, before: before.unwrap_or(i64::MAX) },
        (None, _, None) => AuditSearch::All { before: before.unwrap_or(i64::MAX) },
    };
    let store = store(&view)?;
    let mut entries = store.audit(&search, Some(u64::from(limit) + 1)).await?;
    let more = trim_page(&mut entries, limit);

    let mut base: Vec<(&str, String)> = Vec::new();
    if let Some(job) = job {
        base.push(("job", job.to_owned()));
    }
    if prefix {
        base.push(("match", "prefix".into()));
    }
    if let Some(run_id) = run_id {
        base.push(("run", run_id.to_string()));
    }
    base.extend(limit_pair(limit));
    let first = (before.is_some() || after_id.is_some()).then(|| link("/audit", &base));
    let next = entries.last().filter(|_| more).map(|last| {
        let mut pairs = base.clone();
        if matches!(search, AuditSearch::NameRange { .. }) {
            pairs.push(("after_job", last.job_name.clone()));
            pairs.push(("after_id", last.id.to_string()));
        } else {
            pairs.push(("before", last.id.to_string()));
        }
        link("/audit", &pairs)
    });
    let order = match search {
        AuditSearch::NameRange { .. } => "by job name, then oldest first",
        _ => "newest first",
    };
    let body = html! {
        form method="get" action="/audit" {
            label { "Job name" input type="text" name="job" value=(job.unwrap_or("")) maxlength="64"
                pattern=r"[A-Za-z0-9_\-]+" autocomplete="off" spellcheck="false"; }
            label { "Match" select name="match" {
                option value="exact" selected[!prefix] { "exact" }
                option value="prefix" selected[prefix] { "prefix" }
            } }
            label { "Run" input type="number" name="run" min="1" value=(run_id.map(|id| id.to_string()).unwrap_or_default()); }
            button type="submit" { "Search" }
        }
        p.muted { "Audit rows of deleted jobs, " (order) "." }
        @if entries.is_empty() { (nothing("No audit rows match.")) } @else { (audit_table(&entries, true)) }
        (pager(first, next))
    };
    Ok(layout("Audit", Some(Nav::Audit), body))
}

// ---------------------------------------------------------------------------
// Holds
// ---------------------------------------------------------------------------

pub async fn holds(State(view): State<Arc<DaemonView>>, RawQuery(query): RawQuery) -> Page {
    let params = Params::parse(query.as_deref(), &["after_created", "after_id", "limit"])?;
    let after = match (params.time("after_created")?, params.id("after_id")?) {
        (Some(created_at), Some(id)) => Some(HeldKey { created_at, id }),
        (None, None) => None,
        _ => return Err(PageError::BadRequest("after_created and after_id go together".into())),
    };
    let limit = params.page_size()?;
    let store = store(&view)?;
    let (mut held, count, now) =
        futures::try_join!(store.held_jobs(after, limit + 1), store.count_held(), store.now())?;
    let more = trim_page(&mut held, limit);
    let first = after.map(|_| link("/holds", &limit_pair(limit)));
    let next = held.last().filter(|_| more).map(|last| {
        let mut pairs = vec![
            ("after_created", last.created_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
            ("after_id", last.id.to_string()),
        ];
        pairs.extend(limit_pair(limit));
        link("/holds", &pairs)
    });
    let body = html! {
        p.muted { (count) " jobs carry a hold; retention never deletes them while it lasts ("
            code { "retentiond jobs release NAME" } " ends one). Oldest jobs first." }
        @if held.is_empty() { (nothing("No held jobs here.")) } @else {
            div.scroll {
                table {
                    thead { tr {
                        th { "Job" } th { "Reason" } th { "Type" } th { "State" } th { "In state since (UTC)" }
                        th { "Created (UTC)" } th { "Age" }
                    } }
                    tbody {
                        @for job in &held {
                            tr {
                                td { (job.name) }
                                td.wrap { (job.hold_reason) }
                                td { (job.job_type.as_str()) }
                                td { (job.state.as_str()) }
                                td { (time(job.state_changed_at)) }
                                td { (time(job.created_at)) }
                                td { (age(now, job.created_at)) }
                            }
                        }
                    }
                }
            }
        }
        (pager(first, next))
    };
    Ok(layout("Held jobs", Some(Nav::Holds), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_just_above_its_names() {
        assert_eq!(after_prefix("seed-"), "seed.");
        assert_eq!(after_prefix("ab9"), "ab:");
        assert_eq!(after_prefix("z"), "{");
        assert_eq!(after_prefix("a_"), "a`");
        assert!("seed-0001" < after_prefix("seed-").as_str() && "seed-zzz" < after_prefix("seed-").as_str());
    }

    #[test]
    fn links_encode_their_values() {
        assert_eq!(link("/audit", &[("job", "a&b c".into()), ("run", "7".into())]), "/audit?job=a%26b+c&run=7");
        assert_eq!(link("/runs", &[]), "/runs");
    }
}
