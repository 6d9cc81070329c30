//! The resolved configuration of a training run: defaults, then a TOML file, then flags.
//!
//! Keys are the flags' names (`seq-len = 200` in the file is `--seq-len 200`), so an error can
//! name the flag and the saved `config.toml` of a run can be passed back with `--config`.

mod lru;
mod mamba;
mod task;

pub use task::{TaskName, DEFAULT_PAIRS};

use super::{LrSchedule, OptimizerConfig, ScheduleKind};
use crate::models::{Family, InitScheme, ModelInput, Nonlinearity, RecurrentBackend, SeqModelConfig};
use crate::tasks::{AddingVariant, InputKind, Task, TaskSpec};
use crate::util::candle_message;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What training does when the loss or a gradient becomes NaN or ±∞.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnNonFinite {
    /// Stop with an error naming the step and parameter; the last good checkpoint is kept.
    #[default]
    Stop,
    /// Drop that step's update and go on.
    Skip,
    /// Restore the last checkpoint and halve the learning rate.
    Rollback,
}

impl std::str::FromStr for OnNonFinite {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "stop" => Ok(OnNonFinite::Stop),
            "skip" => Ok(OnNonFinite::Skip),
            "rollback" => Ok(OnNonFinite::Rollback),
            other => Err(format!("unknown --on-nonfinite '{other}': expected stop, skip or rollback")),
        }
    }
}

/// What [`TrainConfig::check_memory`] adds up, in bytes.
struct MemoryEstimate {
    activations: f64,
    parameters: f64,
    eval_set: f64,
}

impl MemoryEstimate {
    fn total(&self) -> f64 {
        self.activations + self.parameters + self.eval_set
    }
}

/// Bytes as gigabytes for a message: one decimal, or scientific notation for absurd sizes.
fn gb(bytes: f64) -> String {
    let g = bytes / 1e9;
    if g < 1e6 {
        format!("{g:.1}")
    } else {
        format!("{g:.1e}")
    }
}

