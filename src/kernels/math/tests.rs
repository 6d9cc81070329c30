//! Accuracy of the f32 approximations against f64, in both the fused and the plain form.

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
fn softplus_and_its_sigmoid_are_accurate() {
    softplus_and_its_sigmoid_are_accurate_in::<false>();
    softplus_and_its_sigmoid_are_accurate_in::<true>();
}

fn softplus_and_its_sigmoid_are_accurate_in<const F: bool>() {
    let (err, at) = worst(ln_1p_unit::<F>, f64::ln_1p, 0.0, 1.0);
    assert!(err < 3e-7, "ln_1p_unit: relative error {err:e} at {at}, fused {F}");
    let softplus = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
    let (err, at) = worst(|x| softplus_and_sigmoid::<F>(x).0, softplus, -80.0, 80.0);
    assert!(err < 5e-7, "softplus: relative error {err:e} at {at}, fused {F}");
    let (err, at) = worst(|x| softplus_and_sigmoid::<F>(x).1, |x| 1.0 / (1.0 + (-x).exp()), -80.0, 80.0);
    assert!(err < 3e-7, "softplus's sigmoid: relative error {err:e} at {at}, fused {F}");
    assert_eq!(softplus_and_sigmoid::<F>(1e30), (1e30, 1.0));
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
