//! GRU over a whole sequence, gate blocks r, z, n (PyTorch's order), b_hn inside the reset product:
//! hw = W_hh h_{t-1} + b_hh; xw = W_ih x_t + b_ih; r = σ(xw_r + hw_r); z = σ(xw_z + hw_z);
//! n = tanh(xw_n + r·hw_n); h_t = n + z·(h_{t-1} − n).
//!
//! Saved for backward: r, z, n (B, T, 3H, written over the input projection) and hw_n (B, T, H).

use super::gemm::{matmul, weight_grad, View, STEP};
use super::layer::{column_sums, input_grads, project_inputs, set_bias_grads, Packed};
use super::math::{sigmoid, tanh};
use super::{Dims, Grads, Saved};

/// Returns the outputs (B, T, H) and, when `save`, what backward needs.
pub fn forward(d: Dims, x: &[f32], w: &[f32], h0: &[f32], save: bool) -> (Vec<f32>, Saved) {
    let Dims { b, t, h, .. } = d;
    let p = Packed::new(d, 3);
    let g3 = 3 * h;
    let mut gates = project_inputs(d, p, x, w, false); // (B, T, 3H): xw, then [r | z | n]
    let mut hn = vec![0f32; b * t * h]; // (B, T, H)
    let mut out = vec![0f32; b * t * h]; // (B, T, H)
    let b_hh: Vec<f32> = (0..g3).map(|r| w[p.b_ih(r) + 1]).collect(); // (3H,)
    let w_t = p.w_hh().t(); // W_hhᵀ (H, 3H)
    let mut hw = vec![0f32; b * g3]; // (B, 3H)
    for step in 0..t {
        for k in 0..b {
            hw[k * g3..][..g3].copy_from_slice(&b_hh);
        }
        let (src, hv) = if step == 0 {
            (h0, View::dense(0, b, h))
        } else {
            (&out[..], View::rows((step - 1) * h, b, h, t * h))
        };
        matmul(&mut hw, View::dense(0, b, g3), true, src, hv, w, w_t, STEP);
        for k in 0..b {
            let row = k * t + step;
            let hwk = &hw[k * g3..][..g3];
            let (hr, hz, hwn) = (&hwk[..h], &hwk[h..][..h], &hwk[2 * h..][..h]);
            let (xr, rest) = gates[row * g3..][..g3].split_at_mut(h);
            let (xz, xn) = rest.split_at_mut(h);
            let hn_out = &mut hn[row * h..][..h];
            let (before, cur) = out.split_at_mut(row * h);
            let h_prev = if step == 0 { &h0[k * h..][..h] } else { &before[(row - 1) * h..][..h] };
            forward_row([xr, xz, xn], hn_out, &mut cur[..h], [hr, hz, hwn], h_prev);
        }
    }
    (out, if save { Saved::Gru { gates, hn } } else { Saved::Nothing })
}

/// One batch row of one step: the gates in place of xw, hw_n and h_t.
///
/// A separate, non-inlined function: its slice arguments are then known not to alias, so LLVM
/// vectorises the loop. Written inline over reborrowed slices it stayed scalar (perf showed
/// `addss`/`mulss` in the exp polynomial) and the GRU forward took ~35% longer.
#[inline(never)]
fn forward_row(
    [xr, xz, xn]: [&mut [f32]; 3],
    hn_out: &mut [f32],
    h_out: &mut [f32],
    [hr, hz, hwn]: [&[f32]; 3],
    h_prev: &[f32],
) {
    let h = h_out.len();
    let (xr, xz, xn, hn_out, hr, hz, hwn, h_prev) = (
        &mut xr[..h],
        &mut xz[..h],
        &mut xn[..h],
        &mut hn_out[..h],
        &hr[..h],
        &hz[..h],
        &hwn[..h],
        &h_prev[..h],
    );
    for j in 0..h {
        let r = sigmoid(xr[j] + hr[j]);
        let z = sigmoid(xz[j] + hz[j]);
        let n = tanh(xn[j] + r * hwn[j]);
        h_out[j] = n + z * (h_prev[j] - n);
        xr[j] = r;
        xz[j] = z;
        xn[j] = n;
        hn_out[j] = hwn[j];
    }
}

