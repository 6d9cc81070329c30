//! Saving and drawing probe results: CSV/JSON for pandas users, the metrics table, and the
//! gradient-vs-distance plot. Reads and writes plain data only.

use super::{Curve, Probe};
use crate::plot::{line_chart, LineChart, Series};
use crate::util::write_atomic;
use anyhow::{Context, Result};
use std::path::Path;

pub const CURVES_JSON: &str = "curves.json";
pub const CURVES_CSV: &str = "curves.csv";
pub const METRICS_JSON: &str = "grad-metrics.json";
pub const PLOT_STEM: &str = "grad-vs-distance";

/// One row per (curve, distance).
pub fn curves_csv(probes: &[Probe]) -> String {
    let mut s = String::from("model,layer,state,distance,mean,q10,q50,q90\n");
    for p in probes {
        for c in &p.curves {
            for (i, d) in c.distance.iter().enumerate() {
                s.push_str(&format!(
                    "{},{},{},{},{:e},{:e},{:e},{:e}\n",
                    c.model, c.layer, c.state, d, c.mean[i], c.q10[i], c.q50[i], c.q90[i]
                ));
            }
        }
    }
    s
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("—".into(), |v| if v >= 1e4 { format!("{v:.3e}") } else { format!("{v:.2}") })
}

/// The metrics table printed by `gradscope grad`.
pub fn metrics_table(probes: &[Probe]) -> String {
    let mut s = String::from(
        "| model | layer | state | ‖g‖ at d=0 | ‖g‖ at d=max | e-folding distance | decades lost | memory horizon | ‖g‖ at the dependency (mean lag) | trend |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for p in probes {
        for c in &p.curves {
            let m = &c.metrics;
            let cut_off = c.mean.len() > 1 && c.mean[1..].iter().all(|&v| v == 0.0);
            let trend = if cut_off {
                "no path beyond d=0".into()
            } else if m.exploding {
                format!("exploding (×e every {} steps)", fmt_opt(m.growth_e_folding))
            } else if m.e_folding.is_some_and(|e| e < c.distance.len() as f64) {
                "vanishing".into()
            } else if m.e_folding.is_some() {
                "≈ flat (e-folding beyond T)".into()
            } else {
                "flat".into()
            };
            s.push_str(&format!(
                "| {} | {} | {} | {:.3e} | {:.3e} | {} | {:.2} | {} | {} | {} |\n",
                c.model,
                c.layer,
                c.state,
                c.mean.first().copied().unwrap_or(f64::NAN),
                c.mean.last().copied().unwrap_or(f64::NAN),
                fmt_opt(m.e_folding),
                m.decades,
                m.horizon.map_or("beyond T".into(), |h| h.to_string()),
                c.at_dependency
                    .as_ref()
                    .map_or("—".into(), |a| format!("{:.3e} ({:.0})", a.mean_norm, a.mean_lag)),
                trend
            ));
        }
    }
    s
}

/// Saturation lines printed under the metrics table.
pub fn saturation_lines(probes: &[Probe]) -> String {
    let mut s = String::new();
    for p in probes {
        for layer in p.saturation.iter().flatten() {
            let gates: Vec<String> =
                layer.saturated.iter().map(|(g, f)| format!("{g} {:.1}%", 100.0 * f)).collect();
            s.push_str(&format!(
                "{} layer {}: units with derivative < 0.01: {}{}\n",
                p.model,
                layer.layer,
                gates.join(", "),
                layer.mean_forget_gate.map_or(String::new(), |f| format!("; mean forget gate {f:.3}"))
            ));
        }
    }
    s
}

/// The figure: every curve's mean on a log axis, shaded between its 10 % and 90 % quantiles.
pub fn curves_chart(curves: &[&Curve], title: &str) -> LineChart {
    let series = curves
        .iter()
        .map(|c| Series {
            label: c.label(),
            x: c.distance.iter().map(|&d| d as f64).collect(),
            y: c.mean.clone(),
            band: Some((c.q10.clone(), c.q90.clone())),
        })
        .collect();
    LineChart {
        title: title.to_string(),
        x_label: "distance from the loss d = t_loss − t (steps)".into(),
        y_label: "‖∂L/∂h_t‖ (log scale; band: 10–90 % of sequences)".into(),
        log_y: true,
        series,
        hline: None,
    }
}

/// Writes curves.json, curves.csv, grad-metrics.json and the plot into `out`.
pub fn write_probe_outputs(probes: &[Probe], out: &Path, title: &str) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_atomic(&out.join(CURVES_JSON), serde_json::to_string(probes)?.as_bytes())?;
    write_atomic(&out.join(CURVES_CSV), curves_csv(probes).as_bytes())?;
    let metrics: Vec<serde_json::Value> = probes
        .iter()
        .flat_map(|p| {
            p.curves.iter().map(|c| {
                serde_json::json!({"model": c.model, "layer": c.layer, "state": c.state, "metrics": c.metrics})
            })
        })
        .chain(probes.iter().map(|p| {
            serde_json::json!({"model": p.model, "parameter_norms": p.parameter_norms, "saturation": p.saturation})
        }))
        .collect();
    write_atomic(&out.join(METRICS_JSON), serde_json::to_string_pretty(&metrics)?.as_bytes())?;
    let curves: Vec<&Curve> = probes.iter().flat_map(|p| p.curves.iter()).collect();
    line_chart(&curves_chart(&curves, title), &out.join(PLOT_STEM))
}
