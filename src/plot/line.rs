//! Line charts: checking the input, turning it into drawable segments and axis ranges, and
//! drawing series, bands, the reference line and the legend.

use anyhow::{bail, Context, Result};
use plotters::coord::combinators::LogCoord;
use plotters::coord::ranged1d::{DefaultFormatting, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

use super::layout;
use super::legend::{Entry, Legend, Swatch};
use super::output::{self, draw_err, FONT};
use super::style::{series_color, Metrics, AXIS, BAND_ALPHA, REFERENCE};
use super::ticks::{self, Ticked, Ticks};
use super::{require_text, LineChart};

/// Smallest y drawn on a log axis: below this 10^k is subnormal or zero in f64.
const LOG_FLOOR: f64 = 1e-300;

pub(crate) fn render(chart: &LineChart, stem: &Path, size: (u32, u32)) -> Result<()> {
    output::check_size(size)?;
    let prep = prepare(chart).with_context(|| format!("line chart '{}'", chart.title))?;
    let png = output::render_png(size, |root| draw(root, &prep))?;
    let (svg, ()) = output::render_svg(size, |root| draw(root, &prep))?;
    output::write_pair(stem, &png, &svg).with_context(|| format!("line chart '{}'", chart.title))
}

/// A line chart reduced to what gets drawn.
struct Prepared<'a> {
    chart: &'a LineChart,
    /// Per series, the runs of consecutive drawable points (a skipped point breaks the line).
    lines: Vec<Vec<Vec<(f64, f64)>>>,
    /// Per series, runs of (x, lower, upper) band points, lower already clamped to the axis.
    bands: Vec<Vec<Vec<(f64, f64, f64)>>>,
    x: (f64, f64),
    y: (f64, f64),
    x_ticks: Ticks,
    y_ticks: Ticks,
}

