//! `gradscope train`: flags over an optional TOML file over the defaults.

use crate::models::{Family, InitScheme, Nonlinearity};
use crate::tasks::AddingVariant;
use crate::train::{train, RunOptions, ScheduleKind, TaskName, TrainConfig};
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

/// Every flag is optional: unset flags keep the value from `--config` or the default.
#[derive(Args, Debug, Default)]
pub struct TrainArgs {
    /// TOML file of settings (keys are these flags' names, e.g. `seq-len = 200`); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run directory to write (config, metrics.jsonl, checkpoint, summary.json).
    #[arg(long, value_name = "DIR", required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR from its last checkpoint (its config.toml is the base config).
    #[arg(long, value_name = "DIR", conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Stop (with a summary) once this many seconds of wall time have passed: for comparing
    /// models at equal training time.
    #[arg(long, value_name = "SECONDS")]
    pub max_seconds: Option<f64>,

    /// Task: copy | adding | selective-copy | induction | mqar | flip-flop | parity | text.
    /// [default: adding]
    #[arg(long, help_heading = "Task")]
    pub task: Option<TaskName>,
    /// T: the dependency length (adding, induction, mqar, parity: sequence length; copy: the
    /// blank gap; selective-copy: the noisy stretch the symbols are scattered over; flip-flop:
    /// tokens, even). [default: 100]
    #[arg(long, help_heading = "Task")]
    pub seq_len: Option<usize>,
    /// Copy and selective copy: symbols to remember. [default: 16 for selective-copy, else 10]
    #[arg(long, help_heading = "Task")]
    pub copy_len: Option<usize>,
    /// Copy and selective copy: data alphabet size (blank/noise and delimiter/marker are added);
    /// induction: data symbols (the trigger is added); mqar: all tokens (keys from the lower
    /// half, values from the upper). [default: 16 for induction, else 8]
    #[arg(long, help_heading = "Task")]
    pub alphabet: Option<usize>,
    /// MQAR: key-value pairs per sequence. [default: 4]
    #[arg(long, help_heading = "Task")]
    pub pairs: Option<usize>,
    /// Flip-flop: probability of an ignore instruction, in [0, 1]. [default: 0.8]
    #[arg(long, help_heading = "Task")]
    pub p_ignore: Option<f64>,
    /// After training, also evaluate at these lengths T, comma-separated (e.g. 1024,4096): the
    /// extrapolation table in summary.json. Generated tasks only.
    #[arg(long, help_heading = "Task", value_delimiter = ',')]
    pub eval_lengths: Option<Vec<usize>>,
    /// Adding problem: standard (Le et al. 2015) | hochreiter (1997). [default: standard]
    #[arg(long, help_heading = "Task")]
    pub adding_variant: Option<AddingVariant>,

    /// Text task: the UTF-8 corpus to model.
    #[arg(long, help_heading = "Task", value_name = "FILE")]
    pub corpus: Option<PathBuf>,
    /// Text task: train a byte-level BPE tokenizer of this many tokens. [default: characters]
    #[arg(long, help_heading = "Task")]
    pub vocab_size: Option<usize>,
    /// Text task: load this tokenizer.json (Hugging Face format) or chars.json.
    #[arg(long, help_heading = "Task", value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Text task, recurrent models: stateful truncated BPTT, hidden state carried across batches.
    #[arg(long, help_heading = "Task")]
    pub tbptt: bool,

