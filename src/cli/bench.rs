//! `gradscope bench` (run a suite and report) and `gradscope report` (merge finished runs).

use crate::bench::{collect_results, run_suite, suite, GradIndex, LrGridAt, Shard, SuiteConfig};
use crate::models::Family;
use crate::train::TaskName;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Built-in suite: quick | default | modern | literature. [default: default]
    #[arg(long, conflicts_with = "config")]
    pub suite: Option<String>,
    /// The sub-minute smoke suite (same as --suite quick).
    #[arg(long, conflicts_with_all = ["suite", "config"])]
    pub quick: bool,
    /// A suite as TOML (keys: tasks, adding-lengths, copy-lengths, selective-copy-lengths,
    /// induction-lengths, mqar-lengths, flip-flop-lengths, parity-lengths, extrapolate, models,
    /// max-seconds, lr-grid, lr-trial-fraction, lr-grid-at, seeds, [base]); keys left out take
    /// the default suite's values.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Report directory. [default: runs/bench-<suite>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run only part i of n of the grid (0 ≤ i < n), e.g. --shard $SLURM_ARRAY_TASK_ID/8.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<Shard>,
    /// Tasks to run, comma-separated (copy, adding, selective-copy, induction, mqar, flip-flop,
    /// parity).
    #[arg(long, value_delimiter = ',')]
    pub tasks: Option<Vec<TaskName>>,
    /// Adding-problem lengths, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub adding_lengths: Option<Vec<usize>>,
    /// Copy-task lengths, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub copy_lengths: Option<Vec<usize>>,
    /// Selective-copy lengths, comma-separated (with --tasks selective-copy).
    #[arg(long, value_delimiter = ',')]
    pub selective_copy_lengths: Option<Vec<usize>>,
    /// Induction-heads lengths, comma-separated (with --tasks induction).
    #[arg(long, value_delimiter = ',')]
    pub induction_lengths: Option<Vec<usize>>,
    /// MQAR lengths, comma-separated (with --tasks mqar).
    #[arg(long, value_delimiter = ',')]
    pub mqar_lengths: Option<Vec<usize>>,
    /// Flip-flop lengths (tokens, even), comma-separated (with --tasks flip-flop).
    #[arg(long, value_delimiter = ',')]
    pub flip_flop_lengths: Option<Vec<usize>>,
    /// Parity training lengths, comma-separated (with --tasks parity).
    #[arg(long, value_delimiter = ',')]
    pub parity_lengths: Option<Vec<usize>>,
    /// Also evaluate induction and parity runs at these multiples of their training length,
    /// comma-separated (e.g. 4,16); "none" for no extrapolation.
    #[arg(long, value_name = "FACTORS")]
    pub extrapolate: Option<Factors>,
    /// Models, comma-separated (rnn, lstm, gru, mingru, minlstm, lru, mamba, gpt).
    #[arg(long, value_delimiter = ',')]
    pub models: Option<Vec<Family>>,
    /// Hidden size of every model.
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Step budget of every run.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Wall-clock budget of every run, in seconds.
    #[arg(long)]
    pub max_seconds: Option<f64>,
    /// Seed of every run (the first seed with --seeds).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seeds per (task, T, model): a cell counts as solved when more than half of them solve it.
    #[arg(long)]
    pub seeds: Option<usize>,
    /// Learning rate of every run (when there is no --lr-grid).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Learning rates to try per (task, T, model), comma-separated, e.g. 3e-4,1e-3,3e-3: each
    /// trains for --lr-trial-fraction of the budget; the best on the held-out set finishes it.
    /// "none" turns a suite's grid off.
    #[arg(long, value_name = "RATES")]
    pub lr_grid: Option<LrGrid>,
    /// Share of each run's budget (steps and seconds) that each rate of the grid trains for, in (0, 1).
    #[arg(long)]
    pub lr_trial_fraction: Option<f64>,
    /// Where the grid runs: every-length, or shortest-length (longer lengths of a task reuse the
    /// rate each model chose at the task's shortest length).
    #[arg(long, value_name = "WHERE")]
    pub lr_grid_at: Option<LrGridAt>,
    /// Print only one line per run instead of progress bars.
    #[arg(long)]
    pub quiet: bool,
}

