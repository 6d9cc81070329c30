//! The LRU's settings in a run's configuration: `--state`, `--lru-r-min`, `--lru-r-max` and
//! `--lru-max-phase`, checked and resolved into the model's [`LruConfig`].

use super::TrainConfig;
use crate::models::{Family, LruConfig};
use anyhow::{bail, Result};

impl TrainConfig {
    /// The LRU's flags: set only with `--model lru`, each in its range.
    pub(super) fn validate_lru(&self) -> Result<()> {
        let given = [
            ("--state", self.state.is_some() && self.model != Family::Mamba),
            ("--lru-r-min", self.lru_r_min.is_some()),
            ("--lru-r-max", self.lru_r_max.is_some()),
            ("--lru-max-phase", self.lru_max_phase.is_some()),
        ];
        if self.model != Family::Lru {
            if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
                let models = if *flag == "--state" { "lru and mamba" } else { "lru" };
                bail!("{flag} applies to --model {models} only (got --model {})", self.model);
            }
            return Ok(());
        }
        if self.state == Some(0) {
            bail!("--state must be ≥ 1");
        }
        let lru = self.lru_settings(1);
        let ring_ok = |r: f64| (0.0..1.0).contains(&r);
        if !ring_ok(lru.r_min) || !ring_ok(lru.r_max) || lru.r_min > lru.r_max {
            bail!(
                "--lru-r-min and --lru-r-max must satisfy 0 ≤ r-min ≤ r-max < 1 (got {} and {})",
                lru.r_min,
                lru.r_max
            );
        }
        if !(lru.max_phase > 0.0 && lru.max_phase.is_finite()) {
            bail!("--lru-max-phase must be a finite number > 0 (got {})", lru.max_phase);
        }
        Ok(())
    }

    /// The LRU's resolved settings for a model with `input` features per step.
    pub(super) fn lru_settings(&self, input: usize) -> LruConfig {
        let d = LruConfig::new(input, self.hidden);
        LruConfig {
            state_size: self.state.unwrap_or(self.hidden),
            num_layers: self.layers,
            r_min: self.lru_r_min.unwrap_or(d.r_min),
            r_max: self.lru_r_max.unwrap_or(d.r_max),
            max_phase: self.lru_max_phase.unwrap_or(d.max_phase),
            dropout: self.dropout,
            ..d
        }
    }
}
