//! Mamba's mixer between its two projections (Gu & Dao 2023) over a whole sequence as one autograd
//! node: causal depthwise conv + SiLU, the selective SSM (S6) and the SiLU gate.
//! Reference: the per-op block in `models::mamba`, which it must equal.
//!
//! Shapes: xg (B, T, 2E) = [x | g], the input projection's output; params = [conv weight (K, E) |
//! conv bias (E) | W_x (R + 2N, E) | W_dt (E, R) | b_dt (E) | A (N, E) | D (E)], flat; result
//! (B, T, E). Per sequence:
//!
//! ```text
//! u_t  = SiLU(b_conv + Σ_j w_j ⊙ x_{t−K+1+j})         (T, E)      zero before t = 0
//! [d_t | B_t | C_t] = W_x u_t                          (T, R + 2N)
//! Δ_t  = softplus(W_dt d_t + b_dt)                     (T, E)
//! h_t  = exp(Δ_t ⊙ A) ⊙ h_{t−1} + (Δ_t ⊙ u_t) ⊗ B_t    (N, E)      h_{−1} = 0
//! y_t  = (C_t h_t + D ⊙ u_t) ⊙ SiLU(g_t)               (E)
//! ```
//!
//! Sequential in time, parallel over sequences, each step's (N, E) state updated a row of E
//! channels at a time (contiguous, so the loops vectorise over channels). Keeping every h_t for
//! BPTT would take B·T·N·E floats (1 GB at the benchmark's size), so forward keeps h every
//! [`CHUNK`] steps and backward recomputes one chunk's states at a time from there, as the CUDA
//! kernels of `mamba_ssm` recompute theirs.

mod rows;

use super::denormals::FlushDenormals;
use super::gemm::{matmul, View, WEIGHT};
use super::op::{cpu_slice, poisoned, storage_slice, Slot};
use super::unfilled;
use candle_core::{bail, CpuStorage, CustomOp2, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use rows::{
    conv_silu, conv_silu_back, gate_back_row, gate_row, recompute_chunk, scan_back_step, scan_step,
    softplus_rows,
};
use std::sync::Mutex;

/// Steps between kept states: backward recomputes at most this many (N, E) states at a time.
const CHUNK: usize = 32;

/// E channels, N states per channel, R the rank of Δ's projection, K the conv's width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MixerDims {
    pub e: usize,
    pub n: usize,
    pub r: usize,
    pub k: usize,
}

impl MixerDims {
    /// Columns of W_x's output: [d | B | C].
    fn p(&self) -> usize {
        self.r + 2 * self.n
    }

    /// Offsets of each parameter in the flat vector, and its length.
    fn layout(&self) -> ParamLayout {
        let MixerDims { e, n, r, k } = *self;
        let conv_w = 0;
        let conv_b = conv_w + k * e;
        let w_x = conv_b + e;
        let w_dt = w_x + self.p() * e;
        let b_dt = w_dt + e * r;
        let a = b_dt + e;
        let d = a + n * e;
        ParamLayout { conv_w, conv_b, w_x, w_dt, b_dt, a, d, len: d + e }
    }

    /// Length of the flat parameter vector.
    pub fn param_len(&self) -> usize {
        self.layout().len
    }
}

struct ParamLayout {
    conv_w: usize,
    conv_b: usize,
    w_x: usize,
    w_dt: usize,
    b_dt: usize,
    a: usize,
    d: usize,
    len: usize,
}

/// What forward keeps of one sequence for backward.
struct Kept {
    u: Vec<f32>,   // (T, E)
    dbc: Vec<f32>, // (T, R + 2N)
    dt: Vec<f32>,  // (T, E) Δ
    sig: Vec<f32>, // (T, E) σ(pre-softplus) = ∂Δ/∂pre
    y: Vec<f32>,   // (T, E) before the gate
    hs: Vec<f32>,  // (⌈T / CHUNK⌉, N, E): h before each chunk
}

struct Mixer {
    dims: MixerDims,
    save: bool,
    kept: Mutex<Vec<Kept>>,
    /// Receives ‖∂L/∂h_t‖ (B, T, 1) in backward: the norm over the (N, E) state of each sequence
    /// and step, which is all the state taps read (a (B, T, N·E) tensor would be 1 GB here).
    slot: Option<Slot>,
}

