//! `gradscope grad`: ‖∂L/∂h_t‖ against distance for fresh or trained models, with decay metrics,
//! CSV/JSON and a plot.

use crate::models::{Family, InitScheme, Nonlinearity};
use crate::probe::report::{metrics_table, saturation_lines, write_probe_outputs};
use crate::probe::{LossKind, Probe};
use crate::tasks::AddingVariant;
use crate::train::run_dir::CONFIG;
use crate::train::{probe_gradients, TaskName, TrainConfig};
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct GradArgs {
    /// Models to compare at a fresh seeded init, comma-separated (rnn, lstm, gru, mingru, minlstm, lru, mamba, gpt).
    #[arg(long, value_delimiter = ',')]
    pub model: Option<Vec<Family>>,
    /// Trained runs to probe (their config and model.safetensors); repeatable.
    #[arg(long, value_name = "DIR")]
    pub run: Vec<PathBuf>,
    /// Where to write curves.csv, curves.json, grad-metrics.json and the plot.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// last: loss at the final step only; task: the task's training loss. [default: last]
    #[arg(long)]
    pub loss: Option<LossKind>,
    /// Sequences whose gradients are measured (the curve is their mean). [default: 32]
    #[arg(long)]
    pub batch: Option<usize>,
    /// Task: copy | adding | selective-copy | induction | mqar | flip-flop | parity. [default: adding]
    #[arg(long)]
    pub task: Option<TaskName>,
    /// T. [default: 100, or the run's]
    #[arg(long)]
    pub seq_len: Option<usize>,
    #[arg(long)]
    pub copy_len: Option<usize>,
    #[arg(long)]
    pub alphabet: Option<usize>,
    /// MQAR: key-value pairs per sequence. [default: 4]
    #[arg(long)]
    pub pairs: Option<usize>,
    /// Flip-flop: probability of an ignore instruction. [default: 0.8]
    #[arg(long)]
    pub p_ignore: Option<f64>,
    #[arg(long)]
    pub adding_variant: Option<AddingVariant>,
    /// Vanilla RNN nonlinearity: tanh | relu | sigmoid | linear.
    #[arg(long)]
    pub nonlinearity: Option<Nonlinearity>,
    #[arg(long)]
    pub hidden: Option<usize>,
    #[arg(long)]
    pub layers: Option<usize>,
    #[arg(long)]
    pub heads: Option<usize>,
    /// pytorch | xavier | he | orthogonal | identity.
    #[arg(long)]
    pub init: Option<InitScheme>,
    /// Gain for identity/orthogonal (e.g. 0.9) or Xavier/He.
    #[arg(long, allow_negative_numbers = true)]
    pub init_gain: Option<f64>,
    /// LSTM forget-gate bias (applies to lstm only in a comparison).
    #[arg(long, allow_negative_numbers = true)]
    pub forget_bias: Option<f64>,
    /// LRU: complex state channels N (default: --hidden); Mamba: SSM states per channel
    /// (default 16). Applies to lru and mamba only in a comparison.
    #[arg(long)]
    pub state: Option<usize>,
    /// LRU: smallest |λ| at initialisation (default 0.9).
    #[arg(long)]
    pub lru_r_min: Option<f64>,
    /// LRU: largest |λ| at initialisation (default 0.999).
    #[arg(long)]
    pub lru_r_max: Option<f64>,
    /// LRU: initial phases are uniform on [0, this] (default 2π).
    #[arg(long)]
    pub lru_max_phase: Option<f64>,
    /// Mamba: channels inside a block, E = expand · hidden (default 2).
    #[arg(long)]
    pub expand: Option<usize>,
    /// Mamba: width of the causal depthwise convolution (default 4).
    #[arg(long)]
    pub conv: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// cpu | cuda | cuda:N | metal.
    #[arg(long)]
    pub device: Option<String>,
}

impl GradArgs {
    /// The base config: defaults (or a run's config), then these flags.
    fn apply(&self, mut cfg: TrainConfig) -> TrainConfig {
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { cfg.$f = v; } )* };
        }
        set!(task, seq_len, adding_variant, nonlinearity, hidden, layers, heads, init, seed, device);
        for (given, field) in [
            (self.pairs, &mut cfg.pairs),
            (self.alphabet, &mut cfg.alphabet),
            (self.copy_len, &mut cfg.copy_len),
        ] {
            if given.is_some() {
                *field = given;
            }
        }
        if self.p_ignore.is_some() {
            cfg.p_ignore = self.p_ignore;
        }
        if self.init_gain.is_some() {
            cfg.init_gain = self.init_gain;
        }
        cfg
    }
}

pub fn run(args: GradArgs) -> Result<()> {
    let loss = args.loss.unwrap_or_default();
    let batch = args.batch.unwrap_or(32);
    let mut jobs: Vec<(String, TrainConfig, Option<PathBuf>)> = Vec::new();
    for dir in &args.run {
        let saved = dir.join(CONFIG);
        if !saved.exists() {
            bail!("--run {}: no {CONFIG} there (not a gradscope run directory)", dir.display());
        }
        let cfg = args.apply(TrainConfig::from_toml_file(&saved)?);
        let name = dir.file_name().map_or("run".into(), |n| n.to_string_lossy().into_owned());
        jobs.push((name, cfg, Some(dir.clone())));
    }
    let families = match (&args.model, jobs.is_empty()) {
        (Some(m), _) => m.clone(),
        (None, true) => vec![Family::Rnn, Family::Lstm, Family::Gru, Family::Gpt],
        (None, false) => vec![],
    };
    for family in families {
        let mut cfg = args.apply(TrainConfig { model: family, ..TrainConfig::default() });
        cfg.forget_bias = if family == Family::Lstm { args.forget_bias } else { None };
        if family == Family::Lru {
            (cfg.state, cfg.lru_r_min, cfg.lru_r_max) = (args.state, args.lru_r_min, args.lru_r_max);
            cfg.lru_max_phase = args.lru_max_phase;
        }
        if family == Family::Mamba {
            (cfg.state, cfg.expand, cfg.conv) = (args.state, args.expand, args.conv);
        }
        let name = match family {
            Family::Rnn => format!("rnn-{}", cfg.nonlinearity.name()),
            f => f.to_string(),
        };
        jobs.push((name, cfg, None));
    }

    let mut probes: Vec<Probe> = Vec::new();
    for (name, cfg, run) in &jobs {
        probes.push(probe_gradients(name, cfg, run.as_deref(), batch, loss)?);
    }
    let task_desc = {
        let c = &jobs[0].1;
        format!("{} T={}", c.task, c.seq_len)
    };
    let title = format!(
        "Gradient vs distance: {task_desc}, loss at {}",
        match loss {
            LossKind::Last => "the last step",
            LossKind::Task => "every step (task loss)",
        }
    );
    write_probe_outputs(&probes, &args.out, &title)?;
    println!("{}", metrics_table(&probes));
    print!("{}", saturation_lines(&probes));
    println!("wrote {}", args.out.display());
    Ok(())
}
