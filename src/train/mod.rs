//! What turns gradients into parameter updates: PyTorch's optimiser rules ([`optim`]), gradient
//! clipping ([`clip`]) and the learning-rate schedule ([`schedule`]). The pieces are independent
//! so a training loop composes them in PyTorch's order: backward, clip, `lr_at(step)`, `step`.

pub mod clip;
pub mod optim;
pub mod schedule;

pub use clip::{clip_grad_norm, clip_grad_value, global_grad_norm};
pub use optim::{Optimizer, OptimizerConfig};
pub use schedule::{LrSchedule, ScheduleKind};
