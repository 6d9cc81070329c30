//! Elman RNN, `torch.nn.RNN`: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).

use super::{sigmoid_derivative, tanh_derivative, CellState, ReferenceCell, StepActivations, StepWeights};
use crate::cell::Nonlinearity;
use candle_core::{Result, Tensor};

pub(super) struct Rnn(pub Nonlinearity);

impl ReferenceCell for Rnn {
    /// Both biases are already in `xw_t`.
    fn step(
        &self,
        xw_t: &Tensor,
        state: &CellState,
        w: &StepWeights,
        _: Option<&Tensor>,
    ) -> Result<CellState> {
        let h = self.0.apply(&(xw_t + state.h.matmul(w.hh().0)?)?)?; // (B, H)
        Ok(CellState { h, c: None })
    }

    fn saturation_names(&self) -> Vec<String> {
        vec![self.0.name().to_string()]
    }

    fn step_with_activations(
        &self,
        xw_t: &Tensor,
        state: &CellState,
        w: &StepWeights,
    ) -> Result<(CellState, StepActivations)> {
        let next = self.step(xw_t, state, w, None)?;
        let h = &next.h;
        let derivative = match self.0 {
            Nonlinearity::Tanh => tanh_derivative(h)?,
            Nonlinearity::Sigmoid => sigmoid_derivative(h)?,
            Nonlinearity::Relu => h.gt(0.0)?.to_dtype(h.dtype())?,
            Nonlinearity::Linear => h.ones_like()?,
        };
        Ok((next, StepActivations { derivatives: vec![derivative], forget_gate: None }))
    }
}
