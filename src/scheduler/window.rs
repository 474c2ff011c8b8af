//! The hours a sweep may delete in (`schedule.window`): daily windows such
//! as `22:00-06:00` on the wall clock of `schedule.timezone`, and whether a
//! moment lies inside one (until when) or outside (until when).
//!
//! A window that ends at or before its start runs across midnight: it opens
//! on one day and closes on the next. Several windows are their union;
//! windows that touch or overlap make one longer window. No window at all
//! means any time.
//!
//! On the days the clocks change, each bound of a window is the first moment
//! the wall clock shows that time or later on its day (docs/daemon.md,
//! "Windows"):
//! - a bound the clock skips (spring forward) falls at the end of the gap,
//!   the moment the clock jumps: a window `02:30-05:00` opens at 03:00 that
//!   day, and a window that lies wholly in the gap does not open that day;
//! - a bound the clock shows twice (fall back) falls in the first pass: a
//!   window `01:00-02:30` closes at 02:30 summer time and does not open again
//!   when the clock shows 02:00-02:30 a second time.
//!
//! So a window follows the wall clock, as the cron schedule does (a fixed
//! time in a gap runs at its end, one in an overlap runs once): on the day
//! the clocks go forward a window across the change is an hour shorter in
//! real time, on the day they go back an hour longer.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{ScheduleError, ZonedTime, parse_zone};

const SECONDS_PER_DAY: u32 = 86_400;

/// How many days past today's the windows are laid out: an opening or an
/// end further away than a week is none (windows that cover every hour
/// chain into one that never ends).
const HORIZON_DAYS: u64 = 8;

/// One daily window, in seconds since the wall clock's midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    start: u32,
    /// Up to [`SECONDS_PER_DAY`] (`24:00`); at or before `start`: the next day.
    end: u32,
}

impl Window {
    /// Whether it closes on the day after it opens.
    fn crosses_midnight(self) -> bool {
        self.end <= self.start
    }
}

impl FromStr for Window {
    type Err = String;

    /// `START-END`, each `H:MM`, `HH:MM` or `HH:MM:SS`; `24:00` as an end only.
    fn from_str(text: &str) -> Result<Window, String> {
        let trimmed = text.trim();
        let Some((start, end)) = trimmed.split_once('-') else {
            return Err(format!("{trimmed:?} is not a window: expected START-END, e.g. \"22:00-06:00\""));
        };
        let start = time_of_day(start.trim()).map_err(|reason| format!("{trimmed:?}: the start {reason}"))?;
        let end = time_of_day(end.trim()).map_err(|reason| format!("{trimmed:?}: the end {reason}"))?;
        if start == SECONDS_PER_DAY {
            return Err(format!("{trimmed:?}: the start 24:00 is not a time of day (00:00 opens at midnight)"));
        }
        if start == end {
            return Err(format!(
                "{trimmed:?} opens and closes at the same time; for any time of day leave schedule.window empty"
            ));
        }
        Ok(Window { start, end })
    }
}

/// Seconds since midnight of `H:MM`, `HH:MM` or `HH:MM:SS`; `24:00` is the day's end.
fn time_of_day(text: &str) -> Result<u32, String> {
    let invalid = || format!("{text:?} is not a time of day (HH:MM or HH:MM:SS, 00:00 to 24:00)");
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return Err(invalid());
    }
    let mut numbers = Vec::with_capacity(3);
    for (index, part) in parts.iter().enumerate() {
        let width_ok = if index == 0 { (1..=2).contains(&part.len()) } else { part.len() == 2 };
        if !width_ok || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        numbers.push(part.parse::<u32>().map_err(|_| invalid())?);
    }
    let (hours, minutes, seconds) = (numbers[0], numbers[1], numbers.get(2).copied().unwrap_or(0));
    if minutes > 59 || seconds > 59 || hours > 24 || (hours == 24 && (minutes, seconds) != (0, 0)) {
        return Err(invalid());
    }
    Ok(hours * 3600 + minutes * 60 + seconds)
}

impl fmt::Display for Window {
    /// `HH:MM-HH:MM`, with seconds where a bound has them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = |seconds: u32| {
            let (hours, minutes, seconds) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
            if seconds == 0 {
                format!("{hours:02}:{minutes:02}")
            } else {
                format!("{hours:02}:{minutes:02}:{seconds:02}")
            }
        };
        write!(f, "{}-{}", time(self.start), time(self.end))
    }
}

/// Reads `schedule.window` as text: windows separated by commas; empty: none.
pub fn parse_windows(text: &str) -> Result<Vec<Window>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',').map(Window::from_str).collect()
}

/// Whether deletions may run at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    /// Inside a window (or there are none) until `closes`; `None`: no end
    /// within a week.
    Open { closes: Option<DateTime<Utc>> },
    /// Outside every window; the next opens at `opens` (`None`: none within a week).
    Closed { opens: Option<DateTime<Utc>> },
}

/// Where a moment stands against the windows, as `purge` reports it
/// (`window` in its JSON summary); times in RFC 3339 with the zone's offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowReport {
    pub open: bool,
    pub windows: Vec<String>,
    pub timezone: &'static str,
    /// When the window open at that moment closes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closes: Option<String>,
    /// When the next window opens, outside every window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_opens: Option<String>,
}

