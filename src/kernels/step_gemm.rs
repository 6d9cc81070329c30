//! The per-step recurrent product `dst (+)= A·B` with B packed once per sequence.
//!
//! Every step of a recurrent layer multiplies a thin (B, ·) block of states by the same weight
//! matrix: h_{t-1}·W_hhᵀ forward, ∂L/∂a_{t+1}·W_hh backward. The `gemm` crate would re-pack that
//! weight (64k values for an LSTM with H = 128) and pay its dispatch and edge-kernel overhead on
//! every one of those calls. Here the weight is laid out once per sequence in panels of
//! [`NR`] columns (row kk of a panel is B[kk, p·NR .. p·NR + NR], the last panel zero-padded), and
//! an AVX2 + FMA micro-kernel keeps an [`MR`] × [`NR`] block of the result in registers while it
//! walks k, broadcasting A's elements straight from their strided rows. On AVX-512 CPUs a second
//! micro-kernel takes three panels (one 16-lane register each) and 8 rows at a time. CPUs without
//! AVX2 + FMA take the `gemm` crate's path.

use super::gemm::{matmul, View, STEP};

/// Columns per panel: two 8-lane registers.
const NR: usize = 16;
/// Rows per micro-kernel block: 6 × 2 accumulators, 2 panel loads and a broadcast fit the 16
/// AVX2 registers.
const MR: usize = 6;

/// A right-hand operand (k, n), packed for [`matmul_packed`].
pub struct PackedB {
    k: usize,
    n: usize,
    /// ⌈n / NR⌉ panels of k × NR values (AVX2 + FMA CPUs).
    panels: Vec<f32>,
    /// The operand as a dense (k, n) copy, for the `gemm` path (other CPUs).
    plain: Vec<f32>,
}

fn packed_kernel_runs() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::math::has_avx2()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl PackedB {
    /// Packs the (k, n) matrix `bv` of `b`.
    pub fn new(b: &[f32], bv: View) -> Self {
        let mut packed = Self::zeroed(bv.rows, bv.cols);
        packed.set_rows(0, b, bv);
        packed
    }

    /// A (k, n) operand of zeros, to be filled a block of rows at a time with [`Self::set_rows`].
    pub fn zeroed(k: usize, n: usize) -> Self {
        if packed_kernel_runs() {
            Self { k, n, panels: vec![0f32; n.div_ceil(NR) * k * NR], plain: Vec::new() }
        } else {
            Self { k, n, panels: Vec::new(), plain: vec![0f32; k * n] }
        }
    }

    /// Overwrites rows `first..first + bv.rows` with the matrix `bv` of `b` (as many columns as
    /// the operand has), in place: for an operand that changes every step.
    pub fn set_rows(&mut self, first: usize, b: &[f32], bv: View) {
        let (k, n) = (self.k, self.n);
        assert!(first + bv.rows <= k && bv.cols == n, "packed rows {first}+{bv:?} of a ({k}, {n}) operand");
        assert!(bv.end() <= b.len(), "packed operand view out of bounds");
        let at = |kk: usize, j: usize| b[bv.offset + kk * bv.rs + j * bv.cs];
        if self.panels.is_empty() {
            for kk in 0..bv.rows {
                let row = &mut self.plain[(first + kk) * n..][..n];
                row.iter_mut().enumerate().for_each(|(j, v)| *v = at(kk, j));
            }
            return;
        }
        let panels = &mut self.panels;
        if bv.cs == 1 {
            // Rows of B are contiguous: copy NR-wide pieces of each.
            for kk in 0..bv.rows {
                let src = &b[bv.offset + kk * bv.rs..][..n];
                let (full, rest) = src.split_at(n - n % NR);
                for (p, piece) in full.chunks_exact(NR).enumerate() {
                    let dst: &mut [f32; NR] =
                        (&mut panels[(p * k + first + kk) * NR..][..NR]).try_into().unwrap();
                    *dst = piece.try_into().unwrap();
                }
                if !rest.is_empty() {
                    panels[((n / NR) * k + first + kk) * NR..][..rest.len()].copy_from_slice(rest);
                }
            }
        } else if bv.rs == 1 {
            // A transposed matrix: its columns are contiguous; scatter each into its panel.
            for j in 0..n {
                let src = &b[bv.offset + j * bv.cs..][..bv.rows];
                let (p, jj) = (j / NR, j % NR);
                let panel = &mut panels[(p * k + first) * NR..][..bv.rows * NR];
                for (kk, &v) in src.iter().enumerate() {
                    panel[kk * NR + jj] = v;
                }
            }
        } else {
            for p in 0..n.div_ceil(NR) {
                for kk in 0..bv.rows {
                    let row = &mut panels[(p * k + first + kk) * NR..][..NR.min(n - p * NR)];
                    row.iter_mut().enumerate().for_each(|(j, v)| *v = at(kk, p * NR + j));
                }
            }
        }
    }
}

