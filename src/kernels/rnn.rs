//! Elman RNN over a whole sequence: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).
//!
//! Nothing is saved for backward: every activation's derivative is a function of its output
//! (tanh' = 1 − h², sigmoid' = h(1 − h), relu' = [h > 0], linear' = 1), and the output is the
//! op's result, which candle hands back to `bwd`.

use super::cell::{Backward, Forward, FusedCell, Saved};
use super::gemm::View;
use super::layer::{pre_activations, previous_states, set_bias_grads, InputSideGrads, Packed};
use super::math::{sigmoid_in_place, simd_fn, tanh_in_place};
use super::readout::{OuterGrad, Readout};
use super::step_gemm::{matmul_packed, PackedB};
use super::weight_grad::StagedWeightGrad;
use super::{Dims, Grads};
use crate::cell::Nonlinearity;

simd_fn! {
    /// `out ← act(out + rec)`: one batch row of one step.
    fn add_activate(act: Nonlinearity, out: &mut [f32], rec: &[f32]) {
        let rec = &rec[..out.len()];
        out.iter_mut().zip(rec).for_each(|(o, r)| *o += r);
        match act {
            Nonlinearity::Tanh => tanh_in_place::<FMA>(out),
            Nonlinearity::Sigmoid => sigmoid_in_place::<FMA>(out),
            Nonlinearity::Relu => out.iter_mut().for_each(|x| *x = x.max(0.0)),
            Nonlinearity::Linear => {}
        }
    }
}

simd_fn! {
    /// One batch row of one step of BPTT: `dh ← dh + g` (the total ∂L/∂h_t), then
    /// `da ← dh · act'` given the activation's output `y`. relu' is [y > 0], PyTorch's choice at 0.
    fn row_backward(act: Nonlinearity, dh: &mut [f32], da: &mut [f32], g: &[f32], y: &[f32]) {
        let n = dh.len();
        let (da, g, y) = (&mut da[..n], &g[..n], &y[..n]);
        dh.iter_mut().zip(g).for_each(|(d, g)| *d += g);
        match act {
            Nonlinearity::Tanh => (0..n).for_each(|j| da[j] = dh[j] * (1.0 - y[j] * y[j])),
            Nonlinearity::Sigmoid => (0..n).for_each(|j| da[j] = dh[j] * (y[j] * (1.0 - y[j]))),
            Nonlinearity::Relu => (0..n).for_each(|j| da[j] = if y[j] > 0.0 { dh[j] } else { 0.0 }),
            Nonlinearity::Linear => da.copy_from_slice(dh),
        }
    }
}

/// Returns the outputs (B, T, H). `w` is the packed [W_ih | W_hh | b_ih | b_hh]. With `head`,
/// its readout of every h_t fills the (B, T, O) rows it comes with.
pub fn forward(
    act: Nonlinearity,
    d: Dims,
    x: &[f32],
    w: &[f32],
    h0: &[f32],
    mut head: Option<(&Readout, &mut [f32])>,
) -> Vec<f32> {
    let Dims { b, t, h, .. } = d;
    let p = Packed::new(d, 1);
    // Pre-activations x W_ihᵀ + b_ih + b_hh, turned into the outputs in place step by step;
    // narrow inputs are projected a step at a time (see `NarrowProjection`).
    let (mut out, per_step) = pre_activations(d, p, x, w, true, true); // (B, T, H)
    let mut rec = vec![0f32; b * h]; // (B, H): W_hh h_{t-1}
    let w_t = PackedB::new(w, p.w_hh().t()); // W_hhᵀ (H, H)

    // h_{t-1} as a contiguous copy: one step's rows of (B, T, H) are T·H apart, a stride that maps
    // them all to the same cache sets.
    let mut h_prev = h0.to_vec(); // (B, H)
    for step in 0..t {
        matmul_packed(&mut rec, View::dense(0, b, h), false, &h_prev, View::dense(0, b, h), &w_t);
        for k in 0..b {
            let row = &mut out[(k * t + step) * h..][..h];
            if let Some(proj) = &per_step {
                proj.row(row, &x[(k * t + step) * d.i..][..d.i]);
            }
            add_activate(act, row, &rec[k * h..][..h]);
            h_prev[k * h..][..h].copy_from_slice(row);
        }
        if let Some((readout, y)) = head.as_mut() {
            readout.forward_step(y, &h_prev, step, (b, t));
        }
    }
    out
}