/// Every setting of a run. `Default` gives the documented defaults of `gradscope train`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct TrainConfig {
    pub task: TaskName,
    pub seq_len: usize,
    /// Copy and selective copy: symbols to recall (default 10 for copy, the paper's 16 for
    /// selective copy).
    pub copy_len: Option<usize>,
    /// Token alphabet of the token tasks (default 16 for induction, else 8).
    pub alphabet: Option<usize>,
    pub adding_variant: AddingVariant,
    /// Text task: the UTF-8 corpus.
    pub corpus: Option<PathBuf>,
    /// Text task: train a byte-level BPE tokenizer of this many tokens (default: characters).
    pub vocab_size: Option<usize>,
    /// MQAR: key-value pairs per sequence (default [`DEFAULT_PAIRS`]).
    pub pairs: Option<usize>,
    /// Flip-flop: probability of an ignore instruction (default 0.8, the paper's training mix).
    pub p_ignore: Option<f64>,
    /// After training, also evaluate at these lengths T (extrapolation).
    pub eval_lengths: Vec<usize>,
    /// Text task: an existing tokenizer.json (Hugging Face format) or chars.json.
    pub tokenizer: Option<PathBuf>,
    /// Text task, recurrent models: stateful truncated BPTT over consecutive windows, the hidden
    /// state carried across batches (char-rnn style).
    pub tbptt: bool,

    pub model: Family,
    pub nonlinearity: Nonlinearity,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    /// GPT positional table length; defaults to the task's sequence length.
    pub context: Option<usize>,
    pub dropout: f64,
    pub init: InitScheme,
    pub init_gain: Option<f64>,
    pub forget_bias: Option<f64>,
    /// LRU: complex state channels N (default: --hidden); Mamba: SSM states per channel N
    /// (default 16).
    pub state: Option<usize>,
    /// LRU: the ring |λ| is drawn from at init (default 0.9 to 0.999) and the largest initial
    /// phase (default 2π).
    pub lru_r_min: Option<f64>,
    pub lru_r_max: Option<f64>,
    pub lru_max_phase: Option<f64>,
    /// Mamba: channels inside a block E = expand · hidden (default 2).
    pub expand: Option<usize>,
    /// Mamba: width of the causal depthwise convolution (default 4).
    pub conv: Option<usize>,

    pub batch: usize,
    pub steps: u64,
    pub optimizer: String,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    /// Adam/AdamW β₂ (default 0.999; nanoGPT's char config uses 0.99).
    pub beta2: Option<f64>,
    /// Overrides the optimiser's default (0, or 0.01 for adamw).
    pub weight_decay: Option<f64>,
    pub schedule: ScheduleKind,
    pub warmup: u64,
    /// Floor of cosine/linear decay; defaults to lr / 10 (nanoGPT).
    pub min_lr: Option<f64>,
    /// Clip the global gradient norm to this value (Pascanu et al. 2013).
    pub clip: Option<f64>,
    /// Clip every gradient element to [-v, v].
    pub clip_value: Option<f64>,
    pub on_nonfinite: OnNonFinite,

    pub eval_every: u64,
    pub eval_size: usize,
    pub stop_when_solved: bool,
    /// Record the gradient-vs-distance curve every N steps into `probe.jsonl`.
    pub probe_every: Option<u64>,
    pub seed: u64,
    pub device: String,
    /// Recurrent layers: auto (fused kernels on CPU f32, autograd elsewhere) | fused | autograd.
    pub backend: RecurrentBackend,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            task: TaskName::Adding,
            seq_len: 100,
            copy_len: None,
            alphabet: None,
            adding_variant: AddingVariant::Standard,
            corpus: None,
            vocab_size: None,
            pairs: None,
            p_ignore: None,
            eval_lengths: Vec::new(),
            tokenizer: None,
            tbptt: false,
            model: Family::Lstm,
            nonlinearity: Nonlinearity::Tanh,
            hidden: 128,
            layers: 1,
            heads: 4,
            context: None,
            dropout: 0.0,
            init: InitScheme::Pytorch,
            init_gain: None,
            forget_bias: None,
            state: None,
            lru_r_min: None,
            lru_r_max: None,
            lru_max_phase: None,
            expand: None,
            conv: None,
            batch: 64,
            steps: 5000,
            optimizer: "adam".into(),
            lr: 1e-3,
            momentum: 0.0,
            nesterov: false,
            beta2: None,
            weight_decay: None,
            schedule: ScheduleKind::Constant,
            warmup: 0,
            min_lr: None,
            clip: None,
            clip_value: None,
            on_nonfinite: OnNonFinite::Stop,
            eval_every: 100,
            eval_size: 512,
            stop_when_solved: false,
            probe_every: None,
            seed: 0,
            device: "cpu".into(),
            backend: RecurrentBackend::Auto,
        }
    }
}

