//! The learning rate as a function of the step: nanoGPT's `get_lr` (linear warm-up, then cosine
//! or linear decay to a floor), or a constant.
//!
//! A pure function of the step rather than a stateful scheduler, so a resumed run needs only its
//! step count to continue on the same curve.

use candle_core::{bail, Result};
use serde::{Deserialize, Serialize};

/// The shape of the curve after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// `base_lr` for ever (`min_lr` and `total_steps` are ignored).
    #[default]
    Constant,
    /// Half a cosine from `base_lr` at the end of warm-up to `min_lr` at `total_steps`.
    Cosine,
    /// A straight line from `base_lr` at the end of warm-up to `min_lr` at `total_steps`.
    Linear,
}

impl std::str::FromStr for ScheduleKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "constant" => Ok(Self::Constant),
            "cosine" => Ok(Self::Cosine),
            "linear" => Ok(Self::Linear),
            _ => Err(format!("unknown schedule '{s}': expected constant, cosine or linear")),
        }
    }
}

/// A warm-up-then-decay learning-rate curve (nanoGPT's `learning_rate`, `warmup_iters`,
/// `lr_decay_iters`, `min_lr`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    #[serde(default)]
    pub kind: ScheduleKind,
    pub base_lr: f64,
    /// Steps of linear warm-up; 0 starts at `base_lr`.
    #[serde(default)]
    pub warmup_steps: u64,
    /// The floor reached at `total_steps` and kept afterwards (decaying kinds only).
    #[serde(default)]
    pub min_lr: f64,
    /// nanoGPT's `lr_decay_iters`: where the decay ends (decaying kinds only).
    #[serde(default)]
    pub total_steps: u64,
}

impl LrSchedule {
    pub fn constant(base_lr: f64) -> Self {
        Self { kind: ScheduleKind::Constant, base_lr, warmup_steps: 0, min_lr: base_lr, total_steps: 0 }
    }
    pub fn cosine(base_lr: f64, min_lr: f64, total_steps: u64) -> Self {
        Self { kind: ScheduleKind::Cosine, base_lr, warmup_steps: 0, min_lr, total_steps }
    }
    pub fn linear(base_lr: f64, min_lr: f64, total_steps: u64) -> Self {
        Self { kind: ScheduleKind::Linear, base_lr, warmup_steps: 0, min_lr, total_steps }
    }
    pub fn with_warmup(mut self, warmup_steps: u64) -> Self {
        self.warmup_steps = warmup_steps;
        self
    }

    /// Errors name the field: a non-positive `base_lr`, a `min_lr` outside `[0, base_lr]`, or a
    /// decay that ends before warm-up does.
    pub fn validate(&self) -> Result<()> {
        if !(self.base_lr > 0.0 && self.base_lr.is_finite()) {
            bail!("base_lr must be finite and > 0, got {}", self.base_lr);
        }
        if self.kind != ScheduleKind::Constant {
            if !(self.min_lr >= 0.0 && self.min_lr <= self.base_lr) {
                bail!("min_lr must be in [0, base_lr = {}], got {}", self.base_lr, self.min_lr);
            }
            if self.total_steps <= self.warmup_steps {
                bail!(
                    "total_steps ({}) must be greater than warmup_steps ({}) for a {:?} decay",
                    self.total_steps,
                    self.warmup_steps,
                    self.kind
                );
            }
        }
        Ok(())
    }