/// BPTT. `grad` and `out` are (B, T, H); `gates` (B, T, 3H) and `hn` (B, T, H) from [`forward`].
/// `tap_h`, when given, receives ∂L/∂h_t (B, T, H).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    d: Dims,
    grad: &[f32],
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
    let mut dxw = vec![0f32; b * t * g3]; // (B, T, 3H): ∂L/∂xw
                                          // ∂L/∂hw_n differs from ∂L/∂xw_n by the factor r; the r and z blocks of ∂L/∂hw equal dxw's.
    let mut dhn = vec![0f32; b * t * h]; // (B, T, H)
    let mut dh = vec![0f32; b * h]; // (B, H): into h_t through W_hh at step t + 1, then the total
    let mut direct = vec![0f32; b * h]; // (B, H): into h_t through z_{t+1}·h_t
    let (w_rz, w_n) = (p.w_hh_rows(0, 2 * h), p.w_hh_rows(2 * h, h));
    let recurrent = |dh: &mut [f32], dxw: &[f32], dhn: &[f32], step: usize| {
        let dv = View::dense(0, b, h);
        matmul(dh, dv, false, dxw, View::rows(step * g3, b, 2 * h, t * g3), w, w_rz, STEP);
        matmul(dh, dv, true, dhn, View::rows(step * h, b, h, t * h), w, w_n, STEP);
    };
    for step in (0..t).rev() {
        if step + 1 < t {
            recurrent(&mut dh, &dxw, &dhn, step + 1);
        }
        for k in 0..b {
            let row = k * t + step;
            let g = &grad[row * h..][..h];
            let h_prev = if step == 0 { &h0[k * h..][..h] } else { &out[(row - 1) * h..][..h] };
            let s = &gates[row * g3..][..g3];
            let (sr, sz, sn) = (&s[..h], &s[h..][..h], &s[2 * h..][..h]);
            let shn = &hn[row * h..][..h];
            let (dr_out, rest) = dxw[row * g3..][..g3].split_at_mut(h);
            let (dz_out, dn_out) = rest.split_at_mut(h);
            let dhn_out = &mut dhn[row * h..][..h];
            let dh_row = &mut dh[k * h..][..h];
            let direct_row = &mut direct[k * h..][..h];
            let saved_row = [sr, sz, sn, shn];
            backward_row(dh_row, direct_row, [dr_out, dz_out, dn_out, dhn_out], g, h_prev, saved_row);
            if let Some(tap) = tap_h.as_deref_mut() {
                tap[row * h..][..h].copy_from_slice(dh_row);
            }
        }
    }
    let mut dh0 = vec![0f32; b * h]; // (B, H)
    recurrent(&mut dh0, &dxw, &dhn, 0);
    dh0.iter_mut().zip(&direct).for_each(|(d, z)| *d += z);

    let mut dw = vec![0f32; p.gh * p.ld()]; // packed (3H, I + H + 2)
    weight_grad(&mut dw, w_rz, &dxw, 0, g3, out, 0, h, h0, (b, t));
    weight_grad(&mut dw, w_n, &dhn, 0, h, out, 0, h, h0, (b, t));
    let dx = input_grads(d, p, x, w, &dxw, &mut dw, need_dx);
    let db_ih = column_sums(&dxw, b * t, g3, 0, g3);
    let mut db_hh = column_sums(&dxw, b * t, g3, 0, 2 * h);
    db_hh.extend(column_sums(&dhn, b * t, h, 0, h));
    set_bias_grads(&mut dw, p, &db_ih, &db_hh);
    Grads { dx, dw, dstate: dh0 }
}

/// One batch row of one step of BPTT (a function of its own for the reason given at
/// [`forward_row`]). `dh` holds the recurrent gradient into h_t and leaves with the total;
/// `direct` carries z_{t+1}·∂L/∂h_{t+1} in and z_t·∂L/∂h_t out.
#[inline(never)]
fn backward_row(
    dh: &mut [f32],
    direct: &mut [f32],
    [dr, dz, dn, dhn]: [&mut [f32]; 4],
    g: &[f32],
    h_prev: &[f32],
    [sr, sz, sn, shn]: [&[f32]; 4],
) {
    let h = dh.len();
    let (direct, dr, dz, dn, dhn) =
        (&mut direct[..h], &mut dr[..h], &mut dz[..h], &mut dn[..h], &mut dhn[..h]);
    let (g, h_prev, sr, sz, sn, shn) = (&g[..h], &h_prev[..h], &sr[..h], &sz[..h], &sn[..h], &shn[..h]);
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