/// Splits `points` into runs of consecutive `Some`.
fn runs<T>(points: impl Iterator<Item = Option<T>>) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut run = Vec::new();
    for p in points {
        match p {
            Some(p) => run.push(p),
            None if !run.is_empty() => out.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

fn prepare(c: &LineChart) -> Result<Prepared<'_>> {
    require_text("title", &c.title)?;
    require_text("x_label", &c.x_label)?;
    require_text("y_label", &c.y_label)?;
    if c.series.is_empty() {
        bail!("no series to plot");
    }
    let entries = c.series.len() + usize::from(c.hline.is_some());
    for (i, s) in c.series.iter().enumerate() {
        let name =
            if s.label.is_empty() { format!("series {i}") } else { format!("series {i} ('{}')", s.label) };
        if s.x.len() != s.y.len() {
            bail!("{name}: x has {} values but y has {}", s.x.len(), s.y.len());
        }
        if s.x.is_empty() {
            bail!("{name} has no points");
        }
        if let Some((lo, hi)) = &s.band {
            if lo.len() != s.x.len() || hi.len() != s.x.len() {
                bail!(
                    "{name}: band has {} lower and {} upper values for {} points",
                    lo.len(),
                    hi.len(),
                    s.x.len()
                );
            }
        }
        if entries > 1 && s.label.trim().is_empty() {
            bail!("{name} has no label, and the legend needs one for each of its {entries} entries");
        }
    }
    if let Some((v, label)) = &c.hline {
        if entries > 1 && label.trim().is_empty() {
            bail!("hline has no label, and the legend needs one for each of its {entries} entries");
        }
        if !v.is_finite() || (c.log_y && *v < LOG_FLOOR) {
            bail!("hline at y = {v} cannot be drawn on a {} y axis", if c.log_y { "log" } else { "linear" });
        }
    }

    let drawable = |y: f64| y.is_finite() && (!c.log_y || y >= LOG_FLOOR);
    let mut lines = Vec::new();
    let mut bands = Vec::new();
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for s in &c.series {
        let pts = s.x.iter().zip(&s.y).map(|(&x, &y)| (x.is_finite() && drawable(y)).then_some((x, y)));
        let segs = runs(pts);
        for &(x, y) in segs.iter().flatten() {
            xs.push(x);
            ys.push(y);
        }
        lines.push(segs);
        let band = match &s.band {
            // A non-positive lower bound on a log axis is marked NaN and drawn at the axis floor.
            Some((lo, hi)) => runs((0..s.x.len()).map(|i| {
                let (x, l, u) = (s.x[i], lo[i], hi[i]);
                let l = if drawable(l) { l } else { f64::NAN };
                (x.is_finite() && drawable(u) && (c.log_y || l.is_finite())).then_some((x, l, u))
            })),
            None => Vec::new(),
        };
        for &(x, l, u) in band.iter().flatten() {
            xs.push(x);
            ys.push(u);
            if l.is_finite() {
                ys.push(l);
            }
        }
        bands.push(band);
    }
    if lines.iter().all(|l| l.is_empty()) {
        bail!(
            "no drawable points: every y value is non-finite{}",
            if c.log_y { " or non-positive (the y axis is logarithmic)" } else { "" }
        );
    }
    if let Some((v, _)) = &c.hline {
        ys.push(*v);
    }

    let (x_lo, x_hi) = min_max(&xs);
    let (x_lo, x_hi) = if x_lo < x_hi { (x_lo, x_hi) } else { pad_degenerate(x_lo) };
    if !(x_hi - x_lo).is_finite() {
        bail!("x values from {x_lo} to {x_hi} span too wide a range to plot");
    }
    let (x_lo, x_hi) = expand_if_close(x_lo, x_hi, 7);
    let x_ticks = ticks::linear(x_lo, x_hi, 7);

    let (y_lo, y_hi) = min_max(&ys);
    let ((y_lo, y_hi), y_ticks) = if c.log_y {
        let lo_exp = ((y_lo.log10() + 1e-9).floor() as i32).max(-300);
        let mut hi_exp = ((y_hi.log10() - 1e-9).ceil() as i32).min(300);
        if hi_exp <= lo_exp {
            hi_exp = lo_exp + 1;
        }
        // Widen an end to the next labelled decade when that costs at most one decade, so the
        // axis usually starts and ends on a label without wasting height.
        let stride = ticks::decade_stride(lo_exp, hi_exp, 9);
        let (lo_snap, hi_snap) =
            (lo_exp.div_euclid(stride) * stride, -((-hi_exp).div_euclid(stride)) * stride);
        let lo_exp = if lo_exp - lo_snap <= 1 { lo_snap } else { lo_exp };
        let hi_exp = if hi_snap - hi_exp <= 1 { hi_snap } else { hi_exp };
        let (lo, hi) = (ticks::pow10(lo_exp), ticks::pow10(hi_exp));
        ((lo, hi), ticks::log(lo, hi, 9))
    } else {
        let (lo, hi) = if y_lo < y_hi { (y_lo, y_hi) } else { pad_degenerate(y_lo) };
        if !(hi - lo).is_finite() {
            bail!("y values from {lo} to {hi} span too wide a range to plot");
        }
        let pad = (hi - lo) * 0.03;
        let (lo, hi) = expand_if_close(lo - pad, hi + pad, 7);
        ((lo, hi), ticks::linear(lo, hi, 7))
    };
    // Bands whose lower edge cannot be drawn reach down to the axis floor.
    for (_, l, _) in bands.iter_mut().flatten().flatten() {
        if !l.is_finite() {
            *l = y_lo;
        }
    }
    Ok(Prepared { chart: c, lines, bands, x: (x_lo, x_hi), y: (y_lo, y_hi), x_ticks, y_ticks })
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// A range around a single value.
fn pad_degenerate(v: f64) -> (f64, f64) {
    let d = (v.abs() * 0.05).max(0.5);
    (v - d, v + d)
}

/// Rounds each end out to a tick when that adds at most a tenth of the range, so axes usually
/// start and end on labels without wasting space.
fn expand_if_close(lo: f64, hi: f64, target: usize) -> (f64, f64) {
    let (a, b) = ticks::expand_to_nice(lo, hi, target);
    let slack = (hi - lo) * 0.1;
    (if lo - a <= slack { a } else { lo }, if b - hi <= slack { b } else { hi })
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, p: &Prepared) -> Result<()> {
    let m = Metrics::for_size(root.dim_in_pixel());
    root.fill(&WHITE).map_err(draw_err)?;
    let body = layout::title(root, &p.chart.title, &m)?;
    let x = || Ticked::new(RangedCoordf64::from(p.x.0..p.x.1), &p.x_ticks);
    if p.chart.log_y {
        let y = || Ticked::new(LogCoord::from((p.y.0..p.y.1).log_scale()), &p.y_ticks);
        draw_chart(&body, p, &m, x, y)
    } else {
        let y = || Ticked::new(RangedCoordf64::from(p.y.0..p.y.1), &p.y_ticks);
        draw_chart(&body, p, &m, x, y)
    }
}

/// The legend's entries: one per series, then the reference line.
fn legend_entries(c: &LineChart) -> Vec<Entry> {
    let mut entries: Vec<Entry> = c
        .series
        .iter()
        .enumerate()
        .map(|(i, s)| Entry {
            label: s.label.clone(),
            color: series_color(i),
            swatch: if s.band.is_some() { Swatch::LineWithBand } else { Swatch::Line },
        })
        .collect();
    if let Some((_, label)) = &c.hline {
        entries.push(Entry { label: label.clone(), color: REFERENCE, swatch: Swatch::Dashed });
    }
    entries
}

/// Everything below the title, for either kind of y coordinate (`x` and `y` make the
/// coordinates, as the chart may be laid out twice).
fn draw_chart<DB, X, Y>(
    area: &DrawingArea<DB, Shift>,
    p: &Prepared,
    m: &Metrics,
    x: impl Fn() -> X,
    y: impl Fn() -> Y,
) -> Result<()>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64, FormatOption = DefaultFormatting>,
    Y: Ranged<ValueType = f64, FormatOption = DefaultFormatting>,
{
    let y_area =
        layout::y_label_area(layout::widest(area, p.y_ticks.major.iter().map(|v| p.y_ticks.label(*v)), m), m);
    // Room on the right for half the last x label, which is centred on the plot's right edge.
    let right = (layout::widest(area, p.x_ticks.major.iter().map(|v| p.x_ticks.label(*v)), m) / 2
        + m.px(12.0))
    .max(m.px(30.0));
    let build = |extra_right: u32| {
        ChartBuilder::on(area)
            .margin_top(m.px(8.0))
            .margin_right(right + extra_right)
            .margin_left(m.px(12.0))
            .margin_bottom(m.px(12.0))
            .x_label_area_size(layout::x_label_area(m))
            .y_label_area_size(y_area)
            .build_cartesian_2d(x(), y())
            .map_err(draw_err)
    };
    // Building a chart draws nothing, so the layout can be tried with the legend inside and
    // redone with room for it on the right when no spot inside is free of data.
    let mut chart = build(0)?;
    let entries = legend_entries(p.chart);
    let legend = if entries.len() > 1 { Some(Legend::measure(area, &entries, m)?) } else { None };
    let mut inside = None;
    if let Some(legend) = &legend {
        let occupied = occupied_pixels(p, |x, y| {
            let base = chart.plotting_area().get_base_pixel();
            let (px, py) = chart.backend_coord(&(x, y));
            (px - base.0, py - base.1)
        });
        inside = legend.place(chart.plotting_area().dim_in_pixel(), &occupied, m);
        if inside.is_none() {
            chart = build(legend.size.0 as u32 + m.px(16.0))?;
        }
    }

    let x_fmt = |v: &f64| p.x_ticks.label(*v);
    let y_fmt = |v: &f64| p.y_ticks.label(*v);
    chart
        .configure_mesh()
        .x_desc(p.chart.x_label.as_str())
        .y_desc(p.chart.y_label.as_str())
        .axis_desc_style((FONT, m.axis_font()).into_font().color(&AXIS))
        .label_style((FONT, m.tick_font()).into_font().color(&AXIS))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .bold_line_style(BLACK.mix(0.13).stroke_width(m.px(1.0)))
        .light_line_style(BLACK.mix(0.05).stroke_width(m.px(1.0)))
        .axis_style(layout::axis_style(m))
        .set_all_tick_mark_size(layout::tick_len(m))
        .draw()
        .map_err(draw_err)?;

    let lw = m.line_width();
    for (i, band) in p.bands.iter().enumerate() {
        let fill = series_color(i).mix(BAND_ALPHA).filled();
        for run in band {
            let outline: Vec<(f64, f64)> = run
                .iter()
                .map(|&(x, _, u)| (x, u))
                .chain(run.iter().rev().map(|&(x, l, _)| (x, l)))
                .collect();
            chart.draw_series(std::iter::once(Polygon::new(outline, fill))).map_err(draw_err)?;
        }
    }
    if let Some((v, _)) = &p.chart.hline {
        let style = REFERENCE.stroke_width(m.px(2.0));
        let dashed = DashedLineSeries::new(vec![(p.x.0, *v), (p.x.1, *v)], m.off(12.0), m.off(7.0), style);
        chart.draw_series(dashed).map_err(draw_err)?;
    }
    for (i, line) in p.lines.iter().enumerate() {
        let color = series_color(i);
        for run in line {
            if let [only] = run.as_slice() {
                // A point with no drawable neighbour would otherwise vanish.
                chart
                    .draw_series(std::iter::once(Circle::new(*only, lw + 1, color.filled())))
                    .map_err(draw_err)?;
            } else {
                chart
                    .draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(lw)))
                    .map_err(draw_err)?;
            }
        }
    }

    let plot = chart.plotting_area().strip_coord_spec();
    layout::frame(&plot, m)?;
    if let Some(legend) = &legend {
        match inside {
            Some(at) => legend.draw(&plot, at, m)?,
            None => {
                // Beside the plot, level with its top edge.
                let (ax, ay) = area.get_base_pixel();
                let (px, py) = plot.get_base_pixel();
                let at = (px - ax + plot.dim_in_pixel().0 as i32 + m.off(16.0), py - ay);
                legend.draw(area, at, m)?;
            }
        }
    }
    Ok(())
}

