//! What every cell shares: the packed weight layout, the input projection of the whole sequence
//! and the gradients of W_ih, the biases and the input.
//!
//! The projection lives inside the op rather than arriving as a precomputed (B, T, G·H) tensor:
//! candle's autograd would accumulate a gradient of that size through each of matmul,
//! broadcast_add and reshape (a zeros tensor and an add per node, each a fresh full-size buffer).

use super::gemm::{matmul, View, WEIGHT};
use super::math::{all_finite, mad, simd_fn};
use super::{unfilled, Dims};

/// Column layout of the packed weight [W_ih | W_hh | b_ih | b_hh], shape (G·H, I + H + 2), or,
/// for a cell whose gates read only x_t, [W_ih | b_ih], shape (G·H, I + 1).
#[derive(Clone, Copy, Debug)]
pub struct Packed {
    /// G·H, the rows.
    pub gh: usize,
    pub i: usize,
    /// The columns of W_hh: H, or 0 without recurrent weights.
    pub h: usize,
}

impl Packed {
    pub fn new(d: Dims, gates: usize) -> Self {
        Self { gh: gates * d.h, i: d.i, h: d.h }
    }

    /// The layout of a cell without W_hh and b_hh.
    pub fn input_only(d: Dims, gates: usize) -> Self {
        Self { gh: gates * d.h, i: d.i, h: 0 }
    }

    /// The row length: I + H + 2, or I + 1 without recurrent weights.
    pub fn ld(&self) -> usize {
        self.i + self.h + self.biases()
    }

    fn biases(&self) -> usize {
        if self.h == 0 {
            1
        } else {
            2
        }
    }

    /// W_ih (G·H, I).
    pub fn w_ih(&self) -> View {
        View { offset: 0, rows: self.gh, cols: self.i, rs: self.ld(), cs: 1 }
    }

    /// Rows `first..first + rows` of W_hh, each H long.
    pub fn w_hh_rows(&self, first: usize, rows: usize) -> View {
        View { offset: first * self.ld() + self.i, rows, cols: self.h, rs: self.ld(), cs: 1 }
    }

    /// W_hh (G·H, H).
    pub fn w_hh(&self) -> View {
        self.w_hh_rows(0, self.gh)
    }

    /// Index of b_ih[row] (b_hh[row], where there is one, is the next).
    pub fn b_ih(&self, row: usize) -> usize {
        row * self.ld() + self.i + self.h
    }
}

/// Inputs this narrow or narrower (the adding problem's 2 features, the copy task's one-hot 10)
/// skip the GEMM: a product with k ≤ 16 is all edge work for the `gemm` crate, while a loop
/// over rows, vectorised along the G·H gates, streams the output once.
const NARROW_INPUT: usize = 16;

fn is_narrow(p: Packed) -> bool {
    (1..=NARROW_INPUT).contains(&p.i) && p.gh > 0
}

/// b_ih (+ b_hh when `with_b_hh`): (G·H,).
fn input_bias(p: Packed, w: &[f32], with_b_hh: bool) -> Vec<f32> {
    (0..p.gh).map(|r| w[p.b_ih(r)] + if with_b_hh { w[p.b_ih(r) + 1] } else { 0.0 }).collect()
}

/// The input projection of narrow inputs one row at a time, for a time loop that projects each
/// step's rows just before it uses them: a whole-sequence (B, T, G·H) projection is written once
/// and read back from DRAM a step at a time, and without a backward pass nothing else needs it.
/// Each row gets the same operations in the same order as [`project_inputs`] gives it, so the
/// values are identical.
pub struct NarrowProjection {
    w_t: Vec<f32>,
    bias: Vec<f32>,
    i: usize,
    /// Every weight is finite, so an input of exactly 0 adds 0 and its pass can be skipped.
    skip_zeros: bool,
}

impl NarrowProjection {
    /// None unless the input is narrow (see [`NARROW_INPUT`]).
    pub fn new(p: Packed, w: &[f32], with_b_hh: bool) -> Option<Self> {
        is_narrow(p).then(|| {
            let w_t: Vec<f32> = (0..p.i).flat_map(|i| (0..p.gh).map(move |r| w[r * p.ld() + i])).collect(); // (I, G·H)
            let skip_zeros = all_finite(&w_t);
            Self { w_t, bias: input_bias(p, w, with_b_hh), i: p.i, skip_zeros }
        })
    }

