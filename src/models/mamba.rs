//! Mamba (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces"):
//! the selective SSM (S6) in its block, stacked pre-norm and residual like `mamba_ssm`'s `Block`:
//!
//! ```text
//! x = encoder(u)                                          (B, T, H)   nn.Linear(I, H)
//! per block:  z = LayerNorm(x)                            (B, T, H)
//!             [xc | g] = in_proj(z)                       (B, T, 2E)  no bias, E = expand·H
//!             u = SiLU(conv1d(xc))                        (B, T, E)   depthwise, causal, width K
//!             [d | B | C] = x_proj(u)                     (B, T, R + 2N)
//!             Δ = softplus(dt_proj(d))                    (B, T, E)
//!             h_t = exp(Δ_t ⊙ A) ⊙ h_{t-1} + (Δ_t ⊙ u_t) ⊗ B_t     (B, E, N), h_{-1} = 0
//!             y_t = h_t C_t + D ⊙ u_t                     (B, T, E)
//!             x = x + out_proj(y ⊙ SiLU(g))               no bias
//! A = −exp(A_log)
//! ```
//!
//! Parameter names follow `mamba_ssm`'s `Mamba` module under `blocks.{k}.mixer`. The per-op path
//! below is the reference, a step at a time over time; on the CPU everything between the two
//! projections is the fused op [`crate::kernels::mamba_mixer`]. The state taps record ∂L/∂h_t:
//! (B, T, E·N) on the per-op path, index e·N + n, and its norm per sequence, (B, T, 1), on the
//! fused one (the norms are all the probe reads). Initialisation as `mamba_ssm`'s `Mamba`:
//! nn.Linear's and nn.Conv1d's defaults, dt_proj.weight U(±R^-1/2), dt_proj.bias the inverse
//! softplus of Δ log-uniform on [dt_min, dt_max] (floored at 1e-4), A_n = n ("S4D-real"), D = 1.

use super::init::Initializer;
use super::norm::LayerNorm;
use super::stack::{BlockStack, ResidualBlock};
use super::taps::{LayerTap, StateTaps};
use super::ForwardOptions;
use crate::kernels::{self, mamba_mixer, Activation, MixerDims, Slot};
use crate::util::unbind;
use candle_core::{bail, DType, Device, Module, Result, Tensor, D};
use candle_nn::{linear, VarBuilder};
use serde::{Deserialize, Serialize};

/// The Mamba stack's configuration (burn style: defaults plus `init`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MambaConfig {
    pub input_size: usize,
    /// The model width H (d_model).
    pub hidden_size: usize,
    /// SSM states per channel N (d_state).
    pub state_size: usize,
    /// E = expand · H channels inside the block.
    pub expand: usize,
    /// Width K of the causal depthwise convolution (d_conv).
    pub conv: usize,
    /// Rank R of Δ's projection (dt_rank).
    pub dt_rank: usize,
    pub num_layers: usize,
    /// Δ at initialisation is log-uniform on [dt_min, dt_max].
    pub dt_min: f64,
    pub dt_max: f64,
    /// Dropout after each block, in training only.
    #[serde(default)]
    pub dropout: f64,
}

