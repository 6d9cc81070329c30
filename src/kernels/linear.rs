//! A linear layer y = x·Wᵀ + b, optionally followed by GELU, as one autograd node.
//!
//! candle's `Linear` adds the bias with a broadcast whose backward is a strided reduction over
//! every row, and a separate GELU node keeps its own copy of the pre-activation. Here the bias
//! seeds the output before the product accumulates onto it, the bias gradient is a column sum,
//! and GELU runs in place on the product.

use super::gemm::{matmul, View, LARGE};
use super::math::{gelu_in_place, gelu_with_derivative};
use rayon::prelude::*;

/// Elements per task of the elementwise passes on rayon's pool: large enough that a task costs
/// far more than handing it to a thread.
const ELEMENTWISE_CHUNK: usize = 1 << 16;
use super::op::{cpu_slice, poisoned, storage_slice};
use super::unfilled;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use std::sync::Mutex;

/// What follows the affine map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    /// The exact GELU, x·Φ(x) (PyTorch's default, `approximate='none'`).
    Gelu,
}

struct LinearOp {
    act: Activation,
    /// (rows, in, out).
    dims: (usize, usize, usize),
    /// GELU'(x·Wᵀ + b), kept when GELU follows and a backward pass will run.
    deriv: Mutex<Vec<f32>>,
    save: bool,
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        match self.act {
            Activation::Identity => "gradscope-linear",
            Activation::Gelu => "gradscope-linear-gelu",
        }
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
        let (n, i, o) = self.dims;
        let x = &cpu_slice(s1, l1, "linear input")?[..n * i];
        let (w, b) = (cpu_slice(s2, l2, "linear weight")?, cpu_slice(s3, l3, "linear bias")?);
        let mut y = affine(x, w, b, (n, i, o));
        if self.act == Activation::Gelu {
            if self.save {
                *self.deriv.lock().map_err(poisoned)? = gelu_keeping_derivative(&mut y);
            } else {
                y.par_chunks_mut(ELEMENTWISE_CHUNK).for_each(gelu_in_place);
            }
        }
        let mut dims = l1.dims().to_vec();
        *dims.last_mut().expect("linear input has a last dimension") = o;
        Ok((CpuStorage::F32(y), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, i, o) = self.dims;
        let grad_res = grad_res.to_dtype(DType::F32)?.contiguous()?;
        let (g_st, g_l) = grad_res.storage_and_layout();
        let (x_st, x_l) = x.storage_and_layout();
        let (w_st, w_l) = w.storage_and_layout();
        let dy = storage_slice(&g_st, g_l, "the linear layer's output gradient")?;
        let xv = &storage_slice(&x_st, x_l, "linear input")?[..n * i];
        let wv = storage_slice(&w_st, w_l, "linear weight")?;
        let dpre: std::borrow::Cow<[f32]> = match self.act {
            Activation::Identity => dy.into(),
            Activation::Gelu => {
                // The forward pass's GELU'(pre), taken: a second backward through this node
                // (candle never makes one) would find it empty and fail below.
                let mut d = std::mem::take(&mut *self.deriv.lock().map_err(poisoned)?);
                if d.len() != dy.len() {
                    bail!("linear+GELU backward: the forward pass kept no derivative");
                }
                times_derivative(&mut d, dy);
                d.into()
            }
        };
        let (dx, dw, db) = affine_grads(&dpre, xv, wv, (n, i, o), [x.track_op(), w.track_op(), b.track_op()]);
        let wrap = |v: Option<Vec<f32>>, like: &Tensor| {
            v.map(|v| Tensor::from_vec(v, like.shape(), like.device())).transpose()
        };
        Ok((wrap(dx, x)?, wrap(dw, w)?, wrap(db, b)?))
    }
}

