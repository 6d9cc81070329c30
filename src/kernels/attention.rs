//! Causal multi-head self-attention as one autograd node, from the packed projection
//! qkv = [Q | K | V] (B, T, 3C) straight to the heads' concatenated output (B, T, C).
//!
//! The per-op version splits heads with three contiguous copies, materialises the scaled
//! scores, the masked scores and the softmax as separate (B, nh, T, T) tensors, and copies the
//! output back from head-major order. Here each head reads Q, K and V in place through strided
//! views of qkv, the scale, mask and softmax are one pass over each row of scores, and the
//! output is written into its columns of (B, T, C). The attention weights P (B, nh, T, T) are
//! kept for the backward pass. Sequences of the batch run in parallel on rayon's pool. The
//! products are thin (k = hd or a block of keys) and many (eight per head and row block), so they
//! run on `step_gemm`'s packed micro-kernel with K, Kᵀ, V, Vᵀ packed once per head (the `gemm`
//! crate would re-pack both operands on every call), except the two whose left operand is a
//! transposed score block.

use super::gemm::{matmul, View};
use super::math;
use super::op::{cpu_slice, poisoned, storage_slice};
use super::step_gemm::{matmul_packed, PackedB};
use super::{unfilled, zeros};
use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;
use std::ops::Range;
use std::sync::Mutex;

/// Batch, sequence length, model width and heads.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dims {
    pub(super) b: usize,
    pub(super) t: usize,
    pub(super) c: usize,
    pub(super) nh: usize,
}

impl Dims {
    fn hd(&self) -> usize {
        self.c / self.nh
    }
    /// Rows `rows` of head h's block `part` (0 = Q, 1 = K, 2 = V) of one sequence's qkv
    /// (T, 3C): (rows, hd), rows 3C apart.
    fn qkv(&self, part: usize, h: usize, rows: Range<usize>) -> View {
        let c3 = 3 * self.c;
        View::rows(rows.start * c3 + part * self.c + h * self.hd(), rows.len(), self.hd(), c3)
    }
    /// Rows `rows` of head h's columns of one sequence's output (T, C): (rows, hd).
    fn out(&self, h: usize, rows: Range<usize>) -> View {
        View::rows(rows.start * self.c + h * self.hd(), rows.len(), self.hd(), self.c)
    }
    /// Rows `rows`, columns 0..rows.end of a (T, T) score matrix: the keys a causal row sees.
    fn scores(&self, rows: Range<usize>) -> View {
        View::rows(rows.start * self.t, rows.len(), rows.end, self.t)
    }
    /// Query rows in blocks: block [r0, r1) only needs keys 0..r1, so the products skip most of
    /// the masked upper triangle (at T = 256, 10 of 16 blocks' worth of work).
    fn blocks(&self) -> impl Iterator<Item = Range<usize>> {
        let t = self.t;
        (0..t).step_by(ROW_BLOCK).map(move |r0| r0..(r0 + ROW_BLOCK).min(t))
    }
}

/// Query rows per block of the causal products.
const ROW_BLOCK: usize = 64;

/// Per (sequence, head) products are ~T²·hd: too small to split across threads.
const ONE: Parallelism = Parallelism::None;

struct AttentionOp {
    dims: Dims,
    /// softmax(mask(Q·Kᵀ/√hd)) (B, nh, T, T), zero above the diagonal.
    probs: Mutex<Vec<f32>>,
}

pub(super) fn forward(d: Dims, qkv: &[f32], y: &mut [f32], probs: &mut [f32]) {
    let (t, c, nh) = (d.t, d.c, d.nh);
    let scale = 1.0 / (d.hd() as f32).sqrt();
    y.par_chunks_mut(t * c).zip(probs.par_chunks_mut(nh * t * t)).enumerate().for_each(|(bi, (y, p))| {
        let x = &qkv[bi * t * 3 * c..][..t * 3 * c];
        for (h, s) in p.chunks_exact_mut(t * t).enumerate() {
            // Kᵀ (hd, T) and V (T, hd), packed once for the head's row blocks, each of which
            // uses their first r1 keys.
            let k_t = PackedB::new(x, d.qkv(1, h, 0..t).t());
            let v = PackedB::new(x, d.qkv(2, h, 0..t));
            for rows in d.blocks() {
                matmul_packed(s, d.scores(rows.clone()), false, x, d.qkv(0, h, rows.clone()), &k_t);
                for i in rows.clone() {
                    softmax_causal_row(&mut s[i * t..(i + 1) * t], i, scale);
                }
                matmul_packed(y, d.out(h, rows.clone()), false, s, d.scores(rows), &v);
            }
        }
    });
}

