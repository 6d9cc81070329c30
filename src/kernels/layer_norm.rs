//! LayerNorm over the last dimension as one autograd node: forward and backward in two passes
//! over each row, where the per-op version makes ~10 full-size temporaries and a strided reduce
//! for every broadcast in its backward.

use super::op::{cpu_slice, poisoned, storage_slice};
use super::unfilled;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// Rows per rayon task (of C values each).
const ROWS_PER_TASK: usize = 256;

struct LayerNormOp {
    eps: f32,
    /// Per row: mean and 1/σ, kept by the forward pass for the backward pass.
    stats: Mutex<Vec<(f32, f32)>>,
}

/// y = (x − mean)/√(var + eps)·w + b per row of C values, biased variance (PyTorch's).
fn forward(x: &[f32], w: &[f32], b: &[f32], eps: f32, y: &mut [f32], stats: &mut Vec<(f32, f32)>) {
    let c = w.len();
    for (xr, yr) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
        let mean = xr.iter().sum::<f32>() / c as f32;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / c as f32;
        let rstd = 1.0 / (var + eps).sqrt();
        for (((o, &v), &wi), &bi) in yr.iter_mut().zip(xr).zip(w).zip(b) {
            *o = (v - mean) * rstd * wi + bi;
        }
        stats.push((mean, rstd));
    }
}

/// dx, and dw, db accumulated over rows: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·w.
fn backward(dy: &[f32], x: &[f32], w: &[f32], stats: &[(f32, f32)], dx: &mut [f32]) -> (Vec<f32>, Vec<f32>) {
    let c = w.len();
    let (mut dw, mut db) = (vec![0f32; c], vec![0f32; c]);
    let mut xhat = vec![0f32; c];
    for (((dyr, xr), dxr), &(mean, rstd)) in
        dy.chunks_exact(c).zip(x.chunks_exact(c)).zip(dx.chunks_exact_mut(c)).zip(stats)
    {
        let (mut g_mean, mut gx_mean) = (0f32, 0f32);
        for j in 0..c {
            xhat[j] = (xr[j] - mean) * rstd;
            let g = dyr[j] * w[j];
            g_mean += g;
            gx_mean += g * xhat[j];
            dw[j] += dyr[j] * xhat[j];
            db[j] += dyr[j];
        }
        g_mean /= c as f32;
        gx_mean /= c as f32;
        for j in 0..c {
            dxr[j] = (dyr[j] * w[j] - g_mean - xhat[j] * gx_mean) * rstd;
        }
    }
    (dw, db)
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "gradscope-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s1, l1, "layer norm input")?;
        let (w, b) = (cpu_slice(s2, l2, "layer norm weight")?, cpu_slice(s3, l3, "layer norm bias")?);
        let (y, stats) = forward_rows(x, w, b, self.eps);
        *self.stats.lock().map_err(poisoned)? = stats;
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad_res = grad_res.to_dtype(DType::F32)?.contiguous()?;
        let (g_st, g_l) = grad_res.storage_and_layout();
        let (x_st, x_l) = x.storage_and_layout();
        let (w_st, w_l) = w.storage_and_layout();
        let dy = storage_slice(&g_st, g_l, "the layer norm's output gradient")?;
        let xv = storage_slice(&x_st, x_l, "layer norm input")?;
        let wv = storage_slice(&w_st, w_l, "layer norm weight")?;
        let stats = self.stats.lock().map_err(poisoned)?;
        let (dx, dw, db) = backward_rows(dy, xv, wv, &stats);
        let keep = |v: Vec<f32>, like: &Tensor| -> Result<Option<Tensor>> {
            like.track_op().then(|| Tensor::from_vec(v, like.shape(), like.device())).transpose()
        };
        Ok((keep(dx, x)?, keep(dw, w)?, keep(db, b)?))
    }
}

/// [`forward`] over row blocks in parallel on rayon's pool: y and each row's (mean, 1/σ).
pub(super) fn forward_rows(x: &[f32], w: &[f32], b: &[f32], eps: f32) -> (Vec<f32>, Vec<(f32, f32)>) {
    let mut y = unfilled(x.len());
    let rows = ROWS_PER_TASK * w.len();
    let stats: Vec<(f32, f32)> = x
        .par_chunks(rows)
        .zip(y.par_chunks_mut(rows))
        .flat_map_iter(|(x, y)| {
            let mut stats = Vec::with_capacity(ROWS_PER_TASK);
            forward(x, w, b, eps, y, &mut stats);
            stats
        })
        .collect();
    (y, stats)
}

/// [`backward`] over row blocks in parallel, each with its own partial dw and db, summed after.
pub(super) fn backward_rows(
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    stats: &[(f32, f32)],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let c = w.len();
    let rows = ROWS_PER_TASK * c;
    let mut dx = unfilled(x.len());
    let parts: Vec<(Vec<f32>, Vec<f32>)> = dy
        .par_chunks(rows)
        .zip(x.par_chunks(rows))
        .zip(stats.par_chunks(ROWS_PER_TASK))
        .zip(dx.par_chunks_mut(rows))
        .map(|(((dy, x), stats), dx)| backward(dy, x, w, stats, dx))
        .collect();
    let (mut dw, mut db) = (vec![0f32; c], vec![0f32; c]);
    for (pdw, pdb) in parts {
        dw.iter_mut().zip(&pdw).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(&pdb).for_each(|(a, b)| *a += b);
    }
    (dx, dw, db)
}

/// LayerNorm of `x` (…, C) over its last dimension with `weight` and `bias` (C), f32 on the CPU.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let c = x.dim(candle_core::D::Minus1)?;
    if weight.dims() != [c] || bias.dims() != [c] {
        bail!(
            "layer norm: weight {:?} and bias {:?} must be ({c},) for input {:?}",
            weight.dims(),
            bias.dims(),
            x.dims()
        );
    }
    for v in [x, weight, bias] {
        if !v.device().is_cpu() || v.dtype() != DType::F32 {
            bail!("layer norm kernel: needs f32 on the CPU, got {:?} on {:?}", v.dtype(), v.device());
        }
    }
    let op = LayerNormOp { eps: eps as f32, stats: Mutex::new(Vec::new()) };
    let (x, weight, bias) = (x.contiguous()?, weight.contiguous()?, bias.contiguous()?);
    if x.track_op() || weight.track_op() || bias.track_op() {
        x.apply_op3(&weight, &bias, op)
    } else {
        x.apply_op3_no_bwd(&weight, &bias, &op)
    }
}