impl BenchArgs {
    fn resolve(&self) -> Result<SuiteConfig> {
        let mut s = match (&self.config, self.quick, &self.suite) {
            (Some(path), _, _) => SuiteConfig::from_toml_file(path)?,
            (None, true, _) => suite("quick")?,
            (None, false, Some(name)) => suite(name)?,
            (None, false, None) => suite("default")?,
        };
        if let Some(v) = &self.tasks {
            s.tasks = v.clone();
        }
        if let Some(v) = &self.adding_lengths {
            s.adding_lengths = v.clone();
        }
        if let Some(v) = &self.copy_lengths {
            s.copy_lengths = v.clone();
        }
        if let Some(v) = &self.selective_copy_lengths {
            s.selective_copy_lengths = v.clone();
        }
        for (given, lengths) in [
            (&self.induction_lengths, &mut s.induction_lengths),
            (&self.mqar_lengths, &mut s.mqar_lengths),
            (&self.flip_flop_lengths, &mut s.flip_flop_lengths),
            (&self.parity_lengths, &mut s.parity_lengths),
        ] {
            if let Some(v) = given {
                *lengths = v.clone();
            }
        }
        if let Some(Factors(v)) = &self.extrapolate {
            s.extrapolate = v.clone();
        }
        if let Some(v) = &self.models {
            s.models = v.clone();
        }
        if let Some(v) = self.hidden {
            s.base.hidden = v;
        }
        if let Some(v) = self.steps {
            s.base.steps = v;
        }
        if let Some(v) = self.seed {
            s.base.seed = v;
        }
        if let Some(v) = self.max_seconds {
            s.max_seconds = v;
        }
        if let Some(v) = self.seeds {
            s.seeds = v;
        }
        if let Some(v) = self.lr {
            s.base.lr = v;
            if self.lr_grid.is_none() {
                s.lr_grid.clear();
            }
        }
        if let Some(LrGrid(v)) = &self.lr_grid {
            s.lr_grid = v.clone();
        }
        if let Some(v) = self.lr_trial_fraction {
            s.lr_trial_fraction = v;
        }
        if let Some(v) = self.lr_grid_at {
            s.lr_grid_at = v;
        }
        s.validate()?;
        Ok(s)
    }
}

/// `--lr-grid`: rates separated by commas, or `none`.
#[derive(Clone, Debug)]
pub struct LrGrid(pub Vec<f64>);

impl std::str::FromStr for LrGrid {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.trim() == "none" {
            return Ok(LrGrid(vec![]));
        }
        let rates = s
            .split(',')
            .map(|r| r.trim().parse::<f64>().map_err(|_| format!("'{r}' is not a number")))
            .collect::<std::result::Result<Vec<f64>, String>>()?;
        if let Some(r) = rates.iter().find(|r| !(r.is_finite() && **r > 0.0)) {
            return Err(format!("every rate must be a finite number > 0 (got {r})"));
        }
        Ok(LrGrid(rates))
    }
}

/// `--extrapolate`: length multiples separated by commas, or `none`.
#[derive(Clone, Debug)]
pub struct Factors(pub Vec<usize>);

impl std::str::FromStr for Factors {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.trim() == "none" {
            return Ok(Factors(vec![]));
        }
        let factors = s
            .split(',')
            .map(|f| match f.trim().parse::<usize>() {
                Ok(k) if k >= 1 => Ok(k),
                _ => Err(format!("'{f}' is not a whole number ≥ 1")),
            })
            .collect::<std::result::Result<Vec<usize>, String>>()?;
        Ok(Factors(factors))
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    let suite = args.resolve()?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/bench-{}", suite.name)));
    let shard = args.shard.unwrap_or(Shard { index: 0, count: 1 });
    let started = std::time::Instant::now();
    let rows = run_suite(&suite, &out, shard, args.quiet, Some(super::interrupt_flag()))?;
    println!("{}", crate::bench::report_text(&rows, &GradIndex::load(&out, &rows)?));
    println!(
        "suite '{}' ({} runs here) took {:.0} s; report in {}",
        suite.name,
        rows.len(),
        started.elapsed().as_secs_f64(),
        out.join("report.md").display()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Report, shard or run directories to merge.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Where to write the merged report.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Merges finished runs and writes the report; like `bench`, it probes the trained models at each
/// task's longest length for the gradient figures (on the device each run's config names).
pub fn report(args: ReportArgs) -> Result<()> {
    let rows = collect_results(&args.dirs)?;
    crate::bench::probe_longest(&rows, &args.out)?;
    crate::bench::write_report(&rows, &args.out)?;
    println!("{}", crate::bench::report_text(&rows, &GradIndex::load(&args.out, &rows)?));
    println!("merged {} runs into {}", rows.len(), args.out.join("report.md").display());
    Ok(())
}
