//! GRU over a whole sequence, gate blocks r, z, n (PyTorch's order), b_hn inside the reset product:
//! hw = W_hh h_{t-1} + b_hh; xw = W_ih x_t + b_ih; r = σ(xw_r + hw_r); z = σ(xw_z + hw_z);
//! n = tanh(xw_n + r·hw_n); h_t = n + z·(h_{t-1} − n).
//!
//! Saved for backward: r, z, n (B, T, 3H, written over the input projection) and hw_n (B, T, H).

use super::cell::{Backward, Forward, FusedCell, Saved};
use super::gemm::View;
use super::layer::{add_row, pre_activations, previous_states, set_bias_grads, InputSideGrads, Packed};
use super::math::{sigmoid, simd_fn, tanh};
use super::readout::{OuterGrad, Readout};
use super::step_gemm::{matmul_packed, PackedB};
use super::weight_grad::StagedWeightGrad;
use super::{unfilled, Dims, Grads};

/// Returns the outputs (B, T, H) and, when `save`, what backward needs. With `head`, its
/// readout of every h_t fills the (B, T, O) rows it comes with.
pub fn forward(
    d: Dims,
    x: &[f32],
    w: &[f32],
    h0: &[f32],
    save: bool,
    mut head: Option<(&Readout, &mut [f32])>,
) -> (Vec<f32>, Saved) {
    let Dims { b, t, h, .. } = d;
    let p = Packed::new(d, 3);
    let g3 = 3 * h;
    // xw = x W_ihᵀ + b_ih, then [r | z | n]. Narrow inputs are projected a step at a time (see
    // `NarrowProjection`); then, without a backward pass, one step's rows are all that is kept.
    let (mut gates, per_step) = pre_activations(d, p, x, w, false, save); // (B, T, 3H), or (B, 3H)
    let one_step = per_step.is_some() && !save;
    let mut hn = unfilled(if save { b * t * h } else { b * h }); // (B, T, H), or (B, H)
    let mut out = unfilled(b * t * h); // (B, T, H)
    let b_hh: Vec<f32> = (0..g3).map(|r| w[p.b_ih(r) + 1]).collect(); // (3H,)
    let w_t = PackedB::new(w, p.w_hh().t()); // W_hhᵀ (H, 3H)
    let mut hw = vec![0f32; b * g3]; // (B, 3H)

    // h_{t-1} as a contiguous copy: one step's rows of (B, T, H) are T·H apart, a stride that maps
    // them all to the same cache sets.
    let mut h_prev = h0.to_vec(); // (B, H)
    for step in 0..t {
        for k in 0..b {
            hw[k * g3..][..g3].copy_from_slice(&b_hh);
        }
        matmul_packed(&mut hw, View::dense(0, b, g3), true, &h_prev, View::dense(0, b, h), &w_t);
        for k in 0..b {
            let row = k * t + step;
            let hwk = &hw[k * g3..][..g3];
            let xw = &mut gates[if one_step { k } else { row } * g3..][..g3];
            if let Some(proj) = &per_step {
                proj.row(xw, &x[row * d.i..][..d.i]);
            }
            let hn_out = &mut hn[if save { row } else { k } * h..][..h];
            let h_out = &mut out[row * h..][..h];
            let prev = &mut h_prev[k * h..][..h];
            forward_row(xw, hn_out, h_out, hwk, prev);
            prev.copy_from_slice(h_out);
        }
        if let Some((readout, y)) = head.as_mut() {
            readout.forward_step(y, &h_prev, step, (b, t));
        }
    }
    (out, if save { Saved::buffers(vec![gates, hn]) } else { Saved::nothing() })
}

simd_fn! {
    /// One batch row of one step: the gates r, z, n in place of xw (3H), hw_n and h_t; `hw` is
    /// the row's W_hh h_{t-1} + b_hh (3H).
    fn forward_row(xw: &mut [f32], hn_out: &mut [f32], h_out: &mut [f32], hw: &[f32], h_prev: &[f32]) {
        let h = h_out.len();
        let (xr, rest) = xw[..3 * h].split_at_mut(h);
        let (xz, xn) = rest.split_at_mut(h);
        let (hn_out, h_prev) = (&mut hn_out[..h], &h_prev[..h]);
        let (hr, hz, hwn) = (&hw[..h], &hw[h..2 * h], &hw[2 * h..3 * h]);
        for j in 0..h {
            let r = sigmoid::<FMA>(xr[j] + hr[j]);
            let z = sigmoid::<FMA>(xz[j] + hz[j]);
            let n = tanh::<FMA>(xn[j] + r * hwn[j]);
            h_out[j] = n + z * (h_prev[j] - n);
            xr[j] = r;
            xz[j] = z;
            xn[j] = n;
            hn_out[j] = hwn[j];
        }
    }
}

