//! The mixer's row kernels, one step or one row at a time, vectorised over the E channels: the
//! causal conv + SiLU, softplus, the scan step and its recomputation and BPTT, the SiLU gate.

use crate::kernels::math::{dot_lanes, exp, mad, sigmoid, simd_fn, softplus_and_sigmoid};

simd_fn! {
    /// `u` (T, E) ← SiLU(causal conv of x), x the first E columns of each row of `xg` (T, 2E);
    /// `w` (K, E), `bias` (E).
    pub(super) fn conv_silu(u: &mut [f32], xg: &[f32], w: &[f32], bias: &[f32]) {
        let e = bias.len();
        let k = w.len() / e;
        let t = u.len() / e;
        for step in 0..t {
            let row = &mut u[step * e..(step + 1) * e];
            row.copy_from_slice(bias);
            for j in (k - 1).saturating_sub(step)..k {
                let x = &xg[(step + j + 1 - k) * 2 * e..][..e];
                let w = &w[j * e..(j + 1) * e];
                for c in 0..e {
                    row[c] = mad::<FMA>(w[c], x[c], row[c]);
                }
            }
            for v in row.iter_mut() {
                *v *= sigmoid::<FMA>(*v);
            }
        }
    }
}

simd_fn! {
    /// `dt` (T·E) ← softplus(`dt`) in place, and `sig` ← σ of the input, softplus's derivative.
    pub(super) fn softplus_rows(dt: &mut [f32], sig: &mut [f32]) {
        for (v, s) in dt.iter_mut().zip(sig.iter_mut()) {
            (*v, *s) = softplus_and_sigmoid::<FMA>(*v);
        }
    }
}

simd_fn! {
    /// One step: `h` (N, E) ← exp(Δ ⊙ A) ⊙ h + (Δ ⊙ u) ⊗ B, and `y` (E) ← C h + D ⊙ u. `bc` is
    /// [B | C] (2N), `dtu` (E) scratch for Δ ⊙ u.
    pub(super) fn scan_step(h: &mut [f32], y: &mut [f32], dtu: &mut [f32], dt: &[f32], u: &[f32], a: &[f32], bc: &[f32], d: &[f32]) {
        let e = y.len();
        let n = bc.len() / 2;
        for c in 0..e {
            dtu[c] = dt[c] * u[c];
            y[c] = d[c] * u[c];
        }
        for s in 0..n {
            let (b, cc) = (bc[s], bc[n + s]);
            let h = &mut h[s * e..(s + 1) * e];
            let a = &a[s * e..(s + 1) * e];
            for c in 0..e {
                let v = mad::<FMA>(exp::<FMA>(dt[c] * a[c]), h[c], dtu[c] * b);
                h[c] = v;
                y[c] = mad::<FMA>(v, cc, y[c]);
            }
        }
    }
}

simd_fn! {
    /// The states of one chunk again, from the kept one: `hs` (L + 1, N, E) starts with h before
    /// the chunk and gains each step's; `decay` (L, N, E) ← exp(Δ ⊙ A) of each step. `dt`, `u`
    /// (L, E) and `bc` (L, 2N) are the chunk's rows.
    pub(super) fn recompute_chunk(hs: &mut [f32], decay: &mut [f32], dt: &[f32], u: &[f32], a: &[f32], bc: &[f32]) {
        let ne = a.len();
        let steps = decay.len() / ne;
        let e = dt.len() / steps;
        let n = ne / e;
        for i in 0..steps {
            let (dt, u, bc) = (&dt[i * e..(i + 1) * e], &u[i * e..(i + 1) * e], &bc[i * 2 * n..(i + 1) * 2 * n]);
            let (before, after) = hs.split_at_mut((i + 1) * ne);
            let (prev, next) = (&before[i * ne..], &mut after[..ne]);
            let decay = &mut decay[i * ne..(i + 1) * ne];
            for (s, &b) in bc[..n].iter().enumerate() {
                let r = s * e..(s + 1) * e;
                let (a, prev, next, decay) = (&a[r.clone()], &prev[r.clone()], &mut next[r.clone()], &mut decay[r]);
                for c in 0..e {
                    let g = exp::<FMA>(dt[c] * a[c]);
                    decay[c] = g;
                    next[c] = mad::<FMA>(g, prev[c], dt[c] * u[c] * b);
                }
            }
        }
    }
}

