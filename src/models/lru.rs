//! The Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for
//! Long Sequences") in the paper's block, stacked:
//!
//! ```text
//! x = encoder(u)                                         (B, T, H)   nn.Linear(I, H)
//! per block:  z = LayerNorm(x)                           (B, T, H)   pre-norm
//!             s_t = λ ⊙ s_{t-1} + γ ⊙ (B z_t)            (B, T, N)   complex, s_{-1} = 0
//!             y = GELU(Re(C s_t) + D ⊙ z_t)              (B, T, H)
//!             x = x + W1 y ⊙ σ(W2 y)                     GLU, residual
//! λ = exp(-exp(ν) + i·exp(θ)),  γ = exp(γ_log)
//! ```
//!
//! On the CPU each block is one fused op, [`crate::kernels::lru_block`]; elsewhere, and as the
//! reference it must equal, the block is candle ops with the recurrence as a loop over time. The state taps record ∂L/∂s_t, complex channels as [re | im], so a
//! tap's norm is the complex norm. Initialisation as in the paper: |λ| uniform on the ring
//! [r_min, r_max] (in |λ|², its appendix's density), phase U[0, max_phase], γ = √(1 − |λ|²),
//! B and C Gaussian with variance 1/(2H) and 1/N, D standard normal.

use super::backend::RecurrentBackend;
use super::init::Initializer;
use super::norm::LayerNorm;
use super::stack::{BlockStack, ResidualBlock};
use super::taps::{LayerTap, StateTaps};
use super::ForwardOptions;
use crate::kernels::{self, Slot};
use crate::util::unbind;
use candle_core::{bail, Device, Module, Result, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

/// The LRU stack's configuration (burn style: defaults plus `init`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LruConfig {
    pub input_size: usize,
    /// The model width H (the blocks' input and output).
    pub hidden_size: usize,
    /// Complex state channels N.
    pub state_size: usize,
    pub num_layers: usize,
    /// The ring of |λ| at initialisation.
    pub r_min: f64,
    pub r_max: f64,
    /// Phases at initialisation are uniform on [0, max_phase].
    pub max_phase: f64,
    /// Dropout after each block's GLU, in training only.
    #[serde(default)]
    pub dropout: f64,
}

impl LruConfig {
    /// The paper's defaults: r_min 0.9, r_max 0.999, max_phase 2π, N = H.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        Self {
            input_size,
            hidden_size,
            state_size: hidden_size,
            num_layers: 1,
            r_min: 0.9,
            r_max: 0.999,
            max_phase: 2.0 * std::f64::consts::PI,
            dropout: 0.0,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.input_size == 0 || self.hidden_size == 0 || self.state_size == 0 || self.num_layers == 0 {
            bail!("lru: input, hidden and state sizes and the layer count must be ≥ 1");
        }
        if !(0.0 <= self.r_min && self.r_min <= self.r_max && self.r_max < 1.0) {
            bail!("lru: need 0 ≤ r_min ≤ r_max < 1, got r_min {} and r_max {}", self.r_min, self.r_max);
        }
        if !(self.max_phase > 0.0 && self.max_phase.is_finite()) {
            bail!("lru: max_phase must be a finite number > 0, got {}", self.max_phase);
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("lru: dropout must be in [0, 1), got {}", self.dropout);
        }
        Ok(())
    }

    /// Seeded initial parameters under their module names.
    pub fn init_tensors(&self, seed: u64, device: &Device) -> Result<Vec<(String, Tensor)>> {
        self.validate()?;
        let (i, h, n) = (self.input_size, self.hidden_size, self.state_size);
        let mut rng = Initializer::new(seed);
        let mut out = Vec::new();
        let mut push = |name: String, v: Vec<f32>, shape: &[usize]| -> Result<()> {
            out.push((name, Tensor::from_vec(v, shape, device)?));
            Ok(())
        };
        // nn.Linear's default: U(±1/√fan_in) for weight and bias.
        let bound = 1.0 / (i as f64).sqrt();
        push("encoder.weight".into(), rng.uniform(h * i, bound), &[h, i])?;
        push("encoder.bias".into(), rng.uniform(h, bound), &[h])?;
        for k in 0..self.num_layers {
            let p = |name: &str| format!("blocks.{k}.{name}");
            push(p("norm.weight"), vec![1.0; h], &[h])?;
            push(p("norm.bias"), vec![0.0; h], &[h])?;
            let (r2_min, r2_max) = (self.r_min * self.r_min, self.r_max * self.r_max);
            let unit = |rng: &mut Initializer| rng.uniform(n, 0.5).into_iter().map(|u| u as f64 + 0.5);
            let nu: Vec<f64> = unit(&mut rng).map(|u| -0.5 * (u * (r2_max - r2_min) + r2_min).ln()).collect();
            let theta: Vec<f64> = unit(&mut rng).map(|u| (u * self.max_phase).max(1e-12)).collect();
            let gamma: Vec<f32> =
                nu.iter().map(|&nu| ((1.0 - (-2.0 * nu).exp()).sqrt()).ln() as f32).collect();
            push(p("nu_log"), nu.iter().map(|v| v.ln() as f32).collect(), &[n])?;
            push(p("theta_log"), theta.iter().map(|v| v.ln() as f32).collect(), &[n])?;
            push(p("gamma_log"), gamma, &[n])?;
            let b_std = 1.0 / (2.0 * h as f64).sqrt();
            push(p("B_re"), rng.normal(n * h, b_std), &[n, h])?;
            push(p("B_im"), rng.normal(n * h, b_std), &[n, h])?;
            let c_std = 1.0 / (n as f64).sqrt();
            push(p("C_re"), rng.normal(h * n, c_std), &[h, n])?;
            push(p("C_im"), rng.normal(h * n, c_std), &[h, n])?;
            push(p("D"), rng.normal(h, 1.0), &[h])?;
            let bound = 1.0 / (h as f64).sqrt();
            for glu in ["out1", "out2"] {
                push(p(&format!("{glu}.weight")), rng.uniform(h * h, bound), &[h, h])?;
                push(p(&format!("{glu}.bias")), rng.uniform(h, bound), &[h])?;
            }
        }
        Ok(out)
    }
}

