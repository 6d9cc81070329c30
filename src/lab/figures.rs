//! An experiment's figures, drawn from its runs: per-layer gradient norms and their ratio against
//! depth, ‖∂L/∂h_t‖ against distance, and held-out loss and gradient norm during training.

use super::depth::DepthRun;
use super::recurrent::RecurrentRun;
use super::report::Figure;
use crate::plot::{line_chart, LineChart, Series};
use crate::probe::report::curves_chart;
use crate::probe::Curve;
use anyhow::Result;
use std::path::Path;

/// Draws `chart` unless none of its series has a drawable point; keeps the series that do.
fn draw(
    mut chart: LineChart,
    out: &Path,
    stem: &str,
    caption: String,
    figures: &mut Vec<Figure>,
) -> Result<()> {
    let drawable = |y: f64| y.is_finite() && (!chart.log_y || y > 0.0);
    chart.series.retain(|s| s.y.iter().any(|&y| drawable(y)));
    if chart.series.is_empty() {
        return Ok(());
    }
    line_chart(&chart, &out.join(stem))?;
    figures.push(Figure { stem: stem.into(), caption });
    Ok(())
}

/// Per-layer gradient norms, ratio against depth, loss curves and the ratio during training.
pub(super) fn depth_figures(runs: &[DepthRun], name: &str, out: &Path) -> Result<Vec<Figure>> {
    let mut figs = Vec::new();
    let Some(max_depth) = runs.iter().map(|r| r.config.depth).max() else { return Ok(figs) };
    let deepest: Vec<&DepthRun> = runs.iter().filter(|r| r.config.depth == max_depth).collect();
    let per_layer = |pick: &dyn Fn(&DepthRun) -> Option<Vec<f64>>| -> Vec<Series> {
        deepest
            .iter()
            .filter_map(|r| {
                pick(r).map(|h| Series::new(r.label.clone(), (1..=h.len()).map(|l| l as f64).collect(), h))
            })
            .collect()
    };
    let layer_chart = |title: String, series| LineChart {
        title,
        x_label: "hidden layer l (1 = nearest the input)".into(),
        y_label: "‖∂L/∂h_l‖ (log scale)".into(),
        log_y: true,
        series,
        hline: None,
    };
    draw(
        layer_chart(
            format!("{name}: gradient per layer at initialisation, depth {max_depth}"),
            per_layer(&|r| Some(r.init_profile.hidden.clone())),
        ),
        out,
        "grad-per-layer-init",
        format!("‖∂L/∂h_l‖ per hidden layer at initialisation (depth {max_depth}), one line per config"),
        &mut figs,
    )?;
    draw(
        layer_chart(
            format!("{name}: gradient per layer after training, depth {max_depth}"),
            per_layer(&|r| r.trained_profile.as_ref().map(|p| p.hidden.clone())),
        ),
        out,
        "grad-per-layer-trained",
        format!("‖∂L/∂h_l‖ per hidden layer after training (depth {max_depth})"),
        &mut figs,
    )?;
    draw(
        LineChart {
            title: format!("{name}: weight gradient per layer at initialisation, depth {max_depth}"),
            x_label: "weight layer l (1 = nearest the input)".into(),
            y_label: "‖∂L/∂W_l‖ (log scale)".into(),
            log_y: true,
            series: deepest
                .iter()
                .map(|r| {
                    let w = &r.init_profile.weights;
                    Series::new(r.label.clone(), (1..=w.len()).map(|l| l as f64).collect(), w.clone())
                })
                .collect(),
            hline: None,
        },
        out,
        "weight-grad-per-layer-init",
        format!("‖∂L/∂W_l‖ per weight layer at initialisation (depth {max_depth})"),
        &mut figs,
    )?;

    let mut depths: Vec<usize> = runs.iter().map(|r| r.config.depth).collect();
    depths.sort();
    depths.dedup();
    if depths.len() > 1 {
        let mut variants: Vec<String> = Vec::new();
        for r in runs {
            let v = r.config.variant_label();
            if !variants.contains(&v) {
                variants.push(v);
            }
        }
        let series = variants
            .iter()
            .map(|v| {
                let mut pts: Vec<(f64, f64)> = runs
                    .iter()
                    .filter(|r| &r.config.variant_label() == v)
                    .map(|r| (r.config.depth as f64, r.ratio_init))
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series::new(v.clone(), pts.iter().map(|p| p.0).collect(), pts.iter().map(|p| p.1).collect())
            })
            .collect();
        draw(
            LineChart {
                title: format!("{name}: first-layer gradient relative to the last, against depth"),
                x_label: "depth (weight layers)".into(),
                y_label: "‖∂L/∂h₁‖ / ‖∂L/∂h_last‖ at init (log scale)".into(),
                log_y: true,
                series,
                hline: Some((1.0, "no decay".into())),
            },
            out,
            "ratio-vs-depth",
            "First hidden layer's gradient norm over the last one's at initialisation, per depth".into(),
            &mut figs,
        )?;
    }

    let trained: Vec<&DepthRun> = runs.iter().filter(|r| r.curve.len() > 1).collect();
    if !trained.is_empty() {
        let baseline = trained[0].baseline;
        let series = trained
            .iter()
            .map(|r| {
                let steps = r.curve.iter().map(|p| p.step as f64).collect();
                Series::new(r.label.clone(), steps, r.curve.iter().map(|p| p.eval_loss).collect())
            })
            .collect();
        draw(
            held_out_loss_chart(name, series, Some((baseline, "input-blind baseline".into()))),
            out,
            "loss",
            "Held-out loss against training step".into(),
            &mut figs,
        )?;
        draw(
            LineChart {
                title: format!("{name}: first/last-layer gradient ratio during training"),
                x_label: "training step".into(),
                y_label: "‖∂L/∂h₁‖ / ‖∂L/∂h_last‖ (log scale)".into(),
                log_y: true,
                series: trained
                    .iter()
                    .map(|r| {
                        Series::new(
                            r.label.clone(),
                            r.curve.iter().map(|p| p.step as f64).collect(),
                            r.curve.iter().map(|p| p.first_to_last).collect(),
                        )
                    })
                    .collect(),
                hline: Some((1.0, "no decay".into())),
            },
            out,
            "ratio-during-training",
            "First hidden layer's gradient over the last one's, on a fixed batch, during training".into(),
            &mut figs,
        )?;
    }
    Ok(figs)
}

