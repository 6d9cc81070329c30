//! Long-range benchmark tasks, generated on the fly and deterministic under a seed.
//!
//! Tasks know tensors, not models: a task makes batches, turns a model's per-step outputs
//! (B, T, O) into a loss and metrics, and states its memoryless baseline.

mod adding;
mod copy;
mod flip_flop;
mod induction;
mod mqar;
mod parity;
mod selective_copy;
mod text;

pub use adding::{AddingTask, AddingVariant};
pub use copy::CopyTask;
pub use flip_flop::{FlipFlopTask, DEFAULT_P_IGNORE};
pub use induction::InductionTask;
pub use mqar::MqarTask;
pub use parity::ParityTask;
pub use selective_copy::SelectiveCopyTask;
pub use text::TextTask;

use candle_core::{DType, Device, Result, Tensor, D};
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// What a task feeds a model at every step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputKind {
    /// Token ids (B, T) as `u32`, from a vocabulary of this size.
    Tokens { vocab: usize },
    /// Real-valued features (B, T, F) as `f32`.
    Real { features: usize },
}

/// The shape of a task's problem, from which a model's input and output layers are sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskSpec {
    pub input: InputKind,
    /// Outputs per step: classes for classification, 1 for regression.
    pub output_size: usize,
    /// Steps per sequence the model sees (e.g. T + 20 for the copy task).
    pub steps: usize,
}

/// One batch: inputs and targets, already on the device.
#[derive(Clone, Debug)]
pub struct Batch {
    /// (B, T) u32 or (B, T, F) f32, per [`TaskSpec::input`].
    pub inputs: Tensor,
    /// Task-specific: (B, T) u32 classes for copy, (B,) f32 values for adding.
    pub targets: Tensor,
    /// Per sequence, the step whose input the last step's target needs (the farthest back where
    /// it needs several): `grad` reads ‖∂L/∂h‖ there, at the lag that matters. None where the
    /// answer depends on every step (parity, text).
    pub dependency: Option<Vec<usize>>,
}

impl Batch {
    pub fn size(&self) -> Result<usize> {
        self.inputs.dim(0)
    }
}

/// Metrics of a model's outputs on a batch (or a whole evaluation set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// The training loss on these sequences (mean cross-entropy, or MSE).
    pub loss: f64,
    /// Classification tasks: accuracy on the steps that carry the answer.
    pub accuracy: Option<f64>,
    /// Regression tasks: mean squared error of the answer.
    pub mse: Option<f64>,
    /// Language modelling: bits per character of the text.
    pub bits_per_char: Option<f64>,
}

