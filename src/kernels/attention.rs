//! Causal multi-head self-attention as one autograd node, from the packed projection
//! qkv = [Q | K | V] (B, T, 3C) straight to the heads' concatenated output (B, T, C).
//!
//! The per-op version splits heads with three contiguous copies, materialises the scaled
//! scores, the masked scores and the softmax as separate (B, nh, T, T) tensors, and copies the
//! output back from head-major order. Here each head reads Q, K and V in place through strided
//! views of qkv, the scale, mask and softmax are one pass over each row of scores, and the
//! output is written into its columns of (B, T, C). The attention weights P (B, nh, T, T) are
//! kept for the backward pass. Sequences of the batch run in parallel on rayon's pool.

use super::gemm::{matmul, View};
use super::math;
use super::op::{cpu_slice, poisoned, storage_slice};
use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;
use std::sync::Mutex;

/// Batch, sequence length, model width and heads.
#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    t: usize,
    c: usize,
    nh: usize,
}

impl Dims {
    fn hd(&self) -> usize {
        self.c / self.nh
    }
    /// Head h's block `part` (0 = Q, 1 = K, 2 = V) of one sequence's qkv: (T, hd), rows 3C apart.
    fn qkv(&self, part: usize, h: usize) -> View {
        View::rows(part * self.c + h * self.hd(), self.t, self.hd(), 3 * self.c)
    }
    /// Head h's columns of one sequence's output (T, C): (T, hd).
    fn out(&self, h: usize) -> View {
        View::rows(h * self.hd(), self.t, self.hd(), self.c)
    }
    fn square(&self) -> View {
        View::dense(0, self.t, self.t)
    }
}

/// Per (sequence, head) products are ~T²·hd: too small to split across threads.
const ONE: Parallelism = Parallelism::None;

struct AttentionOp {
    dims: Dims,
    /// softmax(mask(Q·Kᵀ/√hd)) (B, nh, T, T), zero above the diagonal.
    probs: Mutex<Vec<f32>>,
}

fn forward(d: Dims, qkv: &[f32], y: &mut [f32], probs: &mut [f32]) {
    let (t, c, nh) = (d.t, d.c, d.nh);
    let scale = 1.0 / (d.hd() as f32).sqrt();
    y.par_chunks_mut(t * c).zip(probs.par_chunks_mut(nh * t * t)).enumerate().for_each(|(bi, (y, p))| {
        let x = &qkv[bi * t * 3 * c..][..t * 3 * c];
        for (h, s) in p.chunks_exact_mut(t * t).enumerate() {
            matmul(s, d.square(), false, x, d.qkv(0, h), x, d.qkv(1, h).t(), ONE);
            for (i, row) in s.chunks_exact_mut(t).enumerate() {
                let (seen, future) = row.split_at_mut(i + 1);
                let max = seen.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) * scale;
                let mut sum = 0f32;
                for v in seen.iter_mut() {
                    *v = math::exp(*v * scale - max);
                    sum += *v;
                }
                let inv = 1.0 / sum;
                seen.iter_mut().for_each(|v| *v *= inv);
                future.fill(0.0);
            }
            matmul(y, d.out(h), false, s, d.square(), x, d.qkv(2, h), ONE);
        }
    });
}

fn backward(d: Dims, qkv: &[f32], probs: &[f32], dy: &[f32]) -> Vec<f32> {
    let (t, c, nh) = (d.t, d.c, d.nh);
    let scale = 1.0 / (d.hd() as f32).sqrt();
    let mut dqkv = vec![0f32; d.b * t * 3 * c];
    dqkv.par_chunks_mut(t * 3 * c).enumerate().for_each(|(bi, dx)| {
        let x = &qkv[bi * t * 3 * c..][..t * 3 * c];
        let dy = &dy[bi * t * c..][..t * c];
        let mut ds = vec![0f32; t * t];
        for h in 0..nh {
            let p = &probs[(bi * nh + h) * t * t..][..t * t];
            // dV = Pᵀ·dY, dP = dY·Vᵀ.
            matmul(dx, d.qkv(2, h), false, p, d.square().t(), dy, d.out(h), ONE);
            matmul(&mut ds, d.square(), false, dy, d.out(h), x, d.qkv(2, h).t(), ONE);
            // Through the softmax: dS = P ⊙ (dP − Σ_j P·dP), then the scale.
            for (i, (row, prow)) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)).enumerate() {
                let (seen, future) = row.split_at_mut(i + 1);
                let dot: f32 = seen.iter().zip(prow).map(|(g, q)| g * q).sum();
                seen.iter_mut().zip(prow).for_each(|(g, q)| *g = q * (*g - dot) * scale);
                future.fill(0.0);
            }
            // dQ = dS·K, dK = dSᵀ·Q.
            matmul(dx, d.qkv(0, h), false, &ds, d.square(), x, d.qkv(1, h), ONE);
            matmul(dx, d.qkv(1, h), false, &ds, d.square().t(), x, d.qkv(0, h), ONE);
        }
    });
    dqkv
}

impl CustomOp1 for AttentionOp {
    fn name(&self) -> &'static str {
        "gradscope-causal-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = self.dims;
        let qkv = cpu_slice(s, l, "attention qkv")?;
        let mut y = vec![0f32; d.b * d.t * d.c];
        let mut probs = vec![0f32; d.b * d.nh * d.t * d.t];
        forward(d, qkv, &mut y, &mut probs);
        *self.probs.lock().map_err(poisoned)? = probs;
        Ok((CpuStorage::F32(y), Shape::from((d.b, d.t, d.c))))
    }

    fn bwd(&self, qkv: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad_res = grad_res.to_dtype(DType::F32)?.contiguous()?;
        let (g_st, g_l) = grad_res.storage_and_layout();
        let (x_st, x_l) = qkv.storage_and_layout();
        let dy = storage_slice(&g_st, g_l, "the attention output's gradient")?;
        let x = storage_slice(&x_st, x_l, "attention qkv")?;
        let probs = self.probs.lock().map_err(poisoned)?;
        let dqkv = backward(self.dims, x, &probs, dy);
        Ok(Some(Tensor::from_vec(dqkv, qkv.shape(), qkv.device())?))
    }
}

/// Causal self-attention of `n_head` heads over `qkv` (B, T, 3C) = [Q | K | V] (nanoGPT's
/// `c_attn` output): softmax(Q·Kᵀ/√hd + causal mask)·V per head, heads concatenated: (B, T, C).
/// f32 on the CPU, no dropout on the attention weights.
pub fn causal_attention(qkv: &Tensor, n_head: usize) -> Result<Tensor> {
    let (b, t, c3) = qkv.dims3()?;
    if c3 % 3 != 0 || n_head == 0 || (c3 / 3) % n_head != 0 || t == 0 {
        bail!(
            "causal attention: qkv {:?} must be (B, T ≥ 1, 3C) with C divisible by {n_head} heads",
            qkv.dims()
        );
    }
    if !qkv.device().is_cpu() || qkv.dtype() != DType::F32 {
        bail!("attention kernel: needs f32 on the CPU, got {:?} on {:?}", qkv.dtype(), qkv.device());
    }
    let op = AttentionOp { dims: Dims { b, t, c: c3 / 3, nh: n_head }, probs: Mutex::new(Vec::new()) };
    let qkv = qkv.contiguous()?;
    if qkv.track_op() {
        qkv.apply_op1(op)
    } else {
        qkv.apply_op1_no_bwd(&op)
    }
}
