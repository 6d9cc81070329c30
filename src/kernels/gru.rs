//! GRU over a whole sequence, gate blocks r, z, n (PyTorch's order), b_hn inside the reset product:
//! hw = W_hh h_{t-1} + b_hh; r = σ(xw_r + hw_r); z = σ(xw_z + hw_z); n = tanh(xw_n + r·hw_n);
//! h_t = n + z·(h_{t-1} − n).
//!
//! The weight argument is W̃ = [W_hh | b_hh] (3H, H+1), so b_hh gets its gradient from the op
//! (its last column) while xw carries only b_ih. Saved for backward: r, z, n and hw_n, (B, T, 4H).

use super::gemm::{matmul, weight_grad, View, STEP};
use super::math::{sigmoid, tanh};
use super::{Dims, Grads};

/// Returns the outputs (B, T, H) and, when `save`, [r | z | n | hw_n] per step (B, T, 4H).
pub fn forward(dims: Dims, xw: &[f32], w: &[f32], h0: &[f32], save: bool) -> (Vec<f32>, Option<Vec<f32>>) {
    let Dims { b, t, h } = dims;
    let (g3, g4, ld) = (3 * h, 4 * h, h + 1);
    let mut out = vec![0f32; b * t * h]; // (B, T, H)
    let mut saved = vec![0f32; if save { b * t * g4 } else { b * g4 }];
    let s_off = |k: usize, step: usize| if save { (k * t + step) * g4 } else { k * g4 };
    let bias: Vec<f32> = (0..g3).map(|i| w[i * ld + h]).collect(); // b_hh (3H,)
    let w_t = View { offset: 0, rows: g3, cols: h, rs: ld, cs: 1 }.t(); // W_hhᵀ (H, 3H)
    let mut hw = vec![0f32; b * g3]; // (B, 3H)
    for step in 0..t {
        for k in 0..b {
            hw[k * g3..][..g3].copy_from_slice(&bias);
        }
        let (src, hv) = if step == 0 {
            (h0, View::dense(0, b, h))
        } else {
            (&out[..], View::rows((step - 1) * h, b, h, t * h))
        };
        matmul(&mut hw, View::dense(0, b, g3), true, src, hv, w, w_t, STEP);
        for k in 0..b {
            let r_row = k * t + step;
            let x = &xw[r_row * g3..][..g3];
            let hwk = &hw[k * g3..][..g3];
            let s = &mut saved[s_off(k, step)..][..g4];
            let (sr, rest) = s.split_at_mut(h);
            let (sz, rest) = rest.split_at_mut(h);
            let (sn, shn) = rest.split_at_mut(h);
            let (before, cur) = out.split_at_mut(r_row * h);
            let h_prev = if step == 0 { &h0[k * h..][..h] } else { &before[(r_row - 1) * h..] };
            let h_out = &mut cur[..h];
            for j in 0..h {
                let r = sigmoid(x[j] + hwk[j]);
                let z = sigmoid(x[h + j] + hwk[h + j]);
                let hn = hwk[2 * h + j];
                let n = tanh(x[2 * h + j] + r * hn);
                h_out[j] = n + z * (h_prev[j] - n);
                sr[j] = r;
                sz[j] = z;
                sn[j] = n;
                shn[j] = hn;
            }
        }
    }
    (out, save.then_some(saved))
}