    /// Model family: rnn | lstm | gru | mingru | minlstm | lru | gpt. [default: lstm]
    #[arg(long, help_heading = "Model")]
    pub model: Option<Family>,
    /// Vanilla RNN nonlinearity: tanh | relu | sigmoid | linear. [default: tanh]
    #[arg(long, help_heading = "Model")]
    pub nonlinearity: Option<Nonlinearity>,
    /// Hidden size (d_model for the gpt). [default: 128]
    #[arg(long, help_heading = "Model")]
    pub hidden: Option<usize>,
    /// Stacked layers (blocks for the gpt). [default: 1]
    #[arg(long, help_heading = "Model")]
    pub layers: Option<usize>,
    /// GPT attention heads. [default: 4]
    #[arg(long, help_heading = "Model")]
    pub heads: Option<usize>,
    /// GPT positional table length. [default: the task's sequence length]
    #[arg(long, help_heading = "Model")]
    pub context: Option<usize>,
    /// Dropout between recurrent layers / in gpt blocks, in [0, 1). [default: 0]
    #[arg(long, help_heading = "Model", allow_negative_numbers = true)]
    pub dropout: Option<f64>,
    /// Initialisation: pytorch | xavier | he | orthogonal | identity. [default: pytorch]
    #[arg(long, help_heading = "Model")]
    pub init: Option<InitScheme>,
    /// Gain of the init (identity/orthogonal scale; Xavier/He gain).
    #[arg(long, help_heading = "Model", allow_negative_numbers = true)]
    pub init_gain: Option<f64>,
    /// LSTM forget-gate bias (e.g. 1.0).
    #[arg(long, help_heading = "Model", allow_negative_numbers = true)]
    pub forget_bias: Option<f64>,
    /// LRU: complex state channels N [default: --hidden]; Mamba: SSM states per channel N
    /// [default: 16].
    #[arg(long, help_heading = "Model")]
    pub state: Option<usize>,
    /// LRU: smallest |λ| at initialisation, in [0, 1). [default: 0.9]
    #[arg(long, help_heading = "Model")]
    pub lru_r_min: Option<f64>,
    /// LRU: largest |λ| at initialisation, in [r-min, 1). [default: 0.999]
    #[arg(long, help_heading = "Model")]
    pub lru_r_max: Option<f64>,
    /// LRU: initial phases are uniform on [0, this]. [default: 2π]
    #[arg(long, help_heading = "Model")]
    pub lru_max_phase: Option<f64>,
    /// Mamba: channels inside a block, E = expand · hidden. [default: 2]
    #[arg(long, help_heading = "Model")]
    pub expand: Option<usize>,
    /// Mamba: width of the causal depthwise convolution. [default: 4]
    #[arg(long, help_heading = "Model")]
    pub conv: Option<usize>,

    /// Sequences per batch. [default: 64]
    #[arg(long, help_heading = "Optimisation")]
    pub batch: Option<usize>,
    /// Training steps. [default: 5000]
    #[arg(long, help_heading = "Optimisation")]
    pub steps: Option<u64>,
    /// sgd | adam | adamw | rmsprop | adagrad. [default: adam]
    #[arg(long, help_heading = "Optimisation")]
    pub optimizer: Option<String>,
    /// Learning rate, > 0. [default: 1e-3]
    #[arg(long, help_heading = "Optimisation", allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// Momentum (sgd, rmsprop), in [0, 1). [default: 0]
    #[arg(long, help_heading = "Optimisation", allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// Nesterov momentum (sgd).
    #[arg(long, help_heading = "Optimisation")]
    pub nesterov: bool,
    /// Adam/AdamW β₂. [default: 0.999]
    #[arg(long, help_heading = "Optimisation")]
    pub beta2: Option<f64>,
    /// Weight decay (L2 for sgd/adam/rmsprop/adagrad, decoupled for adamw). [default: 0]
    #[arg(long, help_heading = "Optimisation", allow_negative_numbers = true)]
    pub weight_decay: Option<f64>,
    /// Learning-rate schedule: constant | cosine | linear. [default: constant]
    #[arg(long, help_heading = "Optimisation")]
    pub schedule: Option<ScheduleKind>,
    /// Linear warm-up steps. [default: 0]
    #[arg(long, help_heading = "Optimisation")]
    pub warmup: Option<u64>,
    /// Floor of the cosine/linear decay. [default: lr / 10]
    #[arg(long, help_heading = "Optimisation", allow_negative_numbers = true)]
    pub min_lr: Option<f64>,
    /// Clip the global gradient norm to this value.
    #[arg(long, help_heading = "Optimisation", allow_negative_numbers = true)]
    pub clip: Option<f64>,
    /// Clip every gradient element to [-v, v].
    #[arg(long, help_heading = "Optimisation", allow_negative_numbers = true)]
    pub clip_value: Option<f64>,

