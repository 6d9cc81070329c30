//! A complete sequence model for a task: input layer, recurrent stack or GPT, per-step readout.
//!
//! Recurrent families read token inputs one-hot (char-rnn style) and real inputs as they are;
//! a linear `head` maps h_t to the outputs. The GPT embeds tokens with its own `wte` (or projects
//! real inputs with `input_proj`) and its `lm_head` is the readout. Parameter names nest like a
//! PyTorch module would: `rnn.weight_ih_l0`, `head.weight`, `gpt.h.0.attn.c_attn.weight`, ...

use super::register;
use super::{
    ForwardOptions, Gpt, GptConfig, InitScheme, Initializer, Lru, LruConfig, Mamba, MambaConfig,
    Nonlinearity, Recurrent, RecurrentConfig, RecurrentState, StateTaps,
};
use crate::cell::CellKind;
use candle_core::{bail, DType, Device, Module, Result, Tensor};
use candle_nn::{linear, Linear, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

/// The model families gradscope compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Rnn,
    Lstm,
    Gru,
    Gpt,
    MinGru,
    MinLstm,
    Lru,
    Mamba,
}

impl Family {
    pub const ALL: [Family; 8] = [
        Family::Rnn,
        Family::Lstm,
        Family::Gru,
        Family::Gpt,
        Family::MinGru,
        Family::MinLstm,
        Family::Lru,
        Family::Mamba,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Rnn => "rnn",
            Family::Lstm => "lstm",
            Family::Gru => "gru",
            Family::Gpt => "gpt",
            Family::MinGru => "mingru",
            Family::MinLstm => "minlstm",
            Family::Lru => "lru",
            Family::Mamba => "mamba",
        }
    }

    /// The recurrent cell of a family built on the recurrent stack (`nonlinearity` for the
    /// vanilla RNN); None for the GPT, the LRU and Mamba, which have their own modules.
    pub fn cell(self, nonlinearity: Nonlinearity) -> Option<CellKind> {
        match self {
            Family::Rnn => Some(CellKind::Rnn(nonlinearity)),
            Family::Lstm => Some(CellKind::Lstm),
            Family::Gru => Some(CellKind::Gru),
            Family::MinGru => Some(CellKind::MinGru),
            Family::MinLstm => Some(CellKind::MinLstm),
            Family::Gpt | Family::Lru | Family::Mamba => None,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.to_ascii_lowercase();
        Family::ALL
            .into_iter()
            .find(|f| f.name() == s || (s == "transformer" && *f == Family::Gpt))
            .ok_or_else(|| {
                format!("unknown model '{s}': expected rnn, lstm, gru, mingru, minlstm, lru, mamba or gpt")
            })
    }
}

/// What the model reads at each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelInput {
    /// Token ids (B, T) from a vocabulary of this size.
    Tokens { vocab: usize },
    /// Real features (B, T, F).
    Real { features: usize },
}

/// Everything that defines a [`SeqModel`]; saved with every run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeqModelConfig {
    pub family: Family,
    /// Vanilla RNN only.
    pub nonlinearity: Nonlinearity,
    pub input: ModelInput,
    /// Outputs per step (classes, or 1 for regression).
    pub output_size: usize,
    /// Hidden size H (d_model for the GPT).
    pub hidden: usize,
    pub layers: usize,
    /// GPT only.
    pub heads: usize,
    /// GPT only: rows of the positional table (the longest sequence).
    pub context: usize,
    pub dropout: f64,
    pub init: InitScheme,
    pub init_gain: Option<f64>,
    /// LSTM only.
    pub forget_bias: Option<f64>,
    /// LRU only: the stack's resolved configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lru: Option<LruConfig>,
    /// Mamba only: the stack's resolved configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mamba: Option<MambaConfig>,
}

impl SeqModelConfig {
    fn input_width(&self) -> usize {
        match self.input {
            ModelInput::Tokens { vocab } => vocab,
            ModelInput::Real { features } => features,
        }
    }

    /// The recurrent stack's config (None for the GPT).
    pub fn recurrent(&self) -> Option<RecurrentConfig> {
        let cell = self.family.cell(self.nonlinearity)?;
        Some(RecurrentConfig {
            cell,
            input_size: self.input_width(),
            hidden_size: self.hidden,
            num_layers: self.layers,
            dropout: self.dropout,
            init: self.init,
            init_gain: self.init_gain,
            forget_bias: if self.family == Family::Lstm { self.forget_bias } else { None },
        })
    }

