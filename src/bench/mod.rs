//! The benchmark suite: a grid of (task, T, model) training runs with a fixed budget each, and a
//! report of which models learn dependencies across which distances.

mod extrapolation;
mod gradients;
mod grid;
mod report;
pub mod speed;

pub use extrapolation::extra_evaluations_section;
pub use gradients::{probe_longest, GradIndex};
pub use grid::{compare_trials, LrSearch, LrTrial, LR_CRITERION};
pub use report::{collect_results, findings, markdown_table, report_text, write_report, ResultRow};

use crate::models::{Family, Nonlinearity};
use crate::train::{OnNonFinite, TaskName, TrainConfig};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A grid: every task × length × model, each run with the same base settings and budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct SuiteConfig {
    pub name: String,
    pub tasks: Vec<TaskName>,
    /// Lengths T per task (`adding-lengths = [50, 100]`); a task with no lengths runs nothing.
    pub adding_lengths: Vec<usize>,
    pub copy_lengths: Vec<usize>,
    pub selective_copy_lengths: Vec<usize>,
    pub induction_lengths: Vec<usize>,
    pub mqar_lengths: Vec<usize>,
    pub flip_flop_lengths: Vec<usize>,
    pub parity_lengths: Vec<usize>,
    /// Induction and parity runs are also evaluated at these multiples of their training length
    /// (`extrapolate = [4, 16]`: the extrapolation table).
    pub extrapolate: Vec<usize>,
    pub models: Vec<Family>,
    /// Settings shared by every run (hidden size, batch, lr, clip, steps, ...).
    pub base: TrainConfig,
    /// Wall-clock budget of one run; it stops early when solved.
    pub max_seconds: f64,
    /// Learning rates to try per cell (empty: every run at `base.lr`). Each trains for
    /// `lr-trial-fraction` of the budget; the best on the held-out set finishes it.
    pub lr_grid: Vec<f64>,
    pub lr_trial_fraction: f64,
    /// Where the grid runs: at every length, or at each task's shortest length only, the longer
    /// lengths training at the rate chosen there (a rate whose benefit shows late, like the GPT's
    /// on copy, cannot show in a short trial at a long length).
    pub lr_grid_at: LrGridAt,
    /// Seeds per cell (`base.seed`, `base.seed + 1`, ...), all at the cell's chosen rate; a cell
    /// is solved when more than half of them solve it.
    pub seeds: usize,
}

impl Default for SuiteConfig {
    fn default() -> Self {
        suite("default").expect("the default suite exists")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrGridAt {
    EveryLength,
    ShortestLength,
}

impl std::str::FromStr for LrGridAt {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "every-length" => Ok(LrGridAt::EveryLength),
            "shortest-length" => Ok(LrGridAt::ShortestLength),
            other => Err(format!("unknown '{other}': expected every-length or shortest-length")),
        }
    }
}

/// The built-in suites: `quick` (a sub-minute smoke run), `default` (every family, a learning rate
/// per cell from a grid; ≤ 10 minutes on a 2-core CPU), `modern` (the tasks of current
/// long-range papers; ≤ 1 hour), `literature` (the lengths and sizes of the papers; hours).
pub const SUITES: [&str; 4] = ["quick", "default", "modern", "literature"];

/// A suite with no lengths, to fill in.
fn no_lengths() -> SuiteConfig {
    SuiteConfig {
        name: String::new(),
        tasks: vec![],
        adding_lengths: vec![],
        copy_lengths: vec![],
        selective_copy_lengths: vec![],
        induction_lengths: vec![],
        mqar_lengths: vec![],
        flip_flop_lengths: vec![],
        parity_lengths: vec![],
        extrapolate: vec![],
        models: vec![],
        base: TrainConfig::default(),
        max_seconds: 1.0,
        lr_grid: vec![],
        lr_trial_fraction: 0.25,
        lr_grid_at: LrGridAt::EveryLength,
        seeds: 1,
    }
}