/// The windows in force, in the schedule's zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    list: Vec<Window>,
    zone: Tz,
}

impl Windows {
    pub fn new(list: &[Window], zone: &str) -> Result<Windows, ScheduleError> {
        let zone = parse_zone(zone).map_err(|reason| ScheduleError::Zone { zone: zone.to_owned(), reason })?;
        Ok(Windows { list: list.to_vec(), zone })
    }

    /// No window: deletions may run at any time.
    pub fn any_time(&self) -> bool {
        self.list.is_empty()
    }

    /// The windows as configured, e.g. `22:00-06:00, 12:00-13:00`; `any time` without any.
    pub fn describe(&self) -> String {
        if self.any_time() {
            return "any time".into();
        }
        self.list.iter().map(Window::to_string).collect::<Vec<_>>().join(", ")
    }

    /// `at` in the windows' zone, for display.
    pub fn zoned(&self, at: DateTime<Utc>) -> ZonedTime {
        ZonedTime { at, zone: self.zone }
    }

    /// `state` (of [`Windows::at`]) as `purge` reports it.
    pub fn report(&self, state: WindowState) -> WindowReport {
        let (open, closes, next_opens) = match state {
            WindowState::Open { closes } => (true, closes, None),
            WindowState::Closed { opens } => (false, None, opens),
        };
        let local = |at: Option<DateTime<Utc>>| at.map(|at| self.zoned(at).local_rfc3339());
        WindowReport {
            open,
            windows: self.list.iter().map(Window::to_string).collect(),
            timezone: self.zone.name(),
            closes: local(closes),
            next_opens: local(next_opens),
        }
    }

    /// Logs `message`, a sweep skipped outside every window, with the
    /// windows and when the next opens (`opens`, in UTC and in the zone);
    /// returns the latter in the zone.
    pub fn log_skipped(&self, opens: Option<DateTime<Utc>>, message: &str) -> String {
        let next = opens.map(|at| self.zoned(at));
        let next_window_local = next.map_or_else(|| "none within a week".to_owned(), |next| next.local_text());
        tracing::info!(
            reason = "window",
            window = self.describe(),
            timezone = self.zone.name(),
            next_window = next.map(|next| next.utc_text()),
            next_window_local,
            "{message}"
        );
        next_window_local
    }

    /// Whether `now` lies inside a window, and until when; or when the next one opens.
    pub fn at(&self, now: DateTime<Utc>) -> WindowState {
        if self.any_time() {
            return WindowState::Open { closes: None };
        }
        let intervals = self.intervals_around(now);
        if let Some(&(_, end)) = intervals.iter().find(|&&(start, end)| start <= now && now < end) {
            let within_a_week = end <= now + TimeDelta::days(7);
            return WindowState::Open { closes: within_a_week.then_some(end) };
        }
        WindowState::Closed { opens: intervals.iter().map(|&(start, _)| start).find(|&start| start > now) }
    }

    /// The windows as intervals of time, from the day before `now` (in the
    /// zone) to [`HORIZON_DAYS`] after, in order, those that touch or
    /// overlap merged.
    fn intervals_around(&self, now: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let today = now.with_timezone(&self.zone).date_naive();
        let first_day = today - Days::new(1);
        let mut intervals: Vec<(DateTime<Utc>, DateTime<Utc>)> = (0..=HORIZON_DAYS + 1)
            .map(|offset| first_day + Days::new(offset))
            .flat_map(|day| self.list.iter().filter_map(move |window| self.interval(*window, day)))
            .collect();
        intervals.sort();
        let mut merged: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(intervals.len());
        for (start, end) in intervals {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// `window` opened on `day`, as an interval of time; `None` if it does
    /// not open that day (it lies wholly in a spring-forward gap).
    fn interval(&self, window: Window, day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let end_day = if window.crosses_midnight() { day + Days::new(1) } else { day };
        let start = first_moment_showing(self.zone, wall_clock(day, window.start))?;
        let end = first_moment_showing(self.zone, wall_clock(end_day, window.end))?;
        (start < end).then_some((start, end))
    }
}

/// `seconds` past the midnight that starts `day`.
fn wall_clock(day: NaiveDate, seconds: u32) -> NaiveDateTime {
    day.and_time(chrono::NaiveTime::MIN) + TimeDelta::seconds(i64::from(seconds))
}

/// The first moment the wall clock of `zone` shows `wall` or later: `wall`
/// itself, its first pass if the clock shows it twice, or the moment the
/// clock jumps past it.
fn first_moment_showing(zone: Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    if let Some(moment) = zone.from_local_datetime(&wall).earliest() {
        return Some(moment.to_utc());
    }
    // In a gap: search between half a day either side (one change at most)
    // for the second at which the clock jumps past `wall`.
    let mut before = zone.from_local_datetime(&(wall - TimeDelta::hours(12))).earliest()?.timestamp();
    let mut after = zone.from_local_datetime(&(wall + TimeDelta::hours(12))).earliest()?.timestamp();
    while after - before > 1 {
        let middle = before + (after - before) / 2;
        let shown = DateTime::from_timestamp(middle, 0)?.with_timezone(&zone).naive_local();
        if shown < wall {
            before = middle;
        } else {
            after = middle;
        }
    }
    DateTime::from_timestamp(after, 0)
}

#[cfg(test)]
mod tests;
