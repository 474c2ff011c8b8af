//! The writer-latency plot: one panel per backend, every writer operation's
//! latency (log scale) against when it was due, one series per condition.
//! A percentile table hides *when* the writer suffered; the plot shows a
//! single-statement purge as one wall of latency and a batched purge as
//! many short bumps.
//!
//! Text is drawn with plotters' pure-Rust font rendering (`ab_glyph`),
//! which has no system font lookup: DejaVu Sans is read from its Debian
//! path and registered as the sans-serif font.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use super::BackendResult;
use super::error::{Context, Result};
use super::writer::Condition;

const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

const PANEL_WIDTH: u32 = 1200;
const PANEL_HEIGHT: u32 = 500;

/// Colours of the conditions, in the order [`BackendResult::writer_conditions`] gives them.
const COLOURS: [RGBColor; 3] = [RGBColor(0, 150, 60), RGBColor(210, 40, 40), RGBColor(30, 90, 210)];

/// Latencies below this are drawn at it: a log scale has no zero.
const FLOOR_MS: f64 = 0.01;

/// Registers DejaVu Sans as the sans-serif font, once. The font's bytes are
/// leaked: plotters keeps a `'static` reference to them for the process's life.
pub fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT_PATH).map_err(|error| {
                format!(
                    "cannot read the plot's font {FONT_PATH} ({error}); install the Debian package fonts-dejavu-core \
                     (apt-get install fonts-dejavu-core)"
                )
            })?;
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{FONT_PATH} is not a font plotters can use"))
        })
        .clone()
        .map_err(Into::into)
}

/// Draws the plot of `results` into the PNG file `path`.
pub fn draw(path: &Path, results: &[BackendResult]) -> Result<()> {
    register_font()?;
    let panels = u32::try_from(results.len()).context("too many backends")?.max(1);
    let root = BitMapBackend::new(path, (PANEL_WIDTH, PANEL_HEIGHT * panels)).into_drawing_area();
    root.fill(&WHITE).context("plot")?;
    let areas = root.split_evenly((results.len().max(1), 1));
    for (result, area) in results.iter().zip(&areas) {
        panel(area, result).with_context(|| format!("plotting {}", result.backend.title()))?;
    }
    root.present().with_context(|| format!("cannot write the plot {}", path.display()))
}

fn panel(area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>, result: &BackendResult) -> Result<()> {
    let conditions = result.writer_conditions();
    let ops = || conditions.iter().flat_map(|condition| condition.ops.iter());
    let x_max = ops().map(|op| op.due_s).fold(1.0, f64::max);
    let y_max = ops().map(|op| op.latency_ms).fold(1.0, f64::max) * 2.0;
    let y_min = ops().map(|op| op.latency_ms.max(FLOOR_MS)).fold(y_max, f64::min) / 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{}: writer latency", result.backend.title()), ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, (y_min..y_max).log_scale())
        .context("chart")?;
    chart
        .configure_mesh()
        .x_desc("seconds since the writer started")
        .y_desc("latency, ms (log scale)")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .context("axes")?;
    for (condition, colour) in conditions.into_iter().zip(COLOURS) {
        series(&mut chart, condition, colour)?;
    }
    legend(&mut chart)
}

/// The series' labels, in the upper right corner (this plot's and the pacing plot's).
pub fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(chart: &mut ChartContext<'a, DB, CT>) -> Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .context("legend")?;
    Ok(())
}

type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<plotters::coord::types::RangedCoordf64, LogCoord<f64>>>;

fn series(chart: &mut Chart<'_, '_>, condition: &Condition, colour: RGBColor) -> Result<()> {
    let points = condition.ops.iter().map(|op| (op.due_s, op.latency_ms.max(FLOOR_MS)));
    chart
        .draw_series(LineSeries::new(points, colour.stroke_width(1)))
        .context("series")?
        .label(format!(
            "{} (p50 {:.2} ms, p99 {:.2} ms)",
            condition.label, condition.latency.p50, condition.latency.p99
        ))
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], colour.stroke_width(3)));
    Ok(())
}
