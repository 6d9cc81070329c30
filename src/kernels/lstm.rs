//! LSTM over a whole sequence, gate blocks i, f, g, o (PyTorch's order):
//! a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh; c_t = f·c_{t-1} + i·g; h_t = o·tanh(c_t).
//!
//! The result is (B·T + B, H): h_t of every (b, t) in batch-first order, then c_{T-1}, the only
//! cell state the model exposes (the first B·T rows are the (B, T, H) outputs without a copy).
//! Backward needs the gate activations and every c_t (saved); tanh(c_t) is recomputed,
//! bit-identically, rather than stored.

use super::cell::{Backward, Forward, FusedCell, Saved};
use super::gemm::View;
use super::layer::{pre_activations, previous_states, set_bias_grads, InputSideGrads, Packed};
use super::math::{sigmoid_in_place, simd_fn, tanh, tanh_in_place};
use super::readout::{OuterGrad, Readout};
use super::step_gemm::{matmul_packed, PackedB};
use super::weight_grad::StagedWeightGrad;
use super::{unfilled, Dims, Grads};

/// Returns the result (B·T + B, H) and, when `save`, what backward needs. With `head`, its
/// readout of every h_t fills the (B, T, O) rows it comes with.
pub fn forward(
    d: Dims,
    x: &[f32],
    w: &[f32],
    state: &[f32],
    save: bool,
    mut head: Option<(&Readout, &mut [f32])>,
) -> (Vec<f32>, Saved) {
    let Dims { b, t, h, i } = d;
    let p = Packed::new(d, 4);
    let g4 = 4 * h;
    let (h0, c0) = state.split_at(b * h);
    // Pre-activations x W_ihᵀ + b_ih + b_hh, turned into the activations in place step by step.
    // Narrow inputs are projected a step at a time (see `NarrowProjection`); then, without a
    // backward pass, one step's rows are all the buffer holds.
    let (mut gates, per_step) = pre_activations(d, p, x, w, true, save); // (B, T, 4H), or (B, 4H)
    let one_step = per_step.is_some() && !save;
    let mut cells = unfilled(if save { b * t * h } else { 0 }); // (B, T, H), for backward
    let mut out = unfilled(b * t * h + b * h); // (B·T + B, H)
    let w_t = PackedB::new(w, p.w_hh().t()); // W_hhᵀ (H, 4H)

    // The step's product runs on contiguous copies: in (B, T, ·) buffers one step's rows are
    // T·row apart, a stride that maps them all to the same cache sets.
    let mut h_prev = h0.to_vec(); // (B, H): h_{t-1}
    let (mut c_prev, mut c_next) = (c0.to_vec(), vec![0f32; b * h]); // (B, H): c_{t-1}, c_t
    let mut rec = vec![0f32; b * g4]; // (B, 4H): W_hh h_{t-1}
    for step in 0..t {
        matmul_packed(&mut rec, View::dense(0, b, g4), false, &h_prev, View::dense(0, b, h), &w_t);
        for k in 0..b {
            let row = k * t + step;
            let g = &mut gates[if one_step { k } else { row } * g4..][..g4];
            if let Some(proj) = &per_step {
                proj.row(g, &x[row * i..][..i]);
            }
            let (c_in, c_out) = (&c_prev[k * h..][..h], &mut c_next[k * h..][..h]);
            let h_out = &mut out[row * h..][..h];
            forward_row(g, &rec[k * g4..][..g4], c_in, c_out, h_out);
            h_prev[k * h..][..h].copy_from_slice(h_out);
            if save {
                cells[row * h..][..h].copy_from_slice(c_out);
            }
        }
        if let Some((readout, y)) = head.as_mut() {
            readout.forward_step(y, &h_prev, step, (b, t));
        }
        std::mem::swap(&mut c_prev, &mut c_next);
    }
    out[b * t * h..].copy_from_slice(&c_prev); // c_{T-1}
    (out, if save { Saved::buffers(vec![gates, cells]) } else { Saved::nothing() })
}