    /// The GPT's config (None for recurrent families).
    pub fn gpt(&self) -> Option<GptConfig> {
        (self.family == Family::Gpt).then(|| {
            let vocab = match self.input {
                ModelInput::Tokens { vocab } => vocab,
                // Real inputs go through `input_proj`; a one-row `wte` stays unused.
                ModelInput::Real { .. } => 1,
            };
            let mut cfg = GptConfig::new(vocab, self.context, self.layers, self.heads, self.hidden);
            cfg.dropout = self.dropout;
            cfg.output_size = Some(self.output_size);
            cfg
        })
    }

    /// The number of parameters, from the config alone (in f64, so absurd sizes cannot overflow).
    pub fn parameter_estimate(&self) -> f64 {
        let (h, l) = (self.hidden as f64, self.layers as f64);
        let o = self.output_size as f64;
        let readout = o * (h + 1.0);
        if let Some(lru) = &self.lru {
            let n = lru.state_size as f64;
            // encoder; per block: norm, ν θ γ, B and C (re and im), D, the GLU's two maps.
            let block = 2.0 * h + 3.0 * n + 4.0 * n * h + h + 2.0 * (h * h + h);
            return (self.input_width() as f64 + 1.0) * h + l * block + readout;
        }
        if let Some(mamba) = &self.mamba {
            return (self.input_width() as f64 + 1.0) * h + l * mamba.block_parameters() + readout;
        }
        match self.recurrent() {
            Some(r) => {
                let g = r.cell.gates() as f64;
                let cols = |n: usize| r.cell.packed_columns(n, self.hidden) as f64;
                g * h * cols(self.input_width()) + (l - 1.0).max(0.0) * g * h * cols(self.hidden) + readout
            }
            None => {
                let (vocab, proj) = match self.input {
                    ModelInput::Tokens { vocab } => (vocab as f64, 0.0),
                    ModelInput::Real { features } => (1.0, (features as f64 + 1.0) * h),
                };
                // wte, wpe, blocks (attention 4h², MLP 8h², norms and biases), final norm, head.
                (vocab + self.context as f64) * h + l * (12.0 * h * h + 13.0 * h) + 2.0 * h + readout + proj
            }
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.output_size == 0 || self.input_width() == 0 {
            bail!("the model needs at least one input and one output per step");
        }
        for (name, v) in [("init_gain", self.init_gain), ("forget_bias", self.forget_bias)] {
            if v.is_some_and(|v| !v.is_finite()) {
                bail!("{name} must be finite, got {}", v.unwrap_or_default());
            }
        }
        // A model.json edited by hand (or corrupted) must not make the allocator abort.
        let bytes = 4.0 * self.parameter_estimate();
        let limit = crate::util::memory_limit_bytes();
        if bytes > limit {
            bail!(
                "the model would hold about {:.2e} parameters ({:.1} GB), more than this machine's {:.1} GB \
                 of memory (hidden {}, layers {}, input {}, outputs {})",
                bytes / 4.0,
                bytes / 1e9,
                limit / 1e9,
                self.hidden,
                self.layers,
                self.input_width(),
                self.output_size
            );
        }
        match (self.recurrent(), self.gpt(), &self.lru) {
            (Some(r), _, _) => r.validate(),
            (_, Some(g), _) => g.validate(),
            (_, _, Some(lru)) if self.family == Family::Lru => lru.validate(),
            _ if self.family == Family::Mamba && self.mamba.is_some() => {
                self.mamba.as_ref().map_or(Ok(()), MambaConfig::validate)
            }
            _ => bail!("the {} model's configuration is incomplete", self.family),
        }
    }

    /// Seeded parameters for every part, under their nested names.
    pub fn init_tensors(&self, seed: u64, device: &Device) -> Result<Vec<(String, Tensor)>> {
        self.validate()?;
        let nest = |prefix: &str, v: Vec<(String, Tensor)>| {
            v.into_iter().map(|(n, t)| (format!("{prefix}.{n}"), t)).collect::<Vec<_>>()
        };
        // Sub-seeds keep the backbone's draw independent of the readout's size.
        let mut out = Vec::new();
        let mut rng = Initializer::new(seed ^ 0x005E_ED0F_4EAD);
        let lru = self.lru.as_ref().filter(|_| self.family == Family::Lru);
        if let Some(lru) = lru {
            out.extend(nest("lru", lru.init_tensors(seed, device)?));
        }
        let mamba = self.mamba.as_ref().filter(|_| self.family == Family::Mamba);
        if let Some(mamba) = mamba {
            out.extend(nest("mamba", mamba.init_tensors(seed, device)?));
        }
        if self.recurrent().is_some() || lru.is_some() || mamba.is_some() {
            if let Some(r) = self.recurrent() {
                out.extend(nest("rnn", r.init_tensors(seed, device)?));
            }
            // torch.nn.Linear's default: weight and bias ~ U(±1/√fan_in).
            let bound = 1.0 / (self.hidden as f64).sqrt();
            let w = rng.uniform(self.output_size * self.hidden, bound);
            out.push(("head.weight".into(), Tensor::from_vec(w, (self.output_size, self.hidden), device)?));
            out.push((
                "head.bias".into(),
                Tensor::from_vec(rng.uniform(self.output_size, bound), self.output_size, device)?,
            ));
        }
        if let Some(g) = self.gpt() {
            out.extend(nest("gpt", g.init_tensors(seed, device)?));
            if let ModelInput::Real { features } = self.input {
                let w = rng.normal(self.hidden * features, 0.02);
                out.push(("input_proj.weight".into(), Tensor::from_vec(w, (self.hidden, features), device)?));
                out.push(("input_proj.bias".into(), Tensor::zeros(self.hidden, DType::F32, device)?));
            }
        }
        Ok(out)
    }

    /// Fresh seeded parameters registered in `varmap`, and the model built on them.
    pub fn init(&self, varmap: &VarMap, seed: u64, device: &Device) -> Result<SeqModel> {
        let vb = register(varmap, "", self.init_tensors(seed, device)?, device)?;
        SeqModel::new(self, vb)
    }
}

enum Body {
    Recurrent { rnn: Recurrent, head: Linear },
    Lru { lru: Lru, head: Linear },
    Mamba { mamba: Mamba, head: Linear },
    Gpt { gpt: Gpt, input_proj: Option<Linear> },
}

/// What [`SeqModel::forward`] returns.
pub struct SeqOutput {
    /// Per-step outputs (logits or regression values): (B, T, O).
    pub outputs: Tensor,
    /// Recurrent families: every layer's final state (carry it for truncated BPTT).
    pub state: Option<RecurrentState>,
    /// Per-timestep state taps when requested: recurrent layers, or the GPT's residual stream
    /// after every block.
    pub taps: Option<StateTaps>,
}

pub struct SeqModel {
    config: SeqModelConfig,
    body: Body,
}

impl SeqModel {
    pub fn new(config: &SeqModelConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let lru = config.lru.as_ref().filter(|_| config.family == Family::Lru);
        let mamba = config.mamba.as_ref().filter(|_| config.family == Family::Mamba);
        let body = if let Some(lru) = lru {
            Body::Lru {
                lru: Lru::new(lru, vb.pp("lru"))?,
                head: linear(config.hidden, config.output_size, vb.pp("head"))?,
            }
        } else if let Some(mamba) = mamba {
            Body::Mamba {
                mamba: Mamba::new(mamba, vb.pp("mamba"))?,
                head: linear(config.hidden, config.output_size, vb.pp("head"))?,
            }
        } else if let Some(r) = config.recurrent() {
            Body::Recurrent {
                rnn: Recurrent::new(&r, vb.pp("rnn"))?,
                head: linear(config.hidden, config.output_size, vb.pp("head"))?,
            }
        } else {
            let g = config.gpt().expect("a non-recurrent family is the GPT");
            let input_proj = match config.input {
                ModelInput::Real { features } => Some(linear(features, config.hidden, vb.pp("input_proj"))?),
                ModelInput::Tokens { .. } => None,
            };
            Body::Gpt { gpt: Gpt::new(&g, vb.pp("gpt"))?, input_proj }
        };
        Ok(Self { config: config.clone(), body })
    }

