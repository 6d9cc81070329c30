//! A linear readout y_t = W h_t + b fused into a recurrent layer's time loops (see
//! `op::fused_layer_with_head`).
//!
//! A step's rows of y are formed (one packed product) as its h_t rows are written, and its rows
//! of ∂L/∂h_t (one product) and their ∂L/∂W and ∂L/∂b shares as BPTT reaches the step, while
//! the rows are in cache: as passes over the whole (B, T, H) result (read for y, a ∂L/∂h buffer
//! written, read again for ∂L/∂W) they would be three trips through DRAM.

use super::gemm::View;
use super::math::{dot_lanes, mad, simd_fn};
use super::step_gemm::{matmul_packed, PackedB};

/// The readout's weight (O, H) and bias (O), in PyTorch's layout, with W packed both ways for
/// the per-step products.
pub struct Readout<'a> {
    w: &'a [f32],
    b: &'a [f32],
    h: usize,
    /// Wᵀ (H, O): y_t = h_t·Wᵀ for a step's B rows at once.
    w_t: PackedB,
    /// W (O, H): ∂L/∂h_t = ∂L/∂y_t·W.
    w_v: PackedB,
}

impl<'a> Readout<'a> {
    /// From [W (O·H) | b (O)] for `o` outputs of `h` states.
    pub fn new(w_and_b: &'a [f32], o: usize, h: usize) -> Self {
        let (w, b) = w_and_b[..o * h + o].split_at(o * h);
        let w_t = PackedB::new(w, View::dense(0, o, h).t());
        let w_v = PackedB::new(w, View::dense(0, o, h));
        Self { w, b, h, w_t, w_v }
    }

    pub fn outputs(&self) -> usize {
        self.b.len()
    }

    /// Rows t = `step` of `y` (B, T, O) ← h_t·Wᵀ + b, from the step's states `h_step` (B, H).
    /// One packed product per step, for all B rows at once, rather than O dot products per row.
    /// Fewer outputs than [`DOT_OUTPUTS`] take a dot product per row instead: the product's
    /// 16-lane panel would be mostly padding.
    pub fn forward_step(&self, y: &mut [f32], h_step: &[f32], step: usize, (b, t): (usize, usize)) {
        let (o, h) = (self.outputs(), self.h);
        if o < DOT_OUTPUTS {
            for k in 0..b {
                dot_rows(&mut y[(k * t + step) * o..][..o], self.w, self.b, &h_step[k * h..][..h]);
            }
            return;
        }
        let rows = View::rows(step * o, b, o, t * o);
        matmul_packed(y, rows, false, h_step, View::dense(0, b, h), &self.w_t);
        for k in 0..b {
            add_bias(&mut y[(k * t + step) * o..][..o], self.b);
        }
    }
}

/// Below this many outputs the forward readout is a dot product per row (see `forward_step`).
const DOT_OUTPUTS: usize = 4;

simd_fn! {
    fn add_bias(y: &mut [f32], b: &[f32]) {
        y.iter_mut().zip(b).for_each(|(y, b)| *y += b);
    }
}

simd_fn! {
    /// y_j = W_j·h + b_j over the O outputs j.
    fn dot_rows(y: &mut [f32], w: &[f32], b: &[f32], h_row: &[f32]) {
        for ((y, w), b) in y.iter_mut().zip(w.chunks_exact(h_row.len())).zip(b) {
            *y = dot_lanes(w, h_row) + b;
        }
    }
}

/// Where a cell's backward pass takes the gradient arriving at each h_t from outside the layer.
pub enum OuterGrad<'a> {
    /// Rows of ∂L/∂h_t (B·T, H), batch-first.
    Rows(&'a [f32]),
    /// Formed from ∂L/∂y of a fused readout.
    Readout(ReadoutGrads<'a>),
}

impl OuterGrad<'_> {
    /// Starts step `step` (before its rows are asked for).
    pub fn begin_step(&mut self, step: usize) {
        if let Self::Readout(g) = self {
            g.begin_step(step);
        }
    }

    /// ∂L/∂h from outside the layer of sequence `k` at the step begun last, row `r` = k·T + t,
    /// whose h_t is `h_row`. Rows must be asked for once each.
    pub fn row(&mut self, k: usize, r: usize, h_row: &[f32]) -> &[f32] {
        match self {
            Self::Rows(rows) => &rows[r * h_row.len()..][..h_row.len()],
            Self::Readout(g) => g.row(k, r, h_row),
        }
    }

    /// [∂L/∂W (O·H) | ∂L/∂b (O)] of the readout, or nothing.
    pub fn head_grads(self) -> Vec<f32> {
        match self {
            Self::Rows(_) => Vec::new(),
            Self::Readout(g) => [g.dw, g.db].concat(),
        }
    }
}

