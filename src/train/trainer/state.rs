//! What a checkpoint holds besides the parameters: the loop's position and counters, the
//! optimiser's state and the carried TBPTT state, so that a resumed run continues exactly.

use super::super::run_dir::{RunDir, CHECKPOINT, MODEL, MODEL_CONFIG};
use super::super::Optimizer;
use crate::checkpoint::{load, save_tensors, save_varmap};
use crate::models::{RecurrentState, SeqModelConfig};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use std::collections::BTreeMap;

/// Everything the loop needs to continue exactly.
#[derive(Clone, Debug)]
pub(super) struct LoopState {
    pub step: u64,
    pub elapsed: f64,
    pub steps_to_solve: Option<u64>,
    /// Multiplies the schedule's rate; each rollback halves it.
    pub lr_scale: f64,
    /// Steps whose loss or gradient was NaN/Inf (skipped or rolled back).
    pub nonfinite_events: u64,
    /// --tbptt: the hidden state carried into the next batch.
    pub carried: Option<RecurrentState>,
}

impl LoopState {
    pub fn fresh() -> Self {
        Self {
            step: 0,
            elapsed: 0.0,
            steps_to_solve: None,
            lr_scale: 1.0,
            nonfinite_events: 0,
            carried: None,
        }
    }
}

pub(super) fn save_checkpoint(
    dir: &RunDir,
    varmap: &VarMap,
    named: &[(String, Var)],
    optimizer: &Optimizer,
    state: &LoopState,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> =
        named.iter().map(|(n, v)| (format!("model.{n}"), v.as_tensor().clone())).collect();
    tensors.extend(optimizer.state_tensors()?.into_iter().map(|(n, t)| (format!("optim.{n}"), t)));
    if let Some(carried) = &state.carried {
        tensors.push(("tbptt.h".into(), carried.h.clone()));
        tensors.extend(carried.c.clone().map(|c| ("tbptt.c".to_string(), c)));
    }
    let meta = BTreeMap::from([
        ("format".to_string(), "gradscope-checkpoint-1".to_string()),
        ("step".to_string(), state.step.to_string()),
        ("elapsed_seconds".to_string(), state.elapsed.to_string()),
        ("steps_to_solve".to_string(), state.steps_to_solve.map_or(String::new(), |s| s.to_string())),
        ("lr_scale".to_string(), state.lr_scale.to_string()),
        ("nonfinite_events".to_string(), state.nonfinite_events.to_string()),
        ("model_config".to_string(), std::fs::read_to_string(dir.path(MODEL_CONFIG)).unwrap_or_default()),
    ]);
    save_tensors(&dir.path(CHECKPOINT), tensors.iter().map(|(n, t)| (n.as_str(), t)), &meta)?;
    let step = BTreeMap::from([("step".to_string(), state.step.to_string())]);
    save_varmap(&dir.path(MODEL), varmap, &step)
}

pub(super) fn restore(
    dir: &RunDir,
    model_cfg: &SeqModelConfig,
    named: &[(String, Var)],
    optimizer: &mut Optimizer,
    device: &Device,
) -> Result<LoopState> {
    let path = dir.path(CHECKPOINT);
    let loaded = load(&path, device)?;
    let meta = |k: &str| loaded.metadata.get(k).cloned().unwrap_or_default();
    if meta("format") != "gradscope-checkpoint-1" {
        bail!("{} is not a gradscope training checkpoint", path.display());
    }
    let saved: SeqModelConfig = serde_json::from_str(&meta("model_config"))
        .with_context(|| format!("{}: unreadable model_config", path.display()))?;
    if &saved != model_cfg {
        let describe = |m: &SeqModelConfig| {
            format!(
                "{} h{} ×{}, input {:?}, {} outputs",
                m.family, m.hidden, m.layers, m.input, m.output_size
            )
        };
        let hint = if (saved.input, saved.output_size) != (model_cfg.input, model_cfg.output_size) {
            " (the input or output size differs: was the tokenizer or the task changed?)"
        } else {
            ""
        };
        bail!(
            "{} was written by a different model ({}) than the config asks for ({}){hint}",
            path.display(),
            describe(&saved),
            describe(model_cfg)
        );
    }
    for (name, var) in named {
        let t = loaded
            .tensors
            .get(&format!("model.{name}"))
            .with_context(|| format!("{}: missing parameter '{name}'", path.display()))?;
        var.set(t).with_context(|| format!("{}: parameter '{name}'", path.display()))?;
    }
    let optim: std::collections::HashMap<String, Tensor> = loaded
        .tensors
        .iter()
        .filter_map(|(k, t)| k.strip_prefix("optim.").map(|n| (n.to_string(), t.clone())))
        .collect();
    optimizer.load_state(&optim).with_context(|| format!("{}: optimiser state", path.display()))?;
    Ok(LoopState {
        step: meta("step").parse().with_context(|| format!("{}: bad step", path.display()))?,
        elapsed: meta("elapsed_seconds").parse().unwrap_or(0.0),
        steps_to_solve: meta("steps_to_solve").parse().ok(),
        lr_scale: meta("lr_scale").parse().unwrap_or(1.0),
        nonfinite_events: meta("nonfinite_events").parse().unwrap_or(0),
        carried: loaded
            .tensors
            .get("tbptt.h")
            .map(|h| RecurrentState { h: h.clone(), c: loaded.tensors.get("tbptt.c").cloned() }),
    })
}