/// x·Wᵀ + b for x (n, i), W (o, i), b (o): (n, o), the bias seeding the product.
pub(super) fn affine(x: &[f32], w: &[f32], b: &[f32], (n, i, o): (usize, usize, usize)) -> Vec<f32> {
    if (1..=NARROW_OUT).contains(&o) {
        return narrow::affine(x, w, b, (n, i, o));
    }
    let mut y = unfilled(n * o);
    matmul(&mut y, View::dense(0, n, o), false, x, View::dense(0, n, i), w, View::dense(0, o, i).t(), LARGE);
    // acc + b: the same single rounding as seeding the product with the bias.
    y.par_chunks_mut(o.max(1) * 256).for_each(|rows| {
        rows.chunks_exact_mut(o).for_each(|r| r.iter_mut().zip(b).for_each(|(v, b)| *v += b))
    });
    y
}

/// GELU in place, returning GELU' of the input for the backward pass.
pub(super) fn gelu_keeping_derivative(y: &mut [f32]) -> Vec<f32> {
    let mut deriv = unfilled(y.len());
    y.par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(deriv.par_chunks_mut(ELEMENTWISE_CHUNK))
        .for_each(|(y, d)| gelu_with_derivative(y, d));
    deriv
}

/// `d ← d ⊙ dy`, element by element.
pub(super) fn times_derivative(d: &mut [f32], dy: &[f32]) {
    d.par_chunks_mut(ELEMENTWISE_CHUNK)
        .zip(dy.par_chunks(ELEMENTWISE_CHUNK))
        .for_each(|(d, dy)| d.iter_mut().zip(dy).for_each(|(d, g)| *d *= g));
}

/// The gradients of [`affine`] from ∂L/∂y (n, o): ∂L/∂x (n, i), ∂L/∂W (o, i), ∂L/∂b (o), each
/// only when `need` says so.
#[allow(clippy::type_complexity)]
pub(super) fn affine_grads(
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    (n, i, o): (usize, usize, usize),
    need: [bool; 3],
) -> (Option<Vec<f32>>, Option<Vec<f32>>, Option<Vec<f32>>) {
    let narrow = (1..=NARROW_OUT).contains(&o);
    let dx = need[0].then(|| {
        if narrow {
            return narrow::input_grad(dy, w, (n, i, o));
        }
        let mut dx = unfilled(n * i);
        matmul(
            &mut dx,
            View::dense(0, n, i),
            false,
            dy,
            View::dense(0, n, o),
            w,
            View::dense(0, o, i),
            LARGE,
        );
        dx
    });
    let dw = need[1].then(|| {
        if narrow {
            return narrow::weight_grad(dy, x, (n, i, o));
        }
        let mut dw = vec![0f32; o * i];
        matmul(
            &mut dw,
            View::dense(0, o, i),
            false,
            dy,
            View::dense(0, n, o).t(),
            x,
            View::dense(0, n, i),
            LARGE,
        );
        dw
    });
    let db = need[2].then(|| {
        // Column sums over row blocks in parallel, the partial sums added after.
        let partial = |rows: &[f32]| {
            let mut db = vec![0f32; o];
            rows.chunks_exact(o).for_each(|row| db.iter_mut().zip(row).for_each(|(d, g)| *d += g));
            db
        };
        let parts: Vec<Vec<f32>> = dy.par_chunks(o.max(1) * 1024).map(partial).collect();
        let mut db = vec![0f32; o];
        parts.iter().for_each(|p| db.iter_mut().zip(p).for_each(|(d, g)| *d += g));
        db
    });
    (dx, dw, db)
}

/// Outputs up to this many per row take [`narrow`]'s row loops instead of a GEMM.
const NARROW_OUT: usize = 16;

/// A linear map onto a few outputs per row (a regression or small-class readout, o = 1 for the
/// adding task) as row loops over rayon's pool: as GEMMs these are k = 1 or n = 1 products that
/// gemm's heuristics judge too small to split, so they would run on the calling thread (candle's
/// main thread) while the workers idle.
mod narrow {
    use crate::kernels::math::dot_lanes;
    use crate::kernels::zeros;
    use rayon::prelude::*;

    /// Rows per rayon task.
    const ROWS: usize = 1024;

