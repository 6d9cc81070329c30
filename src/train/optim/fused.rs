//! Adam's update of one f32 CPU parameter in a single pass.
//!
//! Written with tensor ops, an Adam(W) step is ten full passes over the parameter and its two
//! moments, each allocating a tensor, on candle's main thread. This loop does the same arithmetic
//! in the same f32 operations and order as those ops (`x * c` is candle's `affine(c, 0)`, so
//! `x·c + 0`; `x + c` is `affine(1, c)`; `x / c` is `affine(1/c, 0)`), so both paths give
//! bit-identical parameters and moments.

use crate::kernels::math::simd_fn;
use candle_core::{DType, Result, Storage, Tensor};

/// The step's constants, each rounded to f32 as candle's `affine` rounds its f64 arguments.
#[derive(Clone, Copy)]
pub(super) struct AdamConsts {
    /// AdamW's decoupled decay factor 1 − lr·λ, applied to p first.
    shrink: Option<f32>,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    /// 1/√(1 − β₂ᵗ)
    inv_bias2_sqrt: f32,
    eps: f32,
    /// lr/(1 − β₁ᵗ)
    step_size: f32,
}

impl AdamConsts {
    pub(super) fn new(
        shrink: Option<f64>,
        beta1: f64,
        beta2: f64,
        eps: f64,
        bias2_sqrt: f64,
        step_size: f64,
    ) -> Self {
        Self {
            shrink: shrink.map(|s| s as f32),
            beta1: beta1 as f32,
            one_minus_beta1: (1.0 - beta1) as f32,
            beta2: beta2 as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            inv_bias2_sqrt: (1.0 / bias2_sqrt) as f32,
            eps: eps as f32,
            step_size: step_size as f32,
        }
    }
}

/// (new p, new m, new v), or `None` when the tensors are not contiguous f32 on the CPU of one
/// shape (the caller then takes the tensor-op path).
pub(super) fn adam(
    p: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    k: &AdamConsts,
) -> Result<Option<(Tensor, Tensor, Tensor)>> {
    let all = [p, g, m, v];
    if all.iter().any(|t| !t.device().is_cpu() || t.dtype() != DType::F32 || t.dims() != p.dims()) {
        return Ok(None);
    }
    let guards: Vec<_> = all.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices: Vec<&[f32]> = Vec::with_capacity(4);
    for (storage, layout) in &guards {
        let (Storage::Cpu(cpu), Some((start, end))) = (&**storage, layout.contiguous_offsets()) else {
            return Ok(None);
        };
        slices.push(&cpu.as_slice::<f32>()?[start..end]);
    }
    let n = slices[0].len();
    let (mut new_p, mut new_m, mut new_v) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    update(&mut new_p, &mut new_m, &mut new_v, slices[0], slices[1], slices[2], slices[3], k);
    let make = |data: Vec<f32>| Tensor::from_vec(data, p.shape(), p.device());
    Ok(Some((make(new_p)?, make(new_m)?, make(new_v)?)))
}

simd_fn! {
    /// The per-element update over preallocated slices, because LLVM vectorises that (sqrt and
    /// division included) but keeps a loop that `push`es into growing vectors scalar.
    fn update(
        new_p: &mut [f32],
        new_m: &mut [f32],
        new_v: &mut [f32],
        ps: &[f32],
        gs: &[f32],
        ms: &[f32],
        vs: &[f32],
        k: &AdamConsts,
    ) {
        let AdamConsts { shrink, beta1, one_minus_beta1, beta2, one_minus_beta2, inv_bias2_sqrt, eps, step_size } =
            *k;
        let (apply, shrink) = (shrink.is_some(), shrink.unwrap_or(1.0));
        let n = new_p.len();
        let (new_m, new_v, ps, gs, ms, vs) = (&mut new_m[..n], &mut new_v[..n], &ps[..n], &gs[..n], &ms[..n], &vs[..n]);
        for i in 0..n {
            let p = if apply { ps[i] * shrink + 0.0 } else { ps[i] };
            let g = gs[i];
            let m = (ms[i] * beta1 + 0.0) + (g * one_minus_beta1 + 0.0);
            let v = (vs[i] * beta2 + 0.0) + ((g * g) * one_minus_beta2 + 0.0);
            let denom = (v.sqrt() * inv_bias2_sqrt + 0.0) * 1.0 + eps;
            new_p[i] = p - ((m / denom) * step_size + 0.0);
            new_m[i] = m;
            new_v[i] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The fused pass against the tensor ops it replaces (`optim::adam_step`'s other path).
    #[test]
    fn matches_the_tensor_ops_bit_for_bit() -> Result<()> {
        let n = 4099;
        let data = |seed: u32, scale: f32| -> Result<Tensor> {
            let v: Vec<f32> = (0..n as u32)
                .map(|k| (k.wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 1000.0 - 1.0)
                .map(|x| x * scale)
                .collect();
            Tensor::from_vec(v, n, &Device::Cpu)
        };
        let (p, g, m, v) = (data(1, 1.0)?, data(2, 0.1)?, data(3, 0.01)?, data(4, 1e-3)?.abs()?);
        let (beta1, beta2, eps, lr): (f64, f64, f64, f64) = (0.9, 0.95, 1e-8, 3e-4);
        for (step, shrink) in [(1u64, None), (7, Some(1.0 - lr * 0.1)), (1000, Some(1.0))] {
            let t = step as f64;
            let (bc1, bc2_sqrt) = (1.0 - beta1.powf(t), (1.0 - beta2.powf(t)).sqrt());
            let k = AdamConsts::new(shrink, beta1, beta2, eps, bc2_sqrt, lr / bc1);
            let (fp, fm, fv) = adam(&p, &g, &m, &v, &k)?.expect("contiguous f32 on the CPU");
            let shrunk = match shrink {
                Some(s) => (&p * s)?,
                None => p.clone(),
            };
            let wm = ((&m * beta1)? + (&g * (1.0 - beta1))?)?;
            let wv = ((&v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let denom = ((wv.sqrt()? / bc2_sqrt)? + eps)?;
            let wp = (&shrunk - (wm.div(&denom)? * (lr / bc1))?)?;
            for (name, got, want) in [("p", fp, wp), ("m", fm, wm), ("v", fv, wv)] {
                assert_eq!(got.to_vec1::<f32>()?, want.to_vec1::<f32>()?, "{name} at step {step}");
            }
        }
        let f64_param = p.to_dtype(DType::F64)?;
        let k = AdamConsts::new(None, beta1, beta2, eps, 1.0, lr);
        assert!(adam(&f64_param, &g, &m, &v, &k)?.is_none(), "f64 takes the tensor-op path");
        Ok(())
    }
}