struct Block {
    norm: LayerNorm,
    nu_log: Tensor,
    theta_log: Tensor,
    gamma_log: Tensor,
    b_re: Tensor,
    b_im: Tensor,
    c_re: Tensor,
    c_im: Tensor,
    d: Tensor,
    out1: Linear,
    out2: Linear,
}

impl Block {
    fn new(h: usize, n: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm: LayerNorm::new(h, 1e-5, vb.pp("norm"))?,
            nu_log: vb.get(n, "nu_log")?,
            theta_log: vb.get(n, "theta_log")?,
            gamma_log: vb.get(n, "gamma_log")?,
            b_re: vb.get((n, h), "B_re")?,
            b_im: vb.get((n, h), "B_im")?,
            c_re: vb.get((h, n), "C_re")?,
            c_im: vb.get((h, n), "C_im")?,
            d: vb.get(h, "D")?,
            out1: linear(h, h, vb.pp("out1"))?,
            out2: linear(h, h, vb.pp("out2"))?,
        })
    }

    /// λ as [re | im] (2N).
    fn lambda(&self) -> Result<Tensor> {
        let modulus = self.nu_log.exp()?.neg()?.exp()?; // (N)
        let phase = self.theta_log.exp()?;
        Tensor::cat(&[(&modulus * phase.cos()?)?, (&modulus * phase.sin()?)?], 0)
    }

    /// The same block as one fused CPU op, with γ folded into B, the sign of Re(C s) into C, and
    /// the GLU's two maps stacked.
    fn forward_fused(&self, x: &Tensor, slot: Option<&Slot>, residual: bool) -> Result<Tensor> {
        let gamma = self.gamma_log.exp()?.unsqueeze(1)?; // (N, 1)
        let w_v = Tensor::cat(&[self.b_re.broadcast_mul(&gamma)?, self.b_im.broadcast_mul(&gamma)?], 0)?; // (2N, H)
        let w_c = Tensor::cat(&[&self.c_re, &self.c_im.neg()?], 1)?; // (H, 2N)
        let w_glu = Tensor::cat(&[self.out1.weight(), self.out2.weight()], 0)?; // (2H, H)
        let biases = [&self.out1, &self.out2].map(|l| l.bias().cloned().expect("the GLU's maps have biases"));
        let b_glu = Tensor::cat(&biases, 0)?; // (2H)
        let lambda = self.lambda()?; // (2N)
        let norm = &self.norm;
        let params = [&norm.weight, &norm.bias, &w_v, &lambda, &w_c, &self.d, &w_glu, &b_glu];
        kernels::lru_block(x, params, norm.eps, residual, slot) // (B, T, H)
    }
}

impl ResidualBlock for Block {
    fn forward(
        &self,
        x: &Tensor,
        tap: Option<&LayerTap>,
        slot: Option<&Slot>,
        fused: bool,
    ) -> Result<Tensor> {
        if fused {
            return self.forward_fused(x, slot, false);
        }
        let z = self.norm.forward(x)?; // (B, T, H)
        let gamma = self.gamma_log.exp()?;
        let bu = |b: &Tensor| z.broadcast_matmul(&b.t()?)?.broadcast_mul(&gamma); // (B, T, N)
        let v = Tensor::cat(&[bu(&self.b_re)?, bu(&self.b_im)?], D::Minus1)?; // (B, T, 2N)
        let s = recurrence(&v, &self.lambda()?, tap)?;
        let n = self.nu_log.dim(0)?;
        let (s_re, s_im) = (s.narrow(D::Minus1, 0, n)?, s.narrow(D::Minus1, n, n)?);
        let y = (s_re.broadcast_matmul(&self.c_re.t()?)? - s_im.broadcast_matmul(&self.c_im.t()?)?)?;
        let y = (y + z.broadcast_mul(&self.d)?)?.gelu_erf()?; // (B, T, H)
        self.out1.forward(&y)? * candle_nn::ops::sigmoid(&self.out2.forward(&y)?)?
    }

