//! minLSTM over a whole sequence (Feng et al. 2024), gate blocks [f | i | h̃] of the input
//! projection: f_t = σ(p_f), i_t = σ(p_i), h̃_t = g(p_h) (see `input_gated::candidate`), then
//! f'_t = f_t / (f_t + i_t), i'_t = i_t / (f_t + i_t) and h_t = f'_t·h_{t-1} + i'_t·h̃_t.
//! Reference: `models::cells::minlstm`.
//!
//! Saved for backward: f and i in place of p_f and p_i, and p_h (B, T, 3H).

use super::input_gated::{candidate, InputGatedRows};
use super::math::{sigmoid, simd_fn};

simd_fn! {
    /// One row of one step: [p_f | p_i | p_h] (3H) → [f | i | p_h], and h_t.
    fn forward_row(pre: &mut [f32], h_prev: &[f32], h_out: &mut [f32]) {
        let h = h_out.len();
        let (pf, rest) = pre[..3 * h].split_at_mut(h);
        let (pi, ph) = rest.split_at_mut(h);
        let h_prev = &h_prev[..h];
        for j in 0..h {
            let (f, i) = (sigmoid::<FMA>(pf[j]), sigmoid::<FMA>(pi[j]));
            let (cand, _) = candidate::<FMA>(ph[j]);
            let s = f + i;
            h_out[j] = (f / s) * h_prev[j] + (i / s) * cand;
            pf[j] = f;
            pi[j] = i;
        }
    }
}

simd_fn! {
    /// One row of one step of BPTT (see `InputGatedRows::backward_row`). With s = f + i:
    /// ∂f'/∂f = i/s², ∂f'/∂i = −f/s², ∂i'/∂i = f/s², ∂i'/∂f = −i/s².
    fn backward_row(dh: &mut [f32], dpre: &mut [f32], saved: &[f32], h_prev: &[f32]) {
        let h = dh.len();
        let (dpf, rest) = dpre[..3 * h].split_at_mut(h);
        let (dpi, dph) = rest.split_at_mut(h);
        let (sf, si, sph, h_prev) = (&saved[..h], &saved[h..2 * h], &saved[2 * h..3 * h], &h_prev[..h]);
        for j in 0..h {
            let (f, i, d) = (sf[j], si[j], dh[j]);
            let (cand, dcand) = candidate::<FMA>(sph[j]);
            let s = f + i;
            let s2 = s * s;
            let (d_fn, d_in) = (d * h_prev[j], d * cand);
            dpf[j] = (d_fn - d_in) * (i / s2) * f * (1.0 - f);
            dpi[j] = (d_in - d_fn) * (f / s2) * i * (1.0 - i);
            dph[j] = d * (i / s) * dcand;
            dh[j] = d * (f / s);
        }
    }
}

pub(super) struct MinLstm;

impl InputGatedRows for MinLstm {
    const OP_NAME: &'static str = "gradscope-fused-minlstm";
    const GATES: usize = 3;

    fn forward_row(pre: &mut [f32], h_prev: &[f32], h_out: &mut [f32]) {
        forward_row(pre, h_prev, h_out)
    }

    fn backward_row(dh: &mut [f32], dpre: &mut [f32], saved: &[f32], h_prev: &[f32]) {
        backward_row(dh, dpre, saved, h_prev)
    }
}