pub fn suite(name: &str) -> Result<SuiteConfig> {
    let base = |hidden: usize, steps: u64, eval_every: u64, eval_size: usize| TrainConfig {
        hidden,
        steps,
        eval_every,
        eval_size,
        batch: 64,
        lr: 1e-3,
        clip: Some(1.0),
        stop_when_solved: true,
        // A rate that turns a gradient non-finite late in a run skips those steps: the cell ends
        // unsolved at its budget instead of ending the whole suite.
        on_nonfinite: OnNonFinite::Skip,
        ..TrainConfig::default()
    };
    let all = vec![Family::Rnn, Family::Lstm, Family::Gru, Family::Gpt];
    let every_family = vec![
        Family::Rnn,
        Family::Lstm,
        Family::Gru,
        Family::MinGru,
        Family::MinLstm,
        Family::Lru,
        Family::Mamba,
        Family::Gpt,
    ];
    Ok(match name {
        "quick" => SuiteConfig {
            name: name.into(),
            tasks: vec![TaskName::Adding, TaskName::Copy],
            adding_lengths: vec![10],
            copy_lengths: vec![5],
            models: all,
            base: TrainConfig { batch: 16, ..base(16, 20, 10, 32) },
            max_seconds: 5.0,
            lr_grid: vec![],
            lr_trial_fraction: 0.25,
            lr_grid_at: LrGridAt::EveryLength,
            seeds: 1,
            ..no_lengths()
        },
        // Every family at a short and a long length of each task, so the table shows where each
        // stops solving; each cell picks its learning rate from the grid (one shared rate would
        // measure the rate: the GPT needs 3e-4 where the min cells need 1e-2). The copy task keeps
        // the literature's alphabet of 8 and recalls 3 symbols, not 10, to fit the budget.
        "default" => SuiteConfig {
            name: name.into(),
            tasks: vec![TaskName::Adding, TaskName::Copy],
            adding_lengths: vec![50, 200],
            copy_lengths: vec![20, 100],
            models: every_family.clone(),
            base: TrainConfig { copy_len: Some(3), alphabet: Some(8), ..base(64, 4000, 50, 256) },
            max_seconds: 25.0,
            lr_grid: vec![3e-4, 1e-3, 3e-3, 1e-2],
            lr_trial_fraction: 0.2,
            lr_grid_at: LrGridAt::ShortestLength,
            seeds: 1,
            ..no_lengths()
        },
        // The tasks of current long-range papers at lengths a 2-core CPU finishes in an hour, every
        // family at two blocks (the Mamba paper's induction setting), a rate per cell from the
        // grid; induction and parity are also evaluated at 4× and 16× their training length.
        "modern" => SuiteConfig {
            name: name.into(),
            tasks: vec![
                TaskName::SelectiveCopy,
                TaskName::Induction,
                TaskName::Mqar,
                TaskName::FlipFlop,
                TaskName::Parity,
            ],
            selective_copy_lengths: vec![50],
            induction_lengths: vec![64],
            mqar_lengths: vec![64],
            flip_flop_lengths: vec![128],
            parity_lengths: vec![40],
            extrapolate: vec![4, 16],
            models: every_family.clone(),
            base: TrainConfig { copy_len: Some(4), layers: 2, ..base(64, 4000, 50, 256) },
            max_seconds: 55.0,
            lr_grid: vec![3e-4, 1e-3, 3e-3, 1e-2],
            lr_trial_fraction: 0.15,
            lr_grid_at: LrGridAt::EveryLength,
            seeds: 1,
            ..no_lengths()
        },
        "literature" => SuiteConfig {
            name: name.into(),
            tasks: vec![TaskName::Adding, TaskName::Copy],
            adding_lengths: vec![100, 200, 400, 750, 1000],
            copy_lengths: vec![100, 200, 300, 500, 1000],
            models: all,
            base: TrainConfig { forget_bias: None, ..base(128, 10_000, 100, 512) },
            max_seconds: 3600.0,
            lr_grid: vec![],
            lr_trial_fraction: 0.25,
            lr_grid_at: LrGridAt::EveryLength,
            seeds: 1,
            ..no_lengths()
        },
        other => bail!("unknown suite '{other}': expected one of {}", SUITES.join(", ")),
    })
}

