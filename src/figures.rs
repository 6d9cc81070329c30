//! Figures drawn from saved run data: learning curves from `metrics.jsonl`, the distance ×
//! training-step heatmap from `probe.jsonl`, gradient curves from `curves.json`. Used by
//! `gradscope plot` to redraw and overlay runs after the fact.

use crate::plot::{heatmap, line_chart, Heatmap, LineChart, Series};
use crate::probe::report::{curves_chart, CURVES_JSON, PLOT_STEM};
use crate::probe::{Curve, Probe, ProbeRecord};
use crate::train::run_dir::{RunDir, METRICS, PROBE};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

fn run_name(dir: &Path) -> String {
    dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Training and held-out loss of every run against the step, on a log axis.
pub fn learning_curves(dirs: &[PathBuf]) -> Result<LineChart> {
    let mut series = Vec::new();
    for dir in dirs {
        let records = RunDir::new(dir).read_metrics()?;
        let x: Vec<f64> = records.iter().map(|r| r.step as f64).collect();
        let name = run_name(dir);
        let prefix = if dirs.len() > 1 { format!("{name}: ") } else { String::new() };
        series.push(Series {
            label: format!("{prefix}train loss"),
            x: x.clone(),
            y: records.iter().map(|r| r.train_loss).collect(),
            band: None,
        });
        series.push(Series {
            label: format!("{prefix}eval loss"),
            x,
            y: records.iter().map(|r| r.eval_loss).collect(),
            band: None,
        });
    }
    Ok(LineChart {
        title: "Learning curves".into(),
        x_label: "training step".into(),
        y_label: "loss (log scale; MSE or nats per step)".into(),
        log_y: true,
        series,
        hline: None,
    })
}

/// log10 of the mean ‖∂L/∂h_t‖ over distance (columns) and training step (rows) for the given
/// layer and state of one run's `probe.jsonl`.
pub fn probe_heatmap(records: &[ProbeRecord], layer: usize, state: &str, title: &str) -> Result<Heatmap> {
    let pick = |r: &ProbeRecord| r.curves.iter().find(|c| c.layer == layer && c.state == state).cloned();
    let rows: Vec<(u64, Curve)> = records.iter().filter_map(|r| pick(r).map(|c| (r.step, c))).collect();
    if rows.is_empty() {
        bail!("probe.jsonl has no curve for layer {layer} state {state}");
    }
    let width = rows.iter().map(|(_, c)| c.mean.len()).max().unwrap_or(0);
    let z = rows
        .iter()
        .map(|(_, c)| {
            (0..width)
                .map(|d| c.mean.get(d).map_or(f64::NAN, |&v| if v > 0.0 { v.log10() } else { f64::NAN }))
                .collect()
        })
        .collect();
    Ok(Heatmap {
        title: title.to_string(),
        x_label: "distance from the loss d (steps)".into(),
        y_label: "training step".into(),
        colorbar_label: "log₁₀ ‖∂L/∂h_t‖".into(),
        x: (0..width).map(|d| d as f64).collect(),
        y: rows.iter().map(|(s, _)| *s as f64).collect(),
        z,
    })
}

/// Redraws whatever each directory holds into `out`; returns the files' stems.
pub fn redraw(dirs: &[PathBuf], out: &Path) -> Result<Vec<PathBuf>> {
    // Check every input before creating anything: `plot DIR` writes into DIR itself, and a
    // mistyped DIR must not be created as an empty directory.
    for dir in dirs {
        if !dir.is_dir() {
            bail!("{} is not a directory (expected a run directory or a `grad` output)", dir.display());
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating --out {}", out.display()))?;
    let mut written = Vec::new();
    let mut curves: Vec<Curve> = Vec::new();
    let mut trained: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let run = RunDir::new(dir);
        if dir.join(CURVES_JSON).exists() {
            let probes: Vec<Probe> = run.read_json(CURVES_JSON)?;
            let prefix = if dirs.len() > 1 { format!("{}/", run_name(dir)) } else { String::new() };
            for p in probes {
                curves.extend(p.curves.into_iter().map(|mut c| {
                    c.model = format!("{prefix}{}", c.model);
                    c
                }));
            }
        }
        if dir.join(METRICS).exists() {
            if run.read_metrics()?.is_empty() {
                bail!("{} holds no complete record", dir.join(METRICS).display());
            }
            trained.push(dir.clone());
        }
        if dir.join(PROBE).exists() {
            let records: Vec<ProbeRecord> = run.read_lines(PROBE)?;
            let deepest = records.first().map_or(0, |r| r.curves.iter().map(|c| c.layer).max().unwrap_or(0));
            let state =
                records.first().and_then(|r| r.curves.first()).map_or("h".to_string(), |c| c.state.clone());
            let name = run_name(dir);
            let title = format!("{name}: gradient vs distance over training (layer {deepest}, {state})");
            let stem = out.join(format!("probe-heatmap-{name}"));
            heatmap(&probe_heatmap(&records, deepest, &state, &title)?, &stem)?;
            written.push(stem);
        }
    }
    if !curves.is_empty() {
        let refs: Vec<&Curve> = curves.iter().collect();
        let stem = out.join(PLOT_STEM);
        line_chart(&curves_chart(&refs, "Gradient vs distance"), &stem)?;
        written.push(stem);
    }
    if !trained.is_empty() {
        let stem = out.join("learning-curves");
        line_chart(&learning_curves(&trained)?, &stem)?;
        written.push(stem);
    }
    if written.is_empty() {
        bail!(
            "nothing to plot: no curves.json, metrics.jsonl or probe.jsonl in {}",
            dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(written)
}
