//! The gated linear unit over the last dim as one op: y = a ⊙ σ(b) for x = [a | b].
//! Shapes: x (…, 2H) → y (…, H). Reference: the candle ops `a * sigmoid(b)` it replaces (the
//! LRU's per-op path), which cost a pass per op and per gradient over whole (B, T, H) tensors.
//! Backward: ∂L/∂a = g ⊙ σ(b), ∂L/∂b = g ⊙ a ⊙ σ(b)(1 − σ(b)), with σ(b) recomputed.

use super::math::{sigmoid, simd_fn};
use super::op::{cpu_slice, storage_slice};
use candle_core::{bail, CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Rows handed to one rayon task.
const ROWS_PER_TASK: usize = 64;

simd_fn! {
    /// `y` (H) ← a ⊙ σ(b) for one row `x` = [a | b] (2H).
    pub(super) fn forward_row(y: &mut [f32], x: &[f32]) {
        let h = y.len();
        let (a, b) = (&x[..h], &x[h..2 * h]);
        for j in 0..h {
            y[j] = a[j] * sigmoid::<FMA>(b[j]);
        }
    }
}

simd_fn! {
    /// `dx` (2H) ← [g ⊙ σ(b) | g ⊙ a ⊙ σ'(b)] for one row.
    pub(super) fn backward_row(dx: &mut [f32], x: &[f32], g: &[f32]) {
        let h = g.len();
        let (a, b) = (&x[..h], &x[h..2 * h]);
        let (da, db) = dx[..2 * h].split_at_mut(h);
        for j in 0..h {
            let s = sigmoid::<FMA>(b[j]);
            da[j] = g[j] * s;
            db[j] = g[j] * a[j] * s * (1.0 - s);
        }
    }
}

struct Glu;

impl CustomOp1 for Glu {
    fn name(&self) -> &'static str {
        "gradscope-glu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s, l, "x")?;
        let mut dims = l.dims().to_vec();
        let h2 = dims.pop().unwrap_or(0);
        let h = h2 / 2;
        let mut y = super::unfilled(x.len() / 2);
        y.par_chunks_mut(h * ROWS_PER_TASK).zip(x.par_chunks(h2 * ROWS_PER_TASK)).for_each(|(y, x)| {
            y.chunks_exact_mut(h).zip(x.chunks_exact(h2)).for_each(|(y, x)| forward_row(y, x));
        });
        dims.push(h);
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.to_dtype(DType::F32)?.contiguous()?;
        let x = x.contiguous()?;
        let (g_st, g_l) = grad.storage_and_layout();
        let (x_st, x_l) = x.storage_and_layout();
        let g = storage_slice(&g_st, g_l, "the result's gradient")?;
        let xv = storage_slice(&x_st, x_l, "x")?;
        let h2 = x.dim(candle_core::D::Minus1)?;
        let h = h2 / 2;
        let mut dx = super::unfilled(xv.len());
        dx.par_chunks_mut(h2 * ROWS_PER_TASK)
            .zip(xv.par_chunks(h2 * ROWS_PER_TASK).zip(g.par_chunks(h * ROWS_PER_TASK)))
            .for_each(|(dx, (x, g))| {
                dx.chunks_exact_mut(h2)
                    .zip(x.chunks_exact(h2).zip(g.chunks_exact(h)))
                    .for_each(|(dx, (x, g))| backward_row(dx, x, g));
            });
        Ok(Some(Tensor::from_vec(dx, x.shape(), &Device::Cpu)?))
    }
}

/// y = a ⊙ σ(b) for x = [a | b] split in halves of its last dim, as one op. CPU and f32 only.
pub fn glu(x: &Tensor) -> Result<Tensor> {
    let h2 = x.dim(candle_core::D::Minus1)?;
    if h2 % 2 != 0 || !x.device().is_cpu() || x.dtype() != DType::F32 {
        bail!(
            "glu: x {:?} ({:?} on {:?}) must be f32 on the CPU with an even last dim",
            x.dims(),
            x.dtype(),
            x.device()
        );
    }
    x.contiguous()?.apply_op1(Glu)
}