/// Forward over one sequence: returns its result rows (T, E) and what backward needs.
fn forward_sequence(dm: MixerDims, t: usize, xg: &[f32], p: &[f32], save: bool) -> (Vec<f32>, Option<Kept>) {
    let MixerDims { e, n, r, .. } = dm;
    let (pl, pw) = (dm.layout(), dm.p());
    let _flush = FlushDenormals::new();
    let mut u = unfilled(t * e);
    conv_silu(&mut u, xg, &p[pl.conv_w..pl.conv_b], &p[pl.conv_b..pl.w_x]);
    let mut dbc = unfilled(t * pw);
    matmul(
        &mut dbc,
        View::dense(0, t, pw),
        false,
        &u,
        View::dense(0, t, e),
        p,
        View::dense(pl.w_x, pw, e).t(),
        WEIGHT,
    );
    let mut dt = unfilled(t * e);
    for row in dt.chunks_exact_mut(e) {
        row.copy_from_slice(&p[pl.b_dt..pl.a]);
    }
    matmul(
        &mut dt,
        View::dense(0, t, e),
        true,
        &dbc,
        View::rows(0, t, r, pw),
        p,
        View::dense(pl.w_dt, e, r).t(),
        WEIGHT,
    );
    let mut sig = unfilled(t * e);
    softplus_rows(&mut dt, &mut sig);
    let (a, d) = (&p[pl.a..pl.d], &p[pl.d..pl.len]);
    let mut h = vec![0f32; n * e];
    let mut hs = Vec::with_capacity(if save { t.div_ceil(CHUNK) * n * e } else { 0 });
    let (mut y, mut dtu) = (unfilled(t * e), vec![0f32; e]);
    for step in 0..t {
        if save && step % CHUNK == 0 {
            hs.extend_from_slice(&h);
        }
        let row = step * e..(step + 1) * e;
        let bc = &dbc[step * pw + r..(step + 1) * pw];
        scan_step(&mut h, &mut y[row.clone()], &mut dtu, &dt[row.clone()], &u[row], a, bc, d);
    }
    let mut out = unfilled(t * e);
    for (step, o) in out.chunks_exact_mut(e).enumerate() {
        gate_row(o, &y[step * e..(step + 1) * e], &xg[step * 2 * e..(step + 1) * 2 * e]);
    }
    (out, save.then_some(Kept { u, dbc, dt, sig, y, hs }))
}