impl MambaConfig {
    /// `mamba_ssm`'s defaults: N = 16, expand 2, K = 4, R = ⌈H / 16⌉, Δ in [0.001, 0.1].
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        Self {
            input_size,
            hidden_size,
            state_size: 16,
            expand: 2,
            conv: 4,
            dt_rank: hidden_size.div_ceil(16),
            num_layers: 1,
            dt_min: 1e-3,
            dt_max: 0.1,
            dropout: 0.0,
        }
    }

    /// E, the channels inside a block.
    pub fn inner(&self) -> usize {
        self.expand * self.hidden_size
    }

    fn mixer_dims(&self) -> MixerDims {
        MixerDims { e: self.inner(), n: self.state_size, r: self.dt_rank, k: self.conv }
    }

    pub fn validate(&self) -> Result<()> {
        let sizes =
            [self.input_size, self.hidden_size, self.state_size, self.expand, self.conv, self.dt_rank];
        if sizes.contains(&0) || self.num_layers == 0 {
            bail!("mamba: input, hidden and state sizes, expand, conv width, dt rank and layer count must be ≥ 1");
        }
        if !(0.0 < self.dt_min && self.dt_min <= self.dt_max && self.dt_max.is_finite()) {
            bail!("mamba: need 0 < dt_min ≤ dt_max, got {} and {}", self.dt_min, self.dt_max);
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("mamba: dropout must be in [0, 1), got {}", self.dropout);
        }
        Ok(())
    }

    /// Seeded initial parameters under their module names.
    pub fn init_tensors(&self, seed: u64, device: &Device) -> Result<Vec<(String, Tensor)>> {
        self.validate()?;
        let (i, h, n, k, r, e) =
            (self.input_size, self.hidden_size, self.state_size, self.conv, self.dt_rank, self.inner());
        let mut rng = Initializer::new(seed);
        let mut out = Vec::new();
        let mut push = |name: String, v: Vec<f32>, shape: &[usize]| -> Result<()> {
            out.push((name, Tensor::from_vec(v, shape, device)?));
            Ok(())
        };
        // nn.Linear's and nn.Conv1d's default: U(±1/√fan_in).
        let fan = |f: usize| 1.0 / (f as f64).sqrt();
        push("encoder.weight".into(), rng.uniform(h * i, fan(i)), &[h, i])?;
        push("encoder.bias".into(), rng.uniform(h, fan(i)), &[h])?;
        for b in 0..self.num_layers {
            let p = |name: &str| format!("blocks.{b}.{name}");
            push(p("norm.weight"), vec![1.0; h], &[h])?;
            push(p("norm.bias"), vec![0.0; h], &[h])?;
            push(p("mixer.in_proj.weight"), rng.uniform(2 * e * h, fan(h)), &[2 * e, h])?;
            push(p("mixer.conv1d.weight"), rng.uniform(e * k, fan(k)), &[e, 1, k])?;
            push(p("mixer.conv1d.bias"), rng.uniform(e, fan(k)), &[e])?;
            push(p("mixer.x_proj.weight"), rng.uniform((r + 2 * n) * e, fan(e)), &[r + 2 * n, e])?;
            push(p("mixer.dt_proj.weight"), rng.uniform(e * r, fan(r)), &[e, r])?;
            let (lo, hi) = (self.dt_min.ln(), self.dt_max.ln());
            let dt_bias = rng.uniform(e, 0.5).into_iter().map(|v| {
                let dt = (lo + (v as f64 + 0.5) * (hi - lo)).exp().max(1e-4);
                (dt + (-(-dt).exp_m1()).ln()) as f32 // softplus⁻¹(Δ)
            });
            push(p("mixer.dt_proj.bias"), dt_bias.collect(), &[e])?;
            let a_log = (0..e).flat_map(|_| (1..=n).map(|v| (v as f32).ln()));
            push(p("mixer.A_log"), a_log.collect(), &[e, n])?;
            push(p("mixer.D"), vec![1.0; e], &[e])?;
            push(p("mixer.out_proj.weight"), rng.uniform(h * e, fan(e)), &[h, e])?;
        }
        Ok(out)
    }

    /// Parameters per block, from the sizes alone.
    pub(crate) fn block_parameters(&self) -> f64 {
        let (h, n, k, r, e) = (self.hidden_size, self.state_size, self.conv, self.dt_rank, self.inner());
        (2 * h + 2 * e * h + e * (k + 1) + (r + 2 * n) * e + e * (r + 1) + e * n + e + h * e) as f64
    }
}

struct Block {
    norm: LayerNorm,
    in_proj: Tensor,   // (2E, H)
    conv_w: Tensor,    // (E, 1, K)
    conv_b: Tensor,    // (E)
    x_proj: Tensor,    // (R + 2N, E)
    dt_proj_w: Tensor, // (E, R)
    dt_proj_b: Tensor, // (E)
    a_log: Tensor,     // (E, N)
    d: Tensor,         // (E)
    out_proj: Tensor,  // (H, E)
    dims: MixerDims,
}