/// Gradient against distance at init and after training, and the learning curves.
pub(super) fn recurrent_figures(runs: &[RecurrentRun], name: &str, out: &Path) -> Result<Vec<Figure>> {
    let mut figs = Vec::new();
    let init: Vec<&Curve> = runs.iter().filter_map(|r| r.init_curve()).collect();
    if !init.is_empty() {
        let mut chart = curves_chart(&init, &format!("{name}: gradient vs distance at initialisation"));
        for (s, r) in chart.series.iter_mut().zip(runs.iter().filter(|r| r.init_curve().is_some())) {
            s.label = r.label.clone();
        }
        draw(
            chart,
            out,
            "grad-vs-distance-init",
            "‖∂L/∂h_t‖ (last layer; loss at the last step) against distance at initialisation; band: 10–90 % of sequences".into(),
            &mut figs,
        )?;
    }
    let trained: Vec<(&RecurrentRun, &Curve)> =
        runs.iter().filter_map(|r| r.trained_curve().map(|c| (r, c))).collect();
    if !trained.is_empty() {
        let curves: Vec<&Curve> = trained.iter().map(|(_, c)| *c).collect();
        let mut chart = curves_chart(&curves, &format!("{name}: gradient vs distance after training"));
        for (s, (r, _)) in chart.series.iter_mut().zip(&trained) {
            s.label = r.label.clone();
        }
        draw(
            chart,
            out,
            "grad-vs-distance-trained",
            "‖∂L/∂h_t‖ against distance after training".into(),
            &mut figs,
        )?;
    }
    let with_metrics: Vec<&RecurrentRun> = runs.iter().filter(|r| !r.metrics.is_empty()).collect();
    if !with_metrics.is_empty() {
        let baseline = with_metrics[0].baseline;
        let same = with_metrics.iter().all(|r| (r.baseline - baseline).abs() < 1e-12);
        let series = with_metrics
            .iter()
            .map(|r| {
                let steps = r.metrics.iter().map(|m| m.step as f64).collect();
                Series::new(r.label.clone(), steps, r.metrics.iter().map(|m| m.eval_loss).collect())
            })
            .collect();
        draw(
            held_out_loss_chart(name, series, same.then(|| (baseline, "memoryless baseline".into()))),
            out,
            "loss",
            "Held-out loss against training step".into(),
            &mut figs,
        )?;
        draw(
            LineChart {
                title: format!("{name}: gradient norm during training"),
                x_label: "training step".into(),
                y_label: "global ‖∂L/∂θ‖ before clipping, 50-step mean (log scale)".into(),
                log_y: true,
                series: with_metrics
                    .iter()
                    .map(|r| {
                        Series::new(
                            r.label.clone(),
                            r.metrics.iter().map(|m| m.step as f64).collect(),
                            r.metrics.iter().map(|m| m.grad_norm).collect(),
                        )
                    })
                    .collect(),
                hline: None,
            },
            out,
            "grad-norm",
            "Global gradient norm (before clipping) against training step, averaged between evaluations"
                .into(),
            &mut figs,
        )?;
    }
    Ok(figs)
}

/// Held-out loss against the training step, on a log axis, with an optional baseline line.
fn held_out_loss_chart(name: &str, series: Vec<Series>, hline: Option<(f64, String)>) -> LineChart {
    LineChart {
        title: format!("{name}: held-out loss during training"),
        x_label: "training step".into(),
        y_label: "held-out loss (log scale)".into(),
        log_y: true,
        series,
        hline,
    }
}
