//! Fast f32 `exp`, `sigmoid` and `tanh` for the gate loops.
//!
//! glibc's scalar `tanhf`/`expf` cannot be vectorised, which would make the elementwise gate
//! math cost as much as the recurrent GEMMs. These versions are branch-free (the clamps compile
//! to min/max, the rounding is the 1.5·2²³ trick rather than `round()`, which plain SSE2 lacks),
//! so LLVM vectorises loops over slices that call them on baseline x86-64. Accuracy: ~1e-7
//! relative for `exp` and `sigmoid`, ≤ ~4e-7 for `tanh` (see the tests). NaN propagates, so a
//! diverging run is not hidden.
//!
//! Each takes `const FMA: bool`: the AVX2 and AVX-512 tiers of [`simd_fn`] and [`with_simd`]
//! evaluate the polynomials with fused multiply-adds (one rounding, half the instructions), the
//! baseline tier with separate products and sums (an `f32::mul_add` there would be a libm call
//! per element). The tiers therefore round slightly differently; each is as accurate.

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

/// Whether the AVX-512 versions of the loops below run: with 16 lanes and 32 registers the
/// polynomial chains need half the instructions and no constant reloads, even where the FP units
/// are no wider than AVX2's.
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
/// baseline), dispatched at run time; the body sees `FMA` as [`with_simd`]'s does. A function of
/// its own, with plain slice parameters, rather than a closure: `&mut` parameters of a non-inlined
/// function are known not to alias, which is what lets LLVM vectorise the gate loops (inlined
/// over reborrowed slices they stay scalar).
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
/// `ptanh_float`): no exp, and no cancellation near 0 that would need a separate small-|x| branch,
/// as (1 − e^{−2|x|})/(1 + e^{−2|x|}) does.
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

/// ln(1 + y) for y in [0, 1], relative error ~2e-7: Cephes' `logf` polynomial on 1 + y, with
/// Goldberg's correction y / ((1 + y) − 1), which restores the bits of y that rounding 1 + y lost.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the published coefficients, verbatim
pub fn ln_1p_unit<const FMA: bool>(y: f32) -> f32 {
    let u = 1.0 + y;
    // u = m·2^e with m in [√½, √2): u is in [1, 2], so e is 0 or 1.
    let big = u > std::f32::consts::SQRT_2;
    let m = if big { u * 0.5 } else { u };
    let e = if big { 1.0f32 } else { 0.0 };
    let f = m - 1.0;
    let z = f * f;
    let mut p = 7.037_683_6e-2f32;
    p = mad::<FMA>(p, f, -1.151_461_0e-1);
    p = mad::<FMA>(p, f, 1.167_699_9e-1);
    p = mad::<FMA>(p, f, -1.242_014_1e-1);
    p = mad::<FMA>(p, f, 1.424_932_3e-1);
    p = mad::<FMA>(p, f, -1.666_805_8e-1);
    p = mad::<FMA>(p, f, 2.000_071_5e-1);
    p = mad::<FMA>(p, f, -2.499_999_4e-1);
    p = mad::<FMA>(p, f, 3.333_333_1e-1);
    let r = mad::<FMA>(p * f, z, mad::<FMA>(-0.5, z, f));
    let ln_u = mad::<FMA>(e, LN2_HI, mad::<FMA>(e, LN2_LO, r));
    if u == 1.0 {
        y
    } else {
        ln_u * (y / (u - 1.0))
    }
}

/// softplus(x) = ln(1 + e^x) and σ(x), its derivative, from one exp: max(x, 0) + ln(1 + e^{−|x|}).
#[inline(always)]
pub fn softplus_and_sigmoid<const FMA: bool>(x: f32) -> (f32, f32) {
    let q = exp::<FMA>(-x.abs());
    let s = 1.0 / (1.0 + q);
    let relu = if x > 0.0 { x } else { 0.0 };
    (relu + ln_1p_unit::<FMA>(q), if x >= 0.0 { s } else { q * s })
}

/// Φ(x), the standard normal CDF, with a relative error ~2e-7 in both tails (so x·Φ(x), the GELU,
/// stays accurate for very negative x too). Branch-free, like [`exp`], so loops over it vectorise,
/// which libm's scalar `erff` does not.
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
mod tests;
