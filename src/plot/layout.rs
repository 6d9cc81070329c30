//! Pieces of page layout every figure shares: text styles, the title band, the frame around a
//! plotting area, and the axis styling.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::output::{draw_err, FONT};
use super::style::{Metrics, AXIS};

/// Text in the embedded font at `size`, in the axis colour, anchored at `pos`.
pub(crate) fn text(size: f64, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&AXIS).pos(Pos::new(h, v))
}

/// Draws `title` centred in a band across the top of `root` and returns the area below it.
/// A title too wide for the canvas is set smaller (down to 60%) rather than clipped.
pub(crate) fn title<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    m: &Metrics,
) -> Result<DrawingArea<DB, Shift>> {
    let (w, _) = root.dim_in_pixel();
    let mut size = m.title_font();
    let max_w = f64::from(w) * 0.94;
    if let Ok((tw, _)) = root.estimate_text_size(title, &text(size, HPos::Center, VPos::Center)) {
        if f64::from(tw) > max_w {
            size = (size * max_w / f64::from(tw)).max(size * 0.6);
        }
    }
    let band = m.px(72.0);
    let (top, body) = root.split_vertically(band);
    let style = text(size, HPos::Center, VPos::Center);
    top.draw(&Text::new(title.to_string(), (w as i32 / 2, band as i32 / 2 + m.off(6.0)), style))
        .map_err(draw_err)?;
    Ok(body)
}

/// A thin dark rectangle around a plotting area, so the data region reads as one box.
pub(crate) fn frame<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, m: &Metrics) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    outline(area, (0, 0), (w as i32 - 1, h as i32 - 1), axis_style(m))
}

/// An unfilled rectangle as a closed path: plotters' SVG rectangles drop the stroke width.
pub(crate) fn outline<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x0, y0): (i32, i32),
    (x1, y1): (i32, i32),
    style: ShapeStyle,
) -> Result<()> {
    let corners = vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)];
    area.draw(&PathElement::new(corners, style)).map_err(draw_err)
}

/// The style of axis lines and tick marks.
pub(crate) fn axis_style(m: &Metrics) -> ShapeStyle {
    ShapeStyle { color: AXIS.to_rgba(), filled: false, stroke_width: m.px(1.5) }
}

/// Distance from the axis line to its tick labels, as plotters lays them out (twice the tick
/// length; ticks are 8 design pixels).
pub(crate) fn label_dist(m: &Metrics) -> u32 {
    2 * tick_len(m)
}

pub(crate) fn tick_len(m: &Metrics) -> u32 {
    m.px(8.0)
}

/// Height of the x label area: tick marks, one row of labels, a gap, the axis description.
pub(crate) fn x_label_area(m: &Metrics) -> u32 {
    label_dist(m) + (m.tick_font() + m.axis_font()) as u32 + m.px(26.0)
}

/// Width of the widest of `labels` at the tick font.
pub(crate) fn widest<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    labels: impl Iterator<Item = String>,
    m: &Metrics,
) -> u32 {
    let style = text(m.tick_font(), HPos::Right, VPos::Center);
    labels.filter_map(|l| area.estimate_text_size(&l, &style).ok()).map(|(w, _)| w).max().unwrap_or(0)
}

/// Width of a vertical axis' label area whose widest tick label is `widest` pixels: ticks,
/// labels, a gap, then the (rotated) axis description, so the description sits close to the
/// labels whatever their length.
pub(crate) fn y_label_area(widest: u32, m: &Metrics) -> u32 {
    label_dist(m) + widest + m.px(18.0) + m.axis_font() as u32 + m.px(4.0)
}
