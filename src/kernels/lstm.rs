//! LSTM over a whole sequence, gate blocks i, f, g, o (PyTorch's order):
//! a_t = xw_t + W_hh h_{t-1}; c_t = f·c_{t-1} + i·g; h_t = o·tanh(c_t).
//!
//! The result is (2, B, T, H) = [h_t; c_t], so c_n and any gradient reaching c from outside are
//! exact, and both halves are contiguous (B, T, H) tensors for the caller. Backward needs the gate activations (saved, (B, T, 4H)), c_t and h_{t-1} (both in the
//! result); tanh(c_t) is recomputed, bit-identically, rather than stored.

use super::gemm::{matmul, weight_grad, View, STEP};
use super::math::{sigmoid_in_place, tanh, tanh_in_place};
use super::{Dims, Grads};

/// Returns the result (2, B, T, H) and, when `save`, the gate activations (B, T, 4H).
pub fn forward(dims: Dims, xw: &[f32], w: &[f32], state: &[f32], save: bool) -> (Vec<f32>, Option<Vec<f32>>) {
    let Dims { b, t, h } = dims;
    let (g4, h2) = (4 * h, 2 * h);
    let mut out = vec![0f32; 2 * b * t * h]; // (2, B, T, H)
    let (hs, cs) = out.split_at_mut(b * t * h);
    // Inference keeps one step of gates, (B, 4H), instead of all of them.
    let mut gates = vec![0f32; if save { b * t * g4 } else { b * g4 }];
    let g_off = |k: usize, step: usize| if save { (k * t + step) * g4 } else { k * g4 };
    let g_rs = if save { t * g4 } else { g4 };
    let (h0, c0) = state.split_at(b * h);
    let w_t = View::dense(0, g4, h).t(); // W_hhᵀ (H, 4H)
    for step in 0..t {
        for k in 0..b {
            gates[g_off(k, step)..][..g4].copy_from_slice(&xw[(k * t + step) * g4..][..g4]);
        }
        let (src, hv) = if step == 0 {
            (h0, View::dense(0, b, h))
        } else {
            (&*hs, View::rows((step - 1) * h, b, h, t * h))
        };
        matmul(&mut gates, View::rows(g_off(0, step), b, g4, g_rs), true, src, hv, w, w_t, STEP);
        for k in 0..b {
            let g = &mut gates[g_off(k, step)..][..g4];
            sigmoid_in_place(&mut g[..h2]);
            tanh_in_place(&mut g[h2..3 * h]);
            sigmoid_in_place(&mut g[3 * h..]);
            let (gi, gf, gg, go) = (&g[..h], &g[h..h2], &g[h2..3 * h], &g[3 * h..]);
            let row = (k * t + step) * h;
            let (c_before, c_cur) = cs.split_at_mut(row);
            let c_prev = if step == 0 { &c0[k * h..][..h] } else { &c_before[row - h..] };
            let c_out = &mut c_cur[..h];
            let h_out = &mut hs[row..][..h];
            for j in 0..h {
                let c = gf[j] * c_prev[j] + gi[j] * gg[j];
                c_out[j] = c;
                h_out[j] = go[j] * tanh(c);
            }
        }
    }
    (out, save.then_some(gates))
}

/// BPTT. `grad` and `out` are (2, B, T, H) = [h; c]; `gates` (B, T, 4H) from [`forward`]; `state`
/// (2, B, H) = [h0; c0]. `taps`, when given, receive ∂L/∂h_t and ∂L/∂c_t, each (B, T, H).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dims: Dims,
    grad: &[f32],
    out: &[f32],
    gates: &[f32],
    w: &[f32],
    state: &[f32],
    mut taps: Option<(&mut [f32], &mut [f32])>,
) -> Grads {
    let Dims { b, t, h } = dims;
    let (g4, h2) = (4 * h, 2 * h);
    let (h0, c0) = state.split_at(b * h);
    let bth = b * t * h;
    let mut dxw = vec![0f32; b * t * g4]; // (B, T, 4H): ∂L/∂a_t = ∂L/∂xw
    let mut dh = vec![0f32; b * h]; // (B, H): into h_t from step t + 1, then the total
    let mut dc_next = vec![0f32; b * h]; // (B, H): into c_t from c_{t+1} = f_{t+1} c_t + …
    let mut dc = vec![0f32; b * h]; // (B, H): total ∂L/∂c_t of this step
    let w_v = View::dense(0, g4, h);
    for step in (0..t).rev() {
        if step + 1 < t {
            let next = View::rows((step + 1) * g4, b, g4, t * g4);
            matmul(&mut dh, View::dense(0, b, h), false, &dxw, next, w, w_v, STEP);
        }
        for k in 0..b {
            let r = k * t + step;
            let (g_h, g_c) = (&grad[r * h..][..h], &grad[bth + r * h..][..h]);
            let c_t = &out[bth + r * h..][..h];
            let c_prev = if step == 0 { &c0[k * h..][..h] } else { &out[bth + (r - 1) * h..][..h] };
            let g = &gates[r * g4..][..g4];
            let (gi, gf, gg, go) = (&g[..h], &g[h..h2], &g[h2..3 * h], &g[3 * h..]);
            let (di, rest) = dxw[r * g4..][..g4].split_at_mut(h);
            let (df, rest) = rest.split_at_mut(h);
            let (dg, d_o) = rest.split_at_mut(h);
            let dh_row = &mut dh[k * h..][..h];
            let dc_row = &mut dc[k * h..][..h];
            let dcn_row = &mut dc_next[k * h..][..h];
            for j in 0..h {
                let dhj = dh_row[j] + g_h[j];
                dh_row[j] = dhj;
                let tc = tanh(c_t[j]);
                let (i, f, gv, o) = (gi[j], gf[j], gg[j], go[j]);
                let dcj = g_c[j] + dcn_row[j] + dhj * o * (1.0 - tc * tc);
                dc_row[j] = dcj;
                di[j] = dcj * gv * i * (1.0 - i);
                df[j] = dcj * c_prev[j] * f * (1.0 - f);
                dg[j] = dcj * i * (1.0 - gv * gv);
                d_o[j] = dhj * tc * o * (1.0 - o);
                dcn_row[j] = dcj * f;
            }
            if let Some((tap_h, tap_c)) = taps.as_mut() {
                tap_h[r * h..][..h].copy_from_slice(dh_row);
                tap_c[r * h..][..h].copy_from_slice(dc_row);
            }
        }
    }
    let mut dstate = vec![0f32; 2 * b * h]; // (2, B, H) = [∂L/∂h0; ∂L/∂c0]
    let first = View::rows(0, b, g4, t * g4);
    matmul(&mut dstate[..b * h], View::dense(0, b, h), false, &dxw, first, w, w_v, STEP);
    dstate[b * h..].copy_from_slice(&dc_next);
    let mut dw = vec![0f32; g4 * h]; // (4H, H)
    weight_grad(&mut dw, View::dense(0, g4, h), &dxw, 0, g4, out, 0, h, h0, (b, t));
    Grads { dxw, dw, dstate }
}