/// `dst ← a·b'` (or `dst ← dst + a·b'` when `accumulate`) on one thread, where b' is the
/// leading (a.cols, dst.cols) block of `b`: the causal attention products use a prefix of the
/// keys. `a` may have any strides (a transposed view is read in place); `dst` has unit column
/// stride (rows of a state or gate buffer, as every caller's is).
///
/// Panics if the shapes disagree or a view reaches past its slice (a bug in the kernels, which
/// derive every view from validated sizes).
pub fn matmul_packed(dst: &mut [f32], d: View, accumulate: bool, a: &[f32], av: View, b: &PackedB) {
    assert!(
        d.rows == av.rows && d.cols <= b.n && av.cols <= b.k && d.cs == 1,
        "packed matmul shapes: dst {d:?}, a {av:?}, b ({}, {})",
        b.k,
        b.n
    );
    assert!(d.end() <= dst.len() && av.end() <= a.len(), "packed matmul view out of bounds");
    #[cfg(target_arch = "x86_64")]
    if !b.panels.is_empty() {
        // SAFETY: panels exist only when AVX2 and FMA were detected (and the AVX-512 kernel runs
        // only where that was detected too); the asserts above bound every element the kernels
        // touch (see `avx2::matmul`, `avx512::matmul`).
        unsafe {
            if super::math::has_avx512() {
                avx512::matmul(dst, d, accumulate, a, av, b);
            } else {
                avx2::matmul(dst, d, accumulate, a, av, b);
            }
        }
        return;
    }
    matmul(dst, d, accumulate, a, av, &b.plain, View::rows(0, av.cols, d.cols, b.n), STEP);
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{PackedB, View, MR, NR};
    use std::arch::x86_64::*;

    /// Safety: the CPU has AVX2 and FMA; `d` has unit column stride; `d` and `av` lie inside
    /// `dst` and `a` and agree in shape with a leading block of `b` (checked by the caller).
    /// Every pointer below is then in bounds: rows i < d.rows, columns j < d.cols of dst (a
    /// partial panel's other columns are never stored), elements (i, kk < av.cols) of A, and
    /// whole panels of `b.panels`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn matmul(dst: &mut [f32], d: View, accumulate: bool, a: &[f32], av: View, b: &PackedB) {
        // SAFETY: this function's contract (its doc comment) bounds every pointer formed here.
        unsafe {
            let (m, n, k) = (d.rows, d.cols, av.cols);
            for p in 0..n.div_ceil(NR) {
                let panel = b.panels.as_ptr().add(p * b.k * NR);
                let cols = NR.min(n - p * NR);
                let mut i = 0;
                while i < m {
                    let rows = MR.min(m - i);
                    let a_rows = a.as_ptr().add(av.offset + i * av.rs);
                    let d_rows = dst.as_mut_ptr().add(d.offset + i * d.rs + p * NR);
                    let (ars, acs) = (av.rs, av.cs);
                    match rows {
                        6 => block::<6>(a_rows, ars, acs, panel, k, d_rows, d.rs, cols, accumulate),
                        5 => block::<5>(a_rows, ars, acs, panel, k, d_rows, d.rs, cols, accumulate),
                        4 => block::<4>(a_rows, ars, acs, panel, k, d_rows, d.rs, cols, accumulate),
                        3 => block::<3>(a_rows, ars, acs, panel, k, d_rows, d.rs, cols, accumulate),
                        2 => block::<2>(a_rows, ars, acs, panel, k, d_rows, d.rs, cols, accumulate),
                        _ => block::<1>(a_rows, ars, acs, panel, k, d_rows, d.rs, cols, accumulate),
                    }
                    i += rows;
                }
            }
        }
    }

    /// R rows × one panel: R × 16 results in 2R registers over the whole k.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<const R: usize>(
        a: *const f32,
        a_rs: usize,
        a_cs: usize,
        panel: *const f32,
        k: usize,
        d: *mut f32,
        ldd: usize,
        cols: usize,
        accumulate: bool,
    ) {
        // SAFETY: the caller (`matmul`) passes pointers to whole rows of A, whole panels and a
        // destination block of `cols` valid columns, all in bounds; the target features are enabled.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for kk in 0..k {
                let b0 = _mm256_loadu_ps(panel.add(kk * NR));
                let b1 = _mm256_loadu_ps(panel.add(kk * NR + 8));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_broadcast_ss(&*a.add(r * a_rs + kk * a_cs));
                    acc[0] = _mm256_fmadd_ps(x, b0, acc[0]);
                    acc[1] = _mm256_fmadd_ps(x, b1, acc[1]);
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                let row = d.add(r * ldd);
                if cols == NR {
                    let (mut v0, mut v1) = (acc[0], acc[1]);
                    if accumulate {
                        v0 = _mm256_add_ps(_mm256_loadu_ps(row), v0);
                        v1 = _mm256_add_ps(_mm256_loadu_ps(row.add(8)), v1);
                    }
                    _mm256_storeu_ps(row, v0);
                    _mm256_storeu_ps(row.add(8), v1);
                } else {
                    let mut tmp = [0f32; NR];
                    _mm256_storeu_ps(tmp.as_mut_ptr(), acc[0]);
                    _mm256_storeu_ps(tmp.as_mut_ptr().add(8), acc[1]);
                    for (j, &v) in tmp.iter().enumerate().take(cols) {
                        let out = row.add(j);
                        *out = if accumulate { *out + v } else { v };
                    }
                }
            }
        }
    }
}