impl SuiteConfig {
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing suite {}", path.display()))
    }

    /// The lengths T the suite runs `task` at (none for text: `gradscope train --task text`).
    fn lengths(&self, task: TaskName) -> &[usize] {
        match task {
            TaskName::Adding => &self.adding_lengths,
            TaskName::Copy => &self.copy_lengths,
            TaskName::SelectiveCopy => &self.selective_copy_lengths,
            TaskName::Induction => &self.induction_lengths,
            TaskName::Mqar => &self.mqar_lengths,
            TaskName::FlipFlop => &self.flip_flop_lengths,
            TaskName::Parity => &self.parity_lengths,
            TaskName::Text => &[],
        }
    }

    /// With `lr-grid-at = "shortest-length"`, the run whose chosen rate a longer run reuses: the
    /// same task and model at the task's shortest length (None for that run itself).
    pub fn lr_reference(&self, cfg: &TrainConfig) -> Option<String> {
        if self.lr_grid_at != LrGridAt::ShortestLength {
            return None;
        }
        let shortest = *self.lengths(cfg.task).iter().min()?;
        (cfg.seq_len > shortest).then(|| format!("{}-T{shortest}-{}", cfg.task, cfg.model))
    }

    /// The grid in a fixed order: task, then length, then model.
    pub fn runs(&self) -> Vec<(String, TrainConfig)> {
        let mut out = Vec::new();
        for &task in &self.tasks {
            // Ascending, so a length's learning rate can come from the shortest one (lr-grid-at).
            let mut lengths = self.lengths(task).to_vec();
            lengths.sort_unstable();
            lengths.dedup();
            for t in lengths {
                for &model in &self.models {
                    let mut cfg = self.base.clone();
                    cfg.task = task;
                    cfg.seq_len = t;
                    cfg.model = model;
                    if model == Family::Lstm {
                        // The literature's LSTM setting (Gers et al. 2000; Jozefowicz et al. 2015).
                        cfg.forget_bias = Some(cfg.forget_bias.unwrap_or(1.0));
                    } else {
                        cfg.forget_bias = None;
                    }
                    if model == Family::Rnn {
                        cfg.nonlinearity = Nonlinearity::Tanh;
                    }
                    if matches!(task, TaskName::Induction | TaskName::Parity) {
                        cfg.eval_lengths = self.extrapolate.iter().map(|k| k * t).collect();
                    }
                    out.push((format!("{task}-T{t}-{model}"), cfg));
                }
            }
        }
        out
    }

    pub fn validate(&self) -> Result<()> {
        if self.max_seconds.is_nan() || self.max_seconds <= 0.0 {
            bail!("max-seconds must be > 0 (got {})", self.max_seconds);
        }
        if let Some(lr) = self.lr_grid.iter().find(|lr| !(lr.is_finite() && **lr > 0.0)) {
            bail!("--lr-grid: every rate must be a finite number > 0 (got {lr})");
        }
        if !(self.lr_trial_fraction > 0.0 && self.lr_trial_fraction < 1.0) {
            bail!("--lr-trial-fraction must be in (0, 1) (got {})", self.lr_trial_fraction);
        }
        if self.seeds == 0 {
            bail!("--seeds must be at least 1");
        }
        if self.extrapolate.contains(&0) {
            bail!("extrapolate: every factor must be ≥ 1 (got 0)");
        }
        if !self.lr_grid.is_empty() && self.base.schedule != crate::train::ScheduleKind::Constant {
            bail!("--lr-grid needs a constant learning-rate schedule: a trial would decay over its own share of the steps");
        }
        for (name, cfg) in self.runs() {
            cfg.validate().with_context(|| format!("suite run {name}"))?;
            // Every trial of the grid must be a valid run too (e.g. warm-up within its steps).
            for &lr in &self.lr_grid {
                let steps = ((cfg.steps as f64 * self.lr_trial_fraction).ceil() as u64).max(1);
                TrainConfig { lr, steps, ..cfg.clone() }
                    .validate()
                    .with_context(|| format!("suite run {name}, the --lr-grid trial at lr {lr:e}"))?;
            }
        }
        if self.runs().is_empty() {
            bail!("the suite has no runs (no tasks, lengths or models)");
        }
        Ok(())
    }
}

