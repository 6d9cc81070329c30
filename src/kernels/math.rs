//! Fast f32 `exp`, `sigmoid` and `tanh` for the gate loops.
//!
//! glibc's scalar `tanhf`/`expf` cost ~25 ns per element here and cannot be vectorised, which
//! would make the elementwise gate math cost as much as the recurrent GEMMs. These versions are
//! branch-free (the clamps compile to min/max, the rounding is the 1.5·2²³ trick rather than
//! `round()`, which plain SSE2 lacks), so LLVM vectorises loops over slices that call them on
//! baseline x86-64. Accuracy: ~1e-7 relative for `exp` and `sigmoid`, ≤ ~4e-7 for `tanh`
//! (see the tests). NaN propagates, so a diverging run is not hidden.
//!
//! Each takes `const FMA: bool`: the AVX2 and AVX-512 tiers of [`simd_fn`] and [`with_simd`]
//! evaluate the polynomials with fused multiply-adds (one rounding, half the instructions: on the
//! 2-core Zen 1 this was measured on, `exp` ran 1.3×, `sigmoid` 1.3× and the GELU 1.2× faster),
//! the baseline tier with separate products and sums (an `f32::mul_add` there would be a libm
//! call per element). The tiers therefore round slightly differently; each is as accurate.

/// The widest instruction set the kernels use: 2 for AVX-512, 1 for AVX2 + FMA, 0 for baseline
/// SSE2. What the CPU has, unless `GRADSCOPE_SIMD=avx2` or `=sse2` asks for less (read once): the
/// narrower paths are what other CPUs run, and a test compares them with the widest.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn simd_level() -> u8 {
    static LEVEL: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        let avx2 = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
        let cpu = match (avx2, std::arch::is_x86_feature_detected!("avx512f")) {
            (true, true) => 2,
            (true, false) => 1,
            _ => 0,
        };
        match std::env::var("GRADSCOPE_SIMD").as_deref() {
            Ok("sse2") => 0,
            Ok("avx2") => cpu.min(1),
            _ => cpu,
        }
    })
}

/// Whether the AVX-512 versions of the loops below run. On the AMD Zen 4 development machine
/// AVX-512's 16 lanes and 32 registers ran the GELU 1.9× faster than AVX2 (the FP units are as
/// wide, but the polynomial chains need half the instructions and no constant reloads).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn has_avx512() -> bool {
    simd_level() >= 2
}

/// Whether the AVX2 + FMA versions run (the loops and `step_gemm`'s micro-kernel).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn has_avx2() -> bool {
    simd_level() >= 1
}