impl Block {
    fn new(c: &MambaConfig, vb: VarBuilder) -> Result<Self> {
        let (h, MixerDims { e, n, r, k }) = (c.hidden_size, c.mixer_dims());
        let m = vb.pp("mixer");
        Ok(Self {
            norm: LayerNorm::new(h, 1e-5, vb.pp("norm"))?,
            in_proj: m.get((2 * e, h), "in_proj.weight")?,
            conv_w: m.get((e, 1, k), "conv1d.weight")?,
            conv_b: m.get(e, "conv1d.bias")?,
            x_proj: m.get((r + 2 * n, e), "x_proj.weight")?,
            dt_proj_w: m.get((e, r), "dt_proj.weight")?,
            dt_proj_b: m.get(e, "dt_proj.bias")?,
            a_log: m.get((e, n), "A_log")?,
            d: m.get(e, "D")?,
            out_proj: m.get((h, e), "out_proj.weight")?,
            dims: c.mixer_dims(),
        })
    }

    /// The block on the CPU kernels: the projections as fused linear ops, and between them the
    /// mixer op on one flat vector of its parameters (transposed where it reads them by channel).
    fn forward_fused(&self, x: &Tensor, slot: Option<&Slot>) -> Result<Tensor> {
        let MixerDims { e, .. } = self.dims;
        let (h, dev) = (self.out_proj.dim(0)?, x.device());
        let z = self.norm.apply(x, true)?; // (B, T, H)
        let xg = kernels::linear(
            &z,
            &self.in_proj,
            &Tensor::zeros(2 * e, DType::F32, dev)?,
            Activation::Identity,
        )?; // (B, T, 2E)
        let a = self.a_log.exp()?.neg()?.t()?; // (N, E)
        let params = Tensor::cat(
            &[
                self.conv_w.squeeze(1)?.t()?.flatten_all()?, // (K, E)
                self.conv_b.clone(),
                self.x_proj.flatten_all()?,
                self.dt_proj_w.flatten_all()?,
                self.dt_proj_b.clone(),
                a.flatten_all()?,
                self.d.clone(),
            ],
            0,
        )?;
        let y = mamba_mixer(&xg, &params, self.dims, slot)?; // (B, T, E)
        kernels::linear(&y, &self.out_proj, &Tensor::zeros(h, DType::F32, dev)?, Activation::Identity)
        // (B, T, H)
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
            return self.forward_fused(x, slot);
        }
        let MixerDims { e, n, r, .. } = self.dims;
        let z = self.norm.forward(x)?; // (B, T, H)
        let xg = z.broadcast_matmul(&self.in_proj.t()?)?; // (B, T, 2E)
        let (xc, g) = (xg.narrow(D::Minus1, 0, e)?, xg.narrow(D::Minus1, e, e)?);
        let u = causal_conv(&xc, &self.conv_w, &self.conv_b)?.silu()?; // (B, T, E)
        let dbc = u.broadcast_matmul(&self.x_proj.t()?)?; // (B, T, R + 2N)
        let dt_pre = dbc
            .narrow(D::Minus1, 0, r)?
            .broadcast_matmul(&self.dt_proj_w.t()?)?
            .broadcast_add(&self.dt_proj_b)?;
        let dt = softplus(&dt_pre)?; // (B, T, E)
        let (b, c) = (dbc.narrow(D::Minus1, r, n)?, dbc.narrow(D::Minus1, r + n, n)?); // (B, T, N) each
        let a = self.a_log.exp()?.neg()?; // (E, N)
        let y = selective_scan(&u, &dt, &a, &b, &c, tap)?; // (B, T, E)
        let y = (y + u.broadcast_mul(&self.d)?)?;
        (y * g.silu()?)?.broadcast_matmul(&self.out_proj.t()?) // (B, T, H)
    }

    fn detached(&self) -> Self {
        let d = Tensor::detach;
        Self {
            norm: LayerNorm { weight: d(&self.norm.weight), bias: d(&self.norm.bias), eps: self.norm.eps },
            in_proj: d(&self.in_proj),
            conv_w: d(&self.conv_w),
            conv_b: d(&self.conv_b),
            x_proj: d(&self.x_proj),
            dt_proj_w: d(&self.dt_proj_w),
            dt_proj_b: d(&self.dt_proj_b),
            a_log: d(&self.a_log),
            d: d(&self.d),
            out_proj: d(&self.out_proj),
            dims: self.dims,
        }
    }

    fn tap_width(&self, fused: bool) -> usize {
        if fused {
            1
        } else {
            self.dims.e * self.dims.n
        }
    }
}