/// A task: batches, loss, metrics, baseline.
pub trait Task: Send + Sync {
    /// Short name used in reports, e.g. `copy` or `adding`.
    fn name(&self) -> &'static str;
    /// The distance the dependency spans (the user's T).
    fn seq_len(&self) -> usize;
    fn spec(&self) -> TaskSpec;
    /// A batch of `batch` fresh training sequences drawn from `rng`.
    fn batch(&self, batch: usize, rng: &mut StdRng, device: &Device) -> Result<Batch>;
    /// Consecutive windows for stateful truncated BPTT: batch `index` continues every stream of
    /// batch `index - 1`. `None` when the task has no notion of a continuing stream.
    fn sequential_batch(&self, _batch: usize, _index: u64, _device: &Device) -> Result<Option<Batch>> {
        Ok(None)
    }
    /// Batches after which the streams start over (carried state must be reset then).
    fn sequential_period(&self, _batch: usize) -> u64 {
        u64::MAX
    }
    /// Held-out sequences; generated tasks draw them like training ones, corpora from their
    /// validation split.
    fn eval_batch(&self, batch: usize, rng: &mut StdRng, device: &Device) -> Result<Batch> {
        self.batch(batch, rng, device)
    }
    /// The differentiable training loss of outputs (B, T, O).
    fn loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor>;
    /// The loss at the last step only (for gradient probes: one loss, one distance axis).
    fn last_step_loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor>;
    /// Loss plus the task's metric, summed-friendly: computed per batch, averaged by the caller
    /// weighted by batch size.
    fn metrics(&self, outputs: &Tensor, batch: &Batch) -> Result<Metrics>;
    /// The loss of the best memoryless strategy, the line a model must get below.
    fn baseline(&self) -> f64;
    /// Whether evaluation metrics count as solving the task.
    /// Classification tasks: more than 99 % of the scored steps right.
    fn solved(&self, metrics: &Metrics) -> bool {
        metrics.accuracy.is_some_and(|a| a > 0.99)
    }
    /// The headline metric's name and value (`accuracy`, `mse` or `bpc`).
    fn headline(&self, metrics: &Metrics) -> (&'static str, f64) {
        ("accuracy", metrics.accuracy.unwrap_or(f64::NAN))
    }
    /// Writes what a run needs to reproduce the task (a tokenizer) into its directory.
    fn save_artifacts(&self, _dir: &std::path::Path) -> anyhow::Result<()> {
        Ok(())
    }
    /// Other distributions a trained model is also evaluated on, by name (flip-flop's sparse and
    /// dense tails).
    fn extra_evaluations(&self) -> Vec<(String, Box<dyn Task>)> {
        Vec::new()
    }
}

/// Marks a step that has no target: no loss, no accuracy there.
pub(crate) const NO_TARGET: u32 = u32::MAX;

/// For outputs (B, T, C) and targets (B, T) with [`NO_TARGET`] at unscored steps: the
/// log-probability of each step's target (B, T), the 0/1 mask of scored steps (B, T) f32, and
/// the targets with unscored steps set to class 0.
fn scored_steps(outputs: &Tensor, targets: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let mask = targets.ne(NO_TARGET)?; // (B, T) u8
    let targets = mask.where_cond(targets, &targets.zeros_like()?)?;
    let log_p = candle_nn::ops::log_softmax(outputs, D::Minus1)?; // (B, T, C)
    let picked = log_p.gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?.squeeze(D::Minus1)?; // (B, T)
    Ok((picked, mask.to_dtype(DType::F32)?, targets))
}

/// Mean cross-entropy over the scored steps of targets (B, T).
pub(crate) fn scored_cross_entropy(outputs: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (picked, mask, _) = scored_steps(outputs, targets)?;
    (picked * &mask)?.sum_all()?.neg()? / mask.sum_all()?.to_scalar::<f32>()? as f64
}

/// Loss and accuracy over the scored steps of targets (B, T).
pub(crate) fn scored_metrics(outputs: &Tensor, targets: &Tensor) -> Result<Metrics> {
    let loss = scored_cross_entropy(outputs, targets)?.to_scalar::<f32>()? as f64;
    let (_, mask, targets) = scored_steps(outputs, targets)?;
    let hits = outputs.argmax(D::Minus1)?.eq(&targets)?.to_dtype(DType::F32)?;
    let accuracy =
        ((hits * &mask)?.sum_all()?.to_scalar::<f32>()? / mask.sum_all()?.to_scalar::<f32>()?) as f64;
    Ok(Metrics { loss, accuracy: Some(accuracy), mse: None, bits_per_char: None })
}

/// Mean cross-entropy at the last step of outputs (B, T, C) against targets (B, T), every
/// sequence's last step being scored.
pub(crate) fn last_step_cross_entropy(outputs: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let t = outputs.dim(1)?;
    sequence_cross_entropy(&outputs.narrow(1, t - 1, 1)?, &targets.narrow(1, t - 1, 1)?)
}

/// Mean cross-entropy of logits (B, T, C) against class ids (B, T).
pub(crate) fn sequence_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (b, t, c) = logits.dims3()?;
    candle_nn::loss::cross_entropy(&logits.reshape((b * t, c))?, &targets.flatten_all()?)
}
