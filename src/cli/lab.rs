//! `gradscope lab`: the vanishing-gradient lab. `--list` shows the named experiments, `lab NAME`
//! runs one, `lab depth ...` and `lab rnn ...` sweep grids of your own.

use crate::lab::depth::{DepthSpec, DepthTaskKind, DepthTraining};
use crate::lab::experiments::{execute, LabOptions};
use crate::lab::mlp::{Activation, MlpConfig, MlpInit, Norm, SMALL_NORMAL_STD};
use crate::lab::recurrent::{model_name, RecurrentSettings, RecurrentSpec};
use crate::lab::{catalogue, registry, run_experiment, ClipSpec, OptimizerSpec};
use crate::models::{Family, InitScheme, Nonlinearity};
use crate::tasks::AddingVariant;
use crate::train::{TaskName, TrainConfig};
use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LabArgs {
    #[command(subcommand)]
    grid: Option<LabGrid>,
    /// The experiment to run (see --list).
    name: Option<String>,
    /// List the named experiments and the claim each one tests.
    #[arg(long)]
    list: bool,
    /// The larger version (longer, deeper, more steps); the default finishes in minutes on a CPU.
    #[arg(long)]
    full: bool,
    /// Report directory. [default: runs/lab-NAME]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Seed of every initialisation and batch. [default: 0]
    #[arg(long)]
    seed: Option<u64>,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

#[derive(Subcommand, Debug)]
enum LabGrid {
    /// MLPs: every depth × activation × init × residual × norm × dropout, per-layer gradients.
    Depth(Box<DepthArgs>),
    /// Recurrent models: every model × nonlinearity × init × clip × optimizer, gradient vs distance.
    Rnn(Box<RnnArgs>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OnOff {
    Off,
    On,
    Both,
}

#[derive(Args, Debug)]
struct DepthArgs {
    /// Depths (weight layers, ≥ 2), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2,4,8,16,32")]
    depth: Vec<usize>,
    /// sigmoid, tanh, relu, leaky-relu, prelu, elu, gelu, linear; comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "sigmoid,tanh,relu")]
    activation: Vec<Activation>,
    /// small-normal, pytorch, xavier, he; comma-separated. [default: xavier for sigmoid/tanh, he for the ReLU family]
    #[arg(long, value_delimiter = ',')]
    init: Option<Vec<MlpInit>>,
    /// σ of the small-normal init.
    #[arg(long, default_value_t = SMALL_NORMAL_STD)]
    init_std: f64,
    /// Residual connections on the hidden-to-hidden layers: off, on (the bare flag) or both.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "on", default_value = "off")]
    residual: OnOff,
    /// none, batch, layer; comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "none")]
    norm: Vec<Norm>,
    /// Dropout probabilities, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    dropout: Vec<f64>,
    /// Hidden width.
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// teacher (regression onto a random network) or spirals.
    #[arg(long, default_value = "teacher")]
    task: DepthTaskKind,
    /// Training steps per config (0: measure at initialisation only).
    #[arg(long, default_value_t = 200)]
    steps: u64,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// sgd, sgd-momentum, sgd-nesterov, rmsprop, adagrad, adam.
    #[arg(long, default_value = "sgd-momentum")]
    optimizer: OptimizerSpec,
    /// [default: the optimizer's lab default]
    #[arg(long)]
    lr: Option<f64>,
    /// Clip the global gradient norm to this.
    #[arg(long)]
    clip: Option<f64>,
    #[arg(long, default_value_t = 25)]
    eval_every: u64,
    /// Examples the per-layer gradients are measured on.
    #[arg(long, default_value_t = 256)]
    probe_size: usize,
    /// Wall-clock budget of each config's training, in seconds.
    #[arg(long)]
    max_seconds: Option<f64>,
    /// Report directory. [default: runs/lab-depth]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct RnnArgs {
    /// rnn, lstm, gru, mingru, minlstm, lru, mamba, gpt; comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "rnn")]
    model: Vec<Family>,
    /// Vanilla RNN nonlinearity: tanh, relu, sigmoid, linear; comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "tanh")]
    nonlinearity: Vec<Nonlinearity>,
    /// pytorch, xavier, he, orthogonal, identity; comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "pytorch")]
    init: Vec<InitScheme>,
    #[arg(long)]
    init_gain: Option<f64>,
    /// LSTM forget-gate bias.
    #[arg(long, allow_negative_numbers = true)]
    forget_bias: Option<f64>,
    /// none, norm[:MAX], value[:MAX]; comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "none")]
    clip: Vec<ClipSpec>,
    /// sgd, sgd-momentum, sgd-nesterov, rmsprop, adagrad, adam; comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "adam")]
    optimizer: Vec<OptimizerSpec>,
    /// [default: each optimizer's lab default]
    #[arg(long)]
    lr: Option<f64>,
    /// copy or adding.
    #[arg(long, default_value = "adding")]
    task: TaskName,
    #[arg(long, default_value_t = 50)]
    seq_len: usize,
    #[arg(long, default_value_t = 10)]
    copy_len: usize,
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    #[arg(long, default_value_t = 1)]
    layers: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Training steps per config (0: measure at initialisation only).
    #[arg(long, default_value_t = 1000)]
    steps: u64,
    /// Wall-clock budget of each training run, in seconds.
    #[arg(long, default_value_t = 30.0)]
    max_seconds: f64,
    #[arg(long, default_value_t = 50)]
    eval_every: u64,
    #[arg(long, default_value_t = 256)]
    eval_size: usize,
    /// Sequences the gradient-vs-distance curves are measured on.
    #[arg(long, default_value_t = 32)]
    probe_batch: usize,
    /// Report directory. [default: runs/lab-rnn]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: LabArgs) -> Result<()> {
    match args.grid {
        Some(LabGrid::Depth(d)) => return depth(*d),
        Some(LabGrid::Rnn(r)) => return rnn(*r),
        None => {}
    }
    if args.list {
        println!("Named experiments (`gradscope lab NAME [--full] [--out DIR] [--seed N]`):\n");
        for e in registry() {
            println!("  {:<16} [{}] {}", e.name, e.axis.name(), e.claim);
        }
        println!("\nGrids of your own: `gradscope lab depth --help`, `gradscope lab rnn --help`.");
        return Ok(());
    }
    let Some(name) = args.name else {
        bail!("name an experiment (`gradscope lab --list` shows them), or use `lab depth` / `lab rnn`");
    };
    let opts = LabOptions {
        full: args.full,
        seed: args.seed.unwrap_or(0),
        out: args.out.unwrap_or_else(|| PathBuf::from(format!("runs/lab-{name}"))),
        quiet: args.quiet,
    };
    let report = run_experiment(&name, &opts)?;
    print_summary(&report, &opts.out);
    Ok(())
}

fn print_summary(report: &crate::lab::ExperimentReport, out: &std::path::Path) {
    println!("{}: {}\n", report.name, report.title);
    for f in &report.findings {
        println!("- {}\n", f.sentence());
    }
    println!("wrote {} ({:.0} s)", out.join(crate::lab::report::REPORT_MD).display(), report.wall_seconds);
}

fn depth(a: DepthArgs) -> Result<()> {
    if let Some(d) = a.depth.iter().find(|&&d| d < 2) {
        bail!("--depth must be ≥ 2 (one hidden layer and the readout), got {d}");
    }
    let residual: Vec<bool> = match a.residual {
        OnOff::Off => vec![false],
        OnOff::On => vec![true],
        OnOff::Both => vec![false, true],
    };
    let mut specs = Vec::new();
    for &act in &a.activation {
        let inits = a.init.clone().unwrap_or_else(|| vec![act.matched_init()]);
        for &init in &inits {
            for &res in &residual {
                for &norm in &a.norm {
                    for &dropout in &a.dropout {
                        for &d in &a.depth {
                            let config = MlpConfig {
                                init,
                                init_std: a.init_std,
                                residual: res,
                                norm,
                                dropout,
                                ..MlpConfig::new(1, 1, a.width, d, act)
                            };
                            config.validate()?;
                            specs.push(DepthSpec { config, train: a.steps > 0 });
                        }
                    }
                }
            }
        }
    }
    let training = DepthTraining {
        task: a.task,
        steps: a.steps,
        batch: a.batch,
        optimizer: a.optimizer,
        lr: a.lr.unwrap_or(a.optimizer.default_lr()),
        clip: a.clip,
        eval_every: a.eval_every,
        eval_size: 1024,
        probe_size: a.probe_size,
        max_seconds: a.max_seconds,
        seed: a.seed,
    };
    training.validate()?;
    let examples = training.batch.max(training.eval_size).max(training.probe_size);
    for spec in &specs {
        spec.config.check_memory(examples)?;
    }
    let command = format!("gradscope {}", std::env::args().skip(1).collect::<Vec<_>>().join(" "));
    let plan = crate::lab::experiments::Plan {
        title: "A depth sweep of MLPs: per-layer gradient norms at initialisation and during training."
            .into(),
        claim: "(none: a sweep of your own; the findings only report the measurements)".into(),
        depth: Some((specs, training)),
        recurrent: None,
        notes: Vec::new(),
    };
    let opts = LabOptions {
        full: false,
        seed: a.seed,
        out: a.out.unwrap_or_else(|| PathBuf::from("runs/lab-depth")),
        quiet: a.quiet,
    };
    let report = execute("depth", plan, catalogue::judge_depth_sweep, command, &opts)?;
    print_summary(&report, &opts.out);
    Ok(())
}

fn rnn(a: RnnArgs) -> Result<()> {
    if a.task == TaskName::Text {
        bail!("--task text is not a lab task; use copy or adding");
    }
    let mut specs = Vec::new();
    for &model in &a.model {
        let acts = if model == Family::Rnn { a.nonlinearity.clone() } else { vec![Nonlinearity::Tanh] };
        for &act in &acts {
            for &init in &a.init {
                for &clip in &a.clip {
                    for &opt in &a.optimizer {
                        let mut cfg = TrainConfig {
                            task: a.task,
                            seq_len: a.seq_len,
                            copy_len: Some(a.copy_len),
                            adding_variant: AddingVariant::Standard,
                            model,
                            nonlinearity: act,
                            hidden: a.hidden,
                            layers: a.layers,
                            init,
                            init_gain: a.init_gain,
                            forget_bias: if model == Family::Lstm { a.forget_bias } else { None },
                            batch: a.batch,
                            steps: a.steps.max(1),
                            lr: a.lr.unwrap_or(opt.default_lr()),
                            eval_every: a.eval_every,
                            eval_size: a.eval_size,
                            seed: a.seed,
                            ..TrainConfig::default()
                        };
                        opt.apply(&mut cfg);
                        clip.apply(&mut cfg);
                        cfg.validate()?;
                        let label = format!("{} {} {} {}", model_name(&cfg), init.name(), opt, clip.label());
                        specs.push(RecurrentSpec { label, config: cfg, train: a.steps > 0 });
                    }
                }
            }
        }
    }
    let command = format!("gradscope {}", std::env::args().skip(1).collect::<Vec<_>>().join(" "));
    let plan = crate::lab::experiments::Plan {
        title: "A recurrent grid: gradient against distance at initialisation and after training.".into(),
        claim: "(none: a grid of your own; the findings only report the measurements)".into(),
        depth: None,
        recurrent: Some((
            specs,
            RecurrentSettings { probe_batch: a.probe_batch, max_seconds: Some(a.max_seconds) },
        )),
        notes: Vec::new(),
    };
    let opts = LabOptions {
        full: false,
        seed: a.seed,
        out: a.out.unwrap_or_else(|| PathBuf::from("runs/lab-rnn")),
        quiet: a.quiet,
    };
    let report = execute("rnn", plan, catalogue::judge_recurrent_grid, command, &opts)?;
    print_summary(&report, &opts.out);
    Ok(())
}