    fn forward_residual(
        &self,
        x: &Tensor,
        tap: Option<&LayerTap>,
        slot: Option<&Slot>,
        fused: bool,
    ) -> Result<Tensor> {
        match fused {
            true => self.forward_fused(x, slot, true),
            false => x + self.forward(x, tap, slot, fused)?,
        }
    }

    fn detached(&self) -> Self {
        let d = Tensor::detach;
        let linear = |l: &Linear| Linear::new(d(l.weight()), l.bias().map(d));
        Self {
            norm: LayerNorm { weight: d(&self.norm.weight), bias: d(&self.norm.bias), eps: self.norm.eps },
            nu_log: d(&self.nu_log),
            theta_log: d(&self.theta_log),
            gamma_log: d(&self.gamma_log),
            b_re: d(&self.b_re),
            b_im: d(&self.b_im),
            c_re: d(&self.c_re),
            c_im: d(&self.c_im),
            d: d(&self.d),
            out1: linear(&self.out1),
            out2: linear(&self.out2),
        }
    }

    fn tap_width(&self, _fused: bool) -> usize {
        2 * self.nu_log.dims()[0]
    }
}

/// The reference recurrence, a step at a time: s_t = λ ⊙ s_{t-1} + v_t on [re | im] halves, with
/// the tap's zero tensor added to s_t (so its gradient is the total ∂L/∂s_t).
fn recurrence(v: &Tensor, lambda: &Tensor, tap: Option<&LayerTap>) -> Result<Tensor> {
    let (b, _, n2) = v.dims3()?;
    let n = n2 / 2;
    let (lr, li) = (lambda.narrow(0, 0, n)?, lambda.narrow(0, n, n)?);
    let taps = tap.map(|tp| unbind(tp.h_tensor(), 1)).transpose()?;
    let mut s = Tensor::zeros((b, n2), v.dtype(), v.device())?;
    let mut out = Vec::new();
    for (step, v_t) in unbind(v, 1)?.iter().enumerate() {
        let (pr, pi) = (s.narrow(1, 0, n)?, s.narrow(1, n, n)?);
        let re = (pr.broadcast_mul(&lr)? - pi.broadcast_mul(&li)?)?;
        let im = (pi.broadcast_mul(&lr)? + pr.broadcast_mul(&li)?)?;
        s = (Tensor::cat(&[re, im], 1)? + v_t)?; // (B, 2N)
        if let Some(taps) = &taps {
            s = (s + &taps[step])?;
        }
        out.push(s.clone());
    }
    Tensor::stack(&out, 1)
}

/// What [`Lru::forward_with`] returns.
pub struct LruOutput {
    /// The last block's output (B, T, H).
    pub output: Tensor,
    /// ∂L/∂s_t of every block after backward, when recorded (complex as [re | im], (B, T, 2N)).
    pub taps: Option<StateTaps>,
}

/// A stack of LRU blocks behind a linear encoder.
pub struct Lru {
    config: LruConfig,
    stack: BlockStack<Block>,
}

impl Lru {
    /// Reads `encoder.*` and `blocks.{k}.*` from `vb`.
    pub fn new(config: &LruConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let (h, n) = (config.hidden_size, config.state_size);
        let encoder = linear(config.input_size, h, vb.pp("encoder"))?;
        let blocks = (0..config.num_layers)
            .map(|k| Block::new(h, n, vb.pp(format!("blocks.{k}"))))
            .collect::<Result<Vec<_>>>()?;
        let stack = BlockStack {
            name: "lru",
            input_size: config.input_size,
            dropout: config.dropout,
            encoder,
            blocks,
        };
        Ok(Self { config: config.clone(), stack })
    }

    pub fn config(&self) -> &LruConfig {
        &self.config
    }

    /// `x` (B, T, I) from a zero state. Honours `opts`' backend, taps, training dropout and
    /// no_grad.
    pub fn forward_with(&self, x: &Tensor, opts: &ForwardOptions) -> Result<LruOutput> {
        let (output, taps) = self.stack.forward_with(x, opts)?;
        Ok(LruOutput { output, taps })
    }
}

impl Module for Lru {
    /// (B, T, I) -> (B, T, H), inference mode on the automatic backend.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let opts = ForwardOptions { backend: RecurrentBackend::Auto, ..Default::default() };
        Ok(self.forward_with(x, &opts)?.output)
    }
}
