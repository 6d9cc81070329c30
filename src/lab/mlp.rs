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

/// The hidden layers' nonlinearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    Sigmoid,
    Tanh,
    Relu,
    /// max(x, 0.01 x).
    LeakyRelu,
    /// max(x, a x) with a learnable slope a per layer, initialised to 0.25 (He et al. 2015).
    Prelu,
    /// x for x > 0, e^x − 1 otherwise (Clevert et al. 2016).
    Elu,
    /// x Φ(x), the exact erf form.
    Gelu,
    /// The identity: a deep linear network (for analysis and tests).
    Linear,
}

/// Slope of [`Activation::LeakyRelu`] for x < 0.
pub const LEAKY_SLOPE: f64 = 0.01;
/// Initial slope of [`Activation::Prelu`].
pub const PRELU_INIT: f64 = 0.25;

impl Activation {
    pub const ALL: [Activation; 8] = [
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Relu,
        Activation::LeakyRelu,
        Activation::Prelu,
        Activation::Elu,
        Activation::Gelu,
        Activation::Linear,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::LeakyRelu => "leaky-relu",
            Activation::Prelu => "prelu",
            Activation::Elu => "elu",
            Activation::Gelu => "gelu",
            Activation::Linear => "linear",
        }
    }

    /// Sigmoid and tanh flatten out for large |x|: the activations the literature blames.
    pub fn saturating(self) -> bool {
        matches!(self, Activation::Sigmoid | Activation::Tanh)
    }

    /// The init the literature pairs with it: Xavier for saturating ones, He for the ReLU family.
    pub fn matched_init(self) -> MlpInit {
        if self.saturating() || self == Activation::Linear {
            MlpInit::Xavier
        } else {
            MlpInit::He
        }
    }

    /// He's gain for this activation: √(2 / (1 + a²)) with a the negative slope (PyTorch's
    /// `calculate_gain`); √2 for ELU and GELU, 1 for the rest.
    pub fn he_gain(self) -> f64 {
        let leaky = |a: f64| (2.0 / (1.0 + a * a)).sqrt();
        match self {
            Activation::Relu | Activation::Elu | Activation::Gelu => std::f64::consts::SQRT_2,
            Activation::LeakyRelu => leaky(LEAKY_SLOPE),
            Activation::Prelu => leaky(PRELU_INIT),
            _ => 1.0,
        }
    }

    fn apply(self, x: &Tensor, slope: Option<&Var>) -> candle_core::Result<Tensor> {
        match self {
            Activation::Sigmoid => candle_nn::ops::sigmoid(x),
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.relu(),
            Activation::LeakyRelu => x.relu()? - (x.neg()?.relu()? * LEAKY_SLOPE)?,
            Activation::Prelu => {
                let a = slope.expect("a PReLU layer has a slope");
                x.relu()? - x.neg()?.relu()?.broadcast_mul(a.as_tensor())?
            }
            Activation::Elu => x.elu(1.0),
            Activation::Gelu => x.gelu_erf(),
            Activation::Linear => Ok(x.clone()),
        }
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.to_ascii_lowercase().replace('_', "-");
        let alias = match s.as_str() {
            "leaky" | "leakyrelu" | "lrelu" => "leaky-relu",
            "identity" | "none" => "linear",
            other => other,
        };
        Activation::ALL.into_iter().find(|a| a.name() == alias).ok_or_else(|| {
            format!(
                "unknown activation '{s}': expected sigmoid, tanh, relu, leaky-relu, prelu, elu, gelu or linear"
            )
        })
    }
}

/// How the weights are drawn. Biases are zero except under [`MlpInit::Pytorch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MlpInit {
    /// N(0, σ²) with a fixed small σ (`init_std`, default 0.01) whatever the width: the
    /// "badly scaled" init of the pre-2010 literature.
    SmallNormal,
    /// `torch.nn.Linear`'s default: weight and bias ~ U(±1/√fan_in) (variance 1/(3·fan_in)).
    Pytorch,
    /// Glorot & Bengio (2010) uniform: U(±√(6/(fan_in+fan_out))).
    Xavier,
    /// He et al. (2015) normal, fan-in mode: N(0, gain²/fan_in), gain from the activation.
    He,
}

