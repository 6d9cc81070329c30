//! Heatmaps: checking the grid, choosing cell edges (on a log axis when the centres are
//! geometrically spaced), drawing the cells, and the colour bar beside them.
//!
//! Cells span halfway to their neighbours, so unevenly spaced rows or columns still tile the
//! plane without gaps. Large grids go into the SVG as one embedded image rather than one
//! rectangle per cell, which keeps the file small enough to open.

use anyhow::{bail, Context, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

use super::layout;
use super::output::{self, draw_err, Raster, FONT};
use super::style::{viridis, Metrics, AXIS, MISSING};
use super::ticks::{self, Ticked, Ticks};
use super::{require_text, Heatmap};

/// Up to this many cells the SVG holds one rectangle per cell (crisp at any zoom); beyond it
/// the cells are embedded as an image.
const VECTOR_CELLS: usize = 10_000;

/// Width of the colour bar itself, in design pixels.
const BAR_WIDTH: f64 = 44.0;

/// Fill of the stand-in rectangle that [`output::embed_raster`] replaces; never a data colour
/// because data colours come from viridis or [`MISSING`].
const PLACEHOLDER: RGBColor = RGBColor(1, 2, 3);

pub(crate) fn render(map: &Heatmap, stem: &Path, size: (u32, u32)) -> Result<()> {
    output::check_size(size)?;
    let prep = prepare(map).with_context(|| format!("heatmap '{}'", map.title))?;
    let png = output::render_png(size, |root| draw(root, &prep, false).map(|_| ()))?;
    let raster = map.x.len() * map.y.len() > VECTOR_CELLS;
    let (mut svg, image) = output::render_svg(size, |root| draw(root, &prep, raster))?;
    if let Some(image) = image {
        output::embed_raster(&mut svg, PLACEHOLDER, &image)?;
    }
    output::write_pair(stem, &png, &svg).with_context(|| format!("heatmap '{}'", map.title))
}

/// One axis of the grid, in axis units (log₁₀ of the data on a log axis).
struct Axis {
    log: bool,
    /// `n + 1` cell boundaries for `n` centres, increasing.
    edges: Vec<f64>,
    /// Tick positions in data units.
    ticks: Ticks,
}

impl Axis {
    fn new(name: &str, centres: &[f64]) -> Result<Self> {
        if centres.is_empty() {
            bail!("{name} is empty");
        }
        if let Some(i) = centres.iter().position(|v| !v.is_finite()) {
            bail!("{name}[{i}] is {}; cell positions must be finite", centres[i]);
        }
        if let Some(i) = centres.windows(2).position(|w| w[1] <= w[0]) {
            bail!(
                "{name} must be strictly increasing, but {name}[{}] = {} ≥ {name}[{}] = {}",
                i,
                centres[i],
                i + 1,
                centres[i + 1]
            );
        }
        let log = wants_log(centres);
        let t: Vec<f64> = centres.iter().map(|&v| if log { v.log10() } else { v }).collect();
        let n = t.len();
        let mut edges = Vec::with_capacity(n + 1);
        if n == 1 {
            edges.extend([t[0] - 0.5, t[0] + 0.5]);
        } else {
            edges.push(t[0] - (t[1] - t[0]) / 2.0);
            edges.extend(t.windows(2).map(|w| (w[0] + w[1]) / 2.0));
            edges.push(t[n - 1] + (t[n - 1] - t[n - 2]) / 2.0);
        }
        let (lo, hi) = (edges[0], edges[n]);
        if !(hi - lo).is_finite() {
            bail!("{name} spans too wide a range to plot");
        }
        let ticks =
            if log { ticks::log(10f64.powf(lo), 10f64.powf(hi), 8) } else { ticks::linear(lo, hi, 7) };
        Ok(Axis { log, edges, ticks })
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.edges[0]..self.edges[self.edges.len() - 1]
    }

    fn to_axis(&self, v: f64) -> f64 {
        if self.log {
            v.log10()
        } else {
            v
        }
    }

    fn label(&self, axis_value: f64) -> String {
        self.ticks.label(if self.log { 10f64.powf(axis_value) } else { axis_value })
    }
}

/// Positive centres spread over more than a decade and evenly spaced in log₁₀ rather than
/// linearly (1, 2, 4, 8, … or 1, 10, 100, …) get a log axis, so no cell is a sliver.
fn wants_log(v: &[f64]) -> bool {
    if v.len() < 3 || v[0] <= 0.0 || v[v.len() - 1] / v[0] < 20.0 {
        return false;
    }
    let spread = |d: Vec<f64>| {
        let (lo, hi) = d.iter().fold((f64::INFINITY, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        hi / lo
    };
    let lin = spread(v.windows(2).map(|w| w[1] - w[0]).collect());
    let log = spread(v.windows(2).map(|w| (w[1] / w[0]).log10()).collect());
    log < lin
}

struct Prepared<'a> {
    map: &'a Heatmap,
    x: Axis,
    y: Axis,
    /// Colour range: the finite z values' extent.
    z: (f64, f64),
    z_ticks: Ticks,
    any_missing: bool,
}

impl Prepared<'_> {
    fn color(&self, z: f64) -> RGBColor {
        if z.is_finite() {
            viridis((z - self.z.0) / (self.z.1 - self.z.0))
        } else {
            MISSING
        }
    }
}

fn prepare(map: &Heatmap) -> Result<Prepared<'_>> {
    require_text("title", &map.title)?;
    require_text("x_label", &map.x_label)?;
    require_text("y_label", &map.y_label)?;
    require_text("colorbar_label", &map.colorbar_label)?;
    let x = Axis::new("x", &map.x)?;
    let y = Axis::new("y", &map.y)?;
    if map.z.len() != map.y.len() {
        bail!("z has {} rows but y has {} values", map.z.len(), map.y.len());
    }
    if let Some(r) = map.z.iter().position(|row| row.len() != map.x.len()) {
        bail!("z row {r} has {} values but x has {}", map.z[r].len(), map.x.len());
    }
    let finite = map.z.iter().flatten().filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    if lo > hi {
        bail!("every z value is missing (NaN or infinite)");
    }
    if !(hi - lo).is_finite() {
        bail!("z values from {lo} to {hi} span too wide a range to colour");
    }
    let z = if lo < hi { (lo, hi) } else { (lo - 0.5, hi + 0.5) };
    let any_missing = map.z.iter().flatten().any(|v| !v.is_finite());
    Ok(Prepared { map, x, y, z, z_ticks: ticks::linear(z.0, z.1, 6), any_missing })
}

