//! The LRU's block (Orvieto et al. 2023), optionally with its residual, over whole sequences as one
//! autograd node. Reference: the per-op `Block::forward` in `models::lru`, which it must equal.
//!
//! Shapes: x (B, T, H); params flat = [norm w (H) | norm b (H) | W_v (2N, H) | λ (2N) |
//! W_c (H, 2N) | D (H) | W_glu (2H, H) | b_glu (2H)]; result (B, T, H). Complex channels are
//! stored as [re (N) | im (N)] halves. Per sequence:
//!
//! ```text
//! z_t = LayerNorm(x_t)                                   (T, H)
//! s_t = λ ⊙ s_{t−1} + W_v z_t                            (T, 2N)  complex product, s_{−1} = 0
//! y_t = GELU(W_c s_t + D ⊙ z_t)                          (T, H)   W_c s_t = Re(C s_t)
//! o_t = a ⊙ σ(b),  [a | b] = W_glu y_t + b_glu           (T, H)   (+ x_t with the residual)
//! ```
//!
//! (W_v = γ ⊙ [B_re; B_im] and W_c = [C_re | −C_im] are formed by the model.) BPTT, with G_t the
//! total ∂L/∂s_t as real pairs: G_t = W_cᵀ ∂L/∂pre_t + conj(λ) ⊙ G_{t+1}, ∂L/∂(W_v z_t) = G_t,
//! ∂L/∂λ = Σ_t G_t ⊙ conj(s_{t−1}).
//!
//! As separate candle ops, the block's backward pass accumulated each (B, T, ·) intermediate's
//! gradient into a fresh zero tensor and split the concatenation of [s | z]: about a third of the
//! training step besides the GEMMs. Here the four maps are GEMMs and everything else is one pass
//! over the rows. The batch is split into one shard of whole sequences per rayon thread, like the
//! GPT block; within a sequence the recurrence is sequential in time (see docs/performance.md for
//! why a parallel scan does not pay on a CPU).

use super::block::shard_len;
use super::denormals::FlushDenormals;
use super::gemm::{matmul, View, LARGE};
use super::glu;
use super::layer_norm::{backward_rows, forward_rows};
use super::linear::{affine, affine_grads, gelu_keeping_derivative, times_derivative};
use super::math::simd_fn;
use super::op::{cpu_slice, poisoned, storage_slice, Slot};
use super::{add_assign, unfilled};
use candle_core::{bail, CpuStorage, CustomOp2, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// Rows handed to one rayon task in the elementwise passes.
const ROWS_PER_TASK: usize = 256;

simd_fn! {
    /// One row of one step: `x` (2N) holds v_t and leaves with λ ⊙ `prev` + v_t.
    fn advance_row(x: &mut [f32], prev: &[f32], lambda: &[f32]) {
        let n = x.len() / 2;
        let (lr, li) = (&lambda[..n], &lambda[n..2 * n]);
        let (pr, pi) = (&prev[..n], &prev[n..2 * n]);
        let (xr, xi) = x[..2 * n].split_at_mut(n);
        for j in 0..n {
            xr[j] += lr[j] * pr[j] - li[j] * pi[j];
            xi[j] += lr[j] * pi[j] + li[j] * pr[j];
        }
    }
}

simd_fn! {
    /// One row of one step of BPTT: `total` (2N) holds ∂L/∂s_t from outside the recurrence and
    /// leaves with G_t = that + `carry`; `carry` holds conj(λ) ⊙ G_{t+1} and leaves with
    /// conj(λ) ⊙ G_t; ∂L/∂λ += G_t ⊙ conj(`prev`).
    fn backward_row(total: &mut [f32], carry: &mut [f32], dlambda: &mut [f32], prev: &[f32], lambda: &[f32]) {
        let n = total.len() / 2;
        let (lr, li) = (&lambda[..n], &lambda[n..2 * n]);
        let (pr, pi) = (&prev[..n], &prev[n..2 * n]);
        let (tr, ti) = total[..2 * n].split_at_mut(n);
        let (dlr, dli) = dlambda[..2 * n].split_at_mut(n);
        let (cr, ci) = carry[..2 * n].split_at_mut(n);
        for j in 0..n {
            let (a, b) = (cr[j] + tr[j], ci[j] + ti[j]);
            tr[j] = a;
            ti[j] = b;
            dlr[j] += a * pr[j] + b * pi[j];
            dli[j] += b * pr[j] - a * pi[j];
            cr[j] = lr[j] * a + li[j] * b;
            ci[j] = lr[j] * b - li[j] * a;
        }
    }
}

/// One sequence's recurrence in place: `s` (T, 2N) holds v_t and leaves with s_t.
fn recur(s: &mut [f32], n2: usize, lambda: &[f32]) {
    for step in 1..s.len() / n2 {
        let (done, rest) = s.split_at_mut(step * n2);
        advance_row(&mut rest[..n2], &done[(step - 1) * n2..], lambda);
    }
}

/// One sequence's BPTT in place: `g` (T, 2N) holds ∂L/∂s_t from outside and leaves with G_t;
/// returns this sequence's ∂L/∂λ (2N).
fn recur_backward(g: &mut [f32], s: &[f32], n2: usize, lambda: &[f32]) -> Vec<f32> {
    let (mut carry, mut dlambda, zero) = (vec![0f32; n2], vec![0f32; n2], vec![0f32; n2]);
    for step in (0..g.len() / n2).rev() {
        let prev = if step == 0 { &zero[..] } else { &s[(step - 1) * n2..][..n2] };
        backward_row(&mut g[step * n2..][..n2], &mut carry, &mut dlambda, prev, lambda);
    }
    dlambda
}

/// Batch, sequence length, model width H and complex state channels N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dims {
    b: usize,
    t: usize,
    h: usize,
    n: usize,
}

