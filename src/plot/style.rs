//! The look shared by every plot: image size, font sizes, line widths and colours.
//!
//! Sizes are given for the default 1200×800 canvas and scaled with the canvas, so a smaller or
//! larger figure keeps the same proportions (and text stays readable when shrunk into a paper
//! column).

use plotters::style::colors::colormaps::{ColorMap, ViridisRGB};
use plotters::style::RGBColor;

/// Width and height in pixels of the PNG and of the SVG view box when none is given.
pub const DEFAULT_SIZE: (u32, u32) = (1200, 800);

/// Smallest and largest canvas accepted: below this no layout fits, above it the RGB buffer
/// grows past a few hundred megabytes.
pub(crate) const MIN_SIDE: u32 = 300;
pub(crate) const MAX_SIDE: u32 = 8000;

/// Series colours: matplotlib's tab10 (familiar to readers, distinguishable in print and by
/// most colour-blind readers), then two darker tones from tab20b/c for up to twelve series.
/// More series reuse the palette in order.
pub(crate) const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(57, 59, 121),
    RGBColor(132, 60, 57),
];

/// The colour of series `i`.
pub(crate) fn series_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Reference lines (the `hline` baseline) are near-black and dashed, so they read as
/// annotation rather than data.
pub(crate) const REFERENCE: RGBColor = RGBColor(40, 40, 40);

/// Missing heatmap cells: a mid grey, which viridis never produces.
pub(crate) const MISSING: RGBColor = RGBColor(190, 190, 190);

/// Axis lines, tick marks and the frame around the plotting area.
pub(crate) const AXIS: RGBColor = RGBColor(30, 30, 30);

/// Opacity of a series' shaded band: light enough that overlapping bands and the lines on top
/// stay visible.
pub(crate) const BAND_ALPHA: f64 = 0.18;

/// Viridis, perceptually uniform and readable in greyscale, at `t` in [0, 1].
pub(crate) fn viridis(t: f64) -> RGBColor {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    ViridisRGB.get_color_normalized(t as f32, 0.0, 1.0)
}

/// Pixel sizes for one canvas, scaled from the 1200×800 design.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Metrics {
    scale: f64,
}

impl Metrics {
    pub(crate) fn for_size((w, h): (u32, u32)) -> Self {
        Metrics { scale: (w as f64 / 1200.0).min(h as f64 / 800.0) }
    }

    /// `v` design pixels on this canvas, at least 1.
    pub(crate) fn px(&self, v: f64) -> u32 {
        (v * self.scale).round().max(1.0) as u32
    }

    /// `v` design pixels as a signed coordinate offset.
    pub(crate) fn off(&self, v: f64) -> i32 {
        self.px(v) as i32
    }

    /// Font sizes (plotters' size, roughly the line height in pixels).
    pub(crate) fn title_font(&self) -> f64 {
        38.0 * self.scale
    }
    pub(crate) fn axis_font(&self) -> f64 {
        30.0 * self.scale
    }
    pub(crate) fn tick_font(&self) -> f64 {
        26.0 * self.scale
    }
    pub(crate) fn legend_font(&self) -> f64 {
        26.0 * self.scale
    }

    /// Data lines: 3 px at 1200×800, never under 2 px.
    pub(crate) fn line_width(&self) -> u32 {
        self.px(3.0).max(2)
    }
}