/// BPTT. `grad` gives ∂L/∂h_t from outside the layer, `out` is (B, T, H); `tap_h`, when given,
/// receives ∂L/∂h_t (B, T, H).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    act: Nonlinearity,
    d: Dims,
    mut grad: OuterGrad,
    out: &[f32],
    x: &[f32],
    w: &[f32],
    h0: &[f32],
    need_dx: bool,
    mut tap_h: Option<&mut [f32]>,
) -> Grads {
    let Dims { b, t, h, .. } = d;
    let p = Packed::new(d, 1);
    let mut dh = vec![0f32; b * h]; // (B, H): into h_t from step t + 1, then the total
    let w_v = PackedB::new(w, p.w_hh()); // W_hh (H, H)

    // Each step's ∂L/∂a_t rows, contiguous, summed into ∂L/∂W_hh as they come (see `lstm.rs`).
    let mut dw_hh = StagedWeightGrad::new(b, h, h);
    let mut input_side = InputSideGrads::new(d, p, need_dx); // ∂L/∂W_ih, ∂L/∂b, ∂L/∂x
    for step in (0..t).rev() {
        if step + 1 < t {
            let da_next = dw_hh.last_rows(); // (B, H): ∂L/∂a_{t+1}
            matmul_packed(&mut dh, View::dense(0, b, h), false, da_next, View::dense(0, b, h), &w_v);
        }
        let (src, prev) = previous_states(d, out, h0, step);
        let da_rows = dw_hh.next_step(src, prev); // (B, H)
        grad.begin_step(step);
        for k in 0..b {
            let r = (k * t + step) * h;
            let (dh_row, da) = (&mut dh[k * h..][..h], &mut da_rows[k * h..][..h]);
            row_backward(act, dh_row, da, grad.row(k, k * t + step, &out[r..r + h]), &out[r..r + h]);
            input_side.add(k * t + step, da, &x[(k * t + step) * d.i..][..d.i]);
            if let Some(tap) = tap_h.as_deref_mut() {
                tap[r..r + h].copy_from_slice(dh_row);
            }
        }
    }
    let mut dh0 = vec![0f32; b * h]; // (B, H)
    matmul_packed(&mut dh0, View::dense(0, b, h), false, dw_hh.last_rows(), View::dense(0, b, h), &w_v);
    let mut dw = vec![0f32; p.gh * p.ld()]; // packed (H, I + H + 2)
    dw_hh.finish(&mut dw, p.w_hh());
    let (dx, db) = input_side.finish(d, x, w, &mut dw); // ∂L/∂b_ih = ∂L/∂b_hh
    set_bias_grads(&mut dw, p, &db, &db);
    Grads { dx, dw, dstate: dh0, dhead: grad.head_grads() }
}

/// The Elman cell with its activation.
pub(super) struct Rnn(pub Nonlinearity);

impl FusedCell for Rnn {
    fn op_name(&self) -> &'static str {
        "gradscope-fused-rnn"
    }

    /// Nothing is saved: the derivatives are functions of the outputs.
    fn forward(&self, a: Forward) -> (Vec<f32>, Saved) {
        (forward(self.0, a.d, a.x, a.w, a.state, a.head), Saved::nothing())
    }

    fn backward(&self, a: Backward) -> Option<Grads> {
        Some(backward(self.0, a.d, a.grad, a.out, a.x, a.w, a.state, a.need_dx, a.tap_h))
    }
}