/// BPTT. `grad` gives ∂L/∂h_t from outside the layer and `grad_c` ∂L/∂c_{T-1} (B, H), `out` is
/// the result's h_t (B, T, H); `gates` (B, T, 4H) and `cells` (B, T, H) from [`forward`];
/// `state` (2, B, H) = [h0; c0]. `taps`, when given, receive ∂L/∂h_t and ∂L/∂c_t, each (B, T, H).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    d: Dims,
    (mut grad, grad_c): (OuterGrad, &[f32]),
    out: &[f32],
    (gates, cells): (&[f32], &[f32]),
    x: &[f32],
    w: &[f32],
    state: &[f32],
    need_dx: bool,
    mut taps: Option<(&mut [f32], &mut [f32])>,
) -> Grads {
    let Dims { b, t, h, .. } = d;
    let p = Packed::new(d, 4);
    let g4 = 4 * h;
    let (h0, c0) = state.split_at(b * h);
    let mut dh = vec![0f32; b * h]; // (B, H): into h_t from step t + 1, then the total

    // (B, H): into c_t from c_{t+1} = f_{t+1} c_t + …; at T − 1 from outside, through c_n.
    let mut dc_next = grad_c[..b * h].to_vec();
    let mut dc = vec![0f32; b * h]; // (B, H): total ∂L/∂c_t of this step
    let w_v = PackedB::new(w, p.w_hh()); // W_hh (4H, H)

    // Each step's ∂L/∂a_t rows, contiguous (see `forward`), summed into ∂L/∂W_hh as they come.
    let mut dw_hh = StagedWeightGrad::new(b, g4, h);
    let mut input_side = InputSideGrads::new(d, p, need_dx); // ∂L/∂W_ih, ∂L/∂b, ∂L/∂x
    for step in (0..t).rev() {
        if step + 1 < t {
            let dg_next = dw_hh.last_rows(); // (B, 4H): ∂L/∂a_{t+1}
            matmul_packed(&mut dh, View::dense(0, b, h), false, dg_next, View::dense(0, b, g4), &w_v);
        }
        let (src, prev) = previous_states(d, out, h0, step);
        let dg_rows = dw_hh.next_step(src, prev); // (B, 4H)
        grad.begin_step(step);
        for k in 0..b {
            let r = k * t + step;
            let g_h = grad.row(k, r, &out[r * h..][..h]);
            let c_t = &cells[r * h..][..h];
            let c_prev = if step == 0 { &c0[k * h..][..h] } else { &cells[(r - 1) * h..][..h] };
            let g = &gates[r * g4..][..g4];
            let dg = &mut dg_rows[k * g4..][..g4];
            let dh_row = &mut dh[k * h..][..h];
            let dc_row = &mut dc[k * h..][..h];
            let dcn_row = &mut dc_next[k * h..][..h];
            backward_row(dh_row, dc_row, dcn_row, dg, g_h, c_t, c_prev, g);
            input_side.add(r, dg, &x[r * d.i..][..d.i]);
            if let Some((tap_h, tap_c)) = taps.as_mut() {
                tap_h[r * h..][..h].copy_from_slice(dh_row);
                tap_c[r * h..][..h].copy_from_slice(dc_row);
            }
        }
    }
    let mut dstate = vec![0f32; 2 * b * h]; // (2, B, H) = [∂L/∂h0; ∂L/∂c0]
    let dg0 = dw_hh.last_rows();
    matmul_packed(&mut dstate[..b * h], View::dense(0, b, h), false, dg0, View::dense(0, b, g4), &w_v);
    dstate[b * h..].copy_from_slice(&dc_next);
    let mut dw = vec![0f32; p.gh * p.ld()]; // packed (4H, I + H + 2)
    dw_hh.finish(&mut dw, p.w_hh());
    let (dx, db) = input_side.finish(d, x, w, &mut dw); // ∂L/∂b_ih = ∂L/∂b_hh
    set_bias_grads(&mut dw, p, &db, &db);
    Grads { dx, dw, dstate, dhead: grad.head_grads() }
}

