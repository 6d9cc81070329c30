//! Tick positions and tick labels, chosen here rather than by plotters so that a log axis over
//! thirty decades gets a handful of labelled powers of ten, and linear labels share one format.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use std::ops::Range;

/// Where to put ticks on one axis and how to label them. Positions are in axis units: data
/// units on a linear axis, data units too on a log axis (the coordinate does the log).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Ticks {
    /// Labelled ticks (and grid lines).
    pub major: Vec<f64>,
    /// Unlabelled, fainter grid lines.
    pub minor: Vec<f64>,
    pub format: LabelFormat,
}

/// How every label on one axis is written, decided once per axis so labels line up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum LabelFormat {
    /// `1250`, `0.25`: this many digits after the decimal point.
    Plain { decimals: usize },
    /// `2.5×10⁶`: each value as its own mantissa (up to three decimals) times a power of ten.
    Scientific,
    /// `10⁻²⁰`: for powers of ten on a log axis.
    Power,
    /// `0.001`, `2`, `1000`: one-digit multiples of powers of ten, written out.
    PowerPlain,
}

impl Ticks {
    pub(crate) fn label(&self, v: f64) -> String {
        format_value(v, self.format)
    }
}

/// A plotters coordinate (linear or log) whose grid lines and labels are exactly the given
/// ticks. Plotters' own `with_key_points` wrapper loses the label formatter of linear f64 axes,
/// so this small wrapper stands in for it.
pub(crate) struct Ticked<R> {
    inner: R,
    major: Vec<f64>,
    minor: Vec<f64>,
}

impl<R: Ranged<ValueType = f64>> Ticked<R> {
    pub(crate) fn new(inner: R, ticks: &Ticks) -> Self {
        Ticked { inner, major: ticks.major.clone(), minor: ticks.minor.clone() }
    }

    /// With tick positions given in this axis' own units rather than `ticks`' (e.g. log₁₀ of
    /// the labelled values).
    pub(crate) fn with_points(inner: R, major: Vec<f64>, minor: Vec<f64>) -> Self {
        Ticked { inner, major, minor }
    }
}

impl<R: Ranged<ValueType = f64>> Ranged for Ticked<R> {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minor.clone()
        } else {
            self.major.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }

    fn axis_pixel_range(&self, limit: (i32, i32)) -> Range<i32> {
        self.inner.axis_pixel_range(limit)
    }
}

