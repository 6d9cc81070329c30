//! The time axis: a list of training configs (model × activation × init × clipping × optimiser),
//! each measured at initialisation with [`crate::probe::measure`], trained with
//! [`crate::train::train`] under a time budget, and measured again after training.
//!
//! There is no training loop here: the runs are ordinary run directories under `<out>/runs/`,
//! so `gradscope plot`, `grad --run` and `train --resume` work on them.

use crate::device::parse_device;
use crate::models::Family;
use crate::probe::{measure, Curve, LossKind, Probe};
use crate::train::{eval_set, train, MetricsRecord, RunDir, RunOptions, Summary, TrainConfig};
use anyhow::{Context, Result};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One config of a recurrent grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecurrentSpec {
    pub label: String,
    pub config: TrainConfig,
    /// Measure at initialisation only when false.
    pub train: bool,
}

/// Settings shared by every spec of a grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecurrentSettings {
    /// Sequences in the probe batch (held-out, fixed).
    pub probe_batch: usize,
    /// Wall-clock budget of each training run.
    pub max_seconds: Option<f64>,
}

/// Everything measured for one config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecurrentRun {
    pub label: String,
    pub config: TrainConfig,
    pub init_probe: Probe,
    /// Measured on the trained parameters (absent if not trained or diverged).
    pub trained_probe: Option<Probe>,
    pub summary: Option<Summary>,
    /// The error that stopped a run whose loss or gradient became NaN/∞.
    pub diverged: Option<String>,
    pub metrics: Vec<MetricsRecord>,
    pub run_dir: Option<PathBuf>,
    /// The memoryless baseline loss of the task.
    pub baseline: f64,
    pub wall_seconds: f64,
}

/// The curve a comparison uses: the last layer's h; for the GPT, the residual stream entering its
/// last block (after the last block only position t_loss still reaches a last-step loss, so
/// that curve is zero beyond d = 0 by construction).
pub fn main_curve(p: &Probe) -> Option<&Curve> {
    let gpt = p.curves.iter().all(|c| c.state == "resid");
    let last = p.curves.iter().filter(|c| c.state != "c").map(|c| c.layer).max()?;
    let layer = if gpt { last.saturating_sub(1) } else { last };
    p.curves.iter().find(|c| c.layer == layer && c.state != "c")
}

impl RecurrentRun {
    /// Whether this config was trained (its run directory exists), not only measured at init.
    pub fn trained(&self) -> bool {
        self.run_dir.is_some()
    }

    pub fn init_curve(&self) -> Option<&Curve> {
        main_curve(&self.init_probe)
    }

    pub fn trained_curve(&self) -> Option<&Curve> {
        self.trained_probe.as_ref().and_then(main_curve)
    }

    /// Held-out loss at the end of training.
    pub fn eval_loss(&self) -> Option<f64> {
        self.summary.as_ref().map(|s| s.eval_loss)
    }

    /// Held-out loss over the memoryless baseline (1 = learned nothing).
    pub fn relative_loss(&self) -> Option<f64> {
        self.eval_loss().map(|l| l / self.baseline)
    }

    pub fn solved(&self) -> bool {
        self.summary.as_ref().is_some_and(|s| s.solved)
    }

    /// Diverged (NaN/∞), or ended with a held-out loss over 10× the memoryless baseline.
    pub fn blew_up(&self) -> bool {
        self.diverged.is_some() || self.relative_loss().is_some_and(|r| !r.is_finite() || r > 10.0)
    }
}

/// A file-name-safe form of a label.
pub fn slug(label: &str) -> String {
    let mut s: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' { c.to_ascii_lowercase() } else { '-' })
        .collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    s.trim_matches('-').to_string()
}

