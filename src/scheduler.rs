//! The daemon's clock (docs/design.md, "The daemon"): when the next sweep is due on
//! `schedule.cron` in `schedule.timezone`, a loop that calls back at each
//! tick, and the hours sweeps may delete in (`schedule.window`, see
//! `window`).
//!
//! The next tick is computed here, anew after every tick, by croner 4 on a
//! chrono-tz zone. tokio-cron-scheduler, used before, fixes a zone's UTC
//! offset when a job is created and cannot be told otherwise, so a named
//! zone would fire an hour off after a daylight-saving change. croner walks
//! the zone's wall clock and resolves it to an instant by documented rules:
//! - a fixed-time schedule (second, minute and hour each a single value,
//!   e.g. daily at 02:30) whose time falls in a spring-forward gap runs at
//!   the first valid time after the gap, the same day; in a fall-back
//!   overlap it runs once, at the first of the two;
//! - any other schedule (hourly, every 15 minutes, a list of hours) skips
//!   the wall-clock times that do not exist and runs in both passes of an
//!   overlap: it keeps its rhythm in real time.
//!
//! The loop sleeps in slices of at most [`LONGEST_SLEEP`] and reads the wall
//! clock after each: tokio's timers follow a monotonic clock that stands
//! still while the machine is suspended and ignores changes to the system
//! clock. Ticks missed meanwhile (suspend, clock set forward) become one
//! tick, at once, logged as late; a clock set back brings the next tick
//! forward if the schedule has an earlier one. The callback must be quick:
//! it only decides whether to start a sweep (the daemon guards against
//! overlapping sweeps) and spawns it elsewhere.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use window::{Window, WindowReport, WindowState, Windows, parse_windows};

mod window;

/// The longest the loop sleeps before it reads the wall clock again.
const LONGEST_SLEEP: Duration = Duration::from_secs(60);
/// A tick noticed later than this was missed: the machine slept or the clock jumped.
const LATE: chrono::TimeDelta = chrono::TimeDelta::seconds(5);
/// How many missed ticks a late wake-up counts at most, for its log line.
const MISSED_COUNT_LIMIT: usize = 1000;

/// A cron expression or a time zone that cannot be scheduled.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule.cron = {expression:?} {reason}")]
    Cron { expression: String, reason: String },
    #[error("schedule.timezone = {zone:?} {reason}")]
    Zone { zone: String, reason: String },
}

/// Parses a cron expression: five fields (minute first) or six (second
/// first), the usual day-of-month OR day-of-week rule, and at least one
/// tick ahead.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    let fields = expression.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "has {fields} field{}; it needs five (minute hour day-of-month month day-of-week, e.g. \"0 * * * *\" = hourly) \
             or six, seconds first (e.g. \"0 0 * * * *\")",
            if fields == 1 { "" } else { "s" }
        ));
    }
    // Seconds::Optional reads five fields as six with second 0.
    let cron = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|error| format!("is not a valid cron expression: {error}"))?;
    if cron.find_next_occurrence(&Utc::now(), false).is_err() {
        return Err("never fires (no date matches it)".into());
    }
    Ok(cron)
}

/// Parses an IANA time zone name (`UTC`, `Europe/Berlin`, …).
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        "is not an IANA time zone name (e.g. UTC, Europe/Berlin, America/New_York; see `timedatectl list-timezones`)"
            .to_owned()
    })
}

/// A cron expression in a time zone.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    cron: Cron,
    zone: Tz,
}

impl CronSchedule {
    pub fn new(expression: &str, zone: &str) -> Result<CronSchedule, ScheduleError> {
        let cron = parse_cron(expression)
            .map_err(|reason| ScheduleError::Cron { expression: expression.to_owned(), reason })?;
        let zone = parse_zone(zone).map_err(|reason| ScheduleError::Zone { zone: zone.to_owned(), reason })?;
        Ok(CronSchedule { cron, zone })
    }

    /// The first tick strictly after `after`, or `None` if there is none.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = self.cron.find_next_occurrence(&after.with_timezone(&self.zone), false).ok()?;
        Some(next.with_timezone(&Utc))
    }
}

/// An instant and the schedule's zone, to show it in both: when the next
/// sweep is due, when a window opens or closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZonedTime {
    pub at: DateTime<Utc>,
    pub zone: Tz,
}