/// Draws the figure; with `raster`, the cells become a stand-in rectangle and are returned as an
/// image to embed in its place.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    p: &Prepared,
    raster: bool,
) -> Result<Option<Raster>> {
    let m = Metrics::for_size(root.dim_in_pixel());
    root.fill(&WHITE).map_err(draw_err)?;
    let body = layout::title(root, &p.map.title, &m)?;
    let (bw, _) = body.dim_in_pixel();
    let z_labels_w = layout::widest(&body, p.z_ticks.major.iter().map(|v| p.z_ticks.label(*v)), &m);
    let bar_w = m.px(20.0) + m.px(BAR_WIDTH) + layout::y_label_area(z_labels_w, &m);
    let (main, bar) = body.split_horizontally(bw.saturating_sub(bar_w));
    let (top, bottom) = (m.px(8.0), layout::x_label_area(&m));
    let y_labels = p.y.ticks.major.iter().map(|v| p.y.ticks.label(*v));
    let y_area = layout::y_label_area(layout::widest(&body, y_labels, &m), &m);

    let coord = |a: &Axis| {
        let major = a.ticks.major.iter().map(|&v| a.to_axis(v)).collect();
        Ticked::with_points(RangedCoordf64::from(a.range()), major, Vec::new())
    };
    let mut chart = ChartBuilder::on(&main)
        .margin_top(top)
        .margin_right(m.px(16.0))
        .margin_left(m.px(12.0))
        .x_label_area_size(bottom)
        .y_label_area_size(y_area)
        .build_cartesian_2d(coord(&p.x), coord(&p.y))
        .map_err(draw_err)?;
    let x_fmt = |v: &f64| p.x.label(*v);
    let y_fmt = |v: &f64| p.y.label(*v);
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(p.map.x_label.as_str())
        .y_desc(p.map.y_label.as_str())
        .axis_desc_style((FONT, m.axis_font()).into_font().color(&AXIS))
        .label_style((FONT, m.tick_font()).into_font().color(&AXIS))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .axis_style(layout::axis_style(&m))
        .set_all_tick_mark_size(layout::tick_len(&m))
        .draw()
        .map_err(draw_err)?;

    let (xe, ye) = (&p.x.edges, &p.y.edges);
    let image = if raster {
        let corners = [(xe[0], ye[0]), (xe[xe.len() - 1], ye[ye.len() - 1])];
        chart
            .draw_series(std::iter::once(Rectangle::new(corners, PLACEHOLDER.filled())))
            .map_err(draw_err)?;
        Some(rasterize(p, |x, y| chart.backend_coord(&(x, y))))
    } else {
        // Each cell reaches a quarter into its right and upper neighbours, which are drawn
        // later and cover it: abutting edges would show as seams in anti-aliased SVG viewers.
        let (nr, nc) = (ye.len() - 1, xe.len() - 1);
        let cells = p.map.z.iter().enumerate().flat_map(move |(r, row)| {
            row.iter().enumerate().map(move |(c, &z)| {
                let right = if c + 1 < nc { xe[c + 1] + (xe[c + 2] - xe[c + 1]) / 4.0 } else { xe[c + 1] };
                let top = if r + 1 < nr { ye[r + 1] + (ye[r + 2] - ye[r + 1]) / 4.0 } else { ye[r + 1] };
                Rectangle::new([(xe[c], ye[r]), (right, top)], p.color(z).filled())
            })
        });
        chart.draw_series(cells).map_err(draw_err)?;
        None
    };
    layout::frame(&chart.plotting_area().strip_coord_spec(), &m)?;

    draw_colorbar(&bar, p, &m, (top, bottom), z_labels_w)?;
    Ok(image)
}