    /// `dst` (G·H) ← x_row W_ihᵀ + bias for one input row (I).
    pub fn row(&self, dst: &mut [f32], x_row: &[f32]) {
        narrow_projection(dst, x_row, &self.w_t, &self.bias, self.i, self.skip_zeros);
    }
}

/// The buffer a time loop turns into its pre-activations, and the projection it makes per step.
/// Wide inputs: the whole-sequence projection, (B·T, G·H), and `None`. Narrow inputs: an
/// unfilled buffer (the loop projects every row into it before use) and a
/// [`NarrowProjection`]; without `keep_all` (nothing will read the buffer after the step) it
/// holds one step's rows, (B, G·H).
pub fn pre_activations(
    d: Dims,
    p: Packed,
    x: &[f32],
    w: &[f32],
    with_b_hh: bool,
    keep_all: bool,
) -> (Vec<f32>, Option<NarrowProjection>) {
    match NarrowProjection::new(p, w, with_b_hh) {
        Some(proj) => (unfilled(if keep_all { d.b * d.t } else { d.b } * p.gh), Some(proj)),
        None => (project_inputs(d, p, x, w, with_b_hh), None),
    }
}

/// x W_ihᵀ + b_ih (+ b_hh when `with_b_hh`) for every (b, t): (B·T, G·H), one GEMM.
fn project_inputs(d: Dims, p: Packed, x: &[f32], w: &[f32], with_b_hh: bool) -> Vec<f32> {
    let rows = d.b * d.t;
    let mut out = Vec::with_capacity(rows * p.gh); // (B·T, G·H)
    if let Some(proj) = NarrowProjection::new(p, w, with_b_hh) {
        out.resize(rows * p.gh, 0.0);
        narrow_projection(&mut out, &x[..rows * p.i], &proj.w_t, &proj.bias, p.i, proj.skip_zeros);
        return out;
    }
    let bias = input_bias(p, w, with_b_hh);
    for _ in 0..rows {
        out.extend_from_slice(&bias);
    }
    matmul(&mut out, View::dense(0, rows, p.gh), true, x, View::dense(0, rows, p.i), w, p.w_ih().t(), WEIGHT);
    out
}

simd_fn! {
    /// `out[r] = bias + Σ_i x[r, i]·w_t[i]` for every row r (rows of G·H = bias.len(), i inputs).
    /// With `skip_zeros` (every weight finite) inputs of exactly 0 are skipped: one-hot and
    /// marker features are mostly zeros, and 0·w adds nothing unless w is Inf or NaN.
    fn narrow_projection(out: &mut [f32], x: &[f32], w_t: &[f32], bias: &[f32], i: usize, skip_zeros: bool) {
        let gh = bias.len();
        for (row, xr) in out.chunks_exact_mut(gh).zip(x.chunks_exact(i)) {
            // The first input used writes bias + x·w in one pass rather than after a copy of the
            // bias, which gives the same value from the same mad.
            let mut biased = false;
            for (&xv, wr) in xr.iter().zip(w_t.chunks_exact(gh)) {
                if skip_zeros && xv == 0.0 {
                    continue;
                }
                if biased {
                    row.iter_mut().zip(wr).for_each(|(o, w)| *o = mad::<FMA>(xv, *w, *o));
                } else {
                    row.iter_mut().zip(wr).zip(bias).for_each(|((o, w), b)| *o = mad::<FMA>(xv, *w, *b));
                    biased = true;
                }
            }
            if !biased {
                row.copy_from_slice(bias);
            }
        }
    }
}

simd_fn! {
    /// `acc[i'] += Σ_r x[r, i']·dxw[r]` for acc (i, G·H) and rows of G·H: ∂L/∂W_ihᵀ, narrow inputs.
    /// Zero inputs are skipped for rows of ∂L/∂a that are all finite (see `narrow_projection`).
    fn narrow_weight_grad(acc: &mut [f32], dxw: &[f32], x: &[f32], i: usize) {
        let gh = acc.len() / i;
        for (dr, xr) in dxw.chunks_exact(gh).zip(x.chunks_exact(i)) {
            let skip_zeros = xr.contains(&0.0) && all_finite(dr);
            for (&xv, ar) in xr.iter().zip(acc.chunks_exact_mut(gh)) {
                if skip_zeros && xv == 0.0 {
                    continue;
                }
                ar.iter_mut().zip(dr).for_each(|(a, d)| *a = mad::<FMA>(xv, *d, *a));
            }
        }
    }
}

