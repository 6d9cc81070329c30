//! A plain multilayer perceptron for the depth axis, with per-layer gradient taps.
//!
//! `depth` counts weight layers: layer 1 maps the input to the hidden width, layers 2..depth-1
//! are hidden-to-hidden blocks, and layer `depth` is the linear readout. Every layer but the
//! readout is `h_l = act(norm(W_l h_{l-1} + b_l))`, then dropout, then (hidden-to-hidden blocks
//! only, with `residual`) `h_l = h_{l-1} + that`. Normalisation sits before the nonlinearity, as
//! in Ioffe & Szegedy (2015).
//!
//! The taps work like the recurrent ones in `crate::models::taps`: a zero `Var` of shape (B, W)
//! is added to every hidden representation h_l, so after `backward()` its gradient is exactly
//! ∂L/∂h_l. [`Mlp::gradient_profile`] returns ‖∂L/∂h_l‖ per hidden layer and ‖∂L/∂W_l‖ per
//! weight layer.

use crate::models::Initializer;
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

mod choices;
pub use choices::*;

/// Everything that defines an [`Mlp`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    pub input: usize,
    pub output: usize,
    pub width: usize,
    /// Weight layers, ≥ 2 (one hidden layer).
    pub depth: usize,
    pub activation: Activation,
    pub init: MlpInit,
    /// σ of [`MlpInit::SmallNormal`].
    pub init_std: f64,
    pub residual: bool,
    pub norm: Norm,
    pub dropout: f64,
}

impl MlpConfig {
    pub fn new(input: usize, output: usize, width: usize, depth: usize, activation: Activation) -> Self {
        Self {
            input,
            output,
            width,
            depth,
            activation,
            init: activation.matched_init(),
            init_std: SMALL_NORMAL_STD,
            residual: false,
            norm: Norm::None,
            dropout: 0.0,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.depth < 2 {
            bail!("--depth must be ≥ 2 (one hidden layer and the readout), got {}", self.depth);
        }
        if self.width == 0 || self.input == 0 || self.output == 0 {
            bail!("--width must be ≥ 1 (got {})", self.width);
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("--dropout must be in [0, 1) (got {})", self.dropout);
        }
        if !(self.init_std > 0.0 && self.init_std.is_finite()) {
            bail!("--init-std must be a finite number > 0 (got {})", self.init_std);
        }
        Ok(())
    }

    /// Refuses a network whose parameters (with gradients and optimiser state) and activations
    /// for `examples` rows would exceed the machine's memory, naming the flags that size it.
    pub fn check_memory(&self, examples: usize) -> Result<()> {
        let (w, d) = (self.width as f64, self.depth as f64);
        let params = d * w * (w + 1.0) + (self.input + self.output) as f64 * w;
        let bytes = 4.0 * (5.0 * params + 8.0 * examples as f64 * d * w);
        let limit = crate::util::memory_limit_bytes();
        if bytes > limit {
            bail!(
                "--depth {} × --width {} over {examples} examples needs about {:.3e} GB, over the {:.1} GB of \
                 memory this machine has; lower --depth, --width or --batch",
                self.depth,
                self.width,
                bytes / 1e9,
                limit / 1e9
            );
        }
        Ok(())
    }

    /// Hidden representations h_1..h_{depth-1}.
    pub fn hidden_layers(&self) -> usize {
        self.depth - 1
    }

    /// `relu he d32`, with `+res`, `+bn`/`+ln`, `+drop0.1` as they apply.
    pub fn label(&self) -> String {
        self.compose_label(true)
    }

    /// [`MlpConfig::label`] without the depth: the line a depth sweep draws for this variant.
    pub fn variant_label(&self) -> String {
        self.compose_label(false)
    }

    fn compose_label(&self, with_depth: bool) -> String {
        let mut s = format!("{} {}", self.activation, self.init);
        if self.init == MlpInit::SmallNormal && self.init_std != SMALL_NORMAL_STD {
            s.push_str(&format!("({})", self.init_std));
        }
        if with_depth {
            s.push_str(&format!(" d{}", self.depth));
        }
        if self.residual {
            s.push_str(" +res");
        }
        match self.norm {
            Norm::None => {}
            Norm::Batch => s.push_str(" +bn"),
            Norm::Layer => s.push_str(" +ln"),
        }
        if self.dropout > 0.0 {
            s.push_str(&format!(" +drop{}", self.dropout));
        }
        s
    }
}

/// Which statistics and noise a forward pass uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics (updating the running ones), dropout with this seed.
    Train { dropout_seed: u64 },
    /// Like training (batch statistics, dropout with this seed) but leaves running statistics
    /// alone: a gradient measurement must not change the model.
    Probe { dropout_seed: u64 },
    /// Running statistics, no dropout.
    Eval,
}

struct NormLayer {
    kind: Norm,
    gamma: Var,
    beta: Var,
    /// Batch norm: running mean and (unbiased) variance, (W,).
    running: Mutex<(Tensor, Tensor)>,
}

