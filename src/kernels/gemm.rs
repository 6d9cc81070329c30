//! Bounds-checked strided matrix products on f32 slices, through the `gemm` crate.
//!
//! The kernels keep every buffer batch-first, (B, T, ·), like candle's tensors; the `gemm` crate
//! takes arbitrary row and column strides, so step t of such a buffer is read as a (B, ·) matrix
//! with row stride T·(row width), and a transposed weight is just swapped strides: nothing is
//! copied. [`View`] describes such a matrix and [`matmul`] checks that every element it touches
//! lies inside its slice before handing raw pointers to `gemm`.
//!
//! Threads: one for the recurrent kernels' products ([`STEP`], [`WEIGHT`]), because splitting a
//! per-step product (a few MFLOP) costs more in rayon wake-ups and joins than a second core
//! returns, the whole-sequence products run only once per layer, and one thread leaves the other
//! cores to the rest of the process or a second run.

use gemm::Parallelism;

/// Threads for the per-step products (see the module docs).
pub const STEP: Parallelism = Parallelism::None;
/// Threads for the whole-sequence products: input projection, weight gradients, ∂L/∂x.
pub const WEIGHT: Parallelism = Parallelism::None;
/// Threads for the GPT's products, thousands of rows deep: rayon's pool (`RAYON_NUM_THREADS`).
pub const LARGE: Parallelism = Parallelism::Rayon(0);

/// A strided matrix inside a slice: element (i, j) is at `offset + i·rs + j·cs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl View {
    /// A dense row-major (rows, cols) matrix starting at `offset`.
    pub fn dense(offset: usize, rows: usize, cols: usize) -> Self {
        Self { offset, rows, cols, rs: cols, cs: 1 }
    }

    /// `rows` rows of `cols` elements, consecutive rows `rs` apart.
    pub fn rows(offset: usize, rows: usize, cols: usize, rs: usize) -> Self {
        Self { offset, rows, cols, rs, cs: 1 }
    }

    /// The transpose, as a view of the same elements.
    pub fn t(self) -> Self {
        Self { offset: self.offset, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs }
    }

    /// One past the largest index touched, or `offset` for an empty matrix.
    pub(super) fn end(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            self.offset
        } else {
            self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs + 1
        }
    }
}

/// `dst ← a·b` (or `dst ← dst + a·b` when `accumulate`) on `par` threads.
///
/// Panics if the shapes disagree or a view reaches past its slice: the kernels derive every view
/// from sizes they validated, so either is a bug in them, never a user error.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    dst: &mut [f32],
    d: View,
    accumulate: bool,
    a: &[f32],
    av: View,
    b: &[f32],
    bv: View,
    par: Parallelism,
) {
    assert!(
        d.rows == av.rows && d.cols == bv.cols && av.cols == bv.rows,
        "matmul shapes: dst {d:?}, a {av:?}, b {bv:?}"
    );
    assert!(d.end() <= dst.len() && av.end() <= a.len() && bv.end() <= b.len(), "matmul view out of bounds");
    if d.rows == 0 || d.cols == 0 {
        return;
    }
    if av.cols == 0 {
        // An empty sum: gemm would leave dst alone, but the product is zero.
        if !accumulate {
            for i in 0..d.rows {
                for j in 0..d.cols {
                    dst[d.offset + i * d.rs + j * d.cs] = 0.0;
                }
            }
        }
        return;
    }
    let s = |v: usize| v as isize;
    // SAFETY: the asserts above put every element (i, j) of each view, offset + i·rs + j·cs with
    // i < rows and j < cols, inside its slice (strides and offsets are non-negative), and the
    // offsets are therefore in bounds too. `dst` is a unique borrow, so it cannot alias `a` or `b`.
    // gemm reads and writes only those elements and returns before the borrows end.
    unsafe {
        gemm::gemm(
            d.rows,
            d.cols,
            av.cols,
            dst.as_mut_ptr().add(d.offset),
            s(d.cs),
            s(d.rs),
            accumulate,
            a.as_ptr().add(av.offset),
            s(av.cs),
            s(av.rs),
            b.as_ptr().add(bv.offset),
            s(bv.cs),
            s(bv.rs),
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(av: View, a: &[f32], bv: View, b: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; av.rows * bv.cols];
        for i in 0..av.rows {
            for j in 0..bv.cols {
                for k in 0..av.cols {
                    out[i * bv.cols + j] +=
                        a[av.offset + i * av.rs + k * av.cs] * b[bv.offset + k * bv.rs + j * bv.cs];
                }
            }
        }
        out
    }

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|k| ((k as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn strided_and_transposed_views_multiply_like_the_naive_loop() {
        let a = data(200, 1);
        let b = data(300, 2);
        // a: (5, 7) rows 11 apart from offset 3; b: the transpose of a dense (4, 7) at offset 10.
        let av = View::rows(3, 5, 7, 11);
        let bv = View::dense(10, 4, 7).t();
        let want = naive(av, &a, bv, &b);
        let mut dst = vec![1f32; 20];
        matmul(&mut dst, View::dense(0, 5, 4), false, &a, av, &b, bv, STEP);
        for (g, w) in dst.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
        matmul(&mut dst, View::dense(0, 5, 4), true, &a, av, &b, bv, WEIGHT);
        for (g, w) in dst.iter().zip(&want) {
            assert!((g - 2.0 * w).abs() < 1e-5, "accumulate: {g} vs {}", 2.0 * w);
        }
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_view_past_its_slice_is_refused() {
        let a = vec![0f32; 10];
        let mut dst = vec![0f32; 4];
        matmul(
            &mut dst,
            View::dense(0, 2, 2),
            false,
            &a,
            View::dense(4, 2, 4),
            &a,
            View::dense(0, 4, 2),
            STEP,
        );
    }
}
