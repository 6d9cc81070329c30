//! Which update rule to use and its hyper-parameters, with PyTorch's defaults and range checks.
//!
//! The learning rate is deliberately absent: it changes every step under a schedule, so
//! [`super::Optimizer::step`] takes it as an argument instead.

use candle_core::{bail, Result};
use serde::{Deserialize, Serialize};

/// One of the `torch.optim` rules. Field names and defaults are PyTorch's, so a run described
/// here can be reproduced there (and vice versa) by copying the numbers.
///
/// Serialised with the rule under `name`, e.g. `{"name":"adam","beta1":0.9,...}`; omitted fields
/// take PyTorch's defaults, so `{"name":"adamw"}` is `torch.optim.AdamW`'s defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum OptimizerConfig {
    /// `torch.optim.SGD` with `dampening=0`.
    Sgd {
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        nesterov: bool,
        #[serde(default)]
        weight_decay: f64,
    },
    /// `torch.optim.Adam` (no amsgrad): weight decay is an L2 term added to the gradient.
    Adam {
        #[serde(default = "beta1")]
        beta1: f64,
        #[serde(default = "beta2")]
        beta2: f64,
        #[serde(default = "adam_eps")]
        eps: f64,
        #[serde(default)]
        weight_decay: f64,
    },
    /// `torch.optim.AdamW` (no amsgrad): decay is applied to the weights, outside the moments.
    Adamw {
        #[serde(default = "beta1")]
        beta1: f64,
        #[serde(default = "beta2")]
        beta2: f64,
        #[serde(default = "adam_eps")]
        eps: f64,
        #[serde(default = "adamw_weight_decay")]
        weight_decay: f64,
    },
    /// `torch.optim.RMSprop`.
    Rmsprop {
        #[serde(default = "rmsprop_alpha")]
        alpha: f64,
        #[serde(default = "adam_eps")]
        eps: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        centered: bool,
        #[serde(default)]
        weight_decay: f64,
    },
    /// `torch.optim.Adagrad`.
    Adagrad {
        #[serde(default)]
        lr_decay: f64,
        #[serde(default = "adagrad_eps")]
        eps: f64,
        #[serde(default)]
        weight_decay: f64,
        #[serde(default)]
        initial_accumulator_value: f64,
    },
}

fn beta1() -> f64 {
    0.9
}
fn beta2() -> f64 {
    0.999
}
fn adam_eps() -> f64 {
    1e-8
}
fn adamw_weight_decay() -> f64 {
    0.01
}
fn rmsprop_alpha() -> f64 {
    0.99
}
fn adagrad_eps() -> f64 {
    1e-10
}

impl OptimizerConfig {
    pub const NAMES: [&'static str; 5] = ["sgd", "adam", "adamw", "rmsprop", "adagrad"];

    /// `torch.optim.SGD` defaults: plain gradient descent.
    pub fn sgd() -> Self {
        Self::Sgd { momentum: 0.0, nesterov: false, weight_decay: 0.0 }
    }
    pub fn adam() -> Self {
        Self::Adam { beta1: beta1(), beta2: beta2(), eps: adam_eps(), weight_decay: 0.0 }
    }
    pub fn adamw() -> Self {
        Self::Adamw { beta1: beta1(), beta2: beta2(), eps: adam_eps(), weight_decay: adamw_weight_decay() }
    }
    pub fn rmsprop() -> Self {
        Self::Rmsprop {
            alpha: rmsprop_alpha(),
            eps: adam_eps(),
            momentum: 0.0,
            centered: false,
            weight_decay: 0.0,
        }
    }
    pub fn adagrad() -> Self {
        Self::Adagrad { lr_decay: 0.0, eps: adagrad_eps(), weight_decay: 0.0, initial_accumulator_value: 0.0 }
    }

    /// Replaces the weight decay, which every rule has (L2 for all but AdamW, decoupled there).
    pub fn with_weight_decay(mut self, wd: f64) -> Self {
        match &mut self {
            Self::Sgd { weight_decay, .. }
            | Self::Adam { weight_decay, .. }
            | Self::Adamw { weight_decay, .. }
            | Self::Rmsprop { weight_decay, .. }
            | Self::Adagrad { weight_decay, .. } => *weight_decay = wd,
        }
        self
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Sgd { .. } => "sgd",
            Self::Adam { .. } => "adam",
            Self::Adamw { .. } => "adamw",
            Self::Rmsprop { .. } => "rmsprop",
            Self::Adagrad { .. } => "adagrad",
        }
    }