    pub fn config(&self) -> &SeqModelConfig {
        &self.config
    }

    /// The recurrent stack, if this is a recurrent family.
    pub fn recurrent(&self) -> Option<&Recurrent> {
        match &self.body {
            Body::Recurrent { rnn, .. } => Some(rnn),
            Body::Gpt { .. } | Body::Lru { .. } | Body::Mamba { .. } => None,
        }
    }

    /// What the state taps record, for labels: `h` (recurrent stack, Mamba's SSM state), `s`
    /// (the LRU's complex state) or `resid` (the GPT's residual stream).
    pub fn state_name(&self) -> &'static str {
        match &self.body {
            Body::Recurrent { .. } | Body::Mamba { .. } => "h",
            Body::Lru { .. } => "s",
            Body::Gpt { .. } => "resid",
        }
    }

    /// The GPT, if this is a GPT reading token ids (a language model): what cached generation
    /// runs.
    pub fn token_gpt(&self) -> Option<&Gpt> {
        match &self.body {
            Body::Gpt { gpt, input_proj: None } => Some(gpt),
            _ => None,
        }
    }

    /// Saturation statistics of the recurrent stack on `inputs` (None for the GPT).
    pub fn saturation(&self, inputs: &Tensor) -> Result<Option<Vec<super::LayerSaturation>>> {
        match &self.body {
            Body::Recurrent { rnn, .. } => Ok(Some(rnn.saturation(&self.recurrent_input(inputs)?)?)),
            Body::Gpt { .. } | Body::Lru { .. } | Body::Mamba { .. } => Ok(None),
        }
    }