/// A "nice" step (1, 2, 2.5 or 5 × 10^k) giving about `target` intervals over `span`.
pub(crate) fn nice_step(span: f64, target: usize) -> f64 {
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let m = raw / mag;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 2.5 {
        2.5
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Ticks at multiples of a nice step inside `[lo, hi]`, about `target` of them.
pub(crate) fn linear(lo: f64, hi: f64, target: usize) -> Ticks {
    let step = nice_step(hi - lo, target);
    let first = (lo / step - 1e-9).ceil();
    let last = (hi / step + 1e-9).floor();
    let mut major = Vec::new();
    // A span that is tiny next to the magnitude (1e15 + 0..1) cannot be stepped in f64; fall
    // back to labelling the ends rather than looping over billions of steps.
    if step.is_finite() && step > 0.0 && last >= first && last - first <= 1000.0 {
        for i in 0..=(last - first) as usize {
            let v = (first + i as f64) * step;
            // Snap values within rounding error of zero, so no "−0" label appears.
            major.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        }
        major.dedup();
    }
    if major.len() < 2 {
        major = vec![lo, hi];
        let format = linear_format(&major, (hi - lo).abs().max(f64::MIN_POSITIVE));
        return Ticks { major, minor: Vec::new(), format };
    }
    let format = linear_format(&major, step);
    Ticks { major, minor: Vec::new(), format }
}

/// Rounds `lo`/`hi` outwards to the nice step `linear` would use, so the axis ends on labels.
pub(crate) fn expand_to_nice(lo: f64, hi: f64, target: usize) -> (f64, f64) {
    let step = nice_step(hi - lo, target);
    let (a, b) = ((lo / step - 1e-9).floor() * step, (hi / step + 1e-9).ceil() * step);
    if a.is_finite() && b.is_finite() && a < b {
        (a, b)
    } else {
        (lo, hi)
    }
}

/// Ticks for a log axis over [`lo`, `hi`] (positive), at most about `max_labels` labelled:
/// every decade, or every 2nd, 5th, 10th… decade when the range is wide, or 1, 2, 5 × 10^k
/// when it spans two decades or less. Unlabelled grid lines mark 2..9 × 10^k on short ranges
/// and the skipped decades on long ones.
pub(crate) fn log(lo: f64, hi: f64, max_labels: usize) -> Ticks {
    let lo_exp = (lo.log10() + 1e-9).floor() as i32;
    let hi_exp = (hi.log10() - 1e-9).ceil() as i32;
    let span = (hi_exp - lo_exp).max(1);
    let stride = decade_stride(lo_exp, hi_exp, max_labels);
    let dense = (hi / lo).log10() <= 2.3;
    let mut major = Vec::new();
    let mut minor = Vec::new();
    for e in lo_exp..=hi_exp {
        if e.rem_euclid(stride) == 0 {
            major.push(pow10(e));
        } else if stride > 1 && span / stride <= 40 && span <= 120 {
            minor.push(pow10(e));
        }
        if stride == 1 && span <= 8 {
            for k in 2..10 {
                let v = f64::from(k) * pow10(e);
                if dense && (k == 2 || k == 5) {
                    major.push(v);
                } else {
                    minor.push(v);
                }
            }
        }
    }
    let inside = |v: &f64| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9);
    major.retain(inside);
    minor.retain(inside);
    // Moderate magnitudes read better as plain numbers (1, 10, 100) than as powers.
    let plain = major.iter().all(|v| (1e-3..1e5 + 1.0).contains(v));
    let format = if plain { LabelFormat::PowerPlain } else { LabelFormat::Power };
    Ticks { major, minor, format }
}

/// 10^e as the f64 nearest the decimal, so ticks and axis ends land exactly on decades.
pub(crate) fn pow10(e: i32) -> f64 {
    format!("1e{e}").parse().unwrap_or_else(|_| 10f64.powi(e))
}

/// Every how many decades to label so that at most `max_labels` (and at least 2) of the
/// decades from 10^`lo_exp` to 10^`hi_exp` get a label.
pub(crate) fn decade_stride(lo_exp: i32, hi_exp: i32, max_labels: usize) -> i32 {
    [1, 2, 3, 5, 10, 20, 25, 50, 100, 200, 500]
        .into_iter()
        .find(|s| count_multiples(lo_exp, hi_exp, *s) <= max_labels.max(2))
        .unwrap_or(1000)
}

fn count_multiples(lo: i32, hi: i32, stride: i32) -> usize {
    (lo..=hi).filter(|e| e.rem_euclid(stride) == 0).count()
}

/// Plain decimals unless the numbers are very large or the step very small.
fn linear_format(ticks: &[f64], step: f64) -> LabelFormat {
    let max_abs = ticks.iter().fold(0f64, |m, v| m.max(v.abs()));
    if max_abs < 1e6 && step >= 1e-3 {
        LabelFormat::Plain { decimals: decimals_for(step) }
    } else {
        LabelFormat::Scientific
    }
}

/// Fewest decimals that write every multiple of `step` exactly (2.5 → 1, 0.25 → 2).
fn decimals_for(step: f64) -> usize {
    (0..=12usize)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled.round() - scaled).abs() < 1e-6
        })
        .unwrap_or(12)
}

