//! The vanishing-gradient lab: the literature's claims about vanishing and exploding gradients,
//! each turned into an experiment that runs in one command and answers with measured numbers.
//!
//! - [`mlp`]: a multilayer perceptron with per-layer gradient taps (the depth axis).
//! - [`depth`]: the synthetic tasks (a random teacher network, two spirals), its training loop and
//!   a sweep over depth × activation × init × residual × normalisation × dropout.
//! - [`recurrent`]: the time axis: a grid of [`crate::train::TrainConfig`]s trained with
//!   [`crate::train::train`] and measured with [`crate::probe::measure`].
//! - [`experiments`]: the named experiments, one per claim, with findings computed from the
//!   numbers.
//! - [`report`]: `results.json`, `report.md` and the PNG/SVG figures of an experiment.

pub mod catalogue;
pub mod depth;
pub mod experiments;
mod figures;
pub mod mlp;
pub mod recurrent;
pub mod report;

pub use experiments::{experiment, registry, run_experiment, ExperimentInfo};
pub use report::{ExperimentReport, Finding, Verdict};

use crate::train::{OptimizerConfig, TrainConfig};
use serde::{Deserialize, Serialize};

/// The optimisers the claims compare, with the learning rates the lab uses unless told otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerSpec {
    /// Plain SGD.
    Sgd,
    /// SGD with momentum 0.9.
    Momentum,
    /// SGD with Nesterov momentum 0.9 (Sutskever et al. 2013).
    Nesterov,
    Rmsprop,
    Adagrad,
    Adam,
}

/// Momentum of [`OptimizerSpec::Momentum`] and [`OptimizerSpec::Nesterov`].
pub const SGD_MOMENTUM: f64 = 0.9;

impl OptimizerSpec {
    pub const ALL: [OptimizerSpec; 6] = [
        OptimizerSpec::Sgd,
        OptimizerSpec::Momentum,
        OptimizerSpec::Nesterov,
        OptimizerSpec::Rmsprop,
        OptimizerSpec::Adagrad,
        OptimizerSpec::Adam,
    ];

    pub fn name(self) -> &'static str {
        match self {
            OptimizerSpec::Sgd => "sgd",
            OptimizerSpec::Momentum => "sgd-momentum",
            OptimizerSpec::Nesterov => "sgd-nesterov",
            OptimizerSpec::Rmsprop => "rmsprop",
            OptimizerSpec::Adagrad => "adagrad",
            OptimizerSpec::Adam => "adam",
        }
    }

    /// The lab's default learning rate for this rule.
    pub fn default_lr(self) -> f64 {
        match self {
            OptimizerSpec::Sgd | OptimizerSpec::Momentum | OptimizerSpec::Nesterov => 1e-2,
            OptimizerSpec::Rmsprop | OptimizerSpec::Adam => 1e-3,
            OptimizerSpec::Adagrad => 1e-2,
        }
    }

    /// Adaptive rules rescale every parameter's step by its own gradient history.
    pub fn adaptive(self) -> bool {
        matches!(self, OptimizerSpec::Rmsprop | OptimizerSpec::Adagrad | OptimizerSpec::Adam)
    }

    pub fn config(self) -> OptimizerConfig {
        match self {
            OptimizerSpec::Sgd => OptimizerConfig::sgd(),
            OptimizerSpec::Momentum => {
                OptimizerConfig::Sgd { momentum: SGD_MOMENTUM, nesterov: false, weight_decay: 0.0 }
            }
            OptimizerSpec::Nesterov => {
                OptimizerConfig::Sgd { momentum: SGD_MOMENTUM, nesterov: true, weight_decay: 0.0 }
            }
            OptimizerSpec::Rmsprop => OptimizerConfig::rmsprop(),
            OptimizerSpec::Adagrad => OptimizerConfig::adagrad(),
            OptimizerSpec::Adam => OptimizerConfig::adam(),
        }
    }

    /// Sets `--optimizer`, `--momentum` and `--nesterov` of a training config.
    pub fn apply(self, cfg: &mut TrainConfig) {
        let (name, momentum, nesterov) = match self {
            OptimizerSpec::Sgd => ("sgd", 0.0, false),
            OptimizerSpec::Momentum => ("sgd", SGD_MOMENTUM, false),
            OptimizerSpec::Nesterov => ("sgd", SGD_MOMENTUM, true),
            OptimizerSpec::Rmsprop => ("rmsprop", 0.0, false),
            OptimizerSpec::Adagrad => ("adagrad", 0.0, false),
            OptimizerSpec::Adam => ("adam", 0.0, false),
        };
        cfg.optimizer = name.into();
        cfg.momentum = momentum;
        cfg.nesterov = nesterov;
    }
}