/// The parameters' lengths in their flat order (see the module docs).
fn param_sizes(h: usize, n: usize) -> [usize; 8] {
    [h, h, 2 * n * h, 2 * n, h * 2 * n, h, 2 * h * h, 2 * h]
}

/// The parameters as slices of the flat vector.
struct Params<'a> {
    norm_w: &'a [f32],
    norm_b: &'a [f32],
    w_v: &'a [f32],
    lambda: &'a [f32],
    w_c: &'a [f32],
    d: &'a [f32],
    w_glu: &'a [f32],
    b_glu: &'a [f32],
}

impl<'a> Params<'a> {
    fn split(mut flat: &'a [f32], d: Dims) -> Self {
        let [norm_w, norm_b, w_v, lambda, w_c, dd, w_glu, b_glu] = param_sizes(d.h, d.n).map(|len| {
            let (head, tail) = flat.split_at(len);
            flat = tail;
            head
        });
        Self { norm_w, norm_b, w_v, lambda, w_c, d: dd, w_glu, b_glu }
    }
}

/// What the forward pass keeps for the backward pass, per shard of `rows` = sequences · T.
struct Saved {
    /// LayerNorm(x) (rows, H) and its row statistics.
    z: Vec<f32>,
    stats: Vec<(f32, f32)>,
    /// The states s_t (rows, 2N).
    s: Vec<f32>,
    /// GELU's output y (rows, H) and GELU' of its input.
    y: Vec<f32>,
    deriv: Vec<f32>,
    /// The GLU's input [a | b] (rows, 2H).
    g: Vec<f32>,
}

/// `f` on matching blocks of `ROWS_PER_TASK` rows of two row-major buffers, in parallel.
fn row_blocks<F>(a: &mut [f32], a_width: usize, b: &[f32], b_width: usize, f: F)
where
    F: Fn(&mut [f32], &[f32]) + Sync + Send,
{
    a.par_chunks_mut(a_width * ROWS_PER_TASK).zip(b.par_chunks(b_width * ROWS_PER_TASK)).for_each(
        |(a, b)| a.chunks_exact_mut(a_width).zip(b.chunks_exact(b_width)).for_each(|(a, b)| f(a, b)),
    );
}