impl MlpInit {
    pub const ALL: [MlpInit; 4] = [MlpInit::SmallNormal, MlpInit::Pytorch, MlpInit::Xavier, MlpInit::He];

    pub fn name(self) -> &'static str {
        match self {
            MlpInit::SmallNormal => "small-normal",
            MlpInit::Pytorch => "pytorch",
            MlpInit::Xavier => "xavier",
            MlpInit::He => "he",
        }
    }
}

impl std::fmt::Display for MlpInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for MlpInit {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.to_ascii_lowercase().replace('_', "-");
        let alias = match s.as_str() {
            "small" | "normal" | "small-gaussian" => "small-normal",
            "default" | "torch" => "pytorch",
            "glorot" => "xavier",
            "kaiming" => "he",
            other => other,
        };
        MlpInit::ALL
            .into_iter()
            .find(|i| i.name() == alias)
            .ok_or_else(|| format!("unknown init '{s}': expected small-normal, pytorch, xavier or he"))
    }
}

/// Normalisation of every hidden layer's pre-activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Norm {
    #[default]
    None,
    /// Batch statistics in training, running statistics in evaluation; learnable γ, β.
    Batch,
    /// Per-sample statistics over the features; learnable γ, β.
    Layer,
}

impl Norm {
    pub const ALL: [Norm; 3] = [Norm::None, Norm::Batch, Norm::Layer];

    pub fn name(self) -> &'static str {
        match self {
            Norm::None => "none",
            Norm::Batch => "batch",
            Norm::Layer => "layer",
        }
    }
}

impl std::fmt::Display for Norm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Norm {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "off" => Ok(Norm::None),
            "batch" | "bn" | "batchnorm" | "batch-norm" => Ok(Norm::Batch),
            "layer" | "ln" | "layernorm" | "layer-norm" => Ok(Norm::Layer),
            other => Err(format!("unknown norm '{other}': expected none, batch or layer")),
        }
    }
}

/// Normalisation epsilon and batch-norm running-average momentum (PyTorch's defaults).
pub const NORM_EPS: f64 = 1e-5;
pub const BN_MOMENTUM: f64 = 0.1;

/// Default σ of [`MlpInit::SmallNormal`].
pub const SMALL_NORMAL_STD: f64 = 0.01;

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
mod tests {
    use super::*;

    fn mse(out: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok(out.sub(y)?.sqr()?.mean_all()?)
    }

    /// Row-major (r, c) matrix product of f64 slices.
    fn matmul(a: &[f64], b: &[f64], n: usize, k: usize, m: usize) -> Vec<f64> {
        let mut out = vec![0.0; n * m];
        for i in 0..n {
            for j in 0..m {
                out[i * m + j] = (0..k).map(|p| a[i * k + p] * b[p * m + j]).sum();
            }
        }
        out
    }