/// The cells as an RGB image covering the plotting area, using the same pixel mapping as the
/// chart (`to_px`, data to absolute pixels).
fn rasterize(p: &Prepared, to_px: impl Fn(f64, f64) -> (i32, i32)) -> Raster {
    let (xe, ye) = (&p.x.edges, &p.y.edges);
    let px: Vec<i32> = xe.iter().map(|&x| to_px(x, ye[0]).0).collect();
    let py: Vec<i32> = ye.iter().map(|&y| to_px(xe[0], y).1).collect();
    let (x0, x1) = (px[0].min(px[px.len() - 1]), px[0].max(px[px.len() - 1]));
    let (y0, y1) = (py[0].min(py[py.len() - 1]), py[0].max(py[py.len() - 1]));
    let (w, h) = ((x1 - x0).max(1) as u32, (y1 - y0).max(1) as u32);
    let mut rgb = vec![255u8; w as usize * h as usize * 3];
    for (r, row) in p.map.z.iter().enumerate() {
        // Rows grow upwards: row r spans from py[r + 1] (top) to py[r] (bottom).
        let (ra, rb) = ((py[r + 1] - y0).clamp(0, h as i32), (py[r] - y0).clamp(0, h as i32));
        for (c, &z) in row.iter().enumerate() {
            let (ca, cb) = ((px[c] - x0).clamp(0, w as i32), (px[c + 1] - x0).clamp(0, w as i32));
            let RGBColor(cr, cg, cbl) = p.color(z);
            // Sub-pixel cells still get their pixel, as in the PNG.
            for yy in ra..rb.max(ra + 1).min(h as i32) {
                for xx in ca..cb.max(ca + 1).min(w as i32) {
                    let i = (yy as usize * w as usize + xx as usize) * 3;
                    rgb[i..i + 3].copy_from_slice(&[cr, cg, cbl]);
                }
            }
        }
    }
    Raster { x: x0, y: y0, w, h, rgb }
}