    /// On a NaN/Inf loss or gradient: stop (keep the last good checkpoint) | skip (drop the
    /// update) | rollback (restore the last checkpoint, halve the learning rate). [default: stop]
    #[arg(long, help_heading = "Optimisation")]
    pub on_nonfinite: Option<crate::train::OnNonFinite>,

    /// Evaluate (and checkpoint) every N steps. [default: 100]
    #[arg(long, help_heading = "Run")]
    pub eval_every: Option<u64>,
    /// Held-out sequences (fixed seed, the same for every model). [default: 512]
    #[arg(long, help_heading = "Run")]
    pub eval_size: Option<usize>,
    /// Stop at the first evaluation that counts as solved.
    #[arg(long, help_heading = "Run")]
    pub stop_when_solved: bool,
    /// Record ‖∂L/∂h_t‖ against distance every N steps (and at step 0) into probe.jsonl.
    #[arg(long, help_heading = "Run")]
    pub probe_every: Option<u64>,
    /// Seed of the init, the batches and dropout. [default: 0]
    #[arg(long, help_heading = "Run")]
    pub seed: Option<u64>,
    /// cpu | cuda | cuda:N | metal. [default: cpu]
    #[arg(long, help_heading = "Run")]
    pub device: Option<String>,
    /// Recurrent layers: auto (fused CPU kernels for f32 on the CPU, per-op autograd elsewhere) |
    /// fused | autograd (the reference path). [default: auto]
    #[arg(long, help_heading = "Run")]
    pub backend: Option<crate::models::RecurrentBackend>,
}

macro_rules! override_fields {
    ($cfg:ident, $args:ident; $($field:ident),* ; $($opt:ident),*) => {
        $( if let Some(v) = $args.$field.clone() { $cfg.$field = v; } )*
        $( if $args.$opt.is_some() { $cfg.$opt = $args.$opt.clone(); } )*
    };
}

impl TrainArgs {
    /// Defaults, then the file, then the flags given.
    pub fn resolve(&self, base: Option<TrainConfig>) -> Result<TrainConfig> {
        let mut cfg = match (&self.config, base) {
            (Some(path), _) => TrainConfig::from_toml_file(path)?,
            (None, Some(base)) => base,
            (None, None) => TrainConfig::default(),
        };
        let a = self;
        override_fields!(cfg, a;
            task, seq_len, adding_variant, eval_lengths, model, nonlinearity, hidden, layers, heads,
            dropout, init, batch, steps, optimizer, lr, momentum, schedule, warmup,
            eval_every, eval_size, seed, device, on_nonfinite, backend;
            context, init_gain, forget_bias, state, lru_r_min, lru_r_max, lru_max_phase, expand, conv, min_lr, clip, clip_value, weight_decay, probe_every, corpus, vocab_size, tokenizer, beta2, pairs, alphabet, p_ignore, copy_len);
        cfg.nesterov |= a.nesterov;
        cfg.tbptt |= a.tbptt;
        cfg.stop_when_solved |= a.stop_when_solved;
        cfg.validate()?;
        Ok(cfg)
    }
}

pub fn run(args: TrainArgs) -> Result<()> {
    if args.max_seconds.is_some_and(|s| !(s > 0.0 && s.is_finite())) {
        bail!("--max-seconds must be a finite number > 0");
    }
    let (cfg, out, resume) = match &args.resume {
        Some(dir) => {
            let saved = dir.join(crate::train::run_dir::CONFIG);
            if !saved.exists() {
                bail!("--resume {}: no config.toml there (not a gradscope run directory)", dir.display());
            }
            (args.resolve(Some(TrainConfig::from_toml_file(&saved)?))?, dir.clone(), true)
        }
        None => (args.resolve(None)?, args.out.clone().expect("clap requires --out"), false),
    };
    let opts = RunOptions {
        out,
        resume,
        quiet: args.quiet,
        interrupt: Some(super::interrupt_flag()),
        max_seconds: args.max_seconds,
    };
    let summary = train(&cfg, &opts)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