/// PyTorch's `nn.Conv1d(E, E, K, groups=E, padding=K-1)(x)[..., :T]` on (B, T, E): c_t = bias +
/// Σ_j w_j ⊙ x_{t−K+1+j}, zeros before the start.
fn causal_conv(x: &Tensor, w: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let (b, t, e) = x.dims3()?;
    let k = w.dim(2)?;
    let padded = Tensor::cat(&[&Tensor::zeros((b, k - 1, e), x.dtype(), x.device())?, x], 1)?; // (B, T+K-1, E)
    let mut c = bias.reshape((1, 1, e))?.broadcast_as((b, t, e))?.contiguous()?;
    for j in 0..k {
        let wj = w.narrow(2, j, 1)?.reshape((1, 1, e))?;
        c = (c + padded.narrow(1, j, t)?.broadcast_mul(&wj)?)?;
    }
    Ok(c)
}

/// ln(1 + e^x) = max(x, 0) + ln(1 + e^{−|x|}), which neither overflows nor loses small values.
fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// The reference recurrence, a step at a time (`mamba_ssm`'s `selective_scan_ref`), with the
/// tap's zero tensor added to h_t so that its gradient is the total ∂L/∂h_t.
fn selective_scan(
    u: &Tensor,
    dt: &Tensor,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    tap: Option<&LayerTap>,
) -> Result<Tensor> {
    let (batch, _, e) = u.dims3()?;
    let n = a.dim(1)?;
    let dtu = (dt * u)?; // (B, T, E)
    let taps = tap.map(|tp| unbind(tp.h_tensor(), 1)).transpose()?;
    let (dts, dtus, bs, cs) = (unbind(dt, 1)?, unbind(&dtu, 1)?, unbind(b, 1)?, unbind(c, 1)?);
    let mut h = Tensor::zeros((batch, e, n), u.dtype(), u.device())?;
    let mut ys = Vec::with_capacity(dts.len());
    for step in 0..dts.len() {
        let decay = dts[step].unsqueeze(2)?.broadcast_mul(a)?.exp()?; // (B, E, N)
        let input = dtus[step].unsqueeze(2)?.broadcast_mul(&bs[step].unsqueeze(1)?)?; // (B, E, N)
        h = ((decay * h)? + input)?;
        if let Some(taps) = &taps {
            h = (h + taps[step].reshape((batch, e, n))?)?;
        }
        ys.push(h.broadcast_mul(&cs[step].unsqueeze(1)?)?.sum(2)?); // (B, E)
    }
    Tensor::stack(&ys, 1)
}

/// What [`Mamba::forward_with`] returns.
pub struct MambaOutput {
    /// The last block's output (B, T, H).
    pub output: Tensor,
    /// The state taps of every block after backward, when recorded (see the module docs).
    pub taps: Option<StateTaps>,
}

/// A stack of Mamba blocks behind a linear encoder.
pub struct Mamba {
    config: MambaConfig,
    stack: BlockStack<Block>,
}

impl Mamba {
    /// Reads `encoder.*` and `blocks.{k}.*` from `vb`.
    pub fn new(config: &MambaConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let encoder = linear(config.input_size, config.hidden_size, vb.pp("encoder"))?;
        let blocks = (0..config.num_layers)
            .map(|k| Block::new(config, vb.pp(format!("blocks.{k}"))))
            .collect::<Result<Vec<_>>>()?;
        let stack = BlockStack {
            name: "mamba",
            input_size: config.input_size,
            dropout: config.dropout,
            encoder,
            blocks,
        };
        Ok(Self { config: config.clone(), stack })
    }

    pub fn config(&self) -> &MambaConfig {
        &self.config
    }

    /// `x` (B, T, I) from a zero state. Honours `opts`' backend, taps, training dropout and
    /// no_grad.
    pub fn forward_with(&self, x: &Tensor, opts: &ForwardOptions) -> Result<MambaOutput> {
        let (output, taps) = self.stack.forward_with(x, opts)?;
        Ok(MambaOutput { output, taps })
    }
}

impl Module for Mamba {
    /// (B, T, I) -> (B, T, H), inference mode on the automatic backend.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with(x, &ForwardOptions::default())?.output)
    }
}
