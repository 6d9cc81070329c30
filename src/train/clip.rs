//! Gradient clipping, with PyTorch's `clip_grad_norm_` / `clip_grad_value_` semantics.
//!
//! This crate studies gradients that vanish and explode over long sequences, so the norm must stay
//! meaningful at both extremes: squaring an f32 gradient of 1e-25 underflows to 0 and one of 1e20
//! overflows to inf. Each tensor is therefore scaled by its largest magnitude before squaring and
//! the pieces are combined in f64 on the host, which works on every device (Metal has no f64).

use candle_core::backprop::GradStore;
use candle_core::{bail, DType, Device, Result, Tensor, Var};

/// A scalar tensor's value on the host as f64, whatever its device and dtype.
fn host_f64(t: &Tensor) -> Result<f64> {
    t.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.to_scalar::<f64>()
}

/// `(max|g|, Σ(g/max|g|)²)` for one gradient, so that `‖g‖ = max · √sum` without overflow or
/// underflow. A NaN anywhere makes the sum NaN; an infinite entry makes the max infinite.
fn scaled_sum_sq(g: &Tensor) -> Result<(f64, f64)> {
    let g = g.detach();
    if g.elem_count() == 0 {
        return Ok((0.0, 0.0));
    }
    let max_t = g.abs()?.max_all()?;
    let max = host_f64(&max_t)?;
    if max == 0.0 || !max.is_finite() {
        // All zeros, inf, or NaN (which `max` may skip or return): the unscaled sum of squares
        // is then 0, inf or NaN, which is exactly what the norm must report.
        let sum = host_f64(&g.sqr()?.sum_all()?)?;
        return Ok(if sum == 0.0 { (0.0, 0.0) } else { (1.0, sum) });
    }
    // A true division by the tensor: the f32 reciprocal of a subnormal max would overflow.
    let sum = host_f64(&g.broadcast_div(&max_t)?.sqr()?.sum_all()?)?;
    Ok((max, sum))
}

/// The L2 norm of all gradients of `params` taken together, as if concatenated into one vector
/// (`torch.nn.utils.clip_grad_norm_`'s `total_norm` with `norm_type=2`). Parameters without a
/// gradient count as zero. NaN or inf in any gradient makes the result NaN or inf, so callers can
/// detect a blown-up step and skip it.
pub fn global_grad_norm(grads: &GradStore, params: &[Var]) -> Result<f64> {
    let mut parts = Vec::with_capacity(params.len());
    for var in params {
        if let Some(g) = grads.get(var.as_tensor()) {
            parts.push(scaled_sum_sq(g)?);
        }
    }
    // A second scaling by the largest per-tensor max keeps the f64 sum in range too.
    let big = parts.iter().map(|&(m, _)| m).fold(0.0, f64::max);
    if big == 0.0 {
        return Ok(0.0);
    }
    let total: f64 = parts.iter().map(|&(m, s)| (m / big) * (m / big) * s).sum();
    Ok(big * total.sqrt())
}

/// Rescales all gradients together so their global norm is at most `max_norm`, and returns the
/// norm *before* clipping (what training curves plot). As in PyTorch the factor is
/// `max_norm / (norm + 1e-6)`, applied only when it is below 1. A NaN norm leaves the gradients
/// as they are; check the returned value before stepping.
pub fn clip_grad_norm(grads: &mut GradStore, params: &[Var], max_norm: f64) -> Result<f64> {
    if max_norm.is_nan() || max_norm <= 0.0 {
        bail!("max_norm must be > 0, got {max_norm}");
    }
    let total = global_grad_norm(grads, params)?;
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        for var in params {
            if let Some(g) = grads.get(var.as_tensor()) {
                let clipped = (g.detach() * coef)?;
                grads.insert(var.as_tensor(), clipped);
            }
        }
    }
    Ok(total)
}