impl ZonedTime {
    /// The zone's name, e.g. `Europe/Berlin`.
    pub fn zone_name(&self) -> &'static str {
        self.zone.name()
    }

    /// RFC 3339 in UTC, e.g. `2025-10-26T01:30:00Z`.
    pub fn utc_text(&self) -> String {
        self.at.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// RFC 3339 with the zone's offset, e.g. `2025-10-26T02:30:00+01:00`.
    pub fn local_rfc3339(&self) -> String {
        self.at.with_timezone(&self.zone).to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// RFC 3339 with the zone's offset, then the zone's name, e.g.
    /// `2025-10-26T02:30:00+01:00 Europe/Berlin`.
    pub fn local_text(&self) -> String {
        format!("{} {}", self.local_rfc3339(), self.zone.name())
    }
}

struct TimetableState {
    schedule: Arc<CronSchedule>,
    windows: Arc<Windows>,
    next: Option<DateTime<Utc>>,
    /// Told each new next tick (the daemon's metric): the clock knows no metrics.
    on_next: fn(Option<DateTime<Utc>>),
}

impl TimetableState {
    fn set_next(&mut self, next: Option<DateTime<Utc>>) {
        self.next = next;
        (self.on_next)(next);
    }

    /// Moves the next tick to the schedule's first after `after`.
    fn next_after(&mut self, after: DateTime<Utc>) {
        let next = self.schedule.next_after(after);
        self.set_next(next);
    }
}

/// The schedule in force (its ticks and its windows) and its next tick,
/// shared by the loop that ticks ([`spawn`]), the reload that replaces the
/// schedule, the ticks that ask whether a window is open, and whoever shows
/// them (logs, status pages). Cheap to clone.
#[derive(Clone)]
pub struct Timetable {
    state: Arc<Mutex<TimetableState>>,
    /// Wakes the loop when the schedule was replaced.
    replaced: Arc<Notify>,
}

impl Timetable {
    /// A timetable whose next tick is the schedule's first after now;
    /// `on_next` is told that tick, and every later one.
    pub fn new(schedule: CronSchedule, windows: Windows, on_next: fn(Option<DateTime<Utc>>)) -> Timetable {
        let mut state =
            TimetableState { schedule: Arc::new(schedule), windows: Arc::new(windows), next: None, on_next };
        state.next_after(Utc::now());
        Timetable { state: Arc::new(Mutex::new(state)), replaced: Arc::new(Notify::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TimetableState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the next sweep is due, in UTC and the schedule's zone; `None`
    /// if the schedule never fires again.
    pub fn next_tick(&self) -> Option<ZonedTime> {
        let state = self.lock();
        state.next.map(|at| ZonedTime { at, zone: state.schedule.zone })
    }

    /// The windows in force.
    pub fn windows(&self) -> Arc<Windows> {
        self.lock().windows.clone()
    }

    /// Puts `schedule` and `windows` in force; the next tick counts from now.
    pub fn replace(&self, schedule: CronSchedule, windows: Windows) {
        {
            let mut state = self.lock();
            state.schedule = Arc::new(schedule);
            state.windows = Arc::new(windows);
            state.next_after(Utc::now());
        }
        self.replaced.notify_one();
    }

    /// Called on waking at `now`: whether a tick is due (the next one then
    /// moves on), how long to sleep otherwise, and how late a due tick is.
    fn on_wake(&self, now: DateTime<Utc>) -> Wake {
        let mut state = self.lock();
        let Some(next) = state.next else { return Wake::Idle };
        if now < next {
            // A clock set back may have put an earlier tick ahead of us.
            if let Some(earlier) = state.schedule.next_after(now).filter(|&tick| tick < next) {
                state.set_next(Some(earlier));
                return Wake::Sleep(until(now, earlier));
            }
            return Wake::Sleep(until(now, next));
        }
        let late = now - next;
        let missed = if late > LATE {
            std::iter::successors(state.schedule.next_after(next), |&tick| state.schedule.next_after(tick))
                .take_while(|&tick| tick <= now)
                .take(MISSED_COUNT_LIMIT)
                .count()
        } else {
            0
        };
        // Counted from the later of the two, so no tick is ever given twice.
        let after = now.max(next);
        state.next_after(after);
        Wake::Tick { due: next, late, missed }
    }
}

/// What the loop does after waking.
enum Wake {
    Tick {
        due: DateTime<Utc>,
        late: chrono::TimeDelta,
        missed: usize,
    },
    Sleep(Duration),
    /// The schedule has no tick ahead: wait for a replacement.
    Idle,
}

/// The time from `now` to `then`, at most [`LONGEST_SLEEP`].
fn until(now: DateTime<Utc>, then: DateTime<Utc>) -> Duration {
    (then - now).to_std().unwrap_or(Duration::ZERO).min(LONGEST_SLEEP)
}

/// Calls `on_tick` at each tick of `timetable` until `stop` is cancelled.
pub fn spawn(timetable: Timetable, stop: CancellationToken, on_tick: impl Fn() + Send + 'static) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let wait = match timetable.on_wake(Utc::now()) {
                Wake::Tick { due, late, missed } => {
                    if late > LATE {
                        tracing::warn!(
                            due = %due.to_rfc3339_opts(SecondsFormat::Secs, true),
                            late_s = late.num_seconds(),
                            missed_ticks = missed,
                            "a tick is late (the machine slept or the clock jumped): sweeping once now"
                        );
                    }
                    on_tick();
                    continue;
                }
                Wake::Sleep(wait) => Some(wait),
                Wake::Idle => None,
            };
            let sleep = async {
                match wait {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => {}
                () = timetable.replaced.notified() => {}
                () = stop.cancelled() => return,
            }
        }
    })
}

#[cfg(test)]
mod tests;