/// The block over one shard of whole sequences, x (rows, H) into `out` (rows, H).
fn forward_shard(d: Dims, eps: f32, residual: bool, x: &[f32], p: &Params, out: &mut [f32]) -> Saved {
    let (rows, h, n2) = (x.len() / d.h, d.h, 2 * d.n);
    let (z, stats) = forward_rows(x, p.norm_w, p.norm_b, eps); // (rows, H)
    let mut s = unfilled(rows * n2); // (rows, 2N): v_t, then s_t
    matmul(
        &mut s,
        View::dense(0, rows, n2),
        false,
        &z,
        View::dense(0, rows, h),
        p.w_v,
        View::dense(0, n2, h).t(),
        LARGE,
    );
    s.par_chunks_mut(d.t * n2).for_each(|seq| {
        let _flush = FlushDenormals::new();
        recur(seq, n2, p.lambda);
    });
    // D ⊙ z seeds the product with C, as the bias seeds a linear layer's.
    let mut y = unfilled(rows * h); // (rows, H)
    row_blocks(&mut y, h, &z, h, |y, z| {
        y.iter_mut().zip(z.iter().zip(p.d)).for_each(|(y, (z, d))| *y = d * z)
    });
    matmul(
        &mut y,
        View::dense(0, rows, h),
        true,
        &s,
        View::dense(0, rows, n2),
        p.w_c,
        View::dense(0, h, n2).t(),
        LARGE,
    );
    let deriv = gelu_keeping_derivative(&mut y);
    let g = affine(&y, p.w_glu, p.b_glu, (rows, h, 2 * h)); // (rows, 2H)
    row_blocks(out, h, &g, 2 * h, glu::forward_row);
    if residual {
        add_assign(out, x);
    }
    Saved { z, stats, s, y, deriv, g }
}

/// The block's backward pass over one shard: ∂L/∂x into `dx` (rows, H), G_t into `gs`
/// (rows, 2N), and the shard's parameter gradients, concatenated in `param_sizes` order.
#[allow(clippy::too_many_arguments)]
fn backward_shard(
    d: Dims,
    residual: bool,
    dout: &[f32],
    x: &[f32],
    p: &Params,
    sv: &Saved,
    dx: &mut [f32],
    gs: &mut [f32],
) -> Vec<f32> {
    let (rows, h, n2) = (x.len() / d.h, d.h, 2 * d.n);
    let mut dg = unfilled(rows * 2 * h); // (rows, 2H)
    dg.par_chunks_mut(2 * h * ROWS_PER_TASK)
        .zip(sv.g.par_chunks(2 * h * ROWS_PER_TASK).zip(dout.par_chunks(h * ROWS_PER_TASK)))
        .for_each(|(dg, (g, dout))| {
            dg.chunks_exact_mut(2 * h)
                .zip(g.chunks_exact(2 * h).zip(dout.chunks_exact(h)))
                .for_each(|(dg, (g, dout))| glu::backward_row(dg, g, dout))
        });
    let (dy, dw_glu, db_glu) = match affine_grads(&dg, &sv.y, p.w_glu, (rows, h, 2 * h), [true; 3]) {
        (Some(dy), Some(dw), Some(db)) => (dy, dw, db),
        _ => unreachable!("affine_grads returns what it is asked for"),
    };
    drop(dg);
    let mut dpre = dy; // (rows, H)
    times_derivative(&mut dpre, &sv.deriv);

    // The direct path D ⊙ z: ∂L/∂D as partial column sums per row block, and z's first gradient.
    let mut dz = unfilled(rows * h); // (rows, H)
    let dd_parts: Vec<Vec<f32>> = dz
        .par_chunks_mut(h * ROWS_PER_TASK)
        .zip(dpre.par_chunks(h * ROWS_PER_TASK).zip(sv.z.par_chunks(h * ROWS_PER_TASK)))
        .map(|(dz, (dpre, z))| {
            let mut dd = vec![0f32; h];
            for (dz, (dpre, z)) in dz.chunks_exact_mut(h).zip(dpre.chunks_exact(h).zip(z.chunks_exact(h))) {
                for j in 0..h {
                    dd[j] += dpre[j] * z[j];
                    dz[j] = dpre[j] * p.d[j];
                }
            }
            dd
        })
        .collect();
    let mut dd = vec![0f32; h];
    dd_parts.iter().for_each(|part| add_assign(&mut dd, part));

    // Into the states, then back through time.
    matmul(
        gs,
        View::dense(0, rows, n2),
        false,
        &dpre,
        View::dense(0, rows, h),
        p.w_c,
        View::dense(0, h, n2),
        LARGE,
    );
    let dw_c = affine_grads(&dpre, &sv.s, p.w_c, (rows, n2, h), [false, true, false]).1;
    drop(dpre);
    let dlambda_parts: Vec<Vec<f32>> = gs
        .par_chunks_mut(d.t * n2)
        .zip(sv.s.par_chunks(d.t * n2))
        .map(|(g, s)| {
            let _flush = FlushDenormals::new();
            recur_backward(g, s, n2, p.lambda)
        })
        .collect();
    let mut dlambda = vec![0f32; n2];
    dlambda_parts.iter().for_each(|part| add_assign(&mut dlambda, part));

    // Into z through W_v, then through the LayerNorm.
    matmul(
        &mut dz,
        View::dense(0, rows, h),
        true,
        gs,
        View::dense(0, rows, n2),
        p.w_v,
        View::dense(0, n2, h),
        LARGE,
    );
    let dw_v = affine_grads(gs, &sv.z, p.w_v, (rows, h, n2), [false, true, false]).1;
    let (dx_ln, dnorm_w, dnorm_b) = backward_rows(&dz, x, p.norm_w, &sv.stats);
    dx.copy_from_slice(&dx_ln);
    if residual {
        add_assign(dx, dout);
    }
    let [dw_v, dw_c] = [dw_v, dw_c].map(|g| g.expect("affine_grads returns what it is asked for"));
    [dnorm_w, dnorm_b, dw_v, dlambda, dw_c, dd, dw_glu, db_glu].concat()
}

