//! The recurrent weight gradient ∂L/∂W_hh = Σ_t ∂L/∂a_tᵀ h_{t-1}, summed inside the BPTT loop.
//!
//! One GEMM over all B·T rows after the loop would re-read the whole (B, T, G·H) gradient buffer
//! from DRAM, in a deep, thin shape (k = B·T, a (G·H, H) result) that the `gemm` crate runs well
//! below the packed micro-kernel's rate. Here each step's rows of ∂L/∂a_t are kept, while they
//! are in cache, in a slab of a few steps, and their h_{t-1} rows are packed beside them; every
//! `steps` steps the slab is summed into the result with the packed kernel. The slab exists
//! because one step alone (k = B) is too shallow for the kernel to run at its rate.
//!
//! The slab's newest rows are also what the next step's ∂L/∂h product reads, so the cells keep
//! no other copy of them.

use super::gemm::View;
use super::step_gemm::{matmul_packed, PackedB};

/// Rows per summed product: steps are staged until k = steps·B reaches this.
const MIN_DEPTH: usize = 128;

/// Σ_t ∂L/∂a_tᵀ h_{t-1} for a (G, H) recurrent weight over B sequences, a step at a time.
pub struct StagedWeightGrad {
    b: usize,
    g: usize,
    h: usize,
    /// Steps per summed product.
    steps: usize,
    /// Steps staged since the last sum.
    filled: usize,
    /// (steps·B, G): the staged steps' ∂L/∂a rows.
    rows: Vec<f32>,
    /// (steps·B, H): their h_{t-1}, packed.
    states: PackedB,
    /// (G, H): the sum so far.
    acc: Vec<f32>,
}

impl StagedWeightGrad {
    /// For B sequences, G gate rows and H state columns.
    pub fn new(b: usize, g: usize, h: usize) -> Self {
        let steps = MIN_DEPTH.div_ceil(b.max(1));
        Self {
            b,
            g,
            h,
            steps,
            filled: 0,
            rows: vec![0f32; steps * b * g],
            states: PackedB::zeroed(steps * b, h),
            acc: vec![0f32; g * h],
        }
    }

    /// Starts the next step: records its h_{t-1} (the (B, H) matrix `prev` of `src`) and returns
    /// its (B, G) rows of ∂L/∂a_t for the caller to fill. Sums the staged steps first when the
    /// slab is full.
    pub fn next_step(&mut self, src: &[f32], prev: View) -> &mut [f32] {
        if self.filled == self.steps {
            self.sum_staged();
        }
        let slot = self.filled;
        self.filled += 1;
        self.states.set_rows(slot * self.b, src, prev);
        &mut self.rows[slot * self.b * self.g..][..self.b * self.g]
    }

    /// The (B, G) rows of the step started last.
    pub fn last_rows(&self) -> &[f32] {
        assert!(self.filled > 0, "no step staged");
        &self.rows[(self.filled - 1) * self.b * self.g..][..self.b * self.g]
    }

    fn sum_staged(&mut self) {
        let k = self.filled * self.b;
        let (g, h) = (self.g, self.h);
        matmul_packed(
            &mut self.acc,
            View::dense(0, g, h),
            true,
            &self.rows,
            View::dense(0, k, g).t(),
            &self.states,
        );
        self.filled = 0;
    }

    /// Writes the whole sum into the (G, H) view `d` of `dst` (unit column stride).
    pub fn finish(mut self, dst: &mut [f32], d: View) {
        self.sum_staged();
        assert!(
            d.rows == self.g && d.cols == self.h && d.cs == 1 && d.end() <= dst.len(),
            "weight gradient view {d:?}"
        );
        for (r, row) in self.acc.chunks_exact(self.h).enumerate() {
            dst[d.offset + r * d.rs..][..self.h].copy_from_slice(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any number of steps (a partial last slab included) against the naive double sum, written
    /// into a strided block.
    #[test]
    fn sums_every_step_like_the_naive_loop() {
        let (b, g, h) = (3, 5, 4);
        let val = |k: usize, s: u32| {
            ((k as u32).wrapping_mul(2_654_435_761).wrapping_add(s) % 1000) as f32 / 500.0 - 1.0
        };
        for t in [1, 2, 43, 44, 45, 100] {
            let mut staged = StagedWeightGrad::new(b, g, h);
            let mut want = vec![0f32; g * h];
            for step in 0..t {
                let prev: Vec<f32> = (0..b * h).map(|k| val(k, 7 * step as u32)).collect();
                let rows = staged.next_step(&prev, View::dense(0, b, h));
                rows.iter_mut().enumerate().for_each(|(k, v)| *v = val(k, 3 + 11 * step as u32));
                assert_eq!(staged.last_rows()[1], val(1, 3 + 11 * step as u32));
                for bb in 0..b {
                    for i in 0..g {
                        for j in 0..h {
                            want[i * h + j] += val(bb * g + i, 3 + 11 * step as u32) * prev[bb * h + j];
                        }
                    }
                }
            }
            let ld = h + 3;
            let mut dst = vec![9f32; g * ld];
            staged.finish(&mut dst, View::rows(1, g, h, ld));
            for i in 0..g {
                assert_eq!(dst[i * ld], 9.0, "column before the block");
                for j in 0..h {
                    let (got, w) = (dst[1 + i * ld + j], want[i * h + j]);
                    assert!((got - w).abs() <= 1e-4 * (1.0 + w.abs()), "t {t} ({i}, {j}): {got} vs {w}");
                }
            }
        }
    }
}