impl NormLayer {
    fn forward(&self, z: &Tensor, mode: Mode) -> Result<Tensor> {
        let normed = match (self.kind, mode) {
            (Norm::Layer, _) => {
                let mean = z.mean_keepdim(D::Minus1)?;
                let centred = z.broadcast_sub(&mean)?;
                let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
                centred.broadcast_div(&(var + NORM_EPS)?.sqrt()?)?
            }
            (Norm::Batch, Mode::Eval) => {
                let (mean, var) = self.running.lock().expect("norm lock").clone();
                z.broadcast_sub(&mean)?.broadcast_div(&(var + NORM_EPS)?.sqrt()?)?
            }
            (Norm::Batch, _) => {
                let n = z.dim(0)?;
                if n < 2 {
                    bail!("batch norm needs at least 2 samples per batch in training (got {n})");
                }
                let mean = z.mean_keepdim(0)?;
                let centred = z.broadcast_sub(&mean)?;
                let var = centred.sqr()?.mean_keepdim(0)?; // biased, as PyTorch normalises
                if let Mode::Train { .. } = mode {
                    let mut running = self.running.lock().expect("norm lock");
                    let unbiased = (var.detach().squeeze(0)? * (n as f64 / (n - 1) as f64))?;
                    let m = BN_MOMENTUM;
                    running.0 = ((&running.0 * (1.0 - m))? + (mean.detach().squeeze(0)? * m)?)?;
                    running.1 = ((&running.1 * (1.0 - m))? + (unbiased * m)?)?;
                }
                centred.broadcast_div(&(var + NORM_EPS)?.sqrt()?)?
            }
            (Norm::None, _) => unreachable!("no layer is built for Norm::None"),
        };
        Ok(normed.broadcast_mul(self.gamma.as_tensor())?.broadcast_add(self.beta.as_tensor())?)
    }
}

struct Layer {
    weight: Var,
    bias: Var,
    norm: Option<NormLayer>,
    slope: Option<Var>,
}

/// The network; parameters are plain `Var`s under PyTorch-like names (`layers.0.weight`, ...).
pub struct Mlp {
    config: MlpConfig,
    layers: Vec<Layer>,
}

/// What [`Mlp::forward`] returns.
pub struct MlpOutput {
    pub output: Tensor,
    /// With taps: one zero `Var` per hidden representation h_1..h_{depth-1}.
    pub taps: Option<Vec<Var>>,
}

/// Per-layer gradient norms of one backward pass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerProfile {
    /// ‖∂L/∂h_l‖ (Frobenius over the batch) for the hidden representations l = 1..depth-1.
    #[serde(deserialize_with = "crate::util::nullable::vec_f64")]
    pub hidden: Vec<f64>,
    /// ‖∂L/∂W_l‖ (Frobenius) for the weight layers l = 1..depth.
    #[serde(deserialize_with = "crate::util::nullable::vec_f64")]
    pub weights: Vec<f64>,
    /// The loss the gradients belong to.
    #[serde(deserialize_with = "crate::util::nullable::f64")]
    pub loss: f64,
}

impl LayerProfile {
    /// ‖∂L/∂h_1‖ / ‖∂L/∂h_{depth-1}‖: the first hidden layer's gradient relative to the last's.
    pub fn first_to_last(&self) -> f64 {
        match (self.hidden.first(), self.hidden.last()) {
            (Some(&f), Some(&l)) if l > 0.0 => f / l,
            _ => f64::NAN,
        }
    }

    /// ‖∂L/∂W_1‖ / ‖∂L/∂W_depth‖.
    pub fn weight_first_to_last(&self) -> f64 {
        match (self.weights.first(), self.weights.last()) {
            (Some(&f), Some(&l)) if l > 0.0 => f / l,
            _ => f64::NAN,
        }
    }

    /// max / min of the hidden-layer norms: 1 for a perfectly flat profile.
    pub fn spread(&self) -> f64 {
        let max = self.hidden.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let min = self.hidden.iter().copied().fold(f64::INFINITY, f64::min);
        if min > 0.0 {
            max / min
        } else {
            f64::INFINITY
        }
    }
}

fn frobenius(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.sqr()?.sum_all()?.sqrt()?.to_scalar::<f64>()?)
}

impl Mlp {
    /// Seeded parameters (f32). `seed` alone decides every draw.
    pub fn new(config: &MlpConfig, seed: u64, device: &Device) -> Result<Self> {
        Self::with_dtype(config, seed, DType::F32, device)
    }