struct LruBlock {
    dims: Dims,
    eps: f32,
    residual: bool,
    save: bool,
    /// The shard length in sequences and one `Saved` per shard.
    saved: Mutex<(usize, Vec<Saved>)>,
    /// Receives G_t = ∂L/∂s_t (B, T, 2N) in backward, for the state taps.
    slot: Option<Slot>,
}

impl CustomOp2 for LruBlock {
    fn name(&self) -> &'static str {
        "gradscope-lru-block"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = self.dims;
        let x = cpu_slice(s1, l1, "block input")?;
        let params = Params::split(cpu_slice(s2, l2, "block parameters")?, d);
        let sequences = shard_len(d.b);
        let shard = sequences * d.t * d.h;
        let mut out = unfilled(x.len()); // (B, T, H)
        let saved: Vec<Saved> = out
            .par_chunks_mut(shard)
            .zip(x.par_chunks(shard))
            .map(|(out, x)| forward_shard(d, self.eps, self.residual, x, &params, out))
            .collect();
        if self.save {
            *self.saved.lock().map_err(poisoned)? = (sequences, saved);
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = self.dims;
        let grad = grad.to_dtype(DType::F32)?.contiguous()?;
        let (g_st, g_l) = grad.storage_and_layout();
        let (x_st, x_l) = x.storage_and_layout();
        let (p_st, p_l) = params.storage_and_layout();
        let dout = storage_slice(&g_st, g_l, "the block output's gradient")?;
        let xv = storage_slice(&x_st, x_l, "block input")?;
        let p = Params::split(storage_slice(&p_st, p_l, "block parameters")?, d);
        // Taken: candle runs one backward pass per node.
        let (sequences, saved) = std::mem::take(&mut *self.saved.lock().map_err(poisoned)?);
        let (shard, n2) = (sequences * d.t * d.h, 2 * d.n);
        if saved.is_empty() || saved.len() != xv.len().div_ceil(shard) {
            bail!("lru block backward: the forward pass kept nothing");
        }
        let mut dx = unfilled(xv.len()); // (B, T, H)
        let mut gs = unfilled(d.b * d.t * n2); // (B, T, 2N)
        let parts: Vec<Vec<f32>> = dx
            .par_chunks_mut(shard)
            .zip(gs.par_chunks_mut(sequences * d.t * n2))
            .zip(dout.par_chunks(shard).zip(xv.par_chunks(shard)))
            .zip(saved.par_iter())
            .map(|(((dx, gs), (dout, x)), sv)| backward_shard(d, self.residual, dout, x, &p, sv, dx, gs))
            .collect();
        // The shards' parameter gradients are partial sums over their rows.
        let mut parts = parts.into_iter();
        let mut dparams = parts.next().unwrap_or_default();
        parts.for_each(|part| add_assign(&mut dparams, &part));
        if let Some(slot) = &self.slot {
            *slot.lock().map_err(poisoned)? = Some(Tensor::from_vec(gs, (d.b, d.t, n2), &Device::Cpu)?);
        }
        let dx = Tensor::from_vec(dx, x.shape(), x.device())?;
        Ok((Some(dx), Some(Tensor::from_vec(dparams, params.shape(), params.device())?)))
    }
}

