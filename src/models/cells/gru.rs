//! GRU, `torch.nn.GRU`, gate blocks r, z, n:
//! n_t = tanh(W_in x_t + b_in + r_t·(W_hn h_{t-1} + b_hn)); h_t = (1 − z_t)·n_t + z_t·h_{t-1}.

use super::{sigmoid_derivative, tanh_derivative, CellState, ReferenceCell, StepActivations, StepWeights};
use candle_core::{Result, Tensor};
use candle_nn::ops::sigmoid;

pub(super) struct Gru;

/// GRU gate activations (r, z, n), each (B, H), with b_hn inside the reset product.
fn gru_gates(xw_t: &Tensor, h: &Tensor, w_hh_t: &Tensor, b_hh: &Tensor) -> Result<[Tensor; 3]> {
    let hid = h.dim(1)?;
    let hw = h.matmul(w_hh_t)?.broadcast_add(b_hh)?; // (B, 3H)
    let rz = sigmoid(&(xw_t.narrow(1, 0, 2 * hid)? + hw.narrow(1, 0, 2 * hid)?)?)?; // (B, 2H)
    let r = rz.narrow(1, 0, hid)?;
    let n = (xw_t.narrow(1, 2 * hid, hid)? + (&r * hw.narrow(1, 2 * hid, hid)?)?)?.tanh()?;
    Ok([r, rz.narrow(1, hid, hid)?, n])
}

impl Gru {
    fn step_parts(
        &self,
        xw_t: &Tensor,
        state: &CellState,
        w: &StepWeights,
    ) -> Result<(CellState, [Tensor; 3])> {
        let [r, z, n] = gru_gates(xw_t, &state.h, w.hh().0, w.hh().1)?;
        // (1 - z) n + z h  ==  n + z (h - n)
        let h = (&n + (&z * (&state.h - &n)?)?)?;
        Ok((CellState { h, c: None }, [r, z, n]))
    }
}

impl ReferenceCell for Gru {
    /// b_hn sits inside the reset product, so b_hh stays out of the input projection.
    fn folds_recurrent_bias(&self) -> bool {
        false
    }

    fn step(
        &self,
        xw_t: &Tensor,
        state: &CellState,
        w: &StepWeights,
        _: Option<&Tensor>,
    ) -> Result<CellState> {
        Ok(self.step_parts(xw_t, state, w)?.0)
    }

    fn saturation_names(&self) -> Vec<String> {
        ["r", "z", "n"].map(String::from).to_vec()
    }

    fn step_with_activations(
        &self,
        xw_t: &Tensor,
        state: &CellState,
        w: &StepWeights,
    ) -> Result<(CellState, StepActivations)> {
        let (next, [r, z, n]) = self.step_parts(xw_t, state, w)?;
        let derivatives = vec![sigmoid_derivative(&r)?, sigmoid_derivative(&z)?, tanh_derivative(&n)?];
        Ok((next, StepActivations { derivatives, forget_gate: None }))
    }
}
