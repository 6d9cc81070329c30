//! Mamba's settings in a run's configuration: `--state` (shared with the LRU), `--expand` and
//! `--conv`, checked and resolved into the model's [`MambaConfig`].

use super::TrainConfig;
use crate::models::{Family, MambaConfig};
use anyhow::{bail, Result};

impl TrainConfig {
    /// Mamba's flags: set only with `--model mamba`, each ≥ 1.
    pub(super) fn validate_mamba(&self) -> Result<()> {
        let given = [("--expand", self.expand), ("--conv", self.conv)];
        if self.model != Family::Mamba {
            if let Some((flag, _)) = given.iter().find(|(_, v)| v.is_some()) {
                bail!("{flag} applies to --model mamba only (got --model {})", self.model);
            }
            return Ok(());
        }
        for (flag, v) in [("--state", self.state), ("--expand", self.expand), ("--conv", self.conv)] {
            if v == Some(0) {
                bail!("{flag} must be ≥ 1");
            }
        }
        Ok(())
    }

    /// Mamba's resolved settings for a model with `input` features per step.
    pub(super) fn mamba_settings(&self, input: usize) -> MambaConfig {
        let d = MambaConfig::new(input, self.hidden);
        MambaConfig {
            state_size: self.state.unwrap_or(d.state_size),
            expand: self.expand.unwrap_or(d.expand),
            conv: self.conv.unwrap_or(d.conv),
            num_layers: self.layers,
            dropout: self.dropout,
            ..d
        }
    }
}