/// A vertical viridis bar spanning the same height as the cells, ticked and labelled on its
/// right, with a grey "missing" swatch below it when some cells are missing.
fn draw_colorbar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Prepared,
    m: &Metrics,
    (top, bottom): (u32, u32),
    labels_w: u32,
) -> Result<()> {
    let (z0, z1) = p.z;
    let mut bar = ChartBuilder::on(area)
        .margin_top(top)
        .margin_bottom(bottom)
        .margin_left(m.px(10.0))
        .margin_right(m.px(10.0))
        .set_label_area_size(LabelAreaPosition::Right, layout::y_label_area(labels_w, m))
        .build_cartesian_2d(0f64..1f64, Ticked::new(RangedCoordf64::from(z0..z1), &p.z_ticks))
        .map_err(draw_err)?;
    let z_fmt = |v: &f64| p.z_ticks.label(*v);
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .label_style((FONT, m.tick_font()).into_font().color(&AXIS))
        .y_label_formatter(&z_fmt)
        .axis_style(layout::axis_style(m))
        .set_all_tick_mark_size(layout::tick_len(m))
        .draw()
        .map_err(draw_err)?;
    const STEPS: usize = 256;
    let strips = (0..STEPS).map(|i| {
        let (a, b) = (i as f64 / STEPS as f64, (i + 1) as f64 / STEPS as f64);
        let color = viridis((a + b) / 2.0);
        // Each strip reaches halfway into the next, which is drawn over it: abutting edges
        // would show as faint seams in anti-aliased SVG viewers.
        let top = if i + 1 < STEPS { b + 0.5 / STEPS as f64 } else { b };
        Rectangle::new([(0.0, z0 + a * (z1 - z0)), (1.0, z0 + top * (z1 - z0))], color.filled())
    });
    bar.draw_series(strips).map_err(draw_err)?;
    let plot = bar.plotting_area().strip_coord_spec();
    layout::frame(&plot, m)?;

    // The description, drawn here rather than by plotters so it reads bottom to top like the
    // y axis' and sits just beyond the tick labels.
    let (ax, ay) = area.get_base_pixel();
    let (px, py) = plot.get_base_pixel();
    let (pw, ph) = plot.dim_in_pixel();
    let desc_x = px - ax + pw as i32 + (layout::label_dist(m) + labels_w) as i32 + m.off(18.0);
    let desc_style = layout::text(m.axis_font(), HPos::Center, VPos::Top).transform(FontTransform::Rotate270);
    area.draw(&Text::new(p.map.colorbar_label.clone(), (desc_x, py - ay + ph as i32 / 2), desc_style))
        .map_err(draw_err)?;

    if p.any_missing {
        let (x, y) = (px - ax, py - ay + ph as i32 + m.off(28.0));
        let side = (pw as i32).min(m.off(26.0));
        area.draw(&Rectangle::new([(x, y), (x + side, y + side)], MISSING.filled())).map_err(draw_err)?;
        let style = layout::text(m.tick_font(), HPos::Left, VPos::Center);
        area.draw(&Text::new("missing", (x + side + m.off(10.0), y + side / 2), style)).map_err(draw_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometric_centres_get_a_log_axis_and_even_cells() {
        let a = Axis::new("x", &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0]).unwrap();
        assert!(a.log);
        let widths: Vec<f64> = a.edges.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(widths.iter().all(|w| (w - widths[0]).abs() < 1e-12), "{widths:?}");
        assert!(!Axis::new("x", &[0.0, 1.0, 2.0, 3.0]).unwrap().log);
        assert!(!wants_log(&(1..=100).map(f64::from).collect::<Vec<_>>()));
    }

    #[test]
    fn edges_are_midpoints() {
        let a = Axis::new("y", &[0.0, 10.0, 30.0]).unwrap();
        assert_eq!(a.edges, vec![-5.0, 5.0, 20.0, 40.0]);
        assert_eq!(Axis::new("y", &[3.0]).unwrap().edges, vec![2.5, 3.5]);
    }
}