/// BPTT over one sequence: ∂L/∂xg (T, 2E) written into `dxg`, ∂L/∂params accumulated into `dp`,
/// ‖∂L/∂h_t‖ into `norms` (T).
#[allow(clippy::too_many_arguments)]
fn backward_sequence(
    dm: MixerDims,
    t: usize,
    kept: &Kept,
    xg: &[f32],
    p: &[f32],
    dout: &[f32],
    dxg: &mut [f32],
    dp: &mut [f32],
    norms: &mut [f32],
) {
    let MixerDims { e, n, r, .. } = dm;
    let (pl, pw, ne) = (dm.layout(), dm.p(), n * e);
    let _flush = FlushDenormals::new();
    let Kept { u, dbc, dt, sig, y, hs } = kept;
    let mut dy = unfilled(t * e);
    for step in 0..t {
        let (row, wide) = (step * e..(step + 1) * e, step * 2 * e..(step + 1) * 2 * e);
        gate_back_row(&mut dy[row.clone()], &mut dxg[wide.clone()], &dout[row.clone()], &y[row], &xg[wide]);
    }
    // ∂L/∂u starts with the D-term's share; ∂L/∂D = Σ_t dy ⊙ u.
    let (a, d) = (&p[pl.a..pl.d], &p[pl.d..pl.len]);
    let mut du = unfilled(t * e);
    {
        let dd = &mut dp[pl.d..pl.len];
        for step in 0..t {
            let row = step * e..(step + 1) * e;
            for c in 0..e {
                du[step * e + c] = dy[step * e + c] * d[c];
                dd[c] += dy[step * e + c] * u[row.start + c];
            }
        }
    }
    let mut ddt = vec![0f32; t * e];
    let mut ddbc = unfilled(t * pw);
    let (mut gh, mut dtu) = (vec![0f32; ne], vec![0f32; e]);
    let (mut states, mut decay) = (unfilled((CHUNK + 1) * ne), unfilled(CHUNK * ne));
    let mut norm2 = [0f32];
    for chunk in (0..t.div_ceil(CHUNK)).rev() {
        let (first, len) = (chunk * CHUNK, CHUNK.min(t - chunk * CHUNK));
        states[..ne].copy_from_slice(&hs[chunk * ne..(chunk + 1) * ne]);
        let rows = first * e..(first + len) * e;
        let bc_rows: Vec<f32> =
            (first..first + len).flat_map(|s| dbc[s * pw + r..(s + 1) * pw].iter().copied()).collect();
        recompute_chunk(
            &mut states[..(len + 1) * ne],
            &mut decay[..len * ne],
            &dt[rows.clone()],
            &u[rows],
            a,
            &bc_rows,
        );
        for i in (0..len).rev() {
            let step = first + i;
            let row = step * e..(step + 1) * e;
            scan_back_step(
                &mut gh,
                &mut ddt[row.clone()],
                &mut du[row.clone()],
                &mut dp[pl.a..pl.d],
                &mut ddbc[step * pw + r..(step + 1) * pw],
                &mut norm2,
                &mut dtu,
                &dy[row.clone()],
                &states[(i + 1) * ne..(i + 2) * ne],
                &states[i * ne..(i + 1) * ne],
                &decay[i * ne..(i + 1) * ne],
                &dt[row.clone()],
                &u[row],
                a,
                &bc_rows[i * 2 * n..(i + 1) * 2 * n],
            );
            norms[step] = norm2[0].sqrt();
        }
    }
    // Through softplus: ∂L/∂pre = ∂L/∂Δ ⊙ σ(pre); then the low-rank map and its bias.
    ddt.iter_mut().zip(sig).for_each(|(g, s)| *g *= s);
    let db_dt = &mut dp[pl.b_dt..pl.a];
    for row in ddt.chunks_exact(e) {
        db_dt.iter_mut().zip(row).for_each(|(d, g)| *d += g);
    }
    matmul(
        &mut ddbc,
        View::rows(0, t, r, pw),
        false,
        &ddt,
        View::dense(0, t, e),
        p,
        View::dense(pl.w_dt, e, r),
        WEIGHT,
    );
    matmul(
        &mut dp[pl.w_dt..pl.b_dt],
        View::dense(0, e, r),
        true,
        &ddt,
        View::dense(0, t, e).t(),
        dbc,
        View::rows(0, t, r, pw),
        WEIGHT,
    );
    // Through W_x: ∂L/∂u += ∂L/∂[d | B | C] W_x, ∂L/∂W_x += ∂L/∂[d | B | C]ᵀ u.
    matmul(
        &mut du,
        View::dense(0, t, e),
        true,
        &ddbc,
        View::dense(0, t, pw),
        p,
        View::dense(pl.w_x, pw, e),
        WEIGHT,
    );
    matmul(
        &mut dp[pl.w_x..pl.w_dt],
        View::dense(0, pw, e),
        true,
        &ddbc,
        View::dense(0, t, pw).t(),
        u,
        View::dense(0, t, e),
        WEIGHT,
    );
    let (dw, rest) = dp[pl.conv_w..pl.w_x].split_at_mut(pl.conv_b);
    conv_silu_back(dxg, dw, rest, &mut du, xg, &p[pl.conv_w..pl.conv_b], &p[pl.conv_b..pl.w_x]);
}

