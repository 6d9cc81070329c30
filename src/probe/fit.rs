//! Decay metrics of a gradient-vs-distance curve: e-folding distance from a log-linear fit, total
//! decay in decades, and the memory horizon.

use serde::{Deserialize, Serialize};

/// Norms below this fraction of the curve's largest value are float32 rounding noise (f32 keeps
/// ~7 significant digits), so the fit ignores them.
pub const NOISE_FLOOR: f64 = 1e-6;

/// The horizon is where the norm falls below this fraction of its value at d = 0.
pub const HORIZON_FRACTION: f64 = 1e-6;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecayMetrics {
    /// Slope of ln‖∂L/∂h‖ against distance, per step (negative: decay; positive: growth).
    #[serde(deserialize_with = "crate::util::nullable::f64")]
    pub log_slope: f64,
    /// −1/slope for a decaying curve: the distance over which the norm falls by a factor e.
    pub e_folding: Option<f64>,
    /// 1/slope for a growing curve: the distance over which the norm grows by a factor e.
    pub growth_e_folding: Option<f64>,
    /// log10(‖g(d=0)‖ / ‖g(d=max)‖): positive decades lost (negative: gained).
    #[serde(deserialize_with = "crate::util::nullable::f64")]
    pub decades: f64,
    /// First distance at which the norm is below 1e-6 of its value at d = 0.
    pub horizon: Option<usize>,
    /// The norm grows with distance.
    pub exploding: bool,
    /// Points used by the fit (above the noise floor).
    pub fit_points: usize,
}

/// Metrics of `norms[d]`, the gradient norm at distance d = 0, 1, ... from the loss.
pub fn decay_metrics(norms: &[f64]) -> DecayMetrics {
    let max = norms.iter().copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
    let points: Vec<(f64, f64)> = norms
        .iter()
        .enumerate()
        .filter(|(_, &v)| v.is_finite() && v > 0.0 && v >= max * NOISE_FLOOR)
        .map(|(d, &v)| (d as f64, v.ln()))
        .collect();
    let slope = least_squares_slope(&points);
    let first = norms.first().copied().unwrap_or(f64::NAN);
    let last = norms.last().copied().unwrap_or(f64::NAN);
    let decades = if first > 0.0 && last > 0.0 {
        (first / last).log10()
    } else if first > 0.0 {
        f64::INFINITY
    } else {
        f64::NAN
    };
    let horizon = norms.iter().position(|&v| first > 0.0 && v < first * HORIZON_FRACTION);
    // A flat curve (|slope| tiny) neither decays nor explodes in any useful sense.
    let flat = slope.abs() < 1e-9;
    DecayMetrics {
        log_slope: slope,
        e_folding: (!flat && slope < 0.0).then(|| -1.0 / slope),
        growth_e_folding: (!flat && slope > 0.0).then(|| 1.0 / slope),
        decades,
        horizon,
        exploding: !flat && slope > 0.0 && last > first,
        fit_points: points.len(),
    }
}

fn least_squares_slope(points: &[(f64, f64)]) -> f64 {
    if points.len() < 2 {
        return 0.0;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// The q-quantile (0..=1) of `values` by linear interpolation (numpy's default).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN left"));
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_exponential_decay_and_growth() {
        let a: f64 = 0.9;
        let norms: Vec<f64> = (0..100).map(|d| 3.0 * a.powi(d)).collect();
        let m = decay_metrics(&norms);
        assert!((m.e_folding.unwrap() - (-1.0 / a.ln())).abs() < 1e-9);
        assert!((m.decades - 99.0 * -a.log10()).abs() < 1e-9);
        assert!(!m.exploding && m.growth_e_folding.is_none());
        // 0.9^d < 1e-6 first at d = ceil(6 / -log10 0.9) = 132 > 99: no horizon within the curve.
        assert_eq!(m.horizon, None);
        let fast: Vec<f64> = (0..200).map(|d| 0.5f64.powi(d)).collect();
        // 0.5^20 = 9.5e-7 < 1e-6.
        assert_eq!(decay_metrics(&fast).horizon, Some(20));
        let grow: Vec<f64> = (0..50).map(|d| 1.1f64.powi(d)).collect();
        let g = decay_metrics(&grow);
        assert!(g.exploding && (g.growth_e_folding.unwrap() - 1.0 / 1.1f64.ln()).abs() < 1e-9);
        assert!(g.decades < 0.0);
    }

    #[test]
    fn noise_below_the_floor_is_ignored() {
        // Decay by 0.5 until 1e-9, then flat float noise: the fit sees only the decaying part.
        let norms: Vec<f64> = (0..100).map(|d| 0.5f64.powi(d).max(1e-9)).collect();
        let m = decay_metrics(&norms);
        assert!((m.e_folding.unwrap() - 1.0 / 2f64.ln()).abs() < 1e-6, "{m:?}");
        assert_eq!(m.fit_points, 20);
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&v, 1.0), 4.0);
        assert!((quantile(&v, 0.5) - 2.5).abs() < 1e-12);
    }
}
