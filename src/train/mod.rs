//! What turns gradients into parameter updates: PyTorch's optimiser rules ([`optim`]), gradient
//! clipping ([`clip`]) and the learning-rate schedule ([`schedule`]). The pieces are independent
//! so a training loop composes them in PyTorch's order: backward, clip, `lr_at(step)`, `step`.
//! [`train`] is that loop, writing a run directory ([`run_dir`]) from a [`TrainConfig`].

pub mod clip;
pub mod config;
mod gradients;
mod nonfinite;
pub mod optim;
pub mod run_dir;
pub mod schedule;
mod trainer;

pub use clip::{clip_grad_norm, clip_grad_value, global_grad_norm};
pub use config::{OnNonFinite, TaskName, TrainConfig};
pub use gradients::probe_gradients;
pub use optim::{Optimizer, OptimizerConfig};
pub use run_dir::{ExtraEvaluation, MetricsRecord, RunDir, StopReason, Summary};
pub use schedule::{LrSchedule, ScheduleKind};
pub use trainer::{derive_seed, eval_set, evaluate, train, Interrupted, RunOptions, EVAL_SEED};