    #[test]
    fn linear_network_taps_equal_the_analytic_gradient() -> Result<()> {
        // y = W_3 W_2 W_1 x (biases 0 under Xavier). With L = mean_{b,o} (y - t)², the gradient
        // at h_l is δ_l = δ_{l+1} W_{l+1}, δ_out = 2 (y - t) / (B·O): computed here by hand.
        let dev = Device::Cpu;
        let cfg = MlpConfig { init: MlpInit::Xavier, ..MlpConfig::new(3, 2, 4, 4, Activation::Linear) };
        let mlp = Mlp::with_dtype(&cfg, 5, DType::F64, &dev)?;
        let (b, i, o) = (5, 3, 2);
        let xs: Vec<f64> = (0..b * i).map(|k| ((k * 7 % 11) as f64 - 5.0) / 4.0).collect();
        let ts: Vec<f64> = (0..b * o).map(|k| (k as f64).sin()).collect();
        let x = Tensor::from_vec(xs.clone(), (b, i), &dev)?;
        let t = Tensor::from_vec(ts.clone(), (b, o), &dev)?;
        let profile = mlp.gradient_profile(&x, 0, |out| mse(out, &t))?;

        let ws: Vec<(Vec<f64>, usize, usize)> = mlp
            .weights()
            .iter()
            .map(|w| {
                let (r, c) = w.dims2().unwrap();
                (w.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap(), r, c)
            })
            .collect();
        let transpose = |m: &[f64], r: usize, c: usize| -> Vec<f64> {
            let mut out = vec![0.0; r * c];
            for a in 0..r {
                for bb in 0..c {
                    out[bb * r + a] = m[a * c + bb];
                }
            }
            out
        };
        // Forward: h_l = h_{l-1} W_lᵀ.
        let mut hs = vec![xs.clone()];
        let mut width = i;
        for (w, r, c) in &ws {
            let next = matmul(hs.last().unwrap(), &transpose(w, *r, *c), b, width, *r);
            hs.push(next);
            width = *r;
        }
        let y = hs.last().unwrap();
        let mut delta: Vec<f64> = y.iter().zip(&ts).map(|(y, t)| 2.0 * (y - t) / (b * o) as f64).collect();
        let mut expected = Vec::new();
        let mut expected_w = Vec::new();
        for l in (0..ws.len()).rev() {
            let (w, r, c) = &ws[l];
            // ∂L/∂W_l = δ_lᵀ h_{l-1}.
            let gw = matmul(&transpose(&delta, b, *r), &hs[l], *r, b, *c);
            expected_w.push(gw.iter().map(|v| v * v).sum::<f64>().sqrt());
            delta = matmul(&delta, w, b, *r, *c); // δ_{l-1} = δ_l W_l
            if l > 0 {
                expected.push(delta.iter().map(|v| v * v).sum::<f64>().sqrt());
            }
        }
        expected.reverse();
        expected_w.reverse();
        assert_eq!(profile.hidden.len(), 3);
        for (got, want) in profile.hidden.iter().zip(&expected) {
            assert!((got - want).abs() <= 1e-12 * want.max(1.0), "hidden {got} vs {want}");
        }
        for (got, want) in profile.weights.iter().zip(&expected_w) {
            assert!((got - want).abs() <= 1e-12 * want.max(1.0), "weight {got} vs {want}");
        }
        Ok(())
    }

    /// ∂L/∂h_l against central differences: add ±ε to one entry of h_l and re-run the rest of
    /// the network, through batch/layer norm, residual connections and every nonlinearity.
    #[test]
    fn taps_match_finite_differences_through_norms_and_nonlinearities() -> Result<()> {
        let dev = Device::Cpu;
        for (act, norm, residual) in [
            (Activation::Tanh, Norm::Batch, false),
            (Activation::Gelu, Norm::Layer, true),
            (Activation::Prelu, Norm::None, true),
            (Activation::Elu, Norm::Batch, true),
            (Activation::Sigmoid, Norm::Layer, false),
        ] {
            let cfg = MlpConfig { init: MlpInit::Pytorch, norm, residual, ..MlpConfig::new(3, 2, 4, 4, act) };
            let mlp = Mlp::with_dtype(&cfg, 11, DType::F64, &dev)?;
            let b = 6;
            let xs: Vec<f64> = (0..b * 3).map(|k| ((k * 5 % 13) as f64 - 6.0) / 3.0).collect();
            let x = Tensor::from_vec(xs, (b, 3), &dev)?;
            let t = Tensor::from_vec((0..b * 2).map(|k| (k as f64).cos()).collect::<Vec<_>>(), (b, 2), &dev)?;
            let out = mlp.forward(&x, Mode::Probe { dropout_seed: 0 }, true)?;
            let loss = mse(&out.output, &t)?;
            let grads = loss.backward()?;
            let taps = out.taps.unwrap();
            for (l, tap) in taps.iter().enumerate() {
                let g = grads.get(tap.as_tensor()).unwrap().flatten_all()?.to_vec1::<f64>()?;
                // Nudge one entry of the tap and re-run: loss(tap + ε e_k).
                for k in [0, 5, 13, 23] {
                    let eps = 1e-6;
                    let eval = |delta: f64| -> Result<f64> {
                        let mut v = vec![0.0; b * 4];
                        v[k] = delta;
                        tap.set(&Tensor::from_vec(v, (b, 4), &dev)?)?;
                        let o = forward_with_nudge(&mlp, &x, l, tap.as_tensor())?;
                        mse(&o, &t)?.to_scalar::<f64>().map_err(Into::into)
                    };
                    let fd = (eval(eps)? - eval(-eps)?) / (2.0 * eps);
                    assert!(
                        (fd - g[k]).abs() < 1e-6 * (1.0 + g[k].abs()),
                        "{act} {norm} res={residual} layer {l} entry {k}: tap {} vs fd {fd}",
                        g[k]
                    );
                }
            }
        }
        Ok(())
    }