/// Fills the W_ih block of the packed gradient `dw` with dxwᵀ x, and returns ∂L/∂x (B·T, I) when
/// `need_dx` (the first layer's input usually needs none).
fn input_grads(
    d: Dims,
    p: Packed,
    x: &[f32],
    w: &[f32],
    dxw: &[f32],
    dw: &mut [f32],
    need_dx: bool,
) -> Option<Vec<f32>> {
    let rows = d.b * d.t;
    let dxw_v = View::dense(0, rows, p.gh); // (B·T, G·H)
    if is_narrow(p) {
        let mut acc = vec![0f32; p.i * p.gh]; // (I, G·H)
        narrow_weight_grad(&mut acc, &dxw[..rows * p.gh], &x[..rows * p.i], p.i);
        set_w_ih_grad(dw, p, &acc);
    } else {
        matmul(dw, p.w_ih(), false, dxw, dxw_v.t(), x, View::dense(0, rows, p.i), WEIGHT);
    }
    need_dx.then(|| {
        let mut dx = vec![0f32; rows * p.i]; // (B·T, I)
        matmul(&mut dx, View::dense(0, rows, p.i), false, dxw, dxw_v, w, p.w_ih(), WEIGHT);
        dx
    })
}

/// Writes ∂L/∂W_ihᵀ, `acc` (I, G·H), into the packed gradient `dw`.
fn set_w_ih_grad(dw: &mut [f32], p: Packed, acc: &[f32]) {
    for (i, ar) in acc.chunks_exact(p.gh).enumerate() {
        ar.iter().enumerate().for_each(|(r, &v)| dw[r * p.ld() + i] = v);
    }
}

/// What the input side of a layer takes from each row of ∂L/∂a = ∂L/∂(x W_ihᵀ + b) as BPTT
/// produces it: the bias gradient, and either the row itself, kept in a (B·T, G·H) buffer for the
/// whole-sequence products ∂L/∂W_ih and ∂L/∂x, or, for a narrow input whose ∂L/∂x nothing needs
/// (the first layer's, usually), the row's share of ∂L/∂W_ih, summed while the row is in cache,
/// which saves the buffer's copy of every row and its DRAM pass after the loop.
pub struct InputSideGrads {
    p: Packed,
    need_dx: bool,
    /// (G·H,): ∂L/∂b_ih.
    db: Vec<f32>,
    /// (B·T, G·H): every row, when kept.
    rows: Option<Vec<f32>>,
    /// (I, G·H): ∂L/∂W_ihᵀ so far, when the rows are not kept.
    dw_ih: Vec<f32>,
}

impl InputSideGrads {
    pub fn new(d: Dims, p: Packed, need_dx: bool) -> Self {
        let keep = need_dx || !is_narrow(p);
        Self {
            p,
            need_dx,
            db: vec![0f32; p.gh],
            rows: keep.then(|| unfilled(d.b * d.t * p.gh)),
            dw_ih: if keep { Vec::new() } else { vec![0f32; p.i * p.gh] },
        }
    }

    /// Row `r` = b·T + t of ∂L/∂a (G·H), whose input row is `x_row` (I). Every row must be added
    /// once before [`Self::finish`].
    pub fn add(&mut self, r: usize, dxw: &[f32], x_row: &[f32]) {
        add_row(&mut self.db, dxw);
        let gh = self.p.gh;
        match &mut self.rows {
            Some(rows) => rows[r * gh..][..gh].copy_from_slice(dxw),
            None => narrow_weight_grad(&mut self.dw_ih, &dxw[..gh], &x_row[..self.p.i], self.p.i),
        }
    }

    /// Writes ∂L/∂W_ih into the packed gradient `dw`; returns ∂L/∂x (B·T, I) when it was asked
    /// for, and ∂L/∂b_ih.
    pub fn finish(self, d: Dims, x: &[f32], w: &[f32], dw: &mut [f32]) -> (Option<Vec<f32>>, Vec<f32>) {
        let dx = match &self.rows {
            Some(rows) => input_grads(d, self.p, x, w, rows, dw, self.need_dx),
            None => {
                set_w_ih_grad(dw, self.p, &self.dw_ih);
                None
            }
        };
        (dx, self.db)
    }
}