fn probe(cfg: &TrainConfig, run: Option<&Path>, batch: usize, name: &str) -> Result<(Probe, f64)> {
    let device = parse_device(&cfg.device)?;
    let task = cfg.build_task()?;
    let (model, varmap) = match run {
        Some(dir) => RunDir::new(dir).load_model(&device)?,
        None => {
            let varmap = VarMap::new();
            (cfg.model_config(task.as_ref()).init(&varmap, cfg.seed, &device)?, varmap)
        }
    };
    let b = eval_set(task.as_ref(), batch, batch, &device)?.remove(0);
    let p = measure(&model, &varmap, task.as_ref(), &b, LossKind::Last, name)?;
    Ok((p, task.baseline()))
}

/// Whether a training error is the loop's non-finite stop (a measured divergence, not a bug).
fn is_divergence(e: &anyhow::Error) -> bool {
    let msg = format!("{e:#}");
    msg.contains("non-finite")
}

/// Runs every spec; training runs go to `<runs_dir>/<slug>` (replaced if present).
pub fn run_grid(
    specs: &[RecurrentSpec],
    settings: &RecurrentSettings,
    runs_dir: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<RecurrentRun>> {
    let mut out = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let started = Instant::now();
        let cfg = &spec.config;
        cfg.validate().with_context(|| format!("config '{}'", spec.label))?;
        let (init_probe, baseline) = probe(cfg, None, settings.probe_batch, &spec.label)
            .with_context(|| format!("measuring '{}' at initialisation", spec.label))?;
        let mut run = RecurrentRun {
            label: spec.label.clone(),
            config: cfg.clone(),
            init_probe,
            trained_probe: None,
            summary: None,
            diverged: None,
            metrics: Vec::new(),
            run_dir: None,
            baseline,
            wall_seconds: 0.0,
        };
        if spec.train {
            let dir = runs_dir.join(slug(&spec.label));
            if dir.exists() {
                std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
            }
            let opts = RunOptions {
                out: dir.clone(),
                quiet: true,
                max_seconds: settings.max_seconds,
                ..Default::default()
            };
            match train(cfg, &opts) {
                Ok(s) => run.summary = Some(s),
                Err(e) if is_divergence(&e) => run.diverged = Some(format!("{e:#}")),
                Err(e) => return Err(e.context(format!("training '{}'", spec.label))),
            }
            run.metrics = RunDir::new(&dir).read_metrics().unwrap_or_default();
            if run.summary.is_some() {
                run.trained_probe = Some(
                    probe(cfg, Some(&dir), settings.probe_batch, &spec.label)
                        .with_context(|| format!("measuring '{}' after training", spec.label))?
                        .0,
                );
            }
            run.run_dir = Some(dir);
        }
        run.wall_seconds = started.elapsed().as_secs_f64();
        let fmt = super::fmt_num;
        let decades = |c: Option<&Curve>| c.map_or("n/a".into(), |c| fmt(c.metrics.decades));
        let trained = match (&run.summary, &run.diverged) {
            (_, Some(_)) => ", diverged (non-finite loss or gradient)".to_string(),
            (Some(s), None) => format!(
                ", {} steps: eval {} (baseline {}){}; decades lost after training {}",
                s.steps,
                fmt(s.eval_loss),
                fmt(baseline),
                if s.solved { ", solved" } else { "" },
                decades(run.trained_curve())
            ),
            (None, None) => String::new(),
        };
        log(&format!(
            "[{}/{}] {}: decades lost over T at init {}{} ({:.1} s)",
            i + 1,
            specs.len(),
            run.label,
            decades(run.init_curve()),
            trained,
            run.wall_seconds
        ));
        out.push(run);
    }
    Ok(out)
}

/// `rnn-tanh`, `lstm`, `gpt`: the model part of a label.
pub fn model_name(cfg: &TrainConfig) -> String {
    match cfg.model {
        Family::Rnn => format!("rnn-{}", cfg.nonlinearity.name()),
        f => f.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(slug("rnn-relu identity, clip norm 1"), "rnn-relu-identity-clip-norm-1");
        assert_eq!(slug("LSTM (fb=1)"), "lstm-fb-1");
    }
}