/// A readout's backward over one shard of B sequences of T steps.
pub struct ReadoutGrads<'a> {
    readout: &'a Readout<'a>,
    /// ∂L/∂y (B, T, O).
    dy: &'a [f32],
    bt: (usize, usize),
    dw: Vec<f32>,
    db: Vec<f32>,
    /// (B, H): ∂L/∂h_t of the step begun last.
    dh: Vec<f32>,
}

impl<'a> ReadoutGrads<'a> {
    pub fn new(readout: &'a Readout<'a>, dy: &'a [f32], (b, t): (usize, usize)) -> Self {
        let (o, h) = (readout.outputs(), readout.h);
        Self { readout, dy, bt: (b, t), dw: vec![0f32; o * h], db: vec![0f32; o], dh: vec![0f32; b * h] }
    }

    /// The step's ∂L/∂h rows as one product (few outputs: row by row in [`Self::row`] instead).
    fn begin_step(&mut self, step: usize) {
        let ((b, t), o, h) = (self.bt, self.readout.outputs(), self.readout.h);
        if o >= DOT_OUTPUTS {
            let dy = View::rows(step * o, b, o, t * o);
            matmul_packed(&mut self.dh, View::dense(0, b, h), false, self.dy, dy, &self.readout.w_v);
        }
    }

    fn row(&mut self, k: usize, r: usize, h_row: &[f32]) -> &[f32] {
        let (o, h) = (self.readout.outputs(), self.readout.h);
        let (dy, dh) = (&self.dy[r * o..][..o], &mut self.dh[k * h..][..h]);
        let w = if o < DOT_OUTPUTS { self.readout.w } else { &[] };
        row_grads(dh, &mut self.dw, &mut self.db, dy, w, &h_row[..h]);
        dh
    }
}

simd_fn! {
    /// ∂L/∂W_j += dy_j·h and ∂L/∂b_j += dy_j over the O outputs j; with `w` (few outputs) also
    /// dh ← Σ_j dy_j·W_j.
    fn row_grads(dh: &mut [f32], dw: &mut [f32], db: &mut [f32], dy: &[f32], w: &[f32], h_row: &[f32]) {
        let h = h_row.len();
        if !w.is_empty() {
            dh.fill(0.0);
            for (&g, w) in dy.iter().zip(w.chunks_exact(h)) {
                dh.iter_mut().zip(w).for_each(|(d, w)| *d = mad::<FMA>(g, *w, *d));
            }
        }
        for ((&g, dw), db) in dy.iter().zip(dw.chunks_exact_mut(h)).zip(db.iter_mut()) {
            dw.iter_mut().zip(h_row).for_each(|(d, x)| *d = mad::<FMA>(g, *x, *d));
            *db += g;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_rows_match_the_naive_formulas() {
        for o in [1, 3, 6] {
            check_readout(o);
        }
    }

    fn check_readout(o: usize) {
        let (h, b, t) = (5, 2, 4);
        let wb: Vec<f32> = (0..o * h + o).map(|k| (k as f32 * 0.37).sin()).collect();
        let ro = Readout::new(&wb, o, h);
        let hs: Vec<f32> = (0..b * t * h).map(|k| (k as f32 * 0.91).cos()).collect(); // (B, T, H)
        let step_rows = |step: usize| -> Vec<f32> {
            (0..b).flat_map(|k| hs[(k * t + step) * h..][..h].to_vec()).collect()
        };
        let mut y = vec![f32::NAN; b * t * o];
        for step in 0..t {
            ro.forward_step(&mut y, &step_rows(step), step, (b, t));
        }
        for r in 0..b * t {
            for j in 0..o {
                let want: f32 = (0..h).map(|k| wb[j * h + k] * hs[r * h + k]).sum::<f32>() + wb[o * h + j];
                assert!((y[r * o + j] - want).abs() < 1e-5, "y[{r}, {j}] {} vs {want}", y[r * o + j]);
            }
        }
        let dy: Vec<f32> = (0..b * t * o).map(|k| (k % 7) as f32 - 3.0).collect();
        let mut g = OuterGrad::Readout(ReadoutGrads::new(&ro, &dy, (b, t)));
        for step in (0..t).rev() {
            g.begin_step(step);
            for k in 0..b {
                let r = k * t + step;
                let dh = g.row(k, r, &hs[r * h..][..h]).to_vec();
                for c in 0..h {
                    let want: f32 = (0..o).map(|j| dy[r * o + j] * wb[j * h + c]).sum();
                    assert!((dh[c] - want).abs() < 1e-5, "row {r} dh[{c}]");
                }
            }
        }
        let grads = g.head_grads();
        for j in 0..o {
            for c in 0..h {
                let want: f32 = (0..b * t).map(|r| dy[r * o + j] * hs[r * h + c]).sum();
                assert!((grads[j * h + c] - want).abs() < 1e-4, "dW[{j}, {c}]");
            }
            let want: f32 = (0..b * t).map(|r| dy[r * o + j]).sum();
            assert_eq!(grads[o * h + j], want, "db[{j}]");
        }
    }
}