/// Row i of the scores: softmax(scale·s_ij) over j ≤ i, zero after.
fn softmax_causal_row(row: &mut [f32], i: usize, scale: f32) {
    let (seen, future) = row.split_at_mut(i + 1);
    math::with_simd!(softmax_in_place(seen, scale));
    future.fill(0.0);
}

#[inline(always)]
fn softmax_in_place<const FMA: bool>(v: &mut [f32], scale: f32) {
    // Lane-wise reductions and a separate exp pass: one running sum inside the exp loop would
    // keep the whole loop scalar.
    let max = math::max_lanes(v) * scale;
    v.iter_mut().for_each(|x| *x = math::exp::<FMA>(math::mad::<FMA>(*x, scale, -max)));
    let inv = 1.0 / math::sum_lanes(v);
    v.iter_mut().for_each(|x| *x *= inv);
}

/// Row i of dS from dP (in place) and P: P ⊙ (dP − Σ_j P·dP)·scale over j ≤ i, zero after.
fn softmax_causal_row_grad(ds: &mut [f32], p: &[f32], i: usize, scale: f32) {
    let (seen, future) = ds.split_at_mut(i + 1);
    math::with_simd!(softmax_grad_in_place(seen, &p[..i + 1], scale));
    future.fill(0.0);
}

#[inline(always)]
fn softmax_grad_in_place<const FMA: bool>(g: &mut [f32], p: &[f32], scale: f32) {
    let dot = math::dot_lanes(g, p);
    g.iter_mut().zip(p).for_each(|(a, b)| *a = b * (*a - dot) * scale);
}

pub(super) fn backward(d: Dims, qkv: &[f32], probs: &[f32], dy: &[f32]) -> Vec<f32> {
    let (t, c, nh) = (d.t, d.c, d.nh);
    let scale = 1.0 / (d.hd() as f32).sqrt();
    let mut dqkv = zeros(d.b * t * 3 * c);
    dqkv.par_chunks_mut(t * 3 * c).enumerate().for_each(|(bi, dx)| {
        let x = &qkv[bi * t * 3 * c..][..t * 3 * c];
        let dy = &dy[bi * t * c..][..t * c];
        let mut ds = vec![0f32; t * t];
        for h in 0..nh {
            let p = &probs[(bi * nh + h) * t * t..][..t * t];
            let v_t = PackedB::new(x, d.qkv(2, h, 0..t).t()); // Vᵀ (hd, T)
            let k = PackedB::new(x, d.qkv(1, h, 0..t)); // K (T, hd)

            // Keys and values get contributions from every later block: accumulate into the
            // zeroed dqkv.
            for rows in d.blocks() {
                let all = 0..rows.end;
                let (dy_rows, q_rows) = (d.out(h, rows.clone()), d.qkv(0, h, rows.clone()));
                // dV = Pᵀ·dY, dP = dY·Vᵀ. The transposed products stay on the `gemm` crate, because
                // its packing of Pᵀ is faster than reading Pᵀ in place.
                matmul(dx, d.qkv(2, h, all.clone()), true, p, d.scores(rows.clone()).t(), dy, dy_rows, ONE);
                matmul_packed(&mut ds, d.scores(rows.clone()), false, dy, dy_rows, &v_t);
                for i in rows.clone() {
                    softmax_causal_row_grad(&mut ds[i * t..(i + 1) * t], &p[i * t..(i + 1) * t], i, scale);
                }
                // dQ = dS·K, dK = dSᵀ·Q.
                matmul_packed(dx, q_rows, true, &ds, d.scores(rows.clone()), &k);
                matmul(dx, d.qkv(1, h, all), true, &ds, d.scores(rows).t(), x, q_rows, ONE);
            }
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
        let mut y = unfilled(d.b * d.t * d.c);
        let mut probs = unfilled(d.b * d.nh * d.t * d.t);
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