    /// The forward pass with `nudge` added to hidden representation `layer` (0-based).
    fn forward_with_nudge(mlp: &Mlp, x: &Tensor, layer: usize, nudge: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        let cfg = mlp.config();
        let last = mlp.layers.len() - 1;
        for (l, lay) in mlp.layers.iter().enumerate() {
            let z = h.matmul(&lay.weight.as_tensor().t()?)?.broadcast_add(lay.bias.as_tensor())?;
            if l == last {
                return Ok(z);
            }
            let z = match &lay.norm {
                Some(n) => n.forward(&z, Mode::Probe { dropout_seed: 0 })?,
                None => z,
            };
            let a = cfg.activation.apply(&z, lay.slope.as_ref())?;
            h = if cfg.residual && l > 0 { (h + a)? } else { a };
            if l == layer {
                h = (h + nudge)?;
            }
        }
        unreachable!()
    }

    #[test]
    fn batch_and_layer_norm_match_hand_computed_values() -> Result<()> {
        let dev = Device::Cpu;
        let z = Tensor::new(&[[1.0f64, 2.0, 6.0], [3.0, 2.0, 0.0]], &dev)?;
        let layer = |kind| NormLayer {
            kind,
            gamma: Var::new(&[2.0f64, 1.0, 0.5], &dev).unwrap(),
            beta: Var::new(&[0.0f64, 1.0, -1.0], &dev).unwrap(),
            running: Mutex::new((
                Tensor::zeros(3, DType::F64, &dev).unwrap(),
                Tensor::ones(3, DType::F64, &dev).unwrap(),
            )),
        };
        // Batch norm, per column over the two rows: column 0 has mean 2, biased var 1 -> ∓1;
        // column 1 is constant -> 0; column 2 has mean 3, var 9 -> ±1.
        let bn = layer(Norm::Batch);
        let y = bn.forward(&z, Mode::Train { dropout_seed: 0 })?.to_vec2::<f64>()?;
        let s = |v: f64, var: f64| v / (var + NORM_EPS).sqrt();
        let want = [
            [2.0 * s(-1.0, 1.0), 1.0, 0.5 * s(3.0, 9.0) - 1.0],
            [2.0 * s(1.0, 1.0), 1.0, 0.5 * s(-3.0, 9.0) - 1.0],
        ];
        for (r, w) in y.iter().zip(&want) {
            for (a, b) in r.iter().zip(w) {
                assert!((a - b).abs() < 1e-12, "bn {a} vs {b}");
            }
        }
        // Running stats: 0.9·0 + 0.1·mean, 0.9·1 + 0.1·unbiased var (2, 0, 18).
        let (rm, rv) = bn.running.lock().unwrap().clone();
        assert_eq!(rm.to_vec1::<f64>()?, vec![0.2, 0.2, 0.30000000000000004]);
        let rv = rv.to_vec1::<f64>()?;
        for (a, b) in rv.iter().zip([1.1, 0.9, 2.7]) {
            assert!((a - b).abs() < 1e-12, "running var {a} vs {b}");
        }
        // Evaluation uses the running statistics.
        let e = bn.forward(&z, Mode::Eval)?.to_vec2::<f64>()?;
        assert!((e[0][0] - 2.0 * (1.0 - 0.2) / (1.1 + NORM_EPS).sqrt()).abs() < 1e-12);
        // A probe leaves them alone.
        bn.forward(&z, Mode::Probe { dropout_seed: 0 })?;
        assert_eq!(bn.running.lock().unwrap().0.to_vec1::<f64>()?, vec![0.2, 0.2, 0.30000000000000004]);

        // Layer norm, per row over the three features: row 0 has mean 3, var 14/3; row 1 mean
        // 5/3, var 14/9.
        let ln = layer(Norm::Layer);
        let y = ln.forward(&z, Mode::Train { dropout_seed: 0 })?.to_vec2::<f64>()?;
        let (m0, v0, m1, v1) = (3.0, 14.0 / 3.0, 5.0 / 3.0, 14.0 / 9.0);
        let want = [
            [2.0 * s(1.0 - m0, v0), s(2.0 - m0, v0) + 1.0, 0.5 * s(6.0 - m0, v0) - 1.0],
            [2.0 * s(3.0 - m1, v1), s(2.0 - m1, v1) + 1.0, 0.5 * s(0.0 - m1, v1) - 1.0],
        ];
        for (r, w) in y.iter().zip(&want) {
            for (a, b) in r.iter().zip(w) {
                assert!((a - b).abs() < 1e-12, "ln {a} vs {b}");
            }
        }
        Ok(())
    }

