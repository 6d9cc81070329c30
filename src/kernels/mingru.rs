//! minGRU over a whole sequence (Feng et al. 2024, "Were RNNs All We Needed?"), gate blocks
//! [z | h̃] of the input projection: z_t = σ(p_z), h̃_t = g(p_h) (see `input_gated::candidate`),
//! h_t = (1 − z_t)·h_{t-1} + z_t·h̃_t. Reference: `models::cells::mingru`.
//!
//! Saved for backward: z in place of p_z, and p_h (B, T, 2H).

use super::input_gated::{candidate, InputGatedRows};
use super::math::{sigmoid, simd_fn};

simd_fn! {
    /// One row of one step: [p_z | p_h] (2H) → [z | p_h], and h_t.
    fn forward_row(pre: &mut [f32], h_prev: &[f32], h_out: &mut [f32]) {
        let h = h_out.len();
        let (pz, ph) = pre[..2 * h].split_at_mut(h);
        let h_prev = &h_prev[..h];
        for j in 0..h {
            let z = sigmoid::<FMA>(pz[j]);
            let (cand, _) = candidate::<FMA>(ph[j]);
            h_out[j] = (1.0 - z) * h_prev[j] + z * cand;
            pz[j] = z;
        }
    }
}

simd_fn! {
    /// One row of one step of BPTT (see `InputGatedRows::backward_row`).
    fn backward_row(dh: &mut [f32], dpre: &mut [f32], saved: &[f32], h_prev: &[f32]) {
        let h = dh.len();
        let (dpz, dph) = dpre[..2 * h].split_at_mut(h);
        let (sz, sph, h_prev) = (&saved[..h], &saved[h..2 * h], &h_prev[..h]);
        for j in 0..h {
            let (z, d) = (sz[j], dh[j]);
            let (cand, dcand) = candidate::<FMA>(sph[j]);
            dpz[j] = d * (cand - h_prev[j]) * z * (1.0 - z);
            dph[j] = d * z * dcand;
            dh[j] = d * (1.0 - z);
        }
    }
}

pub(super) struct MinGru;

impl InputGatedRows for MinGru {
    const OP_NAME: &'static str = "gradscope-fused-mingru";
    const GATES: usize = 2;

    fn forward_row(pre: &mut [f32], h_prev: &[f32], h_out: &mut [f32]) {
        forward_row(pre, h_prev, h_out)
    }

    fn backward_row(dh: &mut [f32], dpre: &mut [f32], saved: &[f32], h_prev: &[f32]) {
        backward_row(dh, dpre, saved, h_prev)
    }
}