impl std::fmt::Display for OptimizerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for OptimizerSpec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.to_ascii_lowercase().replace('_', "-");
        let alias = match s.as_str() {
            "momentum" => "sgd-momentum",
            "nesterov" | "nag" => "sgd-nesterov",
            other => other,
        };
        OptimizerSpec::ALL.into_iter().find(|o| o.name() == alias).ok_or_else(|| {
            format!(
                "unknown optimizer '{s}': expected sgd, sgd-momentum, sgd-nesterov, rmsprop, adagrad or adam"
            )
        })
    }
}

/// Gradient clipping as one value: none, the global norm, or every element.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "max")]
pub enum ClipSpec {
    None,
    /// Rescale all gradients so their global norm is at most this (Pascanu et al. 2013).
    Norm(f64),
    /// Clamp every gradient element to [-v, v].
    Value(f64),
}

impl ClipSpec {
    pub fn label(self) -> String {
        match self {
            ClipSpec::None => "no clip".into(),
            ClipSpec::Norm(v) => format!("clip norm {v}"),
            ClipSpec::Value(v) => format!("clip value {v}"),
        }
    }

    /// Sets `--clip` and `--clip-value` of a training config.
    pub fn apply(self, cfg: &mut TrainConfig) {
        (cfg.clip, cfg.clip_value) = match self {
            ClipSpec::None => (None, None),
            ClipSpec::Norm(v) => (Some(v), None),
            ClipSpec::Value(v) => (None, Some(v)),
        };
    }
}

impl std::str::FromStr for ClipSpec {
    type Err = String;
    /// `none`, `norm` (1), `norm:0.5`, `value` (1), `value:0.1`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.to_ascii_lowercase();
        let (kind, v) = match s.split_once([':', '=']) {
            Some((k, v)) => {
                let v: f64 = v.parse().map_err(|_| format!("clip '{s}': '{v}' is not a number"))?;
                if !(v > 0.0 && v.is_finite()) {
                    return Err(format!("clip '{s}': the threshold must be a finite number > 0"));
                }
                (k.to_string(), Some(v))
            }
            None => (s.clone(), None),
        };
        match kind.as_str() {
            "none" | "off" if v.is_none() => Ok(ClipSpec::None),
            "norm" => Ok(ClipSpec::Norm(v.unwrap_or(1.0))),
            "value" => Ok(ClipSpec::Value(v.unwrap_or(1.0))),
            _ => Err(format!("unknown clip '{s}': expected none, norm[:MAX] or value[:MAX]")),
        }
    }
}

/// A number for a sentence: 3 significant digits, scientific outside [0.01, 10⁴).
pub fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        return "n/a".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "∞".into() } else { "−∞".into() };
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-2..1e4).contains(&a) {
        return format!("{v:.1e}");
    }
    let digits = (2 - a.log10().floor() as i32).max(0) as usize;
    format!("{v:.digits$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!("nesterov".parse::<OptimizerSpec>().unwrap(), OptimizerSpec::Nesterov);
        for o in OptimizerSpec::ALL {
            assert_eq!(o.name().parse::<OptimizerSpec>().unwrap(), o);
            o.config().validate().unwrap();
        }
        assert_eq!("none".parse::<ClipSpec>().unwrap(), ClipSpec::None);
        assert_eq!("norm".parse::<ClipSpec>().unwrap(), ClipSpec::Norm(1.0));
        assert_eq!("value:0.1".parse::<ClipSpec>().unwrap(), ClipSpec::Value(0.1));
        assert!("norm:-1".parse::<ClipSpec>().is_err());
        assert!("max".parse::<ClipSpec>().is_err());
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(1.234e-9), "1.2e-9");
        assert_eq!(fmt_num(0.7349), "0.735");
        assert_eq!(fmt_num(12.345), "12.3");
        assert_eq!(fmt_num(123456.0), "1.2e5");
        assert_eq!(fmt_num(0.0), "0");
    }
}