simd_fn! {
    /// `acc ← acc + row`: a bias gradient summed inside the time loop, while the step's rows of
    /// ∂L/∂a are in cache (a pass over the whole (B, T, G·H) buffer afterwards would read it back
    /// from DRAM).
    pub(super) fn add_row(acc: &mut [f32], row: &[f32]) {
        acc.iter_mut().zip(row).for_each(|(a, r)| *a += r);
    }
}

/// h_{t-1} of every sequence at step `step`, as a (B, H) view: rows of the layer's output `out`
/// (B, T, H), or `h0` (B, H) at step 0. The recurrent weight gradients are summed a step at a
/// time against it (see `lstm::backward`).
pub fn previous_states<'a>(d: Dims, out: &'a [f32], h0: &'a [f32], step: usize) -> (&'a [f32], View) {
    match step {
        0 => (h0, View::dense(0, d.b, d.h)),
        _ => (out, View::rows((step - 1) * d.h, d.b, d.h, d.t * d.h)),
    }
}

/// Writes ∂L/∂b_ih of a layout without b_hh into the packed gradient `dw`.
pub fn set_input_bias_grad(dw: &mut [f32], p: Packed, db_ih: &[f32]) {
    for (r, &g) in db_ih.iter().enumerate() {
        dw[p.b_ih(r)] = g;
    }
}

/// Writes the bias gradients into the packed gradient `dw`.
pub fn set_bias_grads(dw: &mut [f32], p: Packed, db_ih: &[f32], db_hh: &[f32]) {
    for (r, (&gi, &gh)) in db_ih.iter().zip(db_hh).enumerate() {
        dw[p.b_ih(r)] = gi;
        dw[p.b_ih(r) + 1] = gh;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Skipping zero inputs must not hide a non-finite weight or gradient: 0·Inf is NaN, as in
    /// a dense product.
    #[test]
    fn zero_inputs_still_meet_non_finite_weights_and_gradients() {
        let d = Dims { b: 1, t: 2, h: 3, i: 2 };
        let p = Packed::new(d, 1);
        let x = [1.0f32, 0.0, 0.0, 2.0]; // (B·T, I): a zero in each row
        let mut w = vec![0.5f32; p.gh * p.ld()];
        let dense = |w: &[f32]| {
            let proj = NarrowProjection::new(p, w, true).unwrap();
            let mut out = vec![0f32; 2 * p.gh];
            for r in 0..2 {
                proj.row(&mut out[r * p.gh..][..p.gh], &x[r * 2..][..2]);
            }
            out
        };
        // Finite weights: the skip is exact (row 0 = 0.5·1 + biases, row 1 = 0.5·2 + biases).
        assert_eq!(dense(&w), vec![1.5, 1.5, 1.5, 2.0, 2.0, 2.0]);
        w[1] = f32::INFINITY; // W_ih[0, 1], met by row 0's zero input
        let out = dense(&w);
        assert!(out[0].is_nan() && out[3].is_infinite(), "{out:?}");

        let mut dw = vec![0f32; p.gh * p.ld()];
        let mut dxw = vec![1.0f32; 2 * p.gh];
        dxw[0] = f32::NAN; // row 0's gradient meets its zero input in column 1
        input_grads(d, p, &x, &w, &dxw, &mut dw, false);
        assert!(dw[1].is_nan(), "∂L/∂W_ih[0, 1] = {}", dw[1]);
        assert_eq!(dw[p.ld() + 1], 2.0, "∂L/∂W_ih[1, 1]");
        // The same, summed a row at a time during BPTT (backward order).
        let mut dw = vec![0f32; p.gh * p.ld()];
        let mut side = InputSideGrads::new(d, p, false);
        for r in [1, 0] {
            side.add(r, &dxw[r * p.gh..][..p.gh], &x[r * 2..][..2]);
        }
        let (dx, db) = side.finish(d, &x, &w, &mut dw);
        assert!(dx.is_none() && db[0].is_nan() && db[1] == 2.0, "{db:?}");
        assert!(dw[1].is_nan(), "∂L/∂W_ih[0, 1] = {}", dw[1]);
        assert_eq!(dw[p.ld() + 1], 2.0, "∂L/∂W_ih[1, 1]");
    }
}