/// Clamps every gradient entry of `params` to `[-clip, clip]` (`clip_grad_value_`). NaN entries
/// stay NaN rather than being clamped to a bound, so a broken step is not disguised.
pub fn clip_grad_value(grads: &mut GradStore, params: &[Var], clip: f64) -> Result<()> {
    if clip.is_nan() || clip <= 0.0 {
        bail!("clip must be > 0, got {clip}");
    }
    for var in params {
        if let Some(g) = grads.get(var.as_tensor()) {
            let g = g.detach();
            let clamped = g.clamp(-clip, clip)?;
            // clamp is max-then-min, and whether those pass NaN through is up to each backend's
            // kernels; restore NaN explicitly (the one value not equal to itself).
            let nan = g.ne(&g)?;
            let clipped = nan.where_cond(&g, &clamped)?;
            grads.insert(var.as_tensor(), clipped);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(values: &[&[f32]]) -> Result<(GradStore, Vec<Var>)> {
        let mut grads = GradStore::default();
        let mut vars = Vec::new();
        for v in values {
            let var = Var::zeros(v.len(), DType::F32, &Device::Cpu)?;
            grads.insert(var.as_tensor(), Tensor::new(*v, &Device::Cpu)?);
            vars.push(var);
        }
        Ok((grads, vars))
    }

    fn grad(grads: &GradStore, var: &Var) -> Vec<f32> {
        grads.get(var.as_tensor()).unwrap().to_vec1::<f32>().unwrap()
    }

    #[test]
    fn global_norm_is_the_norm_of_the_concatenation() -> Result<()> {
        // ‖(3, 4, 12)‖ = √(9 + 16 + 144) = 13; a parameter without a gradient counts as zero.
        let (grads, mut vars) = setup(&[&[3.0, 4.0], &[12.0]])?;
        vars.push(Var::zeros(2, DType::F32, &Device::Cpu)?);
        let norm = global_grad_norm(&grads, &vars)?;
        assert!((norm - 13.0).abs() < 1e-9, "{norm}");
        Ok(())
    }

    #[test]
    fn global_norm_survives_vanishing_and_exploding_gradients() -> Result<()> {
        // Squares of these underflow/overflow in f32; the true norms are √2·1e-25 and 5e30.
        let (grads, vars) = setup(&[&[1e-25], &[1e-25]])?;
        let norm = global_grad_norm(&grads, &vars)?;
        assert!((norm / (2f64.sqrt() * 1e-25) - 1.0).abs() < 1e-6, "{norm}");
        // Subnormal: the f32 reciprocal of 1e-40 is inf, so this needs a true division.
        let (grads, vars) = setup(&[&[1e-40, 0.0]])?;
        let norm = global_grad_norm(&grads, &vars)?;
        assert!((norm / 1e-40 - 1.0).abs() < 1e-3, "{norm}");
        let (grads, vars) = setup(&[&[0.0, 0.0]])?;
        assert_eq!(global_grad_norm(&grads, &vars)?, 0.0);
        let (grads, vars) = setup(&[&[3e30], &[4e30]])?;
        let norm = global_grad_norm(&grads, &vars)?;
        assert!((norm / 5e30 - 1.0).abs() < 1e-6, "{norm}");
        Ok(())
    }

    #[test]
    fn global_norm_propagates_nan_and_inf() -> Result<()> {
        let (grads, vars) = setup(&[&[1.0, f32::NAN], &[2.0]])?;
        assert!(global_grad_norm(&grads, &vars)?.is_nan());
        let (grads, vars) = setup(&[&[f32::NAN]])?;
        assert!(global_grad_norm(&grads, &vars)?.is_nan());
        let (grads, vars) = setup(&[&[1.0, f32::INFINITY], &[2.0]])?;
        assert_eq!(global_grad_norm(&grads, &vars)?, f64::INFINITY);
        let (grads, vars) = setup(&[&[f32::INFINITY, f32::NAN]])?;
        assert!(global_grad_norm(&grads, &vars)?.is_nan());
        Ok(())
    }

    #[test]
    fn clip_grad_norm_returns_pre_clip_norm_and_rescales_to_max_norm() -> Result<()> {
        let (mut grads, vars) = setup(&[&[3.0, 4.0], &[12.0]])?;
        let pre = clip_grad_norm(&mut grads, &vars, 1.3)?;
        assert!((pre - 13.0).abs() < 1e-9, "{pre}");
        let post = global_grad_norm(&grads, &vars)?;
        assert!((post - 1.3).abs() < 1e-6, "{post}");
        // Direction is kept: every entry scaled by 1.3 / (13 + 1e-6).
        let coef = 1.3 / (13.0 + 1e-6);
        let a = grad(&grads, &vars[0]);
        assert!((a[0] as f64 - 3.0 * coef).abs() < 1e-6 && (a[1] as f64 - 4.0 * coef).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn clip_grad_norm_leaves_small_gradients_alone() -> Result<()> {
        let (mut grads, vars) = setup(&[&[0.3, 0.4]])?;
        let pre = clip_grad_norm(&mut grads, &vars, 1.0)?;
        assert!((pre - 0.5).abs() < 1e-7);
        assert_eq!(grad(&grads, &vars[0]), vec![0.3, 0.4]);
        assert!(clip_grad_norm(&mut grads, &vars, 0.0).is_err());
        // Just above the limit (factor 0.8) is clipped.
        clip_grad_norm(&mut grads, &vars, 0.4)?;
        assert!((global_grad_norm(&grads, &vars)? - 0.4).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn clip_grad_value_clamps_each_entry_and_keeps_nan() -> Result<()> {
        let (mut grads, vars) = setup(&[&[-3.0, -0.5, 0.0, 0.7, 2.0, f32::INFINITY, f32::NAN]])?;
        clip_grad_value(&mut grads, &vars, 1.0)?;
        let g = grad(&grads, &vars[0]);
        assert_eq!(&g[..6], &[-1.0, -0.5, 0.0, 0.7, 1.0, 1.0]);
        assert!(g[6].is_nan());
        assert!(clip_grad_value(&mut grads, &vars, -1.0).is_err());
        Ok(())
    }
}
