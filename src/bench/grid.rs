//! One cell of a suite, (task, T, model), run the way a paper tunes it: each rate of the
//! learning-rate grid trains for a share of the budget, the best on the held-out set is kept and
//! finishes the budget, and further seeds train at the chosen rate.

use crate::train::run_dir::{CONFIG, SUMMARY};
use crate::train::{train, Interrupted, RunDir, RunOptions, StopReason, Summary, TrainConfig};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Where a cell's runs go and how each is budgeted.
pub struct CellRun<'a> {
    pub name: &'a str,
    pub cfg: &'a TrainConfig,
    /// `out/runs`: one directory per seed, the report's input.
    pub runs_dir: &'a Path,
    /// `out/trials`: the learning-rate trials, one directory per rate.
    pub trials_dir: &'a Path,
    pub lr_grid: &'a [f64],
    /// The run whose chosen rate `cfg.lr` is (no grid here), recorded in `lr-search.json`.
    pub lr_from: Option<&'a str>,
    /// The share of the budget (seconds and steps) each trial gets.
    pub trial_fraction: f64,
    pub seeds: usize,
    pub max_seconds: f64,
    pub quiet: bool,
    pub interrupt: Option<Arc<AtomicBool>>,
}

/// What `lr-search.json` holds: every rate's trial and the one kept.
#[derive(Debug, Serialize, Deserialize)]
pub struct LrSearch {
    pub trials: Vec<LrTrial>,
    pub chosen: f64,
    pub criterion: String,
    /// Set when the rate was chosen by another run's search (then `trials` is empty).
    #[serde(default)]
    pub from: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LrTrial {
    pub lr: f64,
    pub steps: u64,
    pub solved: bool,
    pub steps_to_solve: Option<u64>,
    #[serde(deserialize_with = "crate::util::nullable::f64")]
    pub eval_loss: f64,
    /// Why the trial ended in an error (a diverging rate), if it did.
    #[serde(default)]
    pub failed: Option<String>,
}

/// Written into the run the search kept (the cell's first seed).
pub const LR_SEARCH: &str = "lr-search.json";

/// Written into a trial whose training failed (a diverging rate), with the error.
const TRIAL_FAILED: &str = "trial-failed.txt";

pub const LR_CRITERION: &str =
    "solved first (fewest steps to solve), then the lowest held-out loss at the end of the trial";

/// Orders two trials' summaries best first, by [`LR_CRITERION`]; a NaN loss is worst.
pub fn compare_trials(a: &Summary, b: &Summary) -> Ordering {
    let solve = |s: &Summary| if s.solved { s.steps_to_solve.unwrap_or(s.steps) } else { u64::MAX };
    let loss = |s: &Summary| if s.eval_loss.is_nan() { f64::INFINITY } else { s.eval_loss };
    solve(a).cmp(&solve(b)).then(loss(a).total_cmp(&loss(b)))
}

/// The run directory of seed `k` (the only one when there is one seed).
pub fn seed_dir(runs_dir: &Path, name: &str, seeds: usize, seed: u64) -> PathBuf {
    if seeds <= 1 {
        runs_dir.join(name)
    } else {
        runs_dir.join(format!("{name}-seed{seed}"))
    }
}

impl CellRun<'_> {
    /// Every seed's run has its summary.
    pub fn is_done(&self) -> bool {
        (0..self.seeds as u64)
            .all(|k| seed_dir(self.runs_dir, self.name, self.seeds, self.cfg.seed + k).join(SUMMARY).exists())
    }