    #[test]
    fn activations_match_their_definitions() -> Result<()> {
        let dev = Device::Cpu;
        let xs = [-2.0f64, -0.5, 0.5, 3.0];
        let x = Tensor::new(&xs, &dev)?;
        let slope = Var::new(&[PRELU_INIT], &dev)?;
        let erf = |v: f64| {
            // Abramowitz–Stegun 7.1.26 is too coarse; integrate instead (Simpson, fine grid).
            let n = 20_000;
            let h = v / n as f64;
            let f = |t: f64| (-t * t).exp();
            let mut s = f(0.0) + f(v);
            for k in 1..n {
                s += f(k as f64 * h) * if k % 2 == 1 { 4.0 } else { 2.0 };
            }
            s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
        };
        for act in Activation::ALL {
            let y = act.apply(&x, Some(&slope))?.to_vec1::<f64>()?;
            for (&v, &got) in xs.iter().zip(&y) {
                let want = match act {
                    Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
                    Activation::Tanh => v.tanh(),
                    Activation::Relu => v.max(0.0),
                    Activation::LeakyRelu => v.max(LEAKY_SLOPE * v),
                    Activation::Prelu => v.max(PRELU_INIT * v),
                    Activation::Elu => {
                        if v > 0.0 {
                            v
                        } else {
                            v.exp() - 1.0
                        }
                    }
                    Activation::Gelu => 0.5 * v * (1.0 + erf(v / 2f64.sqrt())),
                    Activation::Linear => v,
                };
                assert!((got - want).abs() < 1e-6, "{act}({v}) = {got}, want {want}");
            }
        }
        Ok(())
    }

    #[test]
    fn names_round_trip_and_seeds_repeat() -> Result<()> {
        for a in Activation::ALL {
            assert_eq!(a.name().parse::<Activation>().unwrap(), a);
        }
        for i in MlpInit::ALL {
            assert_eq!(i.name().parse::<MlpInit>().unwrap(), i);
        }
        for n in Norm::ALL {
            assert_eq!(n.name().parse::<Norm>().unwrap(), n);
        }
        assert!("swish".parse::<Activation>().is_err());
        let cfg = MlpConfig::new(4, 1, 8, 3, Activation::Relu);
        let a = Mlp::new(&cfg, 3, &Device::Cpu)?;
        let b = Mlp::new(&cfg, 3, &Device::Cpu)?;
        for ((_, x), (_, y)) in a.named_parameters().iter().zip(b.named_parameters().iter()) {
            assert_eq!(x.flatten_all()?.to_vec1::<f32>()?, y.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(())
    }
}
