//! A whole GPT block as one autograd node: x + attn(ln_1(x)), then + mlp(ln_2(·)) (nanoGPT's
//! `Block`), without dropout.
//!
//! With one node per LayerNorm, linear and attention, candle's backward pass accumulates every
//! activation's gradient into a fresh zero tensor (`zeros_like` then `add`, on one thread), some
//! sixteen (B, T, C)-sized passes per block. Here the block's inner activations never reach the
//! graph: the op takes x and its twelve parameters flattened into one vector, runs the same
//! slice-level kernels as the single ops (`layer_norm`, `linear`, `attention`) and hands back
//! ∂L/∂x and the parameters' gradients in one piece, which candle's `cat` backward splits per
//! parameter.
//!
//! The batch is split into one shard of whole sequences per rayon thread, and each shard runs
//! the whole block on its own (its inner loops stay parallel, so an idle thread can steal from a
//! shard that finishes late). The shards' parameter gradients are added at the end.

use super::attention::{self, Dims};
use super::layer_norm::{backward_rows, forward_rows};
use super::linear::{affine, affine_grads, gelu_keeping_derivative, times_derivative};
use super::op::{cpu_slice, poisoned, storage_slice};
use super::{add_assign, unfilled};
use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// The parameters in the order they are flattened, with their shapes for model width C:
/// ln_1 (w, b), attn.c_attn (W, b), attn.c_proj (W, b), ln_2 (w, b), mlp.c_fc (W, b),
/// mlp.c_proj (W, b).
fn param_sizes(c: usize) -> [usize; 12] {
    [c, c, 3 * c * c, 3 * c, c * c, c, c, c, 4 * c * c, 4 * c, 4 * c * c, c]
}

/// The twelve parameters as slices of the flattened vector.
fn split(flat: &[f32], c: usize) -> [&[f32]; 12] {
    let mut rest = flat;
    param_sizes(c).map(|n| {
        let (head, tail) = rest.split_at(n);
        rest = tail;
        head
    })
}

/// What the forward pass keeps for the backward pass.
#[derive(Default)]
struct Saved {
    /// ln_1(x) (N, C), its row statistics, and qkv (N, 3C).
    a: Vec<f32>,
    stats1: Vec<(f32, f32)>,
    qkv: Vec<f32>,
    /// The attention weights (B, nh, T, T) and output y (N, C).
    probs: Vec<f32>,
    y: Vec<f32>,
    /// x after the attention residual (N, C), ln_2 of it and its statistics.
    x1: Vec<f32>,
    bb: Vec<f32>,
    stats2: Vec<(f32, f32)>,
    /// GELU(c_fc(·)) (N, 4C) and GELU' of its input.
    hidden: Vec<f32>,
    deriv: Vec<f32>,
}

struct BlockOp {
    dims: Dims,
    eps: f32,
    save: bool,
    /// The shard length in sequences (see [`shard_len`]) and one `Saved` per shard.
    saved: Mutex<(usize, Vec<Saved>)>,
}

impl CustomOp2 for BlockOp {
    fn name(&self) -> &'static str {
        "gradscope-gpt-block"
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
        let params = split(cpu_slice(s2, l2, "block parameters")?, d.c);
        let sequences = shard_len(d.b);
        let shard = sequences * d.t * d.c;
        let mut out = unfilled(x.len()); // (B, T, C)
        let saved: Vec<Saved> = out
            .par_chunks_mut(shard)
            .zip(x.par_chunks(shard))
            .map(|(out, x)| forward_shard(Dims { b: x.len() / (d.t * d.c), ..d }, self.eps, x, &params, out))
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
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = self.dims;
        let grad_res = grad_res.to_dtype(DType::F32)?.contiguous()?;
        let (g_st, g_l) = grad_res.storage_and_layout();
        let (x_st, x_l) = x.storage_and_layout();
        let (p_st, p_l) = params.storage_and_layout();
        let dout = storage_slice(&g_st, g_l, "the block output's gradient")?;
        let xv = storage_slice(&x_st, x_l, "block input")?;
        let weights = split(storage_slice(&p_st, p_l, "block parameters")?, d.c);
        // Taken: candle runs one backward pass per node.
        let (sequences, saved) = std::mem::take(&mut *self.saved.lock().map_err(poisoned)?);
        let shard = sequences * d.t * d.c;
        if saved.is_empty() || saved.len() != xv.len().div_ceil(shard) {
            bail!("gpt block backward: the forward pass kept nothing");
        }
        let mut dx = unfilled(xv.len()); // (B, T, C)
        let parts: Vec<Vec<f32>> = dx
            .par_chunks_mut(shard)
            .zip(dout.par_chunks(shard).zip(xv.par_chunks(shard)))
            .zip(saved.par_iter())
            .map(|((dx, (dout, x)), s)| {
                backward_shard(Dims { b: x.len() / (d.t * d.c), ..d }, dout, x, &weights, s, dx)
            })
            .collect();
        // The shards' parameter gradients are partial sums over their rows.
        let mut parts = parts.into_iter();
        let mut dparams = parts.next().unwrap_or_default();
        parts.for_each(|p| add_assign(&mut dparams, &p));
        let dx = Tensor::from_vec(dx, x.shape(), x.device())?;
        Ok((Some(dx), Some(Tensor::from_vec(dparams, params.shape(), params.device())?)))
    }
}

/// Sequences per shard: the batch is split into one contiguous shard per rayon thread, each
/// running the whole block on its own core, so that the block is not a chain of per-op parallel
/// loops whose every fork-join puts the rayon workers to sleep and wakes them (futex, sched_yield).
pub(super) fn shard_len(batch: usize) -> usize {
    let shards = rayon::current_num_threads().clamp(1, batch.max(1));
    batch.div_ceil(shards).max(1)
}