    fn recurrent_input(&self, inputs: &Tensor) -> Result<Tensor> {
        match self.config.input {
            ModelInput::Tokens { vocab } => candle_nn::encoding::one_hot(inputs.clone(), vocab, 1f32, 0f32),
            ModelInput::Real { .. } => Ok(inputs.clone()),
        } // (B, T, I)
    }

    /// `inputs`: (B, T) u32 token ids or (B, T, F) f32 features. `state`: recurrent initial state.
    pub fn forward(
        &self,
        inputs: &Tensor,
        state: Option<&RecurrentState>,
        opts: &ForwardOptions,
    ) -> Result<SeqOutput> {
        match (&self.body, self.config.input) {
            (Body::Recurrent { rnn, head }, input) => {
                let x = match input {
                    ModelInput::Tokens { vocab } => {
                        candle_nn::encoding::one_hot(inputs.clone(), vocab, 1f32, 0f32)?
                    }
                    ModelInput::Real { .. } => inputs.clone(),
                }; // (B, T, I)
                   // On the fused path the readout runs inside the last layer's op (see
                   // `kernels::fused_layer_with_head`); the state it returns is a value, as the
                   // trainer's detached carry is anyway.
                let out = match head.bias() {
                    Some(bias) => rnn.forward_fusing_readout(&x, state, opts, (head.weight(), bias))?,
                    None => rnn.forward_with(&x, state, opts)?,
                };
                let outputs = match &out.readout {
                    Some(y) => y.clone(),
                    None => head.forward(&out.output)?,
                };
                Ok(SeqOutput { outputs, state: Some(out.state), taps: out.taps })
            }
            (Body::Lru { lru, head }, _) => {
                let out = lru.forward_with(&self.recurrent_input(inputs)?, opts)?;
                Ok(SeqOutput { outputs: readout(head, &out.output, opts)?, state: None, taps: out.taps })
            }
            (Body::Mamba { mamba, head }, _) => {
                let out = mamba.forward_with(&self.recurrent_input(inputs)?, opts)?;
                Ok(SeqOutput { outputs: readout(head, &out.output, opts)?, state: None, taps: out.taps })
            }
            (Body::Gpt { gpt, input_proj }, _) => {
                let out = match input_proj {
                    Some(proj) => gpt.forward_embedded(&proj.forward(inputs)?, opts)?,
                    None => gpt.forward_with(inputs, opts)?,
                };
                Ok(SeqOutput { outputs: out.logits, state: None, taps: out.taps })
            }
        }
    }
}

/// The per-step readout on a block stack's output; under no_grad its weights must not track
/// either (see [`ForwardOptions::no_grad`]).
fn readout(head: &Linear, x: &Tensor, opts: &ForwardOptions) -> Result<Tensor> {
    match opts.no_grad {
        true => Linear::new(head.weight().detach(), head.bias().map(Tensor::detach)).forward(x),
        false => head.forward(x),
    }
}

/// Number of scalar parameters in `varmap`.
pub fn parameter_count(varmap: &VarMap) -> usize {
    varmap.all_vars().iter().map(|v| v.elem_count()).sum()
}