/// The AVX-512 micro-kernel: three panels (48 columns, one 16-lane register each) at a time, so
/// each broadcast of A feeds three FMAs, and [`avx512::MR`] rows, for 3·MR accumulators of the 32
/// registers. Same panels as the AVX2 kernel, and the same order of FMAs for every element of the
/// result, so the two give identical bits.
///
/// Three panels rather than two because the per-row address arithmetic shares ports with the
/// FMAs, and a wider block amortises it over more of them.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{PackedB, View, NR};
    use std::arch::x86_64::*;

    /// Rows per block: 8 × 3 accumulators. Per step of k that is 3 panel loads and 8 broadcasts
    /// for 24 FMAs, so the FMA ports, not the loads, set the pace.
    pub const MR: usize = 8;

    /// Safety: as for `avx2::matmul`, on a CPU with AVX-512F.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn matmul(dst: &mut [f32], d: View, accumulate: bool, a: &[f32], av: View, b: &PackedB) {
        // SAFETY: this function's contract (its doc comment) bounds every pointer formed here.
        unsafe {
            let (m, n, k) = (d.rows, d.cols, av.cols);
            let n_panels = n.div_ceil(NR);
            let mut p = 0;
            while p < n_panels {
                let width = (n_panels - p).min(3);
                let panel = b.panels.as_ptr().add(p * b.k * NR);
                let cols = (width * NR).min(n - p * NR);
                let mut i = 0;
                while i < m {
                    let rows = MR.min(m - i);
                    let a_rows = a.as_ptr().add(av.offset + i * av.rs);
                    let d_rows = dst.as_mut_ptr().add(d.offset + i * d.rs + p * NR);
                    let s = (av.rs, av.cs, panel, b.k * NR, k, d_rows, d.rs, cols, accumulate);
                    match (width, rows) {
                        (3, 8) => block::<8, 3>(a_rows, s),
                        (3, 7) => block::<7, 3>(a_rows, s),
                        (3, 6) => block::<6, 3>(a_rows, s),
                        (3, 5) => block::<5, 3>(a_rows, s),
                        (3, 4) => block::<4, 3>(a_rows, s),
                        (3, 3) => block::<3, 3>(a_rows, s),
                        (3, 2) => block::<2, 3>(a_rows, s),
                        (3, _) => block::<1, 3>(a_rows, s),
                        (2, 8) => block::<8, 2>(a_rows, s),
                        (2, 7) => block::<7, 2>(a_rows, s),
                        (2, 6) => block::<6, 2>(a_rows, s),
                        (2, 5) => block::<5, 2>(a_rows, s),
                        (2, 4) => block::<4, 2>(a_rows, s),
                        (2, 3) => block::<3, 2>(a_rows, s),
                        (2, 2) => block::<2, 2>(a_rows, s),
                        (2, _) => block::<1, 2>(a_rows, s),
                        (_, 8) => block::<8, 1>(a_rows, s),
                        (_, 7) => block::<7, 1>(a_rows, s),
                        (_, 6) => block::<6, 1>(a_rows, s),
                        (_, 5) => block::<5, 1>(a_rows, s),
                        (_, 4) => block::<4, 1>(a_rows, s),
                        (_, 3) => block::<3, 1>(a_rows, s),
                        (_, 2) => block::<2, 1>(a_rows, s),
                        _ => block::<1, 1>(a_rows, s),
                    }
                    i += rows;
                }
                p += width;
            }
        }
    }

    /// A's strides, the first panel, the distance between panels, k, the destination block, its
    /// row stride, its valid columns and the mode.
    type Shape = (usize, usize, *const f32, usize, usize, *mut f32, usize, usize, bool);

    /// R rows × W panels: R × 16W results in R·W registers over the whole k. Columns past `cols`
    /// (a partial last panel) are masked off, never loaded or stored.
    #[inline(always)]
    unsafe fn block<const R: usize, const W: usize>(a: *const f32, s: Shape) {
        // SAFETY: the caller (`matmul`) passes pointers to whole rows of A, whole panels and a
        // destination block of `cols` valid columns, all in bounds; the target features are enabled.
        unsafe {
            let (a_rs, a_cs, panel, panel_stride, k, d, ldd, cols, accumulate) = s;
            let mut acc = [[_mm512_setzero_ps(); W]; R];
            for kk in 0..k {
                let mut bv = [_mm512_setzero_ps(); W];
                for (w, bv) in bv.iter_mut().enumerate() {
                    *bv = _mm512_loadu_ps(panel.add(w * panel_stride + kk * NR));
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*a.add(r * a_rs + kk * a_cs));
                    for (acc, &bv) in acc.iter_mut().zip(&bv) {
                        *acc = _mm512_fmadd_ps(x, bv, *acc);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                for (w, &v) in acc.iter().enumerate() {
                    let out = d.add(r * ldd + w * NR);
                    let valid = cols.saturating_sub(w * NR).min(NR);
                    if valid == NR {
                        let v = if accumulate { _mm512_add_ps(_mm512_loadu_ps(out), v) } else { v };
                        _mm512_storeu_ps(out, v);
                    } else if valid > 0 {
                        let mask: __mmask16 = (1u32 << valid).wrapping_sub(1) as __mmask16;
                        let v =
                            if accumulate { _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), v) } else { v };
                        _mm512_mask_storeu_ps(out, mask, v);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|k| ((k as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    /// Every row-block and panel remainder, strided rows, a transposed operand, both modes.
    #[test]
    fn matches_the_gemm_path_for_every_remainder() {
        for (m, k, n) in [(1, 1, 1), (6, 16, 16), (7, 5, 17), (13, 33, 40), (32, 128, 512), (5, 64, 3)] {
            let (lda, ldd) = (k + 3, n + 5);
            let a = data(m * lda + 2, 1);
            let w = data(n * k, 2); // (n, k): used as its transpose, like W_hhᵀ
            let av = View::rows(2, m, k, lda);
            let bv = View::dense(0, n, k).t();
            let packed = PackedB::new(&w, bv);
            for accumulate in [false, true] {
                let init = data(m * ldd, 3);
                let (mut want, mut got) = (init.clone(), init.clone());
                let dv = View::rows(0, m, n, ldd);
                matmul(&mut want, dv, accumulate, &a, av, &w, bv, STEP);
                matmul_packed(&mut got, dv, accumulate, &a, av, &packed);
                for (idx, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "({m},{k},{n}) {accumulate} at {idx}: {g} vs {w}"
                    );
                }
            }
        }
    }

    /// A transposed left operand read in place, and a leading block of the packed operand.
    #[test]
    fn transposed_a_and_a_leading_block_of_b() {
        let (m, k, n, kb, nb) = (9, 21, 19, 40, 35);
        let a = data(k * m, 4); // a dense (k, m): used as its transpose
        let w = data(kb * nb, 5); // (kb, nb), of which (k, n) is used
        let av = View::dense(0, k, m).t();
        let packed = PackedB::new(&w, View::dense(0, kb, nb));
        let init = data(m * n, 6);
        let (mut want, mut got) = (init.clone(), init);
        let dv = View::dense(0, m, n);
        matmul(&mut want, dv, true, &a, av, &w, View::rows(0, k, n, nb), STEP);
        matmul_packed(&mut got, dv, true, &a, av, &packed);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * (1.0 + w.abs()), "{g} vs {w}");
        }
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_view_past_its_slice_is_refused() {
        let w = data(16, 1);
        let packed = PackedB::new(&w, View::dense(0, 4, 4));
        let a = vec![0f32; 10];
        let mut dst = vec![0f32; 8];
        matmul_packed(&mut dst, View::dense(0, 2, 4), false, &a, View::dense(4, 2, 4), &packed);
    }
}
