//! minGRU (Feng et al. 2024, "Were RNNs All We Needed?"), gate blocks [z | h̃] of `weight_ih`:
//! z_t = σ(W_z x_t + b_z), h̃_t = g(W_h x_t + b_h), h_t = (1 − z_t)·h_{t-1} + z_t·h̃_t.
//! ∂h_t/∂h_{t-1} = diag(1 − z_t) does not depend on h: the gradient decays by the gates alone.

use super::{candidate, sigmoid_derivative, CellState, ReferenceCell, StepActivations, StepWeights};
use candle_core::{Result, Tensor};
use candle_nn::ops::sigmoid;

pub(super) struct MinGru;

impl MinGru {
    /// The step and its update gate z_t.
    fn step_parts(&self, xw_t: &Tensor, state: &CellState) -> Result<(CellState, Tensor)> {
        let hid = state.h.dim(1)?;
        let z = sigmoid(&xw_t.narrow(1, 0, hid)?)?; // (B, H)
        let cand = candidate(&xw_t.narrow(1, hid, hid)?)?; // (B, H)
        let h = ((&state.h * (1.0 - &z)?)? + (&z * cand)?)?;
        Ok((CellState { h, c: None }, z))
    }
}

impl ReferenceCell for MinGru {
    fn step(
        &self,
        xw_t: &Tensor,
        state: &CellState,
        _: &StepWeights,
        _: Option<&Tensor>,
    ) -> Result<CellState> {
        Ok(self.step_parts(xw_t, state)?.0)
    }

    fn saturation_names(&self) -> Vec<String> {
        vec!["z".into()]
    }

    /// The retention 1 − z_t is the factor by which h_t carries the gradient back.
    fn step_with_activations(
        &self,
        xw_t: &Tensor,
        state: &CellState,
        _: &StepWeights,
    ) -> Result<(CellState, StepActivations)> {
        let (next, z) = self.step_parts(xw_t, state)?;
        let acts =
            StepActivations { derivatives: vec![sigmoid_derivative(&z)?], forget_gate: Some((1.0 - z)?) };
        Ok((next, acts))
    }
}