/// `--shard i/n`: which part of the grid this process runs (runs whose index ≡ i mod n, or
/// whole (task, model) groups when the grid runs at the shortest length).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("invalid shard '{s}': expected i/n with 0 ≤ i < n, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Runs this shard's part of the grid into `out/runs/NAME` and writes the report for the runs
/// present in `out/runs` (all shards' when they share `out`).
pub fn run_suite(
    suite: &SuiteConfig,
    out: &Path,
    shard: Shard,
    quiet: bool,
    interrupt: Option<Arc<AtomicBool>>,
) -> Result<Vec<ResultRow>> {
    suite.validate()?;
    let runs_dir = out.join("runs");
    std::fs::create_dir_all(&runs_dir).with_context(|| format!("creating {}", runs_dir.display()))?;
    crate::util::write_atomic(&out.join("suite.toml"), toml::to_string_pretty(suite)?.as_bytes())?;
    // With the grid at the shortest length, a shard takes whole (task, model) groups, so the
    // longer lengths find the rate their shortest length chose.
    let grouped = !suite.lr_grid.is_empty() && suite.lr_grid_at == LrGridAt::ShortestLength;
    let mut groups: Vec<(TaskName, Family)> = Vec::new();
    let mine: Vec<(String, TrainConfig)> = suite
        .runs()
        .into_iter()
        .enumerate()
        .filter(|(i, (_, cfg))| {
            let key = if grouped {
                let group = (cfg.task, cfg.model);
                groups.iter().position(|g| *g == group).unwrap_or_else(|| {
                    groups.push(group);
                    groups.len() - 1
                })
            } else {
                *i
            };
            key % shard.count == shard.index
        })
        .map(|(_, r)| r)
        .collect();
    let trials_dir = out.join("trials");
    for (k, (name, cfg)) in mine.iter().enumerate() {
        let mut cfg = cfg.clone();
        let mut lr_grid = suite.lr_grid.as_slice();
        let mut lr_from = None;
        if let Some(shortest) = suite.lr_reference(&cfg).filter(|_| !lr_grid.is_empty()) {
            let dir = grid::seed_dir(&runs_dir, &shortest, suite.seeds, cfg.seed);
            match crate::train::RunDir::new(&dir)
                .read_json::<crate::train::Summary>(crate::train::run_dir::SUMMARY)
            {
                Ok(summary) if summary.lr.is_some() => {
                    cfg.lr = summary.lr.unwrap_or(cfg.lr);
                    lr_grid = &[];
                    lr_from = Some(shortest);
                }
                // Another shard runs the shortest length: search the grid here instead.
                _ => eprintln!(
                    "{name}: {shortest} has not finished here; searching the learning rate at this length"
                ),
            }
        }
        let cell = grid::CellRun {
            name,
            cfg: &cfg,
            runs_dir: &runs_dir,
            trials_dir: &trials_dir,
            lr_grid,
            lr_from: lr_from.as_deref(),
            trial_fraction: suite.lr_trial_fraction,
            seeds: suite.seeds,
            max_seconds: suite.max_seconds,
            quiet,
            interrupt: interrupt.clone(),
        };
        if cell.is_done() {
            eprintln!("[{}/{}] {name}: done earlier, kept", k + 1, mine.len());
            continue;
        }
        if quiet {
            eprintln!("[{}/{}] {name}", k + 1, mine.len());
        }
        if !cell.run()? {
            break;
        }
    }
    let rows = collect_results(&[runs_dir])?;
    probe_longest(&rows, out)?;
    write_report(&rows, out)?;
    Ok(rows)
}