impl TrainConfig {
    /// Reads a TOML file whose keys are flag names; unknown keys are errors.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        Self::from_toml_str(&text).with_context(|| format!("parsing config {}", path.display()))
    }

    /// Parses TOML text whose keys are flag names; unknown keys and wrong types are errors that
    /// name the key. Not validated: call [`TrainConfig::validate`].
    pub fn from_toml_str(text: &str) -> Result<Self> {
        Ok(toml::from_str(text)?)
    }

    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Checks every value, naming the flag and its allowed range.
    pub fn validate(&self) -> Result<()> {
        fn at_least<T: PartialOrd + std::fmt::Display>(flag: &str, v: T, min: T) -> Result<()> {
            if v < min {
                bail!("--{flag} must be ≥ {min} (got {v})");
            }
            Ok(())
        }
        at_least("seq-len", self.seq_len, 1)?;
        at_least("hidden", self.hidden, 1)?;
        at_least("layers", self.layers, 1)?;
        at_least("batch", self.batch, 1)?;
        at_least("steps", self.steps, 1)?;
        at_least("eval-every", self.eval_every, 1)?;
        at_least("eval-size", self.eval_size, 1)?;
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            bail!("--lr must be a finite number > 0 (got {})", self.lr);
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("--dropout must be in [0, 1) (got {})", self.dropout);
        }
        if self.probe_every == Some(0) {
            bail!("--probe-every must be ≥ 1 (got 0)");
        }
        for (flag, v) in [("clip", self.clip), ("clip-value", self.clip_value), ("init-gain", self.init_gain)]
        {
            if let Some(v) = v {
                if !(v > 0.0 && v.is_finite()) {
                    bail!("--{flag} must be a finite number > 0 (got {v})");
                }
            }
        }
        self.validate_task()?;
        if self.task == TaskName::Text && self.corpus.is_none() {
            bail!("--task text needs --corpus FILE (`gradscope data tinyshakespeare` fetches one)");
        }
        if self.task != TaskName::Text
            && (self.corpus.is_some() || self.vocab_size.is_some() || self.tokenizer.is_some())
        {
            bail!("--corpus/--vocab-size/--tokenizer apply to --task text only");
        }
        if self.tbptt && (self.task != TaskName::Text || self.model.cell(self.nonlinearity).is_none()) {
            bail!(
                "--tbptt applies to --task text with a recurrent --model (rnn, lstm, gru, mingru, minlstm)"
            );
        }
        // Checked even where the schedule ignores it (constant): a NaN would still be saved in
        // config.toml, and a value the schedule would refuse is a mistake either way (found by
        // tests/fuzz.rs).
        if let Some(v) = self.min_lr.filter(|&v| !(v >= 0.0 && v <= self.lr)) {
            bail!("--min-lr must be a finite number in [0, --lr = {}] (got {v})", self.lr);
        }
        if let Some(v) = self.forget_bias.filter(|v| !v.is_finite()) {
            bail!("--forget-bias must be a finite number (got {v})");
        }
        if self.forget_bias.is_some() && self.model != Family::Lstm {
            bail!("--forget-bias applies to --model lstm only (got --model {})", self.model);
        }
        self.validate_lru()?;
        self.validate_mamba()?;
        if self.model == Family::Gpt {
            at_least("heads", self.heads, 1)?;
            if !self.hidden.is_multiple_of(self.heads) {
                bail!("--hidden ({}) must be divisible by --heads ({}) for the gpt", self.hidden, self.heads);
            }
            let steps = self.task_steps();
            if let Some(c) = self.context {
                if c < steps {
                    bail!("--context ({c}) is shorter than the task's sequences ({steps} steps)");
                }
            }
        }
        self.optimizer_config()?;
        self.schedule()?;
        // The text task's vocabulary is known only once the corpus is tokenised: guess here,
        // and `train` checks again with the real model.
        self.check_memory(&self.model_config_for(self.spec_guess()))
    }

    /// Refuses a run whose estimated memory exceeds the machine's, naming the flags that size it.
    pub fn check_memory(&self, model: &SeqModelConfig) -> Result<()> {
        let m = self.memory_estimate(model);
        let limit = crate::util::memory_limit_bytes();
        if m.total() > limit {
            bail!(
                "this run needs about {} GB, over the {} GB of memory this machine has: activations of \
                 --batch {} × {} steps × --hidden {} × --layers {} ≈ {} GB, parameters and optimiser state \
                 ≈ {} GB, the held-out set of --eval-size {} ≈ {} GB; lower --batch, --hidden, --layers, \
                 --seq-len{} or --eval-size",
                gb(m.total()),
                gb(limit),
                self.batch,
                self.task_steps(),
                model.hidden,
                model.layers,
                gb(m.activations),
                gb(m.parameters),
                self.eval_size,
                gb(m.eval_set),
                self.task.sizing_flags()
            );
        }
        Ok(())
    }

    /// A rough upper bound, in bytes, of what a training step keeps alive (f64 arithmetic, so
    /// absurd sizes give a large number instead of an overflow).
    fn memory_estimate(&self, model: &SeqModelConfig) -> MemoryEstimate {
        let steps = self.task_steps() as f64;
        let (b, h, l) = (self.batch as f64, model.hidden as f64, model.layers as f64);
        let (in_width, per_token_in) = match model.input {
            ModelInput::Tokens { vocab } => (vocab as f64, 1.0),
            ModelInput::Real { features } => (features as f64, features as f64),
        };
        let out = model.output_size as f64;
        // Recurrent: ~16 saved (B, H)-sized tensors per gate-step, plus the one-hot input;
        // GPT: the attention matrices. Both: logits, their softmax and gradient.
        let body = match self.model {
            Family::Gpt => 4.0 * (b * self.heads as f64 * steps * 3.0 + 20.0 * b * h) * steps * l,
            _ => 4.0 * (16.0 * 4.0 * b * h * steps * l + b * in_width * steps),
        };
        MemoryEstimate {
            activations: body + 4.0 * 3.0 * b * steps * out,
            // Parameters, gradients, two optimiser moments, the checkpoint's serialised copy.
            parameters: 4.0 * 5.0 * model.parameter_estimate(),
            // Inputs and targets of every held-out sequence.
            eval_set: 4.0 * self.eval_size as f64 * steps * (per_token_in + 1.0),
        }
    }

    /// The model for `task`, sized from the task's input and output.
    pub fn model_config(&self, task: &dyn Task) -> SeqModelConfig {
        self.model_config_for(task.spec())
    }

    fn model_config_for(&self, spec: TaskSpec) -> SeqModelConfig {
        let input = match spec.input {
            InputKind::Tokens { vocab } => vocab,
            InputKind::Real { features } => features,
        };
        SeqModelConfig {
            family: self.model,
            nonlinearity: self.nonlinearity,
            input: match spec.input {
                InputKind::Tokens { vocab } => ModelInput::Tokens { vocab },
                InputKind::Real { features } => ModelInput::Real { features },
            },
            output_size: spec.output_size,
            hidden: self.hidden,
            layers: self.layers,
            heads: self.heads,
            context: self.context.unwrap_or(spec.steps.max(self.longest_eval_steps())),
            dropout: self.dropout,
            init: self.init,
            init_gain: self.init_gain,
            forget_bias: self.forget_bias,
            lru: (self.model == Family::Lru).then(|| self.lru_settings(input)),
            mamba: (self.model == Family::Mamba).then(|| self.mamba_settings(input)),
        }
    }

    pub fn optimizer_config(&self) -> Result<OptimizerConfig> {
        let mut cfg: OptimizerConfig =
            self.optimizer.parse().map_err(|e: String| anyhow::anyhow!("--optimizer: {e}"))?;
        match &mut cfg {
            OptimizerConfig::Sgd { momentum, nesterov, .. } => {
                *momentum = self.momentum;
                *nesterov = self.nesterov;
            }
            OptimizerConfig::Rmsprop { momentum, .. } if !self.nesterov => *momentum = self.momentum,
            _ if self.momentum != 0.0 || self.nesterov => {
                bail!(
                    "--momentum/--nesterov apply to --optimizer sgd (and --momentum to rmsprop), not {}",
                    self.optimizer
                )
            }
            _ => {}
        }
        if let Some(b2) = self.beta2 {
            match &mut cfg {
                OptimizerConfig::Adam { beta2, .. } | OptimizerConfig::Adamw { beta2, .. } => *beta2 = b2,
                _ => bail!("--beta2 applies to --optimizer adam or adamw, not {}", self.optimizer),
            }
        }
        if let Some(wd) = self.weight_decay {
            cfg = cfg.with_weight_decay(wd);
        }
        cfg.validate()
            .map_err(|e| anyhow::anyhow!("--optimizer {}: {}", self.optimizer, candle_message(&e)))?;
        Ok(cfg)
    }

    pub fn schedule(&self) -> Result<LrSchedule> {
        let s = LrSchedule {
            kind: self.schedule,
            base_lr: self.lr,
            warmup_steps: self.warmup,
            min_lr: self.min_lr.unwrap_or(self.lr / 10.0),
            total_steps: self.steps,
        };
        s.validate().map_err(|e| anyhow::anyhow!("--schedule/--warmup/--min-lr: {}", candle_message(&e)))?;
        Ok(s)
    }

    /// A short label for reports: `lstm h128 adding T=200`.
    pub fn label(&self) -> String {
        let model = match self.model {
            Family::Rnn => format!("rnn-{}", self.nonlinearity.name()),
            m => m.to_string(),
        };
        format!("{model} h{} {} T={}", self.hidden, self.task, self.seq_len)
    }

    /// Loads `config.toml` of a run directory.
    pub fn from_run_dir(dir: &Path) -> Result<Self> {
        let saved = dir.join(super::run_dir::CONFIG);
        if !saved.exists() {
            bail!("{}: no config.toml there (not a gradscope run directory)", dir.display());
        }
        Self::from_toml_file(&saved)
    }
}