    /// PyTorch's default `lr` for this rule, for callers that were given none.
    pub fn default_lr(&self) -> f64 {
        match self {
            Self::Sgd { .. } | Self::Adam { .. } | Self::Adamw { .. } => 1e-3,
            Self::Rmsprop { .. } | Self::Adagrad { .. } => 1e-2,
        }
    }

    /// Rejects settings for which the update is undefined or silently diverges; the message names
    /// the field and its allowed range. NaN fails every check.
    pub fn validate(&self) -> Result<()> {
        fn in_unit(name: &str, field: &str, v: f64) -> Result<()> {
            if !(0.0..1.0).contains(&v) {
                bail!("{name}: {field} must be in [0, 1), got {v}");
            }
            Ok(())
        }
        fn non_negative(name: &str, field: &str, v: f64) -> Result<()> {
            if !(v >= 0.0 && v.is_finite()) {
                bail!("{name}: {field} must be finite and ≥ 0, got {v}");
            }
            Ok(())
        }
        let n = self.name();
        match *self {
            Self::Sgd { momentum, nesterov, weight_decay } => {
                in_unit(n, "momentum", momentum)?;
                non_negative(n, "weight_decay", weight_decay)?;
                if nesterov && momentum <= 0.0 {
                    bail!("sgd: nesterov requires momentum > 0, got momentum {momentum}");
                }
            }
            Self::Adam { beta1, beta2, eps, weight_decay }
            | Self::Adamw { beta1, beta2, eps, weight_decay } => {
                in_unit(n, "beta1", beta1)?;
                in_unit(n, "beta2", beta2)?;
                non_negative(n, "eps", eps)?;
                non_negative(n, "weight_decay", weight_decay)?;
            }
            Self::Rmsprop { alpha, eps, momentum, centered: _, weight_decay } => {
                if !(0.0..=1.0).contains(&alpha) {
                    bail!("rmsprop: alpha must be in [0, 1], got {alpha}");
                }
                non_negative(n, "eps", eps)?;
                in_unit(n, "momentum", momentum)?;
                non_negative(n, "weight_decay", weight_decay)?;
            }
            Self::Adagrad { lr_decay, eps, weight_decay, initial_accumulator_value } => {
                non_negative(n, "lr_decay", lr_decay)?;
                non_negative(n, "eps", eps)?;
                non_negative(n, "weight_decay", weight_decay)?;
                non_negative(n, "initial_accumulator_value", initial_accumulator_value)?;
            }
        }
        Ok(())
    }

    /// The per-parameter state tensors this rule keeps, under PyTorch's `state_dict` slot names.
    /// Slots that a setting makes useless (a momentum buffer at momentum 0) are not kept.
    pub(crate) fn slot_names(&self) -> Vec<&'static str> {
        match *self {
            Self::Sgd { momentum, .. } if momentum > 0.0 => vec!["momentum_buffer"],
            Self::Sgd { .. } => vec![],
            Self::Adam { .. } | Self::Adamw { .. } => vec!["exp_avg", "exp_avg_sq"],
            Self::Rmsprop { momentum, centered, .. } => {
                let mut slots = vec!["square_avg"];
                if momentum > 0.0 {
                    slots.push("momentum_buffer");
                }
                if centered {
                    slots.push("grad_avg");
                }
                slots
            }
            Self::Adagrad { .. } => vec!["sum"],
        }
    }
}

/// Every slot name any rule uses, so state saved by another rule (or other settings) is recognised.
pub(crate) const ALL_SLOTS: [&str; 6] =
    ["momentum_buffer", "exp_avg", "exp_avg_sq", "square_avg", "grad_avg", "sum"];

impl std::str::FromStr for OptimizerConfig {
    type Err = String;
    /// A rule by name with PyTorch's defaults.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "sgd" => Ok(Self::sgd()),
            "adam" => Ok(Self::adam()),
            "adamw" => Ok(Self::adamw()),
            "rmsprop" => Ok(Self::rmsprop()),
            "adagrad" => Ok(Self::adagrad()),
            _ => Err(format!("unknown optimizer '{s}': expected {}", Self::NAMES.join(", "))),
        }
    }
}

impl std::fmt::Display for OptimizerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
