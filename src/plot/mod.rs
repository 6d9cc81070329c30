//! Figures from saved measurements: line charts (e.g. ‖∂L/∂h_t‖ against distance, on a log
//! axis spanning tens of decades) and heatmaps (e.g. log₁₀ gradient norm by training step and
//! distance).
//!
//! The module takes plain numbers, never tensors, so a figure can be redrawn from files long
//! after training, and a plotting problem can never disturb a run. Every figure is written as
//! both `<stem>.png` (for a quick look) and `<stem>.svg` (for a paper), each atomically.
//!
//! Bad input is an error that names the problem (empty series, mismatched lengths, missing
//! title); points that cannot be drawn, such as zeros or NaNs on a log axis, are skipped and the
//! line is broken there, because gradients that underflow to zero are data, not mistakes.
//!
//! Text uses an embedded DejaVu Sans (see `assets/README.md`), so no system font libraries are
//! needed. The PNG is drawn at twice its size and averaged down (plotters' bitmap lines are not
//! anti-aliased) with glyphs placed by `text.rs`; the SVG names `sans-serif` and lets the viewer
//! set the text, and uses a view box four times finer than its size so lines stay straight.

mod heatmap;
mod layout;
mod legend;
mod line;
mod output;
mod style;
mod text;
mod ticks;

#[cfg(test)]
mod tests;

use anyhow::{bail, Result};
use std::path::Path;

pub use style::DEFAULT_SIZE;

/// One line of a [`LineChart`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Legend text; required when the chart has more than one entry in its legend.
    pub label: String,
    pub x: Vec<f64>,
    /// Same length as `x`. Non-finite values (and non-positive ones on a log axis) are skipped.
    pub y: Vec<f64>,
    /// Optional (lower, upper) envelope, each the length of `x`, drawn as a translucent area in
    /// the series' colour (e.g. the spread over seeds). On a log axis a non-positive lower
    /// bound is drawn at the bottom of the plot.
    pub band: Option<(Vec<f64>, Vec<f64>)>,
}

impl Series {
    pub fn new(label: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Series { label: label.into(), x, y, band: None }
    }

    /// The same series with a shaded (lower, upper) band.
    pub fn with_band(mut self, lower: Vec<f64>, upper: Vec<f64>) -> Self {
        self.band = Some((lower, upper));
        self
    }
}

/// A chart of one or more [`Series`] against a shared x axis.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LineChart {
    pub title: String,
    /// Axis labels should carry units, e.g. "distance from the loss (steps)".
    pub x_label: String,
    pub y_label: String,
    /// Logarithmic y axis; the range is taken from the finite positive data.
    pub log_y: bool,
    pub series: Vec<Series>,
    /// A dashed horizontal reference line at this y, listed in the legend under this label
    /// (e.g. the noise floor, or chance-level loss).
    pub hline: Option<(f64, String)>,
}

/// A grid of values coloured by magnitude, with a colour bar.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Heatmap {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// What the colour means, with units, e.g. "log₁₀ ‖∂L/∂h_t‖".
    pub colorbar_label: String,
    /// Column centres, strictly increasing (e.g. distance). Geometrically spaced positive
    /// values (1, 2, 4, …) get a log axis so every column is equally wide.
    pub x: Vec<f64>,
    /// Row centres, strictly increasing, drawn bottom to top (e.g. training step).
    pub y: Vec<f64>,
    /// `z[row][col]`, `y.len()` rows of `x.len()` values; NaN (or ±∞) is missing, drawn grey.
    pub z: Vec<Vec<f64>>,
}

/// Draws `chart` to `<stem>.png` and `<stem>.svg` at [`DEFAULT_SIZE`].
pub fn line_chart(chart: &LineChart, stem: &Path) -> Result<()> {
    line_chart_sized(chart, stem, DEFAULT_SIZE)
}

/// [`line_chart`] on a canvas of `size` pixels (width, height); text and lines scale with it.
pub fn line_chart_sized(chart: &LineChart, stem: &Path, size: (u32, u32)) -> Result<()> {
    line::render(chart, stem, size)
}

/// Draws `map` to `<stem>.png` and `<stem>.svg` at [`DEFAULT_SIZE`].
pub fn heatmap(map: &Heatmap, stem: &Path) -> Result<()> {
    heatmap_sized(map, stem, DEFAULT_SIZE)
}

/// [`heatmap`] on a canvas of `size` pixels (width, height); text scales with it.
pub fn heatmap_sized(map: &Heatmap, stem: &Path, size: (u32, u32)) -> Result<()> {
    heatmap::render(map, stem, size)
}

/// Every figure needs its title and axis labels: an unlabelled figure is unusable in a paper,
/// so a missing one is caught here rather than noticed later.
fn require_text(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        bail!("{field} is empty");
    }
    Ok(())
}