/// The LRU block (see the module docs), plus `x` when `residual`, for `x` (B, T, H) and `params`
/// in the order [norm w, norm b, W_v (2N, H), λ (2N), W_c (H, 2N), D, W_glu (2H, H), b_glu], f32
/// on the CPU. With `slot`, the backward pass deposits ∂L/∂s_t (B, T, 2N) there.
pub fn lru_block(
    x: &Tensor,
    params: [&Tensor; 8],
    eps: f64,
    residual: bool,
    slot: Option<&Slot>,
) -> Result<Tensor> {
    let (b, t, h) = x.dims3()?;
    let n = params[3].elem_count() / 2;
    if b == 0 || t == 0 || h == 0 || n == 0 {
        bail!("lru block: x {:?} and λ {:?} must be non-empty", x.dims(), params[3].dims());
    }
    for (p, len) in params.iter().zip(param_sizes(h, n)) {
        if p.elem_count() != len || !p.device().is_cpu() || p.dtype() != DType::F32 {
            bail!("lru block: a parameter {:?} ({:?}) does not fit width {h} and {n} state channels (f32 on the CPU)", p.dims(), p.dtype());
        }
    }
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        bail!("lru block kernel: needs f32 on the CPU, got {:?} on {:?}", x.dtype(), x.device());
    }
    let flat = Tensor::cat(&params.iter().map(|p| p.flatten_all()).collect::<Result<Vec<_>>>()?, 0)?;
    let save = x.track_op() || flat.track_op();
    let op = LruBlock {
        dims: Dims { b, t, h, n },
        eps: eps as f32,
        residual,
        save,
        saved: Mutex::new((0, Vec::new())),
        slot: slot.cloned(),
    };
    let x = x.contiguous()?;
    if save {
        x.apply_op2(&flat, op)
    } else {
        x.apply_op2_no_bwd(&flat, &op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    /// With `residual` the op adds x and passes ∂L/∂out through to ∂L/∂x: it equals x plus the
    /// op without it (the model takes the latter under dropout), in value and in every gradient.
    #[test]
    fn residual_equals_adding_the_input() {
        let (b, t, h, n) = (3, 7, 4, 2);
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1., (b, t, h), &dev).unwrap();
        let params: Vec<Var> =
            param_sizes(h, n).iter().map(|&len| Var::randn(0f32, 0.5, len, &dev).unwrap()).collect();
        let p: [&Tensor; 8] = std::array::from_fn(|k| params[k].as_tensor());
        let proj = Tensor::randn(0f32, 1., (b, t, h), &dev).unwrap();
        let fused = lru_block(&x, p, 1e-5, true, None).unwrap();
        let added = (x.as_tensor() + lru_block(&x, p, 1e-5, false, None).unwrap()).unwrap();
        let flat = |v: &Tensor| v.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let close = |a: &Tensor, b: &Tensor, what: &str| {
            for (u, v) in flat(a).iter().zip(flat(b)) {
                assert!((u - v).abs() <= 1e-5 * (1.0 + v.abs()), "{what}: {u} vs {v}");
            }
        };
        close(&fused, &added, "output");
        let grads = |out: &Tensor| (out * &proj).unwrap().sum_all().unwrap().backward().unwrap();
        let (g1, g2) = (grads(&fused), grads(&added));
        for (k, v) in std::iter::once(&x).chain(&params).enumerate() {
            close(g1.get(v).unwrap(), g2.get(v).unwrap(), &format!("gradient {k}"));
        }
    }
}
