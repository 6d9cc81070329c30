//! The LRU's diagonal complex recurrence over a whole sequence as one autograd node:
//! x_t = λ ⊙ x_{t-1} + v_t from x_{-1} = 0, with complex channels stored as [re | im] halves.
//! Reference: the per-op loop in `models::lru`.
//!
//! Shapes: v (B, T, 2N) and the result x (B, T, 2N), each row [re (N) | im (N)]; λ (2N) = [re | im].
//! Backward, with G_t the total ∂L/∂x_t (as real pairs):
//! G_t = ∂L/∂x_t (outside) + conj(λ) ⊙ G_{t+1};  ∂L/∂v_t = G_t;  ∂L/∂λ = Σ_t G_t ⊙ conj(x_{t-1}).
//! Sequential in time, parallel over the batch; N complex multiply-adds per row and step.

use super::denormals::FlushDenormals;
use super::math::simd_fn;
use super::op::{cpu_slice, poisoned, storage_slice, Slot};
use candle_core::{bail, CpuStorage, CustomOp2, DType, Device, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

simd_fn! {
    /// One row of one step: `x` (2N) ← λ ⊙ `prev` + `v`.
    fn forward_row(x: &mut [f32], prev: &[f32], v: &[f32], lambda: &[f32]) {
        let n = x.len() / 2;
        let (lr, li) = (&lambda[..n], &lambda[n..2 * n]);
        let (pr, pi) = (&prev[..n], &prev[n..2 * n]);
        let (vr, vi) = (&v[..n], &v[n..2 * n]);
        let (xr, xi) = x[..2 * n].split_at_mut(n);
        for j in 0..n {
            xr[j] = lr[j] * pr[j] - li[j] * pi[j] + vr[j];
            xi[j] = lr[j] * pi[j] + li[j] * pr[j] + vi[j];
        }
    }
}

simd_fn! {
    /// One row of one step of BPTT: `g` (2N) holds conj(λ) ⊙ G_{t+1} and leaves with the same
    /// for step t - 1, after `total` ← G_t = `g` + `outside` and ∂L/∂λ += G_t ⊙ conj(`prev`).
    fn backward_row(g: &mut [f32], total: &mut [f32], dlambda: &mut [f32], outside: &[f32], prev: &[f32], lambda: &[f32]) {
        let n = g.len() / 2;
        let (lr, li) = (&lambda[..n], &lambda[n..2 * n]);
        let (pr, pi) = (&prev[..n], &prev[n..2 * n]);
        let (or, oi) = (&outside[..n], &outside[n..2 * n]);
        let (tr, ti) = total[..2 * n].split_at_mut(n);
        let (dlr, dli) = dlambda[..2 * n].split_at_mut(n);
        let (gr, gi) = g[..2 * n].split_at_mut(n);
        for j in 0..n {
            let (a, b) = (gr[j] + or[j], gi[j] + oi[j]);
            tr[j] = a;
            ti[j] = b;
            dlr[j] += a * pr[j] + b * pi[j];
            dli[j] += b * pr[j] - a * pi[j];
            gr[j] = lr[j] * a + li[j] * b;
            gi[j] = lr[j] * b - li[j] * a;
        }
    }
}

struct DiagonalRecurrence {
    /// Receives ∂L/∂x_t (B, T, 2N) in backward, for the state taps.
    slot: Option<Slot>,
}

impl CustomOp2 for DiagonalRecurrence {
    fn name(&self) -> &'static str {
        "gradscope-lru-recurrence"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let v = cpu_slice(s1, l1, "v")?;
        let lambda = cpu_slice(s2, l2, "lambda")?;
        let (b, t, n2) = l1.shape().dims3()?;
        let mut x = super::unfilled(b * t * n2);
        x.par_chunks_mut(t * n2).zip(v.par_chunks(t * n2)).for_each(|(x, v)| {
            let _flush = FlushDenormals::new();
            let zero = vec![0f32; n2];
            for step in 0..t {
                let (done, rest) = x.split_at_mut(step * n2);
                let prev = if step == 0 { &zero[..] } else { &done[(step - 1) * n2..] };
                forward_row(&mut rest[..n2], prev, &v[step * n2..][..n2], lambda);
            }
        });
        Ok((CpuStorage::F32(x), Shape::from((b, t, n2))))
    }

    fn bwd(
        &self,
        _v: &Tensor,
        lambda: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (b, t, n2) = res.dims3()?;
        let grad = grad.to_dtype(DType::F32)?.contiguous()?;
        let lambda = lambda.contiguous()?;
        let (g_st, g_l) = grad.storage_and_layout();
        let (x_st, x_l) = res.storage_and_layout();
        let (l_st, l_l) = lambda.storage_and_layout();
        let outside = storage_slice(&g_st, g_l, "the result's gradient")?;
        let x = storage_slice(&x_st, x_l, "the result")?;
        let lam = storage_slice(&l_st, l_l, "lambda")?;
        let mut dv = super::unfilled(b * t * n2); // (B, T, 2N): G_t of every step
        let dlambdas: Vec<Vec<f32>> = dv
            .par_chunks_mut(t * n2)
            .zip(outside.par_chunks(t * n2).zip(x.par_chunks(t * n2)))
            .map(|(dv, (outside, x))| {
                let _flush = FlushDenormals::new();
                let (mut g, mut dlambda, zero) = (vec![0f32; n2], vec![0f32; n2], vec![0f32; n2]);
                for step in (0..t).rev() {
                    let prev = if step == 0 { &zero[..] } else { &x[(step - 1) * n2..][..n2] };
                    let total = &mut dv[step * n2..][..n2];
                    backward_row(&mut g, total, &mut dlambda, &outside[step * n2..][..n2], prev, lam);
                }
                dlambda
            })
            .collect();
        let mut dlambda = vec![0f32; n2];
        for part in &dlambdas {
            dlambda.iter_mut().zip(part).for_each(|(a, p)| *a += p);
        }
        let dv = Tensor::from_vec(dv, (b, t, n2), &Device::Cpu)?;
        if let Some(slot) = &self.slot {
            *slot.lock().map_err(poisoned)? = Some(dv.clone());
        }
        Ok((Some(dv), Some(Tensor::from_vec(dlambda, n2, &Device::Cpu)?)))
    }
}

/// x_t = λ ⊙ x_{t-1} + v_t from a zero state, as one autograd node.
///
/// - `v` (B, T, 2N): each row [re | im] of the input term γ ⊙ (B u_t).
/// - `lambda` (2N): [re | im] of the diagonal.
///
/// Returns x (B, T, 2N). With `slot`, the backward pass deposits ∂L/∂x_t (B, T, 2N) there. CPU
/// and f32 only.
pub fn lru_recurrence(v: &Tensor, lambda: &Tensor, slot: Option<&Slot>) -> Result<Tensor> {
    let (b, t, n2) = v.dims3()?;
    if n2 % 2 != 0 || n2 == 0 || b == 0 || t == 0 || lambda.dims() != [n2] {
        bail!(
            "lru recurrence: v {:?} and lambda {:?} do not fit (B, T, 2N) and (2N)",
            v.dims(),
            lambda.dims()
        );
    }
    for (what, x) in [("v", v), ("lambda", lambda)] {
        if !x.device().is_cpu() || x.dtype() != DType::F32 {
            bail!(
                "lru recurrence: {what} is {:?} on {:?}; the fused kernels need f32 on the CPU",
                x.dtype(),
                x.device()
            );
        }
    }
    let op = DiagonalRecurrence { slot: slot.cloned() };
    v.contiguous()?.apply_op2(&lambda.contiguous()?, op)
}
