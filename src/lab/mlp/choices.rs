//! The switches an MLP experiment varies: the hidden nonlinearity, the weight initialisation and
//! the normalisation layer, each with its constants, its name on the command line and its parser.

use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

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

    pub(super) fn apply(self, x: &Tensor, slope: Option<&Var>) -> candle_core::Result<Tensor> {
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
