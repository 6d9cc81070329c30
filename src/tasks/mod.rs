//! Long-range benchmark tasks, generated on the fly and deterministic under a seed.
//!
//! Tasks know tensors, not models: a task makes batches, turns a model's per-step outputs
//! (B, T, O) into a loss and metrics, and states its memoryless baseline.

mod adding;
mod copy;
mod mqar;
mod selective_copy;
mod text;

pub use adding::{AddingTask, AddingVariant};
pub use copy::CopyTask;
pub use mqar::MqarTask;
pub use selective_copy::SelectiveCopyTask;
pub use text::TextTask;

use candle_core::{Device, Result, Tensor};
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
    fn solved(&self, metrics: &Metrics) -> bool;
    /// The headline metric's name and value (`accuracy`, `mse` or `bpc`).
    fn headline(&self, metrics: &Metrics) -> (&'static str, f64);
    /// Writes what a run needs to reproduce the task (a tokenizer) into its directory.
    fn save_artifacts(&self, _dir: &std::path::Path) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Mean cross-entropy of logits (B, T, C) against class ids (B, T).
pub(crate) fn sequence_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (b, t, c) = logits.dims3()?;
    candle_nn::loss::cross_entropy(&logits.reshape((b * t, c))?, &targets.flatten_all()?)
}
