//! ‖∂L/∂h_t‖ of a model as a run configures it, fresh from its seeded initialisation or as a run
//! directory saved it trained: what `grad` and the bench report measure.

use super::{eval_set, RunDir, TrainConfig};
use crate::device::parse_device;
use crate::models::Family;
use crate::probe::{measure, LossKind, Probe};
use anyhow::{bail, Context, Result};
use candle_nn::VarMap;
use std::path::Path;

/// Probes `cfg`'s model over `batch` held-out sequences of its task: initialised from `cfg.seed`
/// when `run` is None, else the trained parameters in `run` (whose architecture wins; only the
/// task length may change). `name` labels the curves.
pub fn probe_gradients(
    name: &str,
    cfg: &TrainConfig,
    run: Option<&Path>,
    batch: usize,
    loss: LossKind,
) -> Result<Probe> {
    if batch == 0 {
        bail!("--batch must be ≥ 1 (got 0)");
    }
    cfg.validate().with_context(|| format!("model {name}"))?;
    let device = parse_device(&cfg.device)?;
    // A trained language model keeps its own tokenizer.
    let task = cfg.build_task_in(run)?;
    let (model, varmap) = match run {
        Some(dir) => RunDir::new(dir).load_model(&device)?,
        None => {
            let varmap = VarMap::new();
            (cfg.model_config(task.as_ref()).init(&varmap, cfg.seed, &device)?, varmap)
        }
    };
    let model_cfg = model.config();
    if model_cfg.family == Family::Gpt && task.spec().steps > model_cfg.context {
        bail!(
            "{name}: the gpt's context is {} steps, the task needs {}",
            model_cfg.context,
            task.spec().steps
        );
    }
    TrainConfig { batch, eval_size: batch, ..cfg.clone() }
        .check_memory(model_cfg)
        .with_context(|| format!("model {name}"))?;
    let probe_batch = eval_set(task.as_ref(), batch, batch, &device)?.remove(0);
    Ok(measure(&model, &varmap, task.as_ref(), &probe_batch, loss, name)?)
}
