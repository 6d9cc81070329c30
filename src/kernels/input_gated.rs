//! The time loops of cells whose gates read only x_t (minGRU, minLSTM): the pre-activations of
//! every step come from the input projection alone, and h_t = a_t ⊙ h_{t-1} + b_t is elementwise
//! in h. Each cell supplies one row of one step, forward and backward ([`InputGatedRows`]); the
//! loops here run the projection, the fused readout, the taps and the input-side gradients.
//!
//! Sequential in time and parallel over the batch (shards) and channels (the row's lanes): each
//! step reads its rows once and writes them once. A parallel scan over time would read and write
//! the whole (B, T, H) state several times for the same result, and a CPU's memory bandwidth,
//! not its arithmetic, is what bounds a recurrence this cheap.

use super::cell::{Backward, Forward, FusedCell, Saved};
use super::layer::{add_row, pre_activations, set_input_bias_grad, InputSideGrads, Packed};
use super::math::sigmoid;
use super::{unfilled, Dims, Grads};

/// One row of one step of an input-gated cell.
pub(super) trait InputGatedRows: Send + Sync {
    /// The custom op's name in candle's graph.
    const OP_NAME: &'static str;

    /// Gate blocks in the projection's rows (G).
    const GATES: usize;

    /// `pre` (G·H) holds the row's pre-activations and leaves with what [`Self::backward_row`]
    /// reads; `h_out` (H) ← h_t from `h_prev` (H).
    fn forward_row(pre: &mut [f32], h_prev: &[f32], h_out: &mut [f32]);

    /// `dh` (H) holds the total ∂L/∂h_t and leaves with the part of ∂L/∂h_{t-1} that flows
    /// through this step; `dpre` (G·H) ← ∂L/∂pre; `saved` (G·H) is what `forward_row` left.
    fn backward_row(dh: &mut [f32], dpre: &mut [f32], saved: &[f32], h_prev: &[f32]);
}

/// The candidate state g(x) = x + 1/2 for x ≥ 0, σ(x) below (positive, as the paper's log-space
/// form needs), and its derivative.
#[inline(always)]
pub(super) fn candidate<const FMA: bool>(x: f32) -> (f32, f32) {
    if x >= 0.0 {
        (x + 0.5, 1.0)
    } else {
        let s = sigmoid::<FMA>(x);
        (s, s * (1.0 - s))
    }
}

/// The whole sequence forward: returns h_t (B, T, H) and, when `save`, the rows `forward_row`
/// left (B, T, G·H).
fn forward<C: InputGatedRows>(a: Forward) -> (Vec<f32>, Saved) {
    let Forward { d, x, w, state: h0, save, mut head } = a;
    let Dims { b, t, h, i } = d;
    let p = Packed::input_only(d, C::GATES);
    let gh = p.gh;
    // Narrow inputs are projected a step at a time; then, without a backward pass, one step's
    // rows are all the buffer holds.
    let (mut pre, per_step) = pre_activations(d, p, x, w, false, save); // (B, T, G·H), or (B, G·H)
    let one_step = per_step.is_some() && !save;
    let mut out = unfilled(b * t * h); // (B, T, H)
    let mut h_prev = h0[..b * h].to_vec(); // (B, H): the readout reads a step's rows together
    for step in 0..t {
        for k in 0..b {
            let row = k * t + step;
            let pr = &mut pre[if one_step { k } else { row } * gh..][..gh];
            if let Some(proj) = &per_step {
                proj.row(pr, &x[row * i..][..i]);
            }
            let h_out = &mut out[row * h..][..h];
            C::forward_row(pr, &h_prev[k * h..][..h], h_out);
            h_prev[k * h..][..h].copy_from_slice(h_out);
        }
        if let Some((readout, y)) = head.as_mut() {
            readout.forward_step(y, &h_prev, step, (b, t));
        }
    }
    (out, if save { Saved::buffers(vec![pre]) } else { Saved::nothing() })
}

/// BPTT over the whole sequence; None when the forward kept nothing.
fn backward<C: InputGatedRows>(a: Backward) -> Option<Grads> {
    let [saved] = a.saved.get()?;
    let Backward { d, mut grad, out, x, w, state: h0, need_dx, mut tap_h, .. } = a;
    let Dims { b, t, h, i } = d;
    let p = Packed::input_only(d, C::GATES);
    let gh = p.gh;
    let mut dh = vec![0f32; b * h]; // (B, H): into h_t from step t + 1, then the total
    let mut dpre = vec![0f32; gh]; // (G·H,): one row of ∂L/∂pre
    let mut input_side = InputSideGrads::new(d, p, need_dx); // ∂L/∂W_ih, ∂L/∂b_ih, ∂L/∂x
    for step in (0..t).rev() {
        grad.begin_step(step);
        for k in 0..b {
            let row = k * t + step;
            let dh_row = &mut dh[k * h..][..h];
            add_row(dh_row, grad.row(k, row, &out[row * h..][..h]));
            if let Some(tap) = tap_h.as_deref_mut() {
                tap[row * h..][..h].copy_from_slice(dh_row);
            }
            let h_prev = if step == 0 { &h0[k * h..][..h] } else { &out[(row - 1) * h..][..h] };
            C::backward_row(dh_row, &mut dpre, &saved[row * gh..][..gh], h_prev);
            input_side.add(row, &dpre, &x[row * i..][..i]);
        }
    }
    let mut dw = vec![0f32; gh * p.ld()]; // packed (G·H, I + 1)
    let (dx, db) = input_side.finish(d, x, w, &mut dw);
    set_input_bias_grad(&mut dw, p, &db);
    Some(Grads { dx, dw, dstate: dh, dhead: grad.head_grads() })
}

impl<C: InputGatedRows> FusedCell for C {
    fn op_name(&self) -> &'static str {
        C::OP_NAME
    }

    fn forward(&self, a: Forward) -> (Vec<f32>, Saved) {
        forward::<C>(a)
    }

    fn backward(&self, a: Backward) -> Option<Grads> {
        backward::<C>(a)
    }
}
