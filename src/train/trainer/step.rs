//! One training step (batch, forward, loss, backward, clipping, update) and what a non-finite
//! loss or gradient leads to under `--on-nonfinite stop|skip|rollback`.

use super::state::restore;
use super::{derive_seed, note, Trainer, Window};
use crate::models::{ForwardOptions, RecurrentState};
use crate::train::config::OnNonFinite;
use crate::train::nonfinite::{first_nonfinite, locate_in_time};
use crate::train::{clip_grad_norm, clip_grad_value, global_grad_norm};
use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// `--on-nonfinite rollback` gives up after this many events.
const MAX_ROLLBACKS: u64 = 20;
/// `--on-nonfinite skip` names each skipped step of a run of non-finite ones up to this many.
const NOTED_SKIPS: u64 = 10;

impl Trainer<'_> {
    /// Runs step `self.step` and advances. Returns its training loss and gradient norm (before
    /// clipping), or None when the step was not finite and was skipped or rolled back.
    pub(super) fn train_step(&mut self) -> Result<Option<(f64, f64)>> {
        let (cfg, step) = (self.cfg, self.step);
        let task = self.task.as_ref();
        let batch = if cfg.tbptt {
            if step.is_multiple_of(task.sequential_period(cfg.batch)) {
                self.state.carried = None; // the streams start over
            }
            task.sequential_batch(cfg.batch, step, &self.device)?
                .context("this task has no sequential batches")?
        } else {
            task.batch(cfg.batch, &mut StdRng::seed_from_u64(derive_seed(cfg.seed, step, 1)), &self.device)?
        };
        let fwd = ForwardOptions {
            train: true,
            dropout_seed: derive_seed(cfg.seed, step, 2),
            record_state_grads: false,
            backend: cfg.backend,
            no_grad: false,
        };
        let out = self.model.forward(&batch.inputs, self.state.carried.as_ref(), &fwd)?;
        let next_carried = if cfg.tbptt { out.state.as_ref().map(RecurrentState::detach) } else { None };
        let loss = task.loss(&out.outputs, &batch)?;
        let loss_value = loss.to_scalar::<f32>()? as f64;
        let mut grads = loss.backward()?;
        let norm = match cfg.clip {
            Some(max) => clip_grad_norm(&mut grads, &self.params, max)?,
            None => global_grad_norm(&grads, &self.params)?,
        };
        let fault = if !loss_value.is_finite() {
            Some(format!("the training loss is {loss_value}"))
        } else if !norm.is_finite() {
            let name = first_nonfinite(&grads, &self.named)?.unwrap_or_default();
            Some(format!("the gradient of '{name}' is not finite"))
        } else {
            None
        };
        if let Some(mut what) = fault {
            drop((grads, loss, out));
            if cfg.probe_every.is_some() {
                let carried = self.state.carried.as_ref();
                if let Some(when) = locate_in_time(&self.model, task, &batch, carried, &fwd)? {
                    what = format!("{what}; {when}");
                }
            }
            self.recover(&what)?;
            return Ok(None);
        }
        if let Some(v) = cfg.clip_value {
            clip_grad_value(&mut grads, &self.params, v)?;
        }
        self.optimizer.step(&grads, self.lr(step))?;
        drop((grads, loss, out));
        self.state.carried = next_carried;
        self.step += 1;
        Ok(Some((loss_value, norm)))
    }

    /// A non-finite step under `--on-nonfinite`: stop with an error, skip the update, or restore
    /// the last checkpoint with the learning rate halved.
    fn recover(&mut self, what: &str) -> Result<()> {
        let step = self.step;
        self.state.nonfinite_events += 1;
        match self.cfg.on_nonfinite {
            OnNonFinite::Stop => bail!(
                "non-finite value at step {step}: {what}; stopped, the last good checkpoint (step {}) is kept \
                 (--on-nonfinite skip|rollback carry on instead)",
                self.last_good
            ),
            OnNonFinite::Skip => {
                self.skipped_in_a_row += 1;
                match self.skipped_in_a_row {
                    ..=NOTED_SKIPS => note(&self.bar, format!("step {step}: {what}; update skipped")),
                    n if n == NOTED_SKIPS + 1 => note(
                        &self.bar,
                        format!("step {step}: not finite either; further skipped steps are only counted (nonfinite_events in summary.json)"),
                    ),
                    _ => {}
                }
                self.step += 1;
            }
            OnNonFinite::Rollback => {
                if self.state.nonfinite_events > MAX_ROLLBACKS {
                    bail!("non-finite value at step {step}: {what}; gave up after {MAX_ROLLBACKS} rollbacks");
                }
                let (events, scale) = (self.state.nonfinite_events, self.state.lr_scale * 0.5);
                self.state = restore(&self.dir, &self.model_cfg, &self.named, &mut self.optimizer, &self.device)?;
                (self.state.nonfinite_events, self.state.lr_scale) = (events, scale);
                self.dir.truncate_records(self.state.step)?;
                note(
                    &self.bar,
                    format!(
                        "step {step}: {what}; rolled back to step {} with the learning rate halved (×{})",
                        self.state.step, self.state.lr_scale
                    ),
                );
                self.step = self.state.step;
                self.window = Window::default();
            }
        }
        self.bar.set_position(self.step);
        Ok(())
    }
}
