//! Seeded parameter initialisation: the schemes the vanishing-gradient literature compares.
//!
//! Every draw comes from one `StdRng` seeded by the user, so the same seed gives the same weights
//! on every machine (candle's own random ops are not seedable on the CPU).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// How weights are drawn. Biases are zero except under [`InitScheme::Pytorch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum InitScheme {
    /// PyTorch's `nn.RNN/LSTM/GRU` default: every weight and bias ~ U(-1/√H, 1/√H).
    #[default]
    Pytorch,
    /// Glorot/Xavier uniform per gate block: U(±gain·√(6/(fan_in+fan_out))).
    Xavier,
    /// He/Kaiming normal per gate block: N(0, (gain/√fan_in)²), gain √2 by default (ReLU).
    He,
    /// Orthogonal recurrent blocks (scaled by gain), Xavier input weights (Saxe et al. 2014).
    Orthogonal,
    /// Identity recurrent blocks scaled by gain, input weights N(0, 0.001²) (IRNN, Le et al. 2015).
    Identity,
}

impl InitScheme {
    pub const ALL: [InitScheme; 5] = [
        InitScheme::Pytorch,
        InitScheme::Xavier,
        InitScheme::He,
        InitScheme::Orthogonal,
        InitScheme::Identity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            InitScheme::Pytorch => "pytorch",
            InitScheme::Xavier => "xavier",
            InitScheme::He => "he",
            InitScheme::Orthogonal => "orthogonal",
            InitScheme::Identity => "identity",
        }
    }

    /// The gain used when the user gives none.
    pub fn default_gain(self) -> f64 {
        match self {
            InitScheme::He => std::f64::consts::SQRT_2,
            _ => 1.0,
        }
    }
}

impl std::str::FromStr for InitScheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.to_ascii_lowercase();
        let alias = match s.as_str() {
            "default" | "torch" => "pytorch",
            "glorot" => "xavier",
            "kaiming" => "he",
            "irnn" | "eye" => "identity",
            other => other,
        };
        InitScheme::ALL.into_iter().find(|i| i.name() == alias).ok_or_else(|| {
            format!("unknown init '{s}': expected pytorch, xavier, he, orthogonal or identity")
        })
    }
}

/// A seeded source of the matrices the schemes need. Matrices are row-major `Vec<f32>`.
pub struct Initializer {
    rng: StdRng,
}

impl Initializer {
    pub fn new(seed: u64) -> Self {
        Self { rng: StdRng::seed_from_u64(seed) }
    }

    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// `n` values from U(-bound, bound).
    pub fn uniform(&mut self, n: usize, bound: f64) -> Vec<f32> {
        (0..n).map(|_| self.rng.random_range(-bound..=bound) as f32).collect()
    }

    /// `n` values from N(0, std²) (Box–Muller on the seeded generator).
    pub fn normal(&mut self, n: usize, std: f64) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let u1: f64 = 1.0 - self.rng.random::<f64>(); // (0, 1]: ln is finite
            let u2: f64 = self.rng.random();
            let r = (-2.0 * u1.ln()).sqrt();
            let theta = 2.0 * std::f64::consts::PI * u2;
            out.push((std * r * theta.cos()) as f32);
            out.push((std * r * theta.sin()) as f32);
        }
        out.truncate(n);
        out
    }

    /// A (rows, cols) matrix with orthonormal rows or columns (whichever are fewer), times `gain`:
    /// the Q factor of a Gaussian matrix with the signs fixed so the draw is Haar-uniform, as in
    /// `torch.nn.init.orthogonal_`.
    pub fn orthogonal(&mut self, rows: usize, cols: usize, gain: f64) -> Vec<f32> {
        // Orthonormalise the columns of a tall (m, k) matrix, k <= m, stored column by column.
        let (m, k) = (rows.max(cols), rows.min(cols));
        let flat = self.normal(m * k, 1.0);
        let mut q: Vec<Vec<f64>> = flat.chunks(m).map(|c| c.iter().map(|&v| v as f64).collect()).collect();
        for j in 0..k {
            // Modified Gram–Schmidt, applied twice ("twice is enough") for orthogonality to
            // working precision.
            for _ in 0..2 {
                let (done, rest) = q.split_at_mut(j);
                let col = &mut rest[0];
                for prev in done.iter() {
                    let dot: f64 = prev.iter().zip(col.iter()).map(|(a, b)| a * b).sum();
                    col.iter_mut().zip(prev).for_each(|(v, p)| *v -= dot * p);
                }
            }
            let norm = q[j].iter().map(|v| v * v).sum::<f64>().sqrt();
            // Fixing R's diagonal positive is what Gram–Schmidt does already; a random sign per
            // column keeps the distribution Haar without relying on it.
            let sign = if self.rng.random::<bool>() { 1.0 } else { -1.0 };
            for v in q[j].iter_mut() {
                *v *= sign / norm;
            }
        }
        let mut out = vec![0f32; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                // Tall case: columns are orthonormal; wide case: rows are (use the transpose).
                let v = if rows >= cols { q[c][r] } else { q[r][c] };
                out[r * cols + c] = (gain * v) as f32;
            }
        }
        out
    }

    /// `gain` times the (n, n) identity.
    pub fn identity(n: usize, gain: f64) -> Vec<f32> {
        let mut out = vec![0f32; n * n];
        for i in 0..n {
            out[i * n + i] = gain as f32;
        }
        out
    }

    /// Glorot/Xavier uniform for a (fan_out, fan_in) matrix.
    pub fn xavier(&mut self, fan_out: usize, fan_in: usize, gain: f64) -> Vec<f32> {
        let bound = gain * (6.0 / (fan_in + fan_out) as f64).sqrt();
        self.uniform(fan_out * fan_in, bound)
    }

    /// He/Kaiming normal (fan-in mode) for a (fan_out, fan_in) matrix.
    pub fn he(&mut self, fan_out: usize, fan_in: usize, gain: f64) -> Vec<f32> {
        self.normal(fan_out * fan_in, gain / (fan_in as f64).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orthogonal_is_orthogonal_and_seeded() {
        let mut init = Initializer::new(7);
        let n = 24;
        let w = init.orthogonal(n, n, 1.0);
        for i in 0..n {
            for j in 0..n {
                let dot: f64 = (0..n).map(|k| w[i * n + k] as f64 * w[j * n + k] as f64).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5, "W Wᵀ[{i},{j}] = {dot}");
            }
        }
        assert_eq!(w, Initializer::new(7).orthogonal(n, n, 1.0));
        // Wide matrices have orthonormal rows.
        let w = Initializer::new(1).orthogonal(3, 8, 2.0);
        for i in 0..3 {
            let norm: f64 = (0..8).map(|k| (w[i * 8 + k] as f64).powi(2)).sum();
            assert!((norm - 4.0).abs() < 1e-5);
        }
    }

    #[test]
    fn normal_has_the_asked_spread() {
        let v = Initializer::new(3).normal(100_000, 2.0);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.03, "std {}", var.sqrt());
    }

    #[test]
    fn scheme_names_round_trip() {
        for s in InitScheme::ALL {
            assert_eq!(s.name().parse::<InitScheme>().unwrap(), s);
        }
        assert_eq!("irnn".parse::<InitScheme>().unwrap(), InitScheme::Identity);
        assert!("zeros".parse::<InitScheme>().is_err());
    }
}
