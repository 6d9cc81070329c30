//! LSTM, `torch.nn.LSTM`, gate blocks i, f, g, o: c_t = f·c_{t-1} + i·g; h_t = o·tanh(c_t).

use super::{sigmoid_derivative, tanh_derivative, CellState, ReferenceCell, StepActivations, StepWeights};
use candle_core::{Result, Tensor};
use candle_nn::ops::sigmoid;

pub(super) struct Lstm;

/// LSTM gate activations [i, f, g, o], each (B, H).
fn lstm_gates(xw_t: &Tensor, h: &Tensor, w_hh_t: &Tensor) -> Result<[Tensor; 4]> {
    let hid = h.dim(1)?;
    let a = (xw_t + h.matmul(w_hh_t)?)?; // (B, 4H)
    Ok([
        sigmoid(&a.narrow(1, 0, hid)?)?,
        sigmoid(&a.narrow(1, hid, hid)?)?,
        a.narrow(1, 2 * hid, hid)?.tanh()?,
        sigmoid(&a.narrow(1, 3 * hid, hid)?)?,
    ])
}

impl Lstm {
    /// The step, and its gates [i, f, g, o] and tanh(c_t).
    fn step_parts(
        &self,
        xw_t: &Tensor,
        state: &CellState,
        w: &StepWeights,
        c_tap: Option<&Tensor>,
    ) -> Result<(CellState, [Tensor; 4], Tensor)> {
        let c_prev = state.c.as_ref().expect("an lstm carries a cell state");
        let [i, f, g, o] = lstm_gates(xw_t, &state.h, w.hh().0)?;
        let mut c = ((&f * c_prev)? + (&i * &g)?)?; // (B, H)
        if let Some(tap) = c_tap {
            c = (c + tap)?;
        }
        let tc = c.tanh()?;
        let h = (&o * &tc)?;
        Ok((CellState { h, c: Some(c) }, [i, f, g, o], tc))
    }
}

impl ReferenceCell for Lstm {
    fn step(
        &self,
        xw_t: &Tensor,
        state: &CellState,
        w: &StepWeights,
        c_tap: Option<&Tensor>,
    ) -> Result<CellState> {
        Ok(self.step_parts(xw_t, state, w, c_tap)?.0)
    }

    fn saturation_names(&self) -> Vec<String> {
        ["i", "f", "g", "o", "tanh(c)"].map(String::from).to_vec()
    }

    fn step_with_activations(
        &self,
        xw_t: &Tensor,
        state: &CellState,
        w: &StepWeights,
    ) -> Result<(CellState, StepActivations)> {
        let (next, [i, f, g, o], tc) = self.step_parts(xw_t, state, w, None)?;
        let derivatives = vec![
            sigmoid_derivative(&i)?,
            sigmoid_derivative(&f)?,
            tanh_derivative(&g)?,
            sigmoid_derivative(&o)?,
            tanh_derivative(&tc)?,
        ];
        Ok((next, StepActivations { derivatives, forget_gate: Some(f) }))
    }
}
