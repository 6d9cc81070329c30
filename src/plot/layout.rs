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
    let style = ShapeStyle { color: AXIS.to_rgba(), filled: false, stroke_width: m.px(1.5) };
    area.draw(&Rectangle::new([(0, 0), (w as i32 - 1, h as i32 - 1)], style)).map_err(draw_err)
}

/// The style of axis lines and tick marks.
pub(crate) fn axis_style(m: &Metrics) -> ShapeStyle {
    ShapeStyle { color: AXIS.to_rgba(), filled: false, stroke_width: m.px(1.5) }
}