simd_fn! {
    /// One step of BPTT. `gh` (N, E) holds ∂L/∂h_t from later steps and leaves with ∂L/∂h_{t−1};
    /// `dy` (E) is ∂L/∂y_t before the gate's D-term. Accumulates ∂L/∂Δ_t into `ddt`, ∂L/∂u_t into
    /// `du`, ∂L/∂A into `da`; writes ∂L/∂[B_t | C_t] into `dbc` (2N) and ‖∂L/∂h_t‖² into `norm2`.
    pub(super) fn scan_back_step(
        gh: &mut [f32], ddt: &mut [f32], du: &mut [f32], da: &mut [f32], dbc: &mut [f32], norm2: &mut [f32],
        dtu: &mut [f32], dy: &[f32], h: &[f32], h_prev: &[f32], decay: &[f32], dt: &[f32], u: &[f32], a: &[f32], bc: &[f32],
    ) {
        let e = dy.len();
        let n = bc.len() / 2;
        for c in 0..e {
            dtu[c] = dt[c] * u[c];
        }
        let mut total = 0f32;
        for s in 0..n {
            let (b, cc) = (bc[s], bc[n + s]);
            let r = s * e..(s + 1) * e;
            let (gh, h, h_prev, decay, a, da) =
                (&mut gh[r.clone()], &h[r.clone()], &h_prev[r.clone()], &decay[r.clone()], &a[r.clone()], &mut da[r]);
            dbc[n + s] = dot_lanes(dy, h);
            for c in 0..e {
                gh[c] = mad::<FMA>(dy[c], cc, gh[c]);
            }
            dbc[s] = dot_lanes(gh, dtu);
            total += dot_lanes(gh, gh);
            for c in 0..e {
                let g = gh[c];
                let gdh = g * decay[c] * h_prev[c]; // ∂L/∂(Δ A) through the decay
                ddt[c] = mad::<FMA>(gdh, a[c], mad::<FMA>(g * u[c], b, ddt[c]));
                da[c] = mad::<FMA>(gdh, dt[c], da[c]);
                du[c] = mad::<FMA>(g * dt[c], b, du[c]);
                gh[c] = g * decay[c];
            }
        }
        norm2[0] = total;
    }
}

simd_fn! {
    /// `out` (E) ← `y` ⊙ SiLU(g) for one row; g the second half of `xg` (2E).
    pub(super) fn gate_row(out: &mut [f32], y: &[f32], xg: &[f32]) {
        let e = out.len();
        let g = &xg[e..2 * e];
        for c in 0..e {
            out[c] = y[c] * g[c] * sigmoid::<FMA>(g[c]);
        }
    }
}

simd_fn! {
    /// BPTT through the gate for one row: `dy` (E) ← ∂L/∂y = dout ⊙ SiLU(g), and the second half
    /// of `dxg` (2E) ← ∂L/∂g = dout ⊙ y ⊙ SiLU'(g).
    pub(super) fn gate_back_row(dy: &mut [f32], dxg: &mut [f32], dout: &[f32], y: &[f32], xg: &[f32]) {
        let e = dy.len();
        let g = &xg[e..2 * e];
        let dg = &mut dxg[e..2 * e];
        for c in 0..e {
            let s = sigmoid::<FMA>(g[c]);
            dy[c] = dout[c] * g[c] * s;
            dg[c] = dout[c] * y[c] * s * mad::<FMA>(g[c], 1.0 - s, 1.0);
        }
    }
}

simd_fn! {
    /// BPTT through SiLU and the causal conv for one sequence: `du` (T, E) enters as ∂L/∂u and
    /// leaves as ∂L/∂(pre-SiLU); the first half of each `dxg` row (2E) ← ∂L/∂x; `dw` (K, E) and
    /// `db` (E) accumulate.
    pub(super) fn conv_silu_back(dxg: &mut [f32], dw: &mut [f32], db: &mut [f32], du: &mut [f32], xg: &[f32], w: &[f32], bias: &[f32]) {
        let e = bias.len();
        let k = w.len() / e;
        let t = du.len() / e;
        let mut pre = vec![0f32; e];
        for step in 0..t {
            pre.copy_from_slice(bias);
            for j in (k - 1).saturating_sub(step)..k {
                let x = &xg[(step + j + 1 - k) * 2 * e..][..e];
                let w = &w[j * e..(j + 1) * e];
                for c in 0..e {
                    pre[c] = mad::<FMA>(w[c], x[c], pre[c]);
                }
            }
            let d = &mut du[step * e..(step + 1) * e];
            for c in 0..e {
                let s = sigmoid::<FMA>(pre[c]);
                d[c] *= s * mad::<FMA>(pre[c], 1.0 - s, 1.0);
                db[c] += d[c];
            }
        }
        // ∂L/∂x_s = Σ_j w_j ⊙ ∂L/∂pre_{s+K−1−j}, and ∂L/∂w_j = Σ_s ∂L/∂pre_{s+K−1−j} ⊙ x_s.
        for s in 0..t {
            let x = &xg[s * 2 * e..][..e];
            let dx = &mut dxg[s * 2 * e..][..e];
            dx.fill(0.0);
            for j in 0..k {
                let step = s + k - 1 - j;
                if step >= t {
                    continue;
                }
                let (d, w, dw) = (&du[step * e..(step + 1) * e], &w[j * e..(j + 1) * e], &mut dw[j * e..(j + 1) * e]);
                for c in 0..e {
                    dx[c] = mad::<FMA>(w[c], d[c], dx[c]);
                    dw[c] = mad::<FMA>(d[c], x[c], dw[c]);
                }
            }
        }
    }
}
