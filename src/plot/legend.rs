//! The legend of a line chart, placed in whichever corner (or edge middle) of the plotting area
//! hides the least data.
//!
//! Plotters' own legend sits where it is told; gradient curves fall from the upper left to the
//! lower right on some runs and rise on others, so a fixed corner would cover data on some
//! figures. The box is opaque enough to read over grid lines.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::layout::text;
use super::output::draw_err;
use super::style::{Metrics, BAND_ALPHA};

/// How an entry's sample is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Swatch {
    Line,
    /// A line over its shaded band.
    LineWithBand,
    /// The dashed reference line.
    Dashed,
}

pub(crate) struct Entry {
    pub label: String,
    pub color: RGBColor,
    pub swatch: Swatch,
}

/// Draws `entries` inside `area` (the plotting area, in its own pixel coordinates), avoiding
/// `occupied`, the pixels where data was drawn. Candidates are tried in reading order of
/// preference; the first with the fewest covered pixels wins.
pub(crate) fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
    occupied: &[(i32, i32)],
    m: &Metrics,
) -> Result<()> {
    let font = m.legend_font();
    let style = text(font, HPos::Left, VPos::Center);
    let row_h = (font * 1.45).round() as i32;
    let pad = m.off(12.0);
    let swatch_w = m.off(54.0);
    let gap = m.off(12.0);
    let mut text_w = 0;
    for e in entries {
        let (w, _) = area.estimate_text_size(&e.label, &style).map_err(draw_err)?;
        text_w = text_w.max(w as i32);
    }
    let box_w = pad + swatch_w + gap + text_w + pad;
    let box_h = pad + row_h * entries.len() as i32 + pad;

    let (aw, ah) = area.dim_in_pixel();
    let (aw, ah) = (aw as i32, ah as i32);
    let inset = m.off(14.0);
    let (left, center, right) = (inset, (aw - box_w) / 2, aw - inset - box_w);
    let (top, middle, bottom) = (inset, (ah - box_h) / 2, ah - inset - box_h);
    let candidates = [
        (right, top),
        (left, top),
        (right, bottom),
        (left, bottom),
        (center, top),
        (center, bottom),
        (right, middle),
        (left, middle),
    ];
    let margin = m.off(6.0);
    let covered = |(x0, y0): (i32, i32)| {
        occupied
            .iter()
            .filter(|(x, y)| {
                *x >= x0 - margin
                    && *x <= x0 + box_w + margin
                    && *y >= y0 - margin
                    && *y <= y0 + box_h + margin
            })
            .count()
    };
    let (x0, y0) = candidates.iter().copied().min_by_key(|c| covered(*c)).unwrap_or((right, top));

    area.draw(&Rectangle::new([(x0, y0), (x0 + box_w, y0 + box_h)], WHITE.mix(0.9).filled()))
        .map_err(draw_err)?;
    let border = ShapeStyle { color: BLACK.mix(0.35), filled: false, stroke_width: 1 };
    area.draw(&Rectangle::new([(x0, y0), (x0 + box_w, y0 + box_h)], border)).map_err(draw_err)?;

    let lw = m.line_width();
    for (i, e) in entries.iter().enumerate() {
        let cy = y0 + pad + row_h * i as i32 + row_h / 2;
        let (sx0, sx1) = (x0 + pad, x0 + pad + swatch_w);
        match e.swatch {
            Swatch::Line | Swatch::LineWithBand => {
                if e.swatch == Swatch::LineWithBand {
                    let half = row_h * 3 / 10;
                    area.draw(&Rectangle::new(
                        [(sx0, cy - half), (sx1, cy + half)],
                        e.color.mix(BAND_ALPHA).filled(),
                    ))
                    .map_err(draw_err)?;
                }
                area.draw(&PathElement::new(vec![(sx0, cy), (sx1, cy)], e.color.stroke_width(lw)))
                    .map_err(draw_err)?;
            }
            Swatch::Dashed => {
                let (dash, space) = (m.off(12.0), m.off(7.0));
                let mut x = sx0;
                while x < sx1 {
                    let end = (x + dash).min(sx1);
                    area.draw(&PathElement::new(vec![(x, cy), (end, cy)], e.color.stroke_width(m.px(2.0))))
                        .map_err(draw_err)?;
                    x = end + space;
                }
            }
        }
        area.draw(&Text::new(e.label.clone(), (sx1 + gap, cy), style.clone())).map_err(draw_err)?;
    }
    Ok(())
}