    /// x (n, i)·Wᵀ + b: (n, o).
    pub(super) fn affine(x: &[f32], w: &[f32], b: &[f32], (n, i, o): (usize, usize, usize)) -> Vec<f32> {
        let mut y = vec![0f32; n * o];
        y.par_chunks_mut(ROWS * o).zip(x.par_chunks(ROWS * i.max(1))).for_each(|(y, x)| {
            for (y, x) in y.chunks_exact_mut(o).zip(x.chunks_exact(i.max(1))) {
                for (j, y) in y.iter_mut().enumerate() {
                    *y = dot_lanes(x, &w[j * i..(j + 1) * i]) + b[j];
                }
            }
        });
        y
    }

    /// ∂L/∂x = dy (n, o)·W (o, i): (n, i).
    pub(super) fn input_grad(dy: &[f32], w: &[f32], (n, i, o): (usize, usize, usize)) -> Vec<f32> {
        let mut dx = zeros(n * i);
        dx.par_chunks_mut(ROWS * i.max(1)).zip(dy.par_chunks(ROWS * o)).for_each(|(dx, dy)| {
            for (dx, dy) in dx.chunks_exact_mut(i.max(1)).zip(dy.chunks_exact(o)) {
                for (j, &g) in dy.iter().enumerate() {
                    dx.iter_mut().zip(&w[j * i..(j + 1) * i]).for_each(|(d, w)| *d += g * w);
                }
            }
        });
        dx
    }

    /// ∂L/∂W = dyᵀ (o, n)·x (n, i): (o, i), partial sums per block of rows added after.
    pub(super) fn weight_grad(dy: &[f32], x: &[f32], (_n, i, o): (usize, usize, usize)) -> Vec<f32> {
        let partial = |(dy, x): (&[f32], &[f32])| {
            let mut dw = vec![0f32; o * i];
            for (dy, x) in dy.chunks_exact(o).zip(x.chunks_exact(i.max(1))) {
                for (j, &g) in dy.iter().enumerate() {
                    dw[j * i..(j + 1) * i].iter_mut().zip(x).for_each(|(d, x)| *d += g * x);
                }
            }
            dw
        };
        let parts: Vec<Vec<f32>> =
            dy.par_chunks(ROWS * o).zip(x.par_chunks(ROWS * i.max(1))).map(partial).collect();
        let mut dw = vec![0f32; o * i];
        parts.iter().for_each(|p| dw.iter_mut().zip(p).for_each(|(d, g)| *d += g));
        dw
    }
}

/// `act(x·weightᵀ + bias)` for `x` (…, in), `weight` (out, in) (PyTorch's layout), `bias` (out),
/// f32 on the CPU.
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor, act: Activation) -> Result<Tensor> {
    let i = x.dim(candle_core::D::Minus1)?;
    let (o, wi) = weight.dims2()?;
    if wi != i || bias.dims() != [o] {
        bail!(
            "linear: x {:?}, weight {:?}, bias {:?} do not fit (…, in), (out, in), (out,)",
            x.dims(),
            weight.dims(),
            bias.dims()
        );
    }
    let rows = x.elem_count() / i.max(1);
    apply(x, weight, bias, act, (rows, i, o))
}

fn apply(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    act: Activation,
    dims: (usize, usize, usize),
) -> Result<Tensor> {
    for v in [x, weight, bias] {
        if !v.device().is_cpu() || v.dtype() != DType::F32 {
            bail!("linear kernel: needs f32 on the CPU, got {:?} on {:?}", v.dtype(), v.device());
        }
    }
    let save = x.track_op() || weight.track_op() || bias.track_op();
    let op = LinearOp { act, dims, deriv: Mutex::new(Vec::new()), save };
    let (x, weight, bias) = (x.contiguous()?, weight.contiguous()?, bias.contiguous()?);
    if save {
        x.apply_op3(&weight, &bias, op)
    } else {
        x.apply_op3_no_bwd(&weight, &bias, &op)
    }
}
