//! minLSTM (Feng et al. 2024), gate blocks [f | i | h̃] of `weight_ih`: f_t = σ(W_f x_t + b_f),
//! i_t = σ(W_i x_t + b_i), h̃_t = g(W_h x_t + b_h); f'_t = f_t / (f_t + i_t),
//! i'_t = i_t / (f_t + i_t); h_t = f'_t·h_{t-1} + i'_t·h̃_t.

use super::{candidate, sigmoid_derivative, CellState, ReferenceCell, StepActivations, StepWeights};
use candle_core::{Result, Tensor};
use candle_nn::ops::sigmoid;

pub(super) struct MinLstm;

impl MinLstm {
    /// The step, its gates f_t and i_t, and the normalised forget gate f'_t.
    fn step_parts(&self, xw_t: &Tensor, state: &CellState) -> Result<(CellState, [Tensor; 3])> {
        let hid = state.h.dim(1)?;
        let f = sigmoid(&xw_t.narrow(1, 0, hid)?)?; // (B, H)
        let i = sigmoid(&xw_t.narrow(1, hid, hid)?)?;
        let cand = candidate(&xw_t.narrow(1, 2 * hid, hid)?)?;
        let s = (&f + &i)?;
        let (f_norm, i_norm) = ((&f / &s)?, (&i / &s)?);
        let h = ((&f_norm * &state.h)? + (i_norm * cand)?)?;
        Ok((CellState { h, c: None }, [f, i, f_norm]))
    }
}

impl ReferenceCell for MinLstm {
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
        ["f", "i"].map(String::from).to_vec()
    }

    /// The normalised forget gate f'_t is the factor by which h_t carries the gradient back.
    fn step_with_activations(
        &self,
        xw_t: &Tensor,
        state: &CellState,
        _: &StepWeights,
    ) -> Result<(CellState, StepActivations)> {
        let (next, [f, i, f_norm]) = self.step_parts(xw_t, state)?;
        let derivatives = vec![sigmoid_derivative(&f)?, sigmoid_derivative(&i)?];
        Ok((next, StepActivations { derivatives, forget_gate: Some(f_norm) }))
    }
}
