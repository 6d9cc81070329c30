//! The named experiments: one per claim of the vanishing-gradient literature, each a plan (what
//! to measure, in a quick and a full size) and a judge (the findings, computed from the numbers).

use super::depth::{run_sweep, DepthRun, DepthSpec, DepthTraining};
use super::recurrent::{run_grid, RecurrentRun, RecurrentSettings, RecurrentSpec};
use super::report::{write_report, ExperimentReport, Finding};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Which axis an experiment measures along.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// Layers of a feed-forward network.
    Depth,
    /// Time steps of a recurrent network (or positions of a Transformer).
    Time,
}

impl Axis {
    pub fn name(self) -> &'static str {
        match self {
            Axis::Depth => "depth",
            Axis::Time => "time",
        }
    }
}

/// What an experiment measures, before it runs.
pub struct Plan {
    pub title: String,
    pub claim: String,
    pub depth: Option<(Vec<DepthSpec>, DepthTraining)>,
    pub recurrent: Option<(Vec<RecurrentSpec>, RecurrentSettings)>,
    pub notes: Vec<String>,
}

/// Turns the measured runs into findings.
pub type Judge = fn(&[DepthRun], &[RecurrentRun]) -> Vec<Finding>;

/// A named experiment.
#[derive(Clone, Copy)]
pub struct ExperimentInfo {
    pub name: &'static str,
    pub axis: Axis,
    /// The claim in one line, for `--list`.
    pub claim: &'static str,
    plan: fn(full: bool, seed: u64) -> Plan,
    judge: Judge,
}

impl std::fmt::Debug for ExperimentInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExperimentInfo").field("name", &self.name).finish()
    }
}

impl ExperimentInfo {
    pub fn plan(&self, full: bool, seed: u64) -> Plan {
        (self.plan)(full, seed)
    }
}

/// Every named experiment, in the order `--list` shows them.
pub fn registry() -> Vec<ExperimentInfo> {
    super::catalogue::all()
}

pub fn experiment(name: &str) -> Option<ExperimentInfo> {
    registry().into_iter().find(|e| e.name == name)
}

pub(crate) fn info(
    name: &'static str,
    axis: Axis,
    claim: &'static str,
    plan: fn(bool, u64) -> Plan,
    judge: Judge,
) -> ExperimentInfo {
    ExperimentInfo { name, axis, claim, plan, judge }
}

/// How to run an experiment.
#[derive(Clone, Debug)]
pub struct LabOptions {
    pub full: bool,
    pub seed: u64,
    pub out: PathBuf,
    /// Print nothing while running.
    pub quiet: bool,
}

/// A file in a lab report directory, so a re-run may replace what an earlier one left.
const MARKER: &str = ".gradscope-lab";

/// Makes `out` ready: a fresh or empty directory, or one an earlier lab run wrote (whose
/// training runs are cleared). Anything else is refused rather than overwritten.
fn prepare_out(out: &Path) -> Result<()> {
    if out.exists() {
        let empty =
            std::fs::read_dir(out).with_context(|| format!("--out {}", out.display()))?.next().is_none();
        if !empty && !out.join(MARKER).exists() {
            bail!(
                "--out {} exists and is not a gradscope lab report directory; choose another --out",
                out.display()
            );
        }
        let runs = out.join("runs");
        if runs.exists() {
            std::fs::remove_dir_all(&runs).with_context(|| format!("clearing {}", runs.display()))?;
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    crate::util::write_atomic(
        &out.join(MARKER),
        b"written by gradscope lab; safe to delete with the directory\n",
    )?;
    Ok(())
}

/// Runs a plan, judges it and writes the report directory.
pub fn execute(
    name: &str,
    plan: Plan,
    judge: Judge,
    command: String,
    opts: &LabOptions,
) -> Result<ExperimentReport> {
    prepare_out(&opts.out)?;
    let started = Instant::now();
    let quiet = opts.quiet;
    let mut log = |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    let (depth, depth_training) = match &plan.depth {
        Some((specs, t)) => (run_sweep(specs, t, &mut log)?, Some(t.clone())),
        None => (Vec::new(), None),
    };
    let (recurrent, recurrent_settings) = match &plan.recurrent {
        Some((specs, s)) => (run_grid(specs, s, &opts.out.join("runs"), &mut log)?, Some(s.clone())),
        None => (Vec::new(), None),
    };
    let findings = judge(&depth, &recurrent);
    let report = ExperimentReport {
        name: name.to_string(),
        title: plan.title,
        claim: plan.claim,
        command,
        size: if opts.full { "full".into() } else { "quick".into() },
        seed: opts.seed,
        wall_seconds: started.elapsed().as_secs_f64(),
        depth_training,
        depth,
        recurrent_settings,
        recurrent,
        findings,
        figures: Vec::new(),
        notes: plan.notes,
    };
    write_report(report, &opts.out)
}

/// Runs the named experiment and writes its report into `opts.out`.
pub fn run_experiment(name: &str, opts: &LabOptions) -> Result<ExperimentReport> {
    let Some(e) = experiment(name) else {
        let names: Vec<&str> = registry().iter().map(|e| e.name).collect();
        bail!("unknown experiment '{name}': `gradscope lab --list` shows them ({})", names.join(", "));
    };
    let mut command = format!("gradscope lab {name}");
    if opts.full {
        command.push_str(" --full");
    }
    if opts.seed != 0 {
        command.push_str(&format!(" --seed {}", opts.seed));
    }
    execute(name, e.plan(opts.full, opts.seed), e.judge, command, opts)
}
