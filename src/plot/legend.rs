//! The legend of a line chart, placed in whichever corner (or edge middle) of the plotting area
//! hides no data, or beside the plot when every spot inside would.
//!
//! Plotters' own legend sits where it is told; gradient curves fall from the upper left to the
//! lower right on some runs and rise on others, so a fixed corner would cover data on some
//! figures. The box is opaque enough to read over grid lines.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::layout::{outline, text};
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

/// The legend's box: its size and the layout of its rows.
pub(crate) struct Legend<'e> {
    entries: &'e [Entry],
    font: f64,
    row_h: i32,
    pad: i32,
    swatch_w: i32,
    gap: i32,
    /// Width and height of the box in pixels.
    pub size: (i32, i32),
}

impl<'e> Legend<'e> {
    /// Lays out `entries`, measuring the labels with the backend of `area`.
    pub(crate) fn measure<DB: DrawingBackend>(
        area: &DrawingArea<DB, Shift>,
        entries: &'e [Entry],
        m: &Metrics,
    ) -> Result<Self> {
        let font = m.legend_font();
        let style = text(font, HPos::Left, VPos::Center);
        let mut text_w = 0;
        for e in entries {
            let (w, _) = area.estimate_text_size(&e.label, &style).map_err(draw_err)?;
            text_w = text_w.max(w as i32);
        }
        let (row_h, pad, swatch_w, gap) =
            ((font * 1.45).round() as i32, m.off(12.0), m.off(54.0), m.off(12.0));
        let size = (pad + swatch_w + gap + text_w + pad, pad + row_h * entries.len() as i32 + pad);
        Ok(Legend { entries, font, row_h, pad, swatch_w, gap, size })
    }

    /// The top-left corner, inside a plotting area of `dim` pixels, that hides the least of
    /// `occupied` (data pixels, in the same coordinates); `None` when every candidate would hide
    /// a noticeable stretch of data, and the legend belongs outside the plot. Candidates are
    /// tried in order of preference: corners, then edge middles.
    pub(crate) fn place(&self, dim: (u32, u32), occupied: &[(i32, i32)], m: &Metrics) -> Option<(i32, i32)> {
        let (box_w, box_h) = self.size;
        let (aw, ah) = (dim.0 as i32, dim.1 as i32);
        let inset = m.off(14.0);
        if box_w + 2 * inset > aw || box_h + 2 * inset > ah {
            return None;
        }
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
        let margin = m.off(8.0);
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
        let best = candidates.iter().copied().min_by_key(|c| covered(*c))?;
        // Samples are ~4 px apart (see `line::sample`): allow a few, i.e. a line clipping a
        // corner of the box, but not a curve running under it.
        (covered(best) <= 3).then_some(best)
    }

    /// Draws the box with its top-left corner at (`x0`, `y0`) of `area`.
    pub(crate) fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        (x0, y0): (i32, i32),
        m: &Metrics,
    ) -> Result<()> {
        let (box_w, box_h) = self.size;
        let (pad, row_h, swatch_w, gap) = (self.pad, self.row_h, self.swatch_w, self.gap);
        let style = text(self.font, HPos::Left, VPos::Center);
        let entries = self.entries;
        area.draw(&Rectangle::new([(x0, y0), (x0 + box_w, y0 + box_h)], WHITE.mix(0.9).filled()))
            .map_err(draw_err)?;
        let border = BLACK.mix(0.35).stroke_width(m.px(1.0));
        outline(area, (x0, y0), (x0 + box_w, y0 + box_h), border)?;

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
                        area.draw(&PathElement::new(
                            vec![(x, cy), (end, cy)],
                            e.color.stroke_width(m.px(2.0)),
                        ))
                        .map_err(draw_err)?;
                        x = end + space;
                    }
                }
            }
            area.draw(&Text::new(e.label.clone(), (sx1 + gap, cy), style.clone())).map_err(draw_err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legend(size: (i32, i32)) -> Legend<'static> {
        Legend { entries: &[], font: 24.0, row_h: 35, pad: 12, swatch_w: 54, gap: 12, size }
    }

    #[test]
    fn prefers_the_upper_right_and_avoids_data() {
        let m = Metrics::for_size((1200, 800));
        let l = legend((200, 100));
        assert_eq!(l.place((1000, 600), &[], &m), Some((1000 - 14 - 200, 14)));
        // Data in the upper right: the upper left is next.
        let busy: Vec<_> = (700..1000).step_by(4).map(|x| (x, 60)).collect();
        assert_eq!(l.place((1000, 600), &busy, &m), Some((14, 14)));
    }

    #[test]
    fn goes_outside_when_every_spot_is_taken() {
        let m = Metrics::for_size((1200, 800));
        let l = legend((200, 100));
        let everywhere: Vec<_> =
            (0..1000).step_by(4).flat_map(|x| (0..600).step_by(20).map(move |y| (x, y))).collect();
        assert_eq!(l.place((1000, 600), &everywhere, &m), None);
        assert_eq!(legend((990, 100)).place((1000, 600), &[], &m), None, "too wide to fit inside");
    }
}