    /// The learning rate for 0-based `step`, exactly nanoGPT's `get_lr(it)`:
    /// `base_lr·(step+1)/(warmup+1)` during warm-up, then the decay, then `min_lr` from
    /// `total_steps` on.
    pub fn lr_at(&self, step: u64) -> f64 {
        let (base, min) = (self.base_lr, self.min_lr);
        if step < self.warmup_steps {
            return base * (step + 1) as f64 / (self.warmup_steps + 1) as f64;
        }
        if self.kind == ScheduleKind::Constant {
            return base;
        }
        // `>=` rather than nanoGPT's `>`: equal at `total_steps` (coefficient 0), and it keeps an
        // unvalidated `total_steps <= warmup_steps` from dividing by zero.
        if step >= self.total_steps {
            return min;
        }
        let ratio = (step - self.warmup_steps) as f64 / (self.total_steps - self.warmup_steps) as f64;
        let coeff = match self.kind {
            ScheduleKind::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos()),
            _ => 1.0 - ratio,
        };
        min + coeff * (base - min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn cosine_warms_up_then_follows_nanogpt_get_lr() {
        // nanoGPT: learning_rate=6e-4, warmup_iters=10, lr_decay_iters=110, min_lr=6e-5.
        let s = LrSchedule::cosine(6e-4, 6e-5, 110).with_warmup(10);
        s.validate().unwrap();
        assert!(close(s.lr_at(0), 6e-4 * 1.0 / 11.0));
        assert!(close(s.lr_at(9), 6e-4 * 10.0 / 11.0));
        assert!(close(s.lr_at(10), 6e-4), "warm-up ends at base_lr");
        // Mid-decay (ratio 1/2): cos(π/2) = 0, so halfway between the two.
        assert!(close(s.lr_at(60), 6e-5 + 0.5 * (6e-4 - 6e-5)));
        // ratio 1/4: coefficient (1 + cos(π/4))/2 = (1 + 1/√2)/2.
        let c = (1.0 + std::f64::consts::FRAC_1_SQRT_2) / 2.0;
        assert!(close(s.lr_at(35), 6e-5 + c * (6e-4 - 6e-5)));
        assert!(close(s.lr_at(110), 6e-5));
        assert!(close(s.lr_at(10_000), 6e-5));
        // Monotone after warm-up.
        assert!((10..110).all(|t| s.lr_at(t + 1) <= s.lr_at(t)));
    }

    #[test]
    fn linear_decays_in_a_straight_line() {
        let s = LrSchedule::linear(1.0, 0.1, 12).with_warmup(2);
        s.validate().unwrap();
        assert!(close(s.lr_at(0), 1.0 / 3.0));
        assert!(close(s.lr_at(1), 2.0 / 3.0));
        assert!(close(s.lr_at(2), 1.0));
        assert!(close(s.lr_at(7), 0.1 + 0.5 * 0.9));
        assert!(close(s.lr_at(11), 0.1 + 0.1 * 0.9));
        assert!(close(s.lr_at(12), 0.1));
        assert!(close(s.lr_at(100), 0.1));
    }

    #[test]
    fn constant_only_warms_up() {
        let s = LrSchedule::constant(0.01).with_warmup(4);
        s.validate().unwrap();
        assert!(close(s.lr_at(0), 0.01 / 5.0));
        assert!(close(s.lr_at(3), 0.01 * 4.0 / 5.0));
        assert!(close(s.lr_at(4), 0.01));
        assert!(close(s.lr_at(1_000_000), 0.01));
        assert!(close(LrSchedule::constant(0.5).lr_at(0), 0.5));
    }

    #[test]
    fn validate_names_the_field() {
        let err = |s: LrSchedule| s.validate().unwrap_err().to_string();
        assert!(err(LrSchedule::constant(0.0)).contains("base_lr"));
        assert!(err(LrSchedule::constant(f64::NAN)).contains("base_lr"));
        assert!(err(LrSchedule::cosine(1e-3, 2e-3, 100)).contains("min_lr"));
        assert!(err(LrSchedule::cosine(1e-3, -1.0, 100)).contains("min_lr"));
        assert!(err(LrSchedule::linear(1e-3, 0.0, 10).with_warmup(10)).contains("total_steps"));
    }

    #[test]
    fn serde_round_trip_and_defaults() {
        let s = LrSchedule::cosine(3e-4, 3e-5, 5000).with_warmup(100);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"kind\":\"cosine\""), "{json}");
        assert_eq!(serde_json::from_str::<LrSchedule>(&json).unwrap(), s);
        let minimal: LrSchedule = serde_json::from_str(r#"{"base_lr": 0.1}"#).unwrap();
        assert_eq!(minimal.kind, ScheduleKind::Constant);
        assert!(close(minimal.lr_at(7), 0.1));
        assert_eq!("Cosine".parse::<ScheduleKind>().unwrap(), ScheduleKind::Cosine);
        assert!("step".parse::<ScheduleKind>().is_err());
    }
}
