//! The forecast as inline SVG, drawn on the server: one bar per day, stacked
//! per policy, and a second, smaller chart of the held jobs on the same days.
//! Colours come from the page's style sheet (classes, not `style`
//! attributes, which the page's content security policy would refuse); each
//! bar carries its numbers in a `<title>`, which browsers show on hover.

use maud::{Markup, html};

use crate::forecast::{Forecast, ForecastDay};
use crate::policy::Policy;

const WIDTH: f64 = 760.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;

/// The jobs that become eligible per day, stacked per policy.
pub fn eligible_per_day(forecast: &Forecast) -> Markup {
    let series: Vec<Series> = Policy::ALL
        .iter()
        .map(|&policy| Series {
            class: policy.as_str(),
            label: policy.as_str(),
            value: Box::new(move |day: &ForecastDay| day.counts[policy]),
        })
        .collect();
    bars(forecast, &series, 220.0, "jobs without a hold that become eligible, per day")
}

/// The held jobs whose retention ends per day: kept while held.
pub fn held_per_day(forecast: &Forecast) -> Markup {
    let series = [Series { class: "held", label: "held", value: Box::new(|day: &ForecastDay| day.held) }];
    bars(forecast, &series, 110.0, "held jobs whose retention ends, per day")
}

/// One stacked layer of the bars.
struct Series {
    class: &'static str,
    label: &'static str,
    value: Box<dyn Fn(&ForecastDay) -> u64>,
}

/// One bar segment: a day's count of one series.
struct Segment {
    class: &'static str,
    x: f64,
    y: f64,
    height: f64,
    title: String,
}

fn bars(forecast: &Forecast, series: &[Series], height: f64, description: &str) -> Markup {
    let days = forecast.per_day.len().max(1) as f64;
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = height - TOP - BOTTOM;
    let slot = plot_width / days;
    let bar = (slot * 0.8).max(0.5);
    let highest = forecast.per_day.iter().map(|day| series.iter().map(|s| (s.value)(day)).sum::<u64>()).max();
    let (top, step) = scale(highest.unwrap_or(0));
    let y = |count: u64| TOP + plot_height - plot_height * count as f64 / top as f64;
    let mut segments = Vec::new();
    for (index, day) in forecast.per_day.iter().enumerate() {
        let x = LEFT + index as f64 * slot + (slot - bar) / 2.0;
        let mut below = 0;
        for layer in series {
            let count = (layer.value)(day);
            if count > 0 {
                let title = format!(
                    "day {} (from {} UTC): {count} {}",
                    day.day,
                    day.from.format("%Y-%m-%d %H:%M"),
                    layer.label
                );
                let (bottom, top) = (y(below), y(below + count));
                segments.push(Segment { class: layer.class, x, y: top, height: bottom - top, title });
                below += count;
            }
        }
    }
    let every = label_spacing(forecast.per_day.len());
    let labels = forecast
        .per_day
        .iter()
        .enumerate()
        .filter(|(index, _)| index % every == 0)
        .map(|(index, day)| (LEFT + index as f64 * slot + slot / 2.0, day.from.format("%m-%d").to_string()));
    html! {
        svg viewBox=(format!("0 0 {WIDTH} {height}")) role="img" aria-label=(description) {
            title { (description) }
            @for tick in (0..=top).step_by(step as usize) {
                line class="grid" x1=(LEFT) x2=(WIDTH - RIGHT) y1=(fixed(y(tick))) y2=(fixed(y(tick))) {}
                text x=(LEFT - 6.0) y=(fixed(y(tick) + 4.0)) text-anchor="end" { (tick) }
            }
            @for segment in &segments {
                rect class=(segment.class) x=(fixed(segment.x)) y=(fixed(segment.y)) width=(fixed(bar))
                    height=(fixed(segment.height)) {
                    title { (segment.title) }
                }
            }
            @for (x, label) in labels {
                text x=(fixed(x)) y=(fixed(height - 8.0)) text-anchor="middle" { (label) }
            }
            line class="axis" x1=(LEFT) x2=(WIDTH - RIGHT) y1=(fixed(y(0))) y2=(fixed(y(0))) {}
        }
    }
}

/// A coordinate with one decimal, enough for a 760-unit-wide drawing.
fn fixed(value: f64) -> String {
    format!("{value:.1}")
}

/// The top of the y axis and the step between its grid lines: the smallest
/// round step (1, 2 or 5 times a power of ten) giving at most four intervals.
fn scale(highest: u64) -> (u64, u64) {
    let steps = (0..20u32)
        .filter_map(|power| 10u64.checked_pow(power))
        .flat_map(|unit| [1, 2, 5].into_iter().filter_map(move |m| unit.checked_mul(m)));
    let step = steps.into_iter().find(|step| highest.div_ceil(*step) <= 4).unwrap_or(u64::MAX / 4);
    (highest.div_ceil(step).max(1).saturating_mul(step), step)
}

/// Every how many days a date is written under the bars: at most ten dates.
fn label_spacing(days: usize) -> usize {
    [1, 2, 5, 7, 14, 30, 61].into_iter().find(|every| days.div_ceil(*every) <= 10).unwrap_or(61)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_ends_on_a_round_step_above_the_highest_bar() {
        assert_eq!(scale(0), (1, 1));
        assert_eq!(scale(3), (3, 1));
        assert_eq!(scale(9), (10, 5));
        assert_eq!(scale(17), (20, 5));
        assert_eq!(scale(41), (60, 20));
        assert_eq!(scale(1234), (1500, 500));
        assert_eq!(label_spacing(30), 5);
        assert_eq!(label_spacing(365), 61);
        assert_eq!(label_spacing(7), 1);
    }
}