/// BPTT. `grad` gives ∂L/∂h_t from outside the layer, `out` is (B, T, H); `gates` (B, T, 3H)
/// and `hn` (B, T, H) from [`forward`].
/// `tap_h`, when given, receives ∂L/∂h_t (B, T, H).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    d: Dims,
    mut grad: OuterGrad,
    out: &[f32],
    (gates, hn): (&[f32], &[f32]),
    x: &[f32],
    w: &[f32],
    h0: &[f32],
    need_dx: bool,
    mut tap_h: Option<&mut [f32]>,
) -> Grads {
    let Dims { b, t, h, .. } = d;
    let p = Packed::new(d, 3);
    let g3 = 3 * h;

    let mut dh = vec![0f32; b * h]; // (B, H): into h_t through W_hh at step t + 1, then the total
    let mut direct = vec![0f32; b * h]; // (B, H): into h_t through z_{t+1}·h_t
    let w_v = PackedB::new(w, p.w_hh()); // W_hh (3H, H)

    // Each step's ∂L/∂hw_t = [∂L/∂hw_r, ∂L/∂hw_z, ∂L/∂hw_n] rows (B, 3H), contiguous (see
    // `forward`), summed into ∂L/∂W_hh as they come (see `lstm.rs`). The r and z blocks equal
    // dxw's; ∂L/∂hw_n differs from ∂L/∂xw_n by the factor r.
    let mut dw_hh = StagedWeightGrad::new(b, g3, h);

    // ∂L/∂W_ih, ∂L/∂b_ih (3H) and ∂L/∂x from each row of ∂L/∂xw; the n block of ∂L/∂b_hh (H)
    // here: b_hh's r and z blocks equal b_ih's.
    let mut input_side = InputSideGrads::new(d, p, need_dx);
    let mut db_hn = vec![0f32; h];
    let mut dxw_row = vec![0f32; g3]; // (3H,): one row of ∂L/∂xw
    for step in (0..t).rev() {
        if step + 1 < t {
            let dhw_next = dw_hh.last_rows(); // (B, 3H): ∂L/∂hw_{t+1}
            matmul_packed(&mut dh, View::dense(0, b, h), false, dhw_next, View::dense(0, b, g3), &w_v);
        }
        let (src, prev) = previous_states(d, out, h0, step);
        let dhw_rows = dw_hh.next_step(src, prev); // (B, 3H)
        grad.begin_step(step);
        for k in 0..b {
            let row = k * t + step;
            let g = grad.row(k, row, &out[row * h..][..h]);
            let h_prev = if step == 0 { &h0[k * h..][..h] } else { &out[(row - 1) * h..][..h] };
            let s = &gates[row * g3..][..g3];
            let shn = &hn[row * h..][..h];
            let (drz, dhn_out) = dhw_rows[k * g3..][..g3].split_at_mut(2 * h);
            let dh_row = &mut dh[k * h..][..h];
            let direct_row = &mut direct[k * h..][..h];
            backward_row(dh_row, direct_row, &mut dxw_row, dhn_out, g, h_prev, s, shn);
            drz.copy_from_slice(&dxw_row[..2 * h]);
            input_side.add(row, &dxw_row, &x[row * d.i..][..d.i]);
            add_row(&mut db_hn, dhn_out);
            if let Some(tap) = tap_h.as_deref_mut() {
                tap[row * h..][..h].copy_from_slice(dh_row);
            }
        }
    }
    let mut dh0 = vec![0f32; b * h]; // (B, H)
    matmul_packed(&mut dh0, View::dense(0, b, h), false, dw_hh.last_rows(), View::dense(0, b, g3), &w_v);
    dh0.iter_mut().zip(&direct).for_each(|(d, z)| *d += z);

    let mut dw = vec![0f32; p.gh * p.ld()]; // packed (3H, I + H + 2)
    dw_hh.finish(&mut dw, p.w_hh());
    let (dx, db_ih) = input_side.finish(d, x, w, &mut dw);
    let db_hh: Vec<f32> = db_ih[..2 * h].iter().chain(&db_hn).copied().collect(); // (3H,)
    set_bias_grads(&mut dw, p, &db_ih, &db_hh);
    Grads { dx, dw, dstate: dh0, dhead: grad.head_grads() }
}

simd_fn! {
    /// One batch row of one step of BPTT. `dh` holds the recurrent gradient into h_t and leaves
    /// with the total; `direct` carries z_{t+1}·∂L/∂h_{t+1} in and z_t·∂L/∂h_t out; `dxw` (3H)
    /// receives ∂L/∂xw and `dhn` ∂L/∂hw_n; `s` (3H) holds the saved r, z, n and `shn` hw_n.
    fn backward_row(
        dh: &mut [f32],
        direct: &mut [f32],
        dxw: &mut [f32],
        dhn: &mut [f32],
        g: &[f32],
        h_prev: &[f32],
        s: &[f32],
        shn: &[f32],
    ) {
        let h = dh.len();
        let (direct, dhn) = (&mut direct[..h], &mut dhn[..h]);
        let (dr, rest) = dxw[..3 * h].split_at_mut(h);
        let (dz, dn) = rest.split_at_mut(h);
        let (g, h_prev, shn) = (&g[..h], &h_prev[..h], &shn[..h]);
        let (sr, sz, sn) = (&s[..h], &s[h..2 * h], &s[2 * h..3 * h]);
        for j in 0..h {
            let dt = dh[j] + direct[j] + g[j];
            dh[j] = dt;
            let (r, z, n) = (sr[j], sz[j], sn[j]);
            let dn_pre = dt * (1.0 - z) * (1.0 - n * n);
            dn[j] = dn_pre;
            dhn[j] = dn_pre * r;
            dr[j] = dn_pre * shn[j] * r * (1.0 - r);
            dz[j] = dt * (h_prev[j] - n) * z * (1.0 - z);
            direct[j] = dt * z;
        }
    }
}

pub(super) struct Gru;

impl FusedCell for Gru {
    fn op_name(&self) -> &'static str {
        "gradscope-fused-gru"
    }

    fn forward(&self, a: Forward) -> (Vec<f32>, Saved) {
        forward(a.d, a.x, a.w, a.state, a.save, a.head)
    }

    fn backward(&self, a: Backward) -> Option<Grads> {
        let [gates, hn] = a.saved.get()?;
        Some(backward(a.d, a.grad, a.out, (gates, hn), a.x, a.w, a.state, a.need_dx, a.tap_h))
    }
}