    /// Runs every seed of the cell not finished earlier; returns false if interrupted.
    pub fn run(&self) -> Result<bool> {
        let mut cfg = self.cfg.clone();
        let first = seed_dir(self.runs_dir, self.name, self.seeds, cfg.seed);
        if !self.lr_grid.is_empty() && !first.join(SUMMARY).exists() {
            let Some(lr) = self.choose_lr(&first)? else { return Ok(false) };
            cfg.lr = lr;
        } else if !self.lr_grid.is_empty() {
            cfg.lr = RunDir::new(&first).read_json::<Summary>(SUMMARY)?.lr.unwrap_or(cfg.lr);
        }
        for k in 0..self.seeds as u64 {
            let seed_cfg = TrainConfig { seed: cfg.seed + k, ..cfg.clone() };
            let dir = seed_dir(self.runs_dir, self.name, self.seeds, seed_cfg.seed);
            if dir.join(SUMMARY).exists() {
                continue;
            }
            if self.interrupted() {
                return Ok(false);
            }
            let search = self.lr_from.filter(|_| k == 0).map(|from| LrSearch {
                trials: vec![],
                chosen: cfg.lr,
                criterion: LR_CRITERION.into(),
                from: Some(from.to_string()),
            });
            self.train_fresh(&seed_cfg, &dir, self.max_seconds, search.as_ref())?;
        }
        Ok(true)
    }

    /// Trains each rate for its share of the budget, copies the best trial to `dest` and
    /// continues it there to the full budget. Returns the chosen rate (None if interrupted).
    fn choose_lr(&self, dest: &Path) -> Result<Option<f64>> {
        let trials_dir = self.trials_dir.join(self.name);
        let trial_steps = ((self.cfg.steps as f64 * self.trial_fraction).ceil() as u64).max(1);
        let trial_seconds = self.max_seconds * self.trial_fraction;
        let mut done: Vec<(f64, PathBuf, Summary)> = Vec::new();
        let mut failed: Vec<(f64, String)> = Vec::new();
        for &lr in self.lr_grid {
            let dir = trials_dir.join(format!("lr-{lr:e}"));
            let cfg = TrainConfig { lr, steps: trial_steps, ..self.cfg.clone() };
            // A trial left by another configuration (seed, steps, budget share) is not this one.
            let saved = std::fs::read_to_string(dir.join(CONFIG)).unwrap_or_default();
            let current = saved == cfg.to_toml()?;
            if current && dir.join(TRIAL_FAILED).exists() {
                failed.push((lr, std::fs::read_to_string(dir.join(TRIAL_FAILED)).unwrap_or_default()));
                continue;
            }
            if !(current && dir.join(SUMMARY).exists()) {
                if self.interrupted() {
                    return Ok(None);
                }
                // A rate that diverges loses the search; it does not end the bench.
                if let Err(e) = self.train_fresh(&cfg, &dir, trial_seconds, None) {
                    if e.downcast_ref::<Interrupted>().is_some() {
                        return Err(e);
                    }
                    let why = format!("{e:#}");
                    crate::util::write_atomic(&dir.join(TRIAL_FAILED), why.as_bytes())?;
                    failed.push((lr, why));
                    continue;
                }
            }
            let summary: Summary = RunDir::new(&dir).read_json(SUMMARY)?;
            done.push((lr, dir, summary));
        }
        let Some((lr, best, summary)) = done.iter().min_by(|a, b| compare_trials(&a.2, &b.2)) else {
            let (lr, why) = &failed[0];
            bail!("{}: every rate of the learning-rate grid failed (lr {lr:e}: {why})", self.name);
        };
        let search = LrSearch {
            trials: done
                .iter()
                .map(|(lr, _, s)| LrTrial {
                    lr: *lr,
                    steps: s.steps,
                    solved: s.solved,
                    steps_to_solve: s.steps_to_solve,
                    eval_loss: s.eval_loss,
                    failed: None,
                })
                .chain(failed.iter().map(|(lr, why)| LrTrial {
                    lr: *lr,
                    steps: 0,
                    solved: false,
                    steps_to_solve: None,
                    eval_loss: f64::NAN,
                    failed: Some(why.clone()),
                }))
                .collect(),
            chosen: *lr,
            criterion: LR_CRITERION.into(),
            from: None,
        };
        if dest.exists() {
            std::fs::remove_dir_all(dest).with_context(|| format!("clearing {}", dest.display()))?;
        }
        // The summary is copied last, if at all: until then the copy does not look finished.
        copy_dir(best, dest, &[SUMMARY])?;
        crate::util::write_atomic(&dest.join(LR_SEARCH), serde_json::to_string_pretty(&search)?.as_bytes())?;
        let cfg = TrainConfig { lr: *lr, ..self.cfg.clone() };
        if matches!(summary.stopped, StopReason::Solved | StopReason::Diverged) || summary.steps >= cfg.steps
        {
            let bytes = std::fs::read(best.join(SUMMARY))
                .with_context(|| format!("reading {}", best.join(SUMMARY).display()))?;
            crate::util::write_atomic(&dest.join(SUMMARY), &bytes)?;
            return Ok(Some(*lr));
        }
        // The resolved config saved with the run is the one it finishes under (all its steps).
        crate::util::write_atomic(&dest.join(CONFIG), cfg.to_toml()?.as_bytes())?;
        let opts = RunOptions {
            out: dest.to_path_buf(),
            resume: true,
            quiet: self.quiet,
            interrupt: self.interrupt.clone(),
            max_seconds: Some(self.max_seconds - summary.wall_seconds.min(trial_seconds)),
        };
        train(&cfg, &opts).with_context(|| format!("bench run {} (lr {lr:e})", self.name))?;
        Ok(Some(*lr))
    }