    /// [`Mlp::new`] in another float type (tests use f64 for finite differences).
    pub fn with_dtype(config: &MlpConfig, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        config.validate()?;
        let mut rng = Initializer::new(seed);
        let var = |v: Vec<f32>, shape: &[usize]| -> Result<Var> {
            Ok(Var::from_tensor(&Tensor::from_vec(v, shape, device)?.to_dtype(dtype)?)?)
        };
        let mut layers = Vec::with_capacity(config.depth);
        for l in 0..config.depth {
            let readout = l + 1 == config.depth;
            let fan_in = if l == 0 { config.input } else { config.width };
            let fan_out = if readout { config.output } else { config.width };
            // The readout is linear: gain 1 whatever the hidden activation.
            let gain = if readout { 1.0 } else { config.activation.he_gain() };
            let n = fan_in * fan_out;
            let w = match config.init {
                MlpInit::SmallNormal => rng.normal(n, config.init_std),
                MlpInit::Pytorch => rng.uniform(n, 1.0 / (fan_in as f64).sqrt()),
                MlpInit::Xavier => rng.xavier(fan_out, fan_in, 1.0),
                MlpInit::He => rng.he(fan_out, fan_in, gain),
            };
            let b = match config.init {
                MlpInit::Pytorch => rng.uniform(fan_out, 1.0 / (fan_in as f64).sqrt()),
                _ => vec![0.0; fan_out],
            };
            let hidden = !readout;
            let norm = match config.norm {
                Norm::None => None,
                kind if hidden => Some(NormLayer {
                    kind,
                    gamma: var(vec![1.0; fan_out], &[fan_out])?,
                    beta: var(vec![0.0; fan_out], &[fan_out])?,
                    running: Mutex::new((
                        Tensor::zeros(fan_out, dtype, device)?,
                        Tensor::ones(fan_out, dtype, device)?,
                    )),
                }),
                _ => None,
            };
            let slope = (hidden && config.activation == Activation::Prelu)
                .then(|| var(vec![PRELU_INIT as f32], &[1]))
                .transpose()?;
            layers.push(Layer {
                weight: var(w, &[fan_out, fan_in])?,
                bias: var(b, &[fan_out])?,
                norm,
                slope,
            });
        }
        Ok(Self { config: config.clone(), layers })
    }

    pub fn config(&self) -> &MlpConfig {
        &self.config
    }

    /// Every learnable parameter with its name, in layer order.
    pub fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            out.push((format!("layers.{l}.weight"), layer.weight.clone()));
            out.push((format!("layers.{l}.bias"), layer.bias.clone()));
            if let Some(n) = &layer.norm {
                out.push((format!("layers.{l}.norm.weight"), n.gamma.clone()));
                out.push((format!("layers.{l}.norm.bias"), n.beta.clone()));
            }
            if let Some(a) = &layer.slope {
                out.push((format!("layers.{l}.prelu"), a.clone()));
            }
        }
        out
    }

    /// The weight matrices W_1..W_depth, each (fan_out, fan_in).
    pub fn weights(&self) -> Vec<&Var> {
        self.layers.iter().map(|l| &l.weight).collect()
    }

    /// `x`: (B, input) -> (B, output). With `taps`, ∂L/∂h_l can be read after `backward()`.
    pub fn forward(&self, x: &Tensor, mode: Mode, taps: bool) -> Result<MlpOutput> {
        let (b, _) = x.dims2()?;
        let mut h = x.clone();
        let mut tap_vars = Vec::new();
        let last = self.layers.len() - 1;
        for (l, layer) in self.layers.iter().enumerate() {
            let z = h.matmul(&layer.weight.as_tensor().t()?)?.broadcast_add(layer.bias.as_tensor())?;
            if l == last {
                return Ok(MlpOutput { output: z, taps: taps.then_some(tap_vars) });
            }
            let z = match &layer.norm {
                Some(n) => n.forward(&z, mode)?,
                None => z,
            };
            let mut a = self.config.activation.apply(&z, layer.slope.as_ref())?;
            let p = self.config.dropout;
            match mode {
                Mode::Train { dropout_seed } | Mode::Probe { dropout_seed } if p > 0.0 => {
                    a = crate::util::dropout(&a, p, dropout_seed.wrapping_add(l as u64))?;
                }
                _ => {}
            }
            h = if self.config.residual && l > 0 { (h + a)? } else { a };
            if taps {
                let tap = Var::zeros((b, self.config.width), h.dtype(), h.device())?;
                h = (h + tap.as_tensor())?;
                tap_vars.push(tap);
            }
        }
        unreachable!("the readout returns")
    }

    /// One forward (probe mode) and backward of `loss_fn(outputs)`: ‖∂L/∂h_l‖ and ‖∂L/∂W_l‖.
    pub fn gradient_profile(
        &self,
        x: &Tensor,
        dropout_seed: u64,
        loss_fn: impl Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<LayerProfile> {
        let out = self.forward(x, Mode::Probe { dropout_seed }, true)?;
        let loss = loss_fn(&out.output)?;
        let grads = loss.backward()?;
        let norm_of = |v: &Var| -> Result<f64> {
            match grads.get(v.as_tensor()) {
                Some(g) => frobenius(g),
                None => Ok(0.0),
            }
        };
        let hidden = out.taps.expect("taps requested").iter().map(norm_of).collect::<Result<Vec<_>>>()?;
        let weights = self.layers.iter().map(|l| norm_of(&l.weight)).collect::<Result<Vec<_>>>()?;
        Ok(LayerProfile { hidden, weights, loss: loss.to_dtype(DType::F64)?.to_scalar::<f64>()? })
    }
}

#[cfg(test)]
mod tests;