/// Writes `v` in `format`, with a true minus sign (U+2212).
pub(crate) fn format_value(v: f64, format: LabelFormat) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let s = match format {
        LabelFormat::Plain { decimals } => format!("{v:.decimals$}"),
        LabelFormat::Scientific => {
            if v == 0.0 {
                "0".to_string()
            } else {
                let mut exp = v.abs().log10().floor() as i32;
                let mut mant = (v / pow10(exp) * 1000.0).round() / 1000.0;
                // 9.9996 rounds to 10: carry into the exponent.
                if mant.abs() >= 10.0 {
                    mant /= 10.0;
                    exp += 1;
                }
                format!("{mant}×10{}", superscript(exp))
            }
        }
        LabelFormat::Power if v > 0.0 => format!("10{}", superscript(v.log10().round() as i32)),
        // Parsing "2e-3" gives the f64 nearest 0.002, which prints as "0.002" (2 × 10^-3
        // computed in floating point might print as 0.0020000000000000005).
        LabelFormat::PowerPlain if v > 0.0 => {
            let e = (v.log10() + 1e-9).floor() as i32;
            let mant = (v / pow10(e)).round();
            format!("{}", format!("{mant}e{e}").parse::<f64>().unwrap_or(v))
        }
        LabelFormat::Power | LabelFormat::PowerPlain => format!("{v}"),
    };
    s.replace('-', "\u{2212}")
}

/// `-20` as `⁻²⁰`.
pub(crate) fn superscript(n: i32) -> String {
    n.to_string()
        .chars()
        .map(|c| match c {
            '-' => '⁻',
            '0' => '⁰',
            '1' => '¹',
            '2' => '²',
            '3' => '³',
            '4' => '⁴',
            '5' => '⁵',
            '6' => '⁶',
            '7' => '⁷',
            '8' => '⁸',
            _ => '⁹',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_are_round_and_inside() {
        let t = linear(0.0, 999.0, 6);
        assert_eq!(t.major, vec![0.0, 200.0, 400.0, 600.0, 800.0]);
        assert_eq!(t.label(400.0), "400");
        let t = linear(-1.0, 1.0, 8);
        assert_eq!(t.major.first(), Some(&-1.0));
        assert_eq!(t.label(-0.25), "\u{2212}0.25");
        assert!(t.major.iter().all(|v| (-1.0..=1.0).contains(v)));
        assert!(t.major.iter().all(|v| !(v.is_sign_negative() && *v == 0.0)));
    }

    #[test]
    fn big_numbers_are_scientific() {
        let t = linear(0.0, 3e7, 6);
        assert_eq!(t.label(1e7), "1×10⁷");
        assert_eq!(t.label(2.5e7), "2.5×10⁷");
        assert_eq!(format_value(9.99996e5, LabelFormat::Scientific), "1×10⁶");
        assert_eq!(t.label(0.0), "0");
    }

    #[test]
    fn degenerate_span_falls_back_to_ends() {
        // 1e15 + 0.1 is not representable; this must end (and not loop on k += 1).
        assert!(linear(1e15, 1e15 + 0.5, 6).major.len() <= 10);
        assert_eq!(linear(3.0, 3.0, 6).major, vec![3.0, 3.0]);
    }

    #[test]
    fn log_ticks_over_thirty_decades() {
        let t = log(1e-30, 1e3, 9);
        assert!(t.major.len() <= 9 && t.major.len() >= 4, "{:?}", t.major);
        assert_eq!(t.label(1e-20), "10⁻²⁰");
        assert_eq!(t.label(1.0), "10⁰");
        let t = log(1.0, 1000.0, 9);
        assert_eq!(t.major, vec![1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(t.label(100.0), "100");
        assert_eq!(t.minor.len(), 24);
        assert_eq!(log(1e-3, 10.0, 9).label(10f64.powi(-3)), "0.001");
        let t = log(0.7, 40.0, 9);
        assert_eq!(t.major, vec![1.0, 2.0, 5.0, 10.0, 20.0]);
        assert_eq!(t.label(2.0 * 10f64.powi(1)), "20");
    }
}