/// Runs a loop body compiled three times: for AVX-512 (16 lanes), AVX2 + FMA (8 lanes), each
/// chosen at run time when the CPU has them, and baseline x86-64 (SSE2, 4 lanes). The binary
/// stays portable. The body is generic over `const FMA: bool` (see the module docs): true in the
/// first two tiers, false in the baseline one.
macro_rules! with_simd {
    ($body:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn widest(f: impl FnOnce()) {
                f()
            }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn wide(f: impl FnOnce()) {
                f()
            }
            if $crate::kernels::math::has_avx512() {
                // SAFETY: the features `widest` is compiled for were just detected on this CPU.
                unsafe { widest(|| $body::<true>($($arg),*)) }
            } else if $crate::kernels::math::has_avx2() {
                // SAFETY: as above, for `wide`.
                unsafe { wide(|| $body::<true>($($arg),*)) }
            } else {
                $body::<false>($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        $body::<{ $crate::kernels::math::NATIVE_FMA }>($($arg),*)
    }};
}
pub(crate) use with_simd;

/// Defines a non-inlined function compiled like [`with_simd`]'s body (AVX-512, AVX2 + FMA,
/// baseline), dispatched at run time; the body sees `FMA` as [`with_simd`]'s does. A function of its own, with plain slice parameters,
/// rather than a closure: `&mut` parameters of a non-inlined function are known not to alias,
/// which is what lets LLVM vectorise the gate loops (inlined over reborrowed slices they stayed
/// scalar).
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        #[inline(never)]
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body<const FMA: bool>($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn widest($($arg: $ty),*) {
                    body::<true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn wide($($arg: $ty),*) {
                    body::<true>($($arg),*)
                }
                if $crate::kernels::math::has_avx512() {
                    // SAFETY: the features `widest` is compiled for were just detected on this CPU.
                    return unsafe { widest($($arg),*) };
                }
                if $crate::kernels::math::has_avx2() {
                    // SAFETY: as above, for `wide`.
                    return unsafe { wide($($arg),*) };
                }
                body::<false>($($arg),*)
            }
            #[cfg(not(target_arch = "x86_64"))]
            body::<{ $crate::kernels::math::NATIVE_FMA }>($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

/// Lanes of the reductions below: independent partial results that the vectoriser keeps in
/// registers (a single running f32 accumulator is a serial dependency chain LLVM must not reorder).
const LANES: usize = 16;

/// Σ v, in [`LANES`] interleaved partial sums.
#[inline(always)]
pub fn sum_lanes(v: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Σ a·b, in [`LANES`] interleaved partial sums.
#[inline(always)]
pub fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let full = n - n % LANES;
    for (ca, cb) in a[..full].chunks_exact(LANES).zip(b[..full].chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] += ca[l] * cb[l];
        }
    }
    let tail: f32 = a[full..].iter().zip(&b[full..]).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// max v (−∞ for an empty slice); NaNs are skipped, as `f32::max` does.
#[inline(always)]
pub fn max_lanes(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    for c in chunks {
        for l in 0..LANES {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    acc.iter().fold(tail, |m, &x| m.max(x))
}

/// Whether no element is Inf or NaN: x·0 is ±0 for finite x and NaN otherwise, summed in
/// [`LANES`] lanes so the check vectorises.
#[inline(always)]
pub fn all_finite(v: &[f32]) -> bool {
    let mut acc = [0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(0f32, |a, &x| a + x * 0.0);
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l] * 0.0;
        }
    }
    acc.iter().sum::<f32>() + tail == 0.0
}

/// ln 2 split in a part exactly representable with few bits and a remainder (Cody–Waite), so
/// x − n·ln2 is exact for the |n| ≤ 127 that survive the clamp.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding then subtracting 1.5·2²³ rounds to the nearest integer in round-to-nearest mode.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// exp(x) for x above this would need 2ⁿ with n ≥ 128 (overflow); below the low one, n ≤ −127
/// (subnormal scale). Clamping keeps 2ⁿ a normal float: exp saturates at ~1.6e38 and ~1.6e-38.
const EXP_HI: f32 = 88.0;
const EXP_LO: f32 = -87.0;
/// Beyond this |x| the rational tanh below leaves its fitted range; from [`TANH_ONE`] on, tanh
/// rounds to ±1 in f32 and is returned as such.
const TANH_CLAMP: f32 = 7.905_311;
const TANH_ONE: f32 = 9.0;

/// Whether `f32::mul_add` is a single instruction on every CPU of this (non-x86) target: the
/// baseline of the kernels' tiers there (aarch64 always has FMA).
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const NATIVE_FMA: bool = cfg!(target_feature = "fma") || cfg!(target_arch = "aarch64");

/// a·b + c: fused (one rounding) when `FMA`, else a product and a sum.
#[inline(always)]
pub fn mad<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// e^x, relative error ~1e-7 on [−87, 88]; saturates outside; NaN in, NaN out.
#[inline(always)]
pub fn exp<const FMA: bool>(x: f32) -> f32 {
    // `if` forms (not f32::max/min) keep a NaN input: the comparison is false and x passes through.
    let x = if x > EXP_HI { EXP_HI } else { x };
    let x = if x < EXP_LO { EXP_LO } else { x };
    let t = mad::<FMA>(x, std::f32::consts::LOG2_E, ROUND_MAGIC);
    let n = t - ROUND_MAGIC;
    let r = mad::<FMA>(-n, LN2_LO, mad::<FMA>(-n, LN2_HI, x)); // |r| ≤ ln2 / 2

    // Cephes' minimax polynomial for e^r on [−ln2/2, ln2/2].
    let mut p = 1.987_569_2e-4f32;
    p = mad::<FMA>(p, r, 1.398_199_9e-3);
    p = mad::<FMA>(p, r, 8.333_452e-3);
    p = mad::<FMA>(p, r, 4.166_579_6e-2);
    p = mad::<FMA>(p, r, 1.666_666_5e-1);
    p = mad::<FMA>(p, r, 0.5);
    let er = mad::<FMA>(p * r, r, r + 1.0);
    // The low mantissa bits of t hold n (two's complement offset by the magic's mantissa).
    let n_int = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let scale = f32::from_bits((n_int.wrapping_add(127) as u32) << 23);
    er * scale
}

/// 1 / (1 + e^{−x}); exact limits 0 and 1 are approached without NaN or Inf.
#[inline(always)]
pub fn sigmoid<const FMA: bool>(x: f32) -> f32 {
    1.0 / (1.0 + exp::<FMA>(-x))
}

/// tanh(x) with relative error ≤ ~4e-7; ±1 for |x| ≥ 9, where tanh rounds to ±1.
///
/// A rational minimax form x·P(x²)/Q(x²) on [−7.9, 7.9] (the coefficients of Eigen's
/// `ptanh_float`): no exp and no cancellation near 0, ~45% cheaper than (1 − e^{−2|x|})/(1 + e^{−2|x|})
/// with a Taylor series for small |x|, which it replaces.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the published coefficients, verbatim
pub fn tanh<const FMA: bool>(x: f32) -> f32 {
    let a = x.abs();
    let c = if x > TANH_CLAMP { TANH_CLAMP } else { x };
    let c = if c < -TANH_CLAMP { -TANH_CLAMP } else { c };
    let x2 = c * c;
    let mut p = -2.760_768_5e-16f32;
    p = mad::<FMA>(p, x2, 2.000_187_9e-13);
    p = mad::<FMA>(p, x2, -8.604_671_5e-11);
    p = mad::<FMA>(p, x2, 5.122_297e-8);
    p = mad::<FMA>(p, x2, 1.485_722_4e-5);
    p = mad::<FMA>(p, x2, 6.372_619_3e-4);
    p = mad::<FMA>(p, x2, 4.893_524_6e-3);
    let mut q = 1.198_258_4e-6f32;
    q = mad::<FMA>(q, x2, 1.185_347_1e-4);
    q = mad::<FMA>(q, x2, 2.268_434_6e-3);
    q = mad::<FMA>(q, x2, 4.893_525e-3);
    let y = c * p / q;
    if a >= TANH_ONE {
        1f32.copysign(x)
    } else {
        y
    }
}

/// Φ(x), the standard normal CDF, with a relative error ~2e-7 in both tails (so x·Φ(x), the GELU,
/// stays accurate for very negative x too). Branch-free, like [`exp`], so loops over it vectorise;
/// libm's scalar `erff` cost as much as the GELU layer's GEMMs.
///
/// Numerical Recipes' `erfcc` (a Chebyshev fit, fractional error < 1.2e-7 for z ≥ 0):
/// erfc(z) = t·exp(−z² + P(t)), t = 1/(1 + z/2); Φ(x) = erfc(|x|/√2)/2, reflected for x > 0.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the published coefficients, verbatim
pub fn normal_cdf<const FMA: bool>(x: f32) -> f32 {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / mad::<FMA>(0.5, z, 1.0);
    let p = 0.170_872_77f32;
    let p = mad::<FMA>(p, t, -0.822_152_23);
    let p = mad::<FMA>(p, t, 1.488_515_87);
    let p = mad::<FMA>(p, t, -1.135_203_98);
    let p = mad::<FMA>(p, t, 0.278_868_07);
    let p = mad::<FMA>(p, t, -0.186_288_06);
    let p = mad::<FMA>(p, t, 0.096_784_18);
    let p = mad::<FMA>(p, t, 0.374_091_96);
    let p = mad::<FMA>(p, t, 1.000_023_68);
    let p = mad::<FMA>(p, t, -1.265_512_23);
    let half_erfc = 0.5 * t * exp::<FMA>(mad::<FMA>(-0.5 * x, x, p)); // z² = x²/2, with one rounding fewer
    if x > 0.0 {
        1.0 - half_erfc
    } else {
        half_erfc
    }
}

/// φ(x) = e^{−x²/2}/√(2π), the standard normal density.
#[inline(always)]
pub fn normal_pdf<const FMA: bool>(x: f32) -> f32 {
    0.398_942_3 * exp::<FMA>(-0.5 * x * x)
}

/// `v ← v·Φ(v)`: the exact GELU, over a slice.
pub fn gelu_in_place(v: &mut [f32]) {
    with_simd!(gelu_body(v))
}

/// `v ← v·Φ(v)` and `deriv ← GELU'(v)` = Φ(v) + v·φ(v), element by element: a forward pass that
/// a backward pass follows keeps the derivative rather than the pre-activation, so the backward
/// pass is one product and no copy of the pre-activation is made.
pub fn gelu_with_derivative(v: &mut [f32], deriv: &mut [f32]) {
    with_simd!(gelu_with_derivative_body(v, deriv))
}

#[inline(always)]
fn gelu_body<const FMA: bool>(v: &mut [f32]) {
    for x in v.iter_mut() {
        *x *= normal_cdf::<FMA>(*x);
    }
}

#[inline(always)]
fn gelu_with_derivative_body<const FMA: bool>(v: &mut [f32], deriv: &mut [f32]) {
    let n = v.len().min(deriv.len());
    let (v, deriv) = (&mut v[..n], &mut deriv[..n]);
    for i in 0..n {
        let x = v[i];
        let cdf = normal_cdf::<FMA>(x);
        deriv[i] = mad::<FMA>(x, normal_pdf::<FMA>(x), cdf);
        v[i] = x * cdf;
    }
}

/// `v ← sigmoid(v)` over a slice (a separate function keeps the loop small enough to vectorise).
#[inline]
pub fn sigmoid_in_place<const FMA: bool>(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = sigmoid::<FMA>(*x));
}

/// `v ← tanh(v)` over a slice.
#[inline]
pub fn tanh_in_place<const FMA: bool>(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = tanh::<FMA>(*x));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error against f64, with an absolute floor for values that are ~0 in f32 terms.
    fn worst(f: impl Fn(f32) -> f32, reference: impl Fn(f64) -> f64, lo: f32, hi: f32) -> (f64, f32) {
        let n = 2_000_000;
        let mut worst = (0.0f64, 0.0f32);
        for k in 0..=n {
            let x = lo + (hi - lo) * (k as f32 / n as f32);
            let (got, want) = (f(x) as f64, reference(x as f64));
            assert!(got.is_finite(), "f({x}) = {got}");
            let err = (got - want).abs() / want.abs().max(1e-30);
            if err > worst.0 {
                worst = (err, x);
            }
        }
        worst
    }

    #[test]
    fn exp_is_accurate_on_its_whole_range() {
        exp_is_accurate_on_its_whole_range_in::<false>();
        exp_is_accurate_on_its_whole_range_in::<true>();
    }

    fn exp_is_accurate_on_its_whole_range_in<const F: bool>() {
        let (err, at) = worst(exp::<F>, f64::exp, -87.0, 88.0);
        assert!(err < 2e-7, "exp: relative error {err:e} at {at}, fused {F}");
        let (err, at) = worst(exp::<F>, f64::exp, -2.0, 2.0);
        assert!(err < 2e-7, "exp: relative error {err:e} at {at}, fused {F}");
    }

    #[test]
    fn sigmoid_is_accurate_and_saturates() {
        sigmoid_is_accurate_and_saturates_in::<false>();
        sigmoid_is_accurate_and_saturates_in::<true>();
    }

    fn sigmoid_is_accurate_and_saturates_in<const F: bool>() {
        let (err, at) = worst(sigmoid::<F>, |x| 1.0 / (1.0 + (-x).exp()), -80.0, 80.0);
        assert!(err < 3e-7, "sigmoid: relative error {err:e} at {at}, fused {F}");
        for x in [100.0f32, 1e4, 1e30, f32::MAX, f32::INFINITY] {
            assert_eq!(sigmoid::<F>(x), 1.0, "sigmoid({x}), fused {F}");
            let s = sigmoid::<F>(-x);
            assert!((0.0..1e-37).contains(&s), "sigmoid(-{x}) = {s}, fused {F}");
        }
    }

    #[test]
    fn tanh_is_accurate_near_zero_and_saturates() {
        tanh_is_accurate_near_zero_and_saturates_in::<false>();
        tanh_is_accurate_near_zero_and_saturates_in::<true>();
    }

    fn tanh_is_accurate_near_zero_and_saturates_in<const F: bool>() {
        let (err, at) = worst(tanh::<F>, f64::tanh, -12.0, 12.0);
        assert!(err < 5e-7, "tanh: relative error {err:e} at {at}, fused {F}");
        let (err, at) = worst(tanh::<F>, f64::tanh, -0.3, 0.3);
        assert!(err < 5e-7, "tanh near 0: relative error {err:e} at {at}, fused {F}");
        let (err, at) = worst(tanh::<F>, f64::tanh, 1e-30, 1e-3);
        assert!(err < 5e-7, "tanh of tiny x: relative error {err:e} at {at}, fused {F}");
        for x in [10.0f32, 50.0, 100.0, 1e4, f32::MAX, f32::INFINITY] {
            assert_eq!(tanh::<F>(x), 1.0, "tanh({x}), fused {F}");
            assert_eq!(tanh::<F>(-x), -1.0, "tanh(-{x}), fused {F}");
        }
        assert_eq!(tanh::<F>(0.0), 0.0);
        assert!(tanh::<F>(-0.0).is_sign_negative());
    }

    #[test]
    fn normal_cdf_is_accurate_in_both_tails() {
        normal_cdf_is_accurate_in_both_tails_in::<false>();
        normal_cdf_is_accurate_in_both_tails_in::<true>();
    }

    fn normal_cdf_is_accurate_in_both_tails_in<const F: bool>() {
        // Φ(x) = erfc(−x/√2)/2, evaluated in f64.
        let phi = |x: f64| 0.5 * libm::erfc(-x * std::f64::consts::FRAC_1_SQRT_2);
        let (err, at) = worst(normal_cdf::<F>, phi, -2.0, 6.0);
        assert!(err < 5e-7, "Φ: relative error {err:e} at {at}, fused {F}");
        // Lower tail (Φ < 0.03): the f32 rounding of x²/2 in the exponent dominates.
        let (err, at) = worst(normal_cdf::<F>, phi, -13.0, -2.0);
        assert!(err < 1e-5, "Φ far tail: relative error {err:e} at {at}, fused {F}");
        // Upper half: Φ is near 1, so compare absolutely (f32 spacing there is 6e-8 to 1.2e-7; a relative
        // check of 1 − Φ would measure f32's own cancellation).
        let abs_err = (0..=60_000)
            .map(|k| k as f32 * 1e-4)
            .map(|x| (normal_cdf::<F>(x) as f64 - phi(x as f64)).abs())
            .fold(0f64, f64::max);
        assert!(abs_err < 2.5e-7, "Φ on [0, 6]: absolute error {abs_err:e}");
        // φ: an f32 x²/2 is itself rounded, a relative error of up to x²/2·2⁻²⁴ in e^{−x²/2} that no
        // f32 evaluation avoids (4e-6 at |x| = 12); allow that on top of 3e-7.
        let pdf = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let (excess, at) = (0..=2_000_000)
            .map(|k| -12.0 + 24.0 * (k as f32 / 2e6))
            .map(|x| {
                let err = (normal_pdf::<F>(x) as f64 - pdf(x as f64)).abs() / pdf(x as f64);
                let allowed = 3e-7 + 1.5 * 0.5 * (x as f64).powi(2) * f64::from(f32::EPSILON) / 2.0;
                (err / allowed, x)
            })
            .fold((0f64, 0f32), |a, b| if b.0 > a.0 { b } else { a });
        assert!(excess < 1.0, "φ: error {excess:.2}× the allowed at {at}, fused {F}");
        assert_eq!(normal_cdf::<F>(f32::INFINITY), 1.0);
        assert_eq!(normal_cdf::<F>(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn all_finite_sees_every_inf_and_nan() {
        for n in [0usize, 1, 15, 16, 17, 100] {
            let v = vec![1.5f32; n];
            assert!(all_finite(&v), "{n}");
            for k in 0..n {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut w = v.clone();
                    w[k] = bad;
                    assert!(!all_finite(&w), "{n}, {bad} at {k}");
                }
            }
        }
        assert!(all_finite(&[f32::MAX, -f32::MAX, 0.0, -0.0, f32::MIN_POSITIVE]));
    }

    #[test]
    fn lane_reductions_match_the_plain_ones() {
        for n in [0usize, 1, 7, 16, 17, 255, 1000] {
            let a: Vec<f32> = (0..n).map(|k| ((k * 37 % 101) as f32 - 50.0) * 0.013).collect();
            let b: Vec<f32> = (0..n).map(|k| ((k * 53 % 89) as f32 - 44.0) * 0.021).collect();
            let sum: f64 = a.iter().map(|&x| x as f64).sum();
            let dot: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            assert!((sum_lanes(&a) as f64 - sum).abs() < 1e-4, "sum of {n}");
            assert!((dot_lanes(&a, &b) as f64 - dot).abs() < 1e-4, "dot of {n}");
            assert_eq!(max_lanes(&a), a.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)), "max of {n}");
        }
        let mut v = vec![1.0f32; 40];
        v[20] = f32::NAN;
        v[33] = 3.0;
        assert_eq!(max_lanes(&v), 3.0);
    }

    #[test]
    fn nan_propagates() {
        nan_propagates_in::<false>();
        nan_propagates_in::<true>();
    }

    fn nan_propagates_in<const F: bool>() {
        assert!(exp::<F>(f32::NAN).is_nan());
        assert!(sigmoid::<F>(f32::NAN).is_nan());
        assert!(tanh::<F>(f32::NAN).is_nan());
        assert!(normal_cdf::<F>(f32::NAN).is_nan());
    }

    #[test]
    fn slice_forms_match_the_scalar_ones() {
        slice_forms_match_the_scalar_ones_in::<false>();
        slice_forms_match_the_scalar_ones_in::<true>();
    }

    fn slice_forms_match_the_scalar_ones_in<const F: bool>() {
        let xs: Vec<f32> = (0..1000).map(|k| (k as f32 - 500.0) * 0.037).collect();
        let mut s = xs.clone();
        sigmoid_in_place::<F>(&mut s);
        let mut t = xs.clone();
        tanh_in_place::<F>(&mut t);
        for (k, &x) in xs.iter().enumerate() {
            assert_eq!(s[k], sigmoid::<F>(x));
            assert_eq!(t[k], tanh::<F>(x));
        }
    }
}