/// The block's forward pass over one shard of whole sequences, x (b, T, C) into `out`.
fn forward_shard(d: Dims, eps: f32, x: &[f32], p: &[&[f32]; 12], out: &mut [f32]) -> Saved {
    let (n, c) = (d.b * d.t, d.c);
    let [w1, b1, w_attn, b_attn, w_proj, b_proj, w2, b2, w_fc, b_fc, w_mp, b_mp] = *p;
    let (a, stats1) = forward_rows(x, w1, b1, eps); // (N, C)
    let qkv = affine(&a, w_attn, b_attn, (n, c, 3 * c)); // (N, 3C)
    let mut y = unfilled(n * c); // (N, C)
    let mut probs = unfilled(d.b * d.nh * d.t * d.t); // (B, nh, T, T)
    attention::forward(d, &qkv, &mut y, &mut probs);
    let mut x1 = affine(&y, w_proj, b_proj, (n, c, c)); // (N, C)
    add_assign(&mut x1, x);
    let (bb, stats2) = forward_rows(&x1, w2, b2, eps); // (N, C)
    let mut hidden = affine(&bb, w_fc, b_fc, (n, c, 4 * c)); // (N, 4C)
    let deriv = gelu_keeping_derivative(&mut hidden);
    let mlp = affine(&hidden, w_mp, b_mp, (n, 4 * c, c)); // (N, C)
    out.iter_mut().zip(mlp.iter().zip(&x1)).for_each(|(o, (m, r))| *o = m + r);
    Saved { a, stats1, qkv, probs, y, x1, bb, stats2, hidden, deriv }
}

/// The block's backward pass over one shard: ∂L/∂x into `dx`, and the shard's parameter
/// gradients, concatenated in `param_sizes` order.
fn backward_shard(d: Dims, dout: &[f32], x: &[f32], p: &[&[f32]; 12], s: &Saved, dx: &mut [f32]) -> Vec<f32> {
    let (n, c) = (d.b * d.t, d.c);
    let [w1, _, w_attn, _, w_proj, _, w2, _, w_fc, _, w_mp, _] = *p;
    // Every gradient of a linear layer: ∂L/∂input, ∂L/∂W, ∂L/∂b.
    let grads = |dy: &[f32], x: &[f32], w: &[f32], dims| match affine_grads(dy, x, w, dims, [true; 3]) {
        (Some(dx), Some(dw), Some(db)) => (dx, dw, db),
        _ => unreachable!("affine_grads returns what it is asked for"),
    };
    // out = x1 + c_proj(hidden): the MLP branch.
    let (mut dpre, dw_mp, db_mp) = grads(dout, &s.hidden, w_mp, (n, 4 * c, c));
    times_derivative(&mut dpre, &s.deriv); // (N, 4C)
    let (dbb, dw_fc, db_fc) = grads(&dpre, &s.bb, w_fc, (n, c, 4 * c));
    let (mut dx1, dw2, db2) = backward_rows(&dbb, &s.x1, w2, &s.stats2);
    add_assign(&mut dx1, dout); // (N, C): both paths into x1

    // x1 = x + c_proj(attn(c_attn(ln_1(x)))): the attention branch.
    let (dy, dw_proj, db_proj) = grads(&dx1, &s.y, w_proj, (n, c, c));
    let dqkv = attention::backward(d, &s.qkv, &s.probs, &dy); // (N, 3C)
    let (da, dw_attn, db_attn) = grads(&dqkv, &s.a, w_attn, (n, c, 3 * c));
    let (dx_ln, dw1, db1) = backward_rows(&da, x, w1, &s.stats1);
    dx.iter_mut().zip(dx_ln.iter().zip(&dx1)).for_each(|(o, (a, b))| *o = a + b);
    [dw1, db1, dw_attn, db_attn, dw_proj, db_proj, dw2, db2, dw_fc, db_fc, dw_mp, db_mp].concat()
}

/// One GPT block, `x + attn(ln_1(x))` then `+ mlp(ln_2(·))`, for `x` (B, T, C) and the
/// parameters in the order of [`param_sizes`] (PyTorch's layouts), f32 on the CPU, no dropout.
pub fn gpt_block(x: &Tensor, params: [&Tensor; 12], n_head: usize, eps: f64) -> Result<Tensor> {
    let (b, t, c) = x.dims3()?;
    if n_head == 0 || c % n_head != 0 || t == 0 {
        bail!("gpt block: x {:?} must be (B, T ≥ 1, C) with C divisible by {n_head} heads", x.dims());
    }
    for (p, n) in params.iter().zip(param_sizes(c)) {
        if p.elem_count() != n || !p.device().is_cpu() || p.dtype() != DType::F32 {
            bail!(
                "gpt block: a parameter {:?} ({:?}) does not fit width {c} (f32 on the CPU)",
                p.dims(),
                p.dtype()
            );
        }
    }
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        bail!("gpt block kernel: needs f32 on the CPU, got {:?} on {:?}", x.dtype(), x.device());
    }
    let flat = Tensor::cat(&params.iter().map(|p| p.flatten_all()).collect::<Result<Vec<_>>>()?, 0)?;
    let save = x.track_op() || flat.track_op();
    let op = BlockOp {
        dims: Dims { b, t, c, nh: n_head },
        eps: eps as f32,
        save,
        saved: Mutex::new((0, Vec::new())),
    };
    let x = x.contiguous()?;
    if save {
        x.apply_op2(&flat, op)
    } else {
        x.apply_op2_no_bwd(&flat, &op)
    }
}