/// Pixels (relative to the plotting area, via `to_px`) covered by lines, band edges and the
/// reference line: what the legend must not hide.
fn occupied_pixels(p: &Prepared, to_px: impl Fn(f64, f64) -> (i32, i32)) -> Vec<(i32, i32)> {
    let mut occupied = Vec::new();
    for run in p.lines.iter().flatten() {
        sample(run.iter().map(|&(x, y)| to_px(x, y)), &mut occupied);
    }
    for run in p.bands.iter().flatten() {
        sample(run.iter().map(|&(x, _, u)| to_px(x, u)), &mut occupied);
        sample(run.iter().map(|&(x, l, _)| to_px(x, l)), &mut occupied);
    }
    if let Some((v, _)) = &p.chart.hline {
        sample([to_px(p.x.0, *v), to_px(p.x.1, *v)].into_iter(), &mut occupied);
    }
    occupied
}

/// Pixels every ~4 px along the polyline through `pts`, so the legend can count what it hides.
fn sample(pts: impl Iterator<Item = (i32, i32)>, out: &mut Vec<(i32, i32)>) {
    let mut prev: Option<(i32, i32)> = None;
    for p in pts {
        if let Some(q) = prev {
            let (dx, dy) = (f64::from(p.0 - q.0), f64::from(p.1 - q.1));
            let n = ((dx.hypot(dy) / 4.0).ceil() as i32).clamp(1, 2000);
            for k in 1..=n {
                let t = f64::from(k) / f64::from(n);
                out.push(((f64::from(q.0) + dx * t) as i32, (f64::from(q.1) + dy * t) as i32));
            }
        } else {
            out.push(p);
        }
        prev = Some(p);
    }
}