/// BPTT. `grad` and `out` are (B, T, H), `saved` (B, T, 4H) from [`forward`], `w` = W̃ (3H, H+1).
/// `tap_h`, when given, receives ∂L/∂h_t (B, T, H).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dims: Dims,
    grad: &[f32],
    out: &[f32],
    saved: &[f32],
    w: &[f32],
    h0: &[f32],
    mut tap_h: Option<&mut [f32]>,
) -> Grads {
    let Dims { b, t, h } = dims;
    let (g3, g4, ld) = (3 * h, 4 * h, h + 1);
    let mut dxw = vec![0f32; b * t * g3]; // (B, T, 3H): ∂L/∂xw
                                          // ∂L/∂hw_n differs from ∂L/∂xw_n by the factor r; the r and z blocks of ∂L/∂hw equal dxw's.
    let mut dhn = vec![0f32; b * t * h]; // (B, T, H)
    let mut dh = vec![0f32; b * h]; // (B, H): into h_t through W_hh at step t + 1, then the total
    let mut direct = vec![0f32; b * h]; // (B, H): into h_t through z_{t+1}·h_t
    let w_rz = View { offset: 0, rows: 2 * h, cols: h, rs: ld, cs: 1 }; // W_hh[0:2H]
    let w_n = View { offset: 2 * h * ld, rows: h, cols: h, rs: ld, cs: 1 }; // W_hh[2H:3H]
    let recurrent = |dh: &mut [f32], dxw: &[f32], dhn: &[f32], step: usize| {
        let d = View::dense(0, b, h);
        matmul(dh, d, false, dxw, View::rows(step * g3, b, 2 * h, t * g3), w, w_rz, STEP);
        matmul(dh, d, true, dhn, View::rows(step * h, b, h, t * h), w, w_n, STEP);
    };
    for step in (0..t).rev() {
        if step + 1 < t {
            recurrent(&mut dh, &dxw, &dhn, step + 1);
        }
        for k in 0..b {
            let r_row = k * t + step;
            let g = &grad[r_row * h..][..h];
            let h_prev = if step == 0 { &h0[k * h..][..h] } else { &out[(r_row - 1) * h..][..h] };
            let s = &saved[r_row * g4..][..g4];
            let (sr, sz, sn, shn) = (&s[..h], &s[h..2 * h], &s[2 * h..g3], &s[g3..]);
            let (dr_out, rest) = dxw[r_row * g3..][..g3].split_at_mut(h);
            let (dz_out, dn_out) = rest.split_at_mut(h);
            let dhn_out = &mut dhn[r_row * h..][..h];
            let dh_row = &mut dh[k * h..][..h];
            let direct_row = &mut direct[k * h..][..h];
            for j in 0..h {
                let d = dh_row[j] + direct_row[j] + g[j];
                dh_row[j] = d;
                let (r, z, n) = (sr[j], sz[j], sn[j]);
                let dn_pre = d * (1.0 - z) * (1.0 - n * n);
                let dz = d * (h_prev[j] - n);
                dn_out[j] = dn_pre;
                dhn_out[j] = dn_pre * r;
                dr_out[j] = dn_pre * shn[j] * r * (1.0 - r);
                dz_out[j] = dz * z * (1.0 - z);
                direct_row[j] = d * z;
            }
            if let Some(tap) = tap_h.as_deref_mut() {
                tap[r_row * h..][..h].copy_from_slice(dh_row);
            }
        }
    }
    let mut dh0 = vec![0f32; b * h]; // (B, H)
    recurrent(&mut dh0, &dxw, &dhn, 0);
    dh0.iter_mut().zip(&direct).for_each(|(d, z)| *d += z);

    let mut dw = vec![0f32; g3 * ld]; // (3H, H+1) = [∂L/∂W_hh | ∂L/∂b_hh]
    let rz_block = View { offset: 0, rows: 2 * h, cols: h, rs: ld, cs: 1 };
    weight_grad(&mut dw, rz_block, &dxw, 0, g3, out, 0, h, h0, (b, t));
    let n_block = View { offset: 2 * h * ld, rows: h, cols: h, rs: ld, cs: 1 };
    weight_grad(&mut dw, n_block, &dhn, 0, h, out, 0, h, h0, (b, t));
    let mut db = vec![0f32; g3]; // (3H,)
    for r_row in 0..b * t {
        let rz = &dxw[r_row * g3..][..2 * h];
        db[..2 * h].iter_mut().zip(rz).for_each(|(s, v)| *s += v);
        db[2 * h..].iter_mut().zip(&dhn[r_row * h..][..h]).for_each(|(s, v)| *s += v);
    }
    for (i, v) in db.into_iter().enumerate() {
        dw[i * ld + h] = v;
    }
    Grads { dxw, dw, dstate: dh0 }
}