impl CustomOp2 for Mixer {
    fn name(&self) -> &'static str {
        "gradscope-mamba-mixer"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let xg = cpu_slice(s1, l1, "xg")?;
        let p = cpu_slice(s2, l2, "the mixer's parameters")?;
        let (b, t, e2) = l1.shape().dims3()?;
        let e = e2 / 2;
        let parts: Vec<(Vec<f32>, Option<Kept>)> =
            xg.par_chunks(t * e2).map(|xg| forward_sequence(self.dims, t, xg, p, self.save)).collect();
        let mut out = Vec::with_capacity(b * t * e);
        let mut kept = Vec::with_capacity(if self.save { b } else { 0 });
        for (o, k) in parts {
            out.extend_from_slice(&o);
            kept.extend(k);
        }
        *self.kept.lock().map_err(poisoned)? = kept;
        Ok((CpuStorage::F32(out), Shape::from((b, t, e))))
    }

    fn bwd(
        &self,
        xg: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, t, e2) = xg.dims3()?;
        let e = e2 / 2;
        // Taken: a second backward through this node (candle never makes one) finds it empty.
        let kept = std::mem::take(&mut *self.kept.lock().map_err(poisoned)?);
        if kept.len() != b {
            bail!("mamba mixer backward: the forward pass kept nothing for it");
        }
        let grad = grad.to_dtype(DType::F32)?.contiguous()?;
        let (xg, params) = (xg.contiguous()?, params.contiguous()?);
        let (g_st, g_l) = grad.storage_and_layout();
        let (x_st, x_l) = xg.storage_and_layout();
        let (p_st, p_l) = params.storage_and_layout();
        let dout = storage_slice(&g_st, g_l, "the result's gradient")?;
        let xv = storage_slice(&x_st, x_l, "xg")?;
        let p = storage_slice(&p_st, p_l, "the mixer's parameters")?;
        let plen = self.dims.param_len();
        let mut dxg = unfilled(b * t * e2);
        let mut norms = unfilled(b * t);
        let dps: Vec<Vec<f32>> = dxg
            .par_chunks_mut(t * e2)
            .zip(norms.par_chunks_mut(t))
            .zip(kept.par_iter().zip(xv.par_chunks(t * e2).zip(dout.par_chunks(t * e))))
            .map(|((dxg, norms), (kept, (xg, dout)))| {
                let mut dp = vec![0f32; plen];
                backward_sequence(self.dims, t, kept, xg, p, dout, dxg, &mut dp, norms);
                dp
            })
            .collect();
        let mut dp = vec![0f32; plen];
        for part in &dps {
            dp.iter_mut().zip(part).for_each(|(a, g)| *a += g);
        }
        if let Some(slot) = &self.slot {
            *slot.lock().map_err(poisoned)? = Some(Tensor::from_vec(norms, (b, t, 1), &Device::Cpu)?);
        }
        Ok((
            Some(Tensor::from_vec(dxg, (b, t, e2), &Device::Cpu)?),
            Some(Tensor::from_vec(dp, plen, &Device::Cpu)?),
        ))
    }
}

/// Mamba's mixer on `xg` (B, T, 2E) = [x | g] with the flat `params` of [`MixerDims::layout`]
/// (see the module docs), as one autograd node: (B, T, E). With `slot`, backward deposits
/// ‖∂L/∂h_t‖ (B, T, 1) there. CPU and f32 only.
pub fn mamba_mixer(xg: &Tensor, params: &Tensor, dims: MixerDims, slot: Option<&Slot>) -> Result<Tensor> {
    let (b, t, e2) = xg.dims3()?;
    let MixerDims { e, n, r, k } = dims;
    if e2 != 2 * e
        || e == 0
        || n == 0
        || r == 0
        || k == 0
        || b == 0
        || t == 0
        || params.dims() != [dims.param_len()]
    {
        bail!("mamba mixer: xg {:?} and params {:?} do not fit {dims:?}", xg.dims(), params.dims());
    }
    for (what, x) in [("xg", xg), ("params", params)] {
        if !x.device().is_cpu() || x.dtype() != DType::F32 {
            bail!(
                "mamba mixer: {what} is {:?} on {:?}; the fused kernels need f32 on the CPU",
                x.dtype(),
                x.device()
            );
        }
    }
    let save = xg.track_op() || params.track_op();
    let op = Mixer { dims, save, kept: Mutex::new(Vec::new()), slot: slot.cloned() };
    let (xg, params) = (xg.contiguous()?, params.contiguous()?);
    if save {
        xg.apply_op2(&params, op)
    } else {
        xg.apply_op2_no_bwd(&params, &op)
    }
}