    /// A run from scratch; a directory left by a run cut short earlier is cleared first, since a
    /// bench run is its budget, not its steps.
    /// `search`, if given, is written before training starts, so a finished run always has it.
    fn train_fresh(
        &self,
        cfg: &TrainConfig,
        dir: &Path,
        max_seconds: f64,
        search: Option<&LrSearch>,
    ) -> Result<Summary> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        if let Some(search) = search {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            crate::util::write_atomic(
                &dir.join(LR_SEARCH),
                serde_json::to_string_pretty(search)?.as_bytes(),
            )?;
        }
        let opts = RunOptions {
            out: dir.to_path_buf(),
            resume: false,
            quiet: self.quiet,
            interrupt: self.interrupt.clone(),
            max_seconds: Some(max_seconds),
        };
        train(cfg, &opts).with_context(|| format!("bench run {}", dir.display()))
    }

    fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// Copies a run directory with everything under it except the top-level files named in `skip`.
fn copy_dir(from: &Path, to: &Path, skip: &[&str]) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("listing {}", from.display()))? {
        let entry = entry?;
        if skip.iter().any(|s| entry.file_name() == *s) {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target, &[])?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {} to {}", entry.path().display(), target.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(solved_at: Option<u64>, loss: f64) -> Summary {
        Summary {
            task: "adding".into(),
            model: "lstm".into(),
            label: "lstm h8 adding T=10".into(),
            seq_len: 10,
            hidden: 8,
            layers: 1,
            parameters: 1,
            lr: Some(1e-3),
            seed: Some(0),
            steps: 100,
            eval_loss: loss,
            eval_accuracy: None,
            eval_mse: Some(loss),
            eval_bpc: None,
            eval_perplexity: None,
            baseline: 1.0 / 6.0,
            solved: solved_at.is_some(),
            steps_to_solve: solved_at,
            wall_seconds: 1.0,
            tokens_per_second: 1.0,
            nonfinite_events: 0,
            stopped: StopReason::TimeBudget,
            evaluations: Vec::new(),
        }
    }

    #[test]
    fn solved_sooner_beats_solved_later_beats_lower_loss_beats_nan() {
        let mut trials = [
            trial(None, f64::NAN),
            trial(None, 0.05),
            trial(Some(80), 0.009),
            trial(None, 0.02),
            trial(Some(40), 0.009),
        ];
        trials.sort_by(compare_trials);
        let order: Vec<(Option<u64>, String)> =
            trials.iter().map(|t| (t.steps_to_solve, format!("{:.3}", t.eval_loss))).collect();
        assert_eq!(
            order,
            [(Some(40), "0.009"), (Some(80), "0.009"), (None, "0.020"), (None, "0.050"), (None, "NaN")]
                .map(|(s, l)| (s, l.to_string()))
        );
    }
}