simd_fn! {
    /// One batch row of one step: the gate pre-activations `g` (4H, the input side) plus `rec`
    /// (4H, W_hh h_{t-1}) activated in place, then c_t and h_t.
    fn forward_row(g: &mut [f32], rec: &[f32], c_prev: &[f32], c_out: &mut [f32], h_out: &mut [f32]) {
        let h = h_out.len();
        let (g, rec, c_prev, c_out) = (&mut g[..4 * h], &rec[..4 * h], &c_prev[..h], &mut c_out[..h]);
        g.iter_mut().zip(rec).for_each(|(g, r)| *g += r);
        sigmoid_in_place::<FMA>(&mut g[..2 * h]);
        tanh_in_place::<FMA>(&mut g[2 * h..3 * h]);
        sigmoid_in_place::<FMA>(&mut g[3 * h..]);
        let (gi, gf, gg, go) = (&g[..h], &g[h..2 * h], &g[2 * h..3 * h], &g[3 * h..]);
        for j in 0..h {
            let c = gf[j] * c_prev[j] + gi[j] * gg[j];
            c_out[j] = c;
            h_out[j] = go[j] * tanh::<FMA>(c);
        }
    }
}

simd_fn! {
    /// One batch row of one step of BPTT. `dh` holds the recurrent gradient into h_t and leaves
    /// with the total; `dc` receives the total ∂L/∂c_t; `dc_next` carries the gradient into c_t in
    /// and into c_{t-1} out. `dg` is the row's ∂L/∂a_t (4H) and `g` its activated gates (4H).
    fn backward_row(
        dh: &mut [f32],
        dc: &mut [f32],
        dc_next: &mut [f32],
        dg: &mut [f32],
        g_h: &[f32],
        c_t: &[f32],
        c_prev: &[f32],
        g: &[f32],
    ) {
        let h = dh.len();
        let (dc, dc_next) = (&mut dc[..h], &mut dc_next[..h]);
        let (g_h, c_t, c_prev) = (&g_h[..h], &c_t[..h], &c_prev[..h]);
        let (di, rest) = dg[..4 * h].split_at_mut(h);
        let (df, rest) = rest.split_at_mut(h);
        let (dgg, d_o) = rest.split_at_mut(h);
        let (gi, gf, gg, go) = (&g[..h], &g[h..2 * h], &g[2 * h..3 * h], &g[3 * h..4 * h]);
        for j in 0..h {
            let dhj = dh[j] + g_h[j];
            dh[j] = dhj;
            let tc = tanh::<FMA>(c_t[j]);
            let (i, f, gv, o) = (gi[j], gf[j], gg[j], go[j]);
            let dcj = dc_next[j] + dhj * o * (1.0 - tc * tc);
            dc[j] = dcj;
            di[j] = dcj * gv * i * (1.0 - i);
            df[j] = dcj * c_prev[j] * f * (1.0 - f);
            dgg[j] = dcj * i * (1.0 - gv * gv);
            d_o[j] = dhj * tc * o * (1.0 - o);
            dc_next[j] = dcj * f;
        }
    }
}

pub(super) struct Lstm;

impl FusedCell for Lstm {
    fn op_name(&self) -> &'static str {
        "gradscope-fused-lstm"
    }

    fn forward(&self, a: Forward) -> (Vec<f32>, Saved) {
        forward(a.d, a.x, a.w, a.state, a.save, a.head)
    }

    fn backward(&self, a: Backward) -> Option<Grads> {
        let [gates, cells] = a.saved.get()?;
        let taps = a.tap_h.zip(a.tap_c);
        Some(backward(a.d, (a.grad, a.grad_c), a.out, (gates, cells), a.x, a.w, a.state, a.need_dx, taps))
    }
}
