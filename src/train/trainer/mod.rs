//! The training loop: batches from a task, forward/backward, clipping, the optimiser, periodic
//! evaluation on a fixed held-out set, checkpoints, exact resume and a clean stop on Ctrl-C.

//!
//! - `setup`: a fresh run directory or a resumed one, and everything the loop reads.
//! - `step`: one forward/backward/update, and what a non-finite loss or gradient leads to.
//! - `state`: the checkpoint's loop state, saved and restored.
//! - here: the loop, evaluation, the metrics lines and the summary.

mod setup;
mod state;
mod step;

use super::config::{OnNonFinite, TrainConfig};
use super::nonfinite::first_nonfinite_parameter;
use super::run_dir::{ExtraEvaluation, MetricsRecord, RunDir, StopReason, Summary, PROBE, SUMMARY};
use super::{LrSchedule, Optimizer};
use crate::models::{parameter_count, ForwardOptions, SeqModel, SeqModelConfig};
use crate::probe::{measure, LossKind, ProbeRecord};
use crate::tasks::{Batch, Metrics, Task};
use anyhow::{bail, Result};
use candle_core::{Device, Var};
use candle_nn::VarMap;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;
use state::{save_checkpoint, LoopState};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// `--on-nonfinite skip` stops a run as diverged after this many non-finite steps in a row: by
/// then its every batch fails, and skipping would spend the rest of the budget on nothing.
pub const MAX_SKIPS_IN_A_ROW: u64 = 100;

/// The held-out set's seed is fixed, independent of `--seed`: every model sees the same sequences.
pub const EVAL_SEED: u64 = 0xE7A1_5E75;

/// Where and how to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub out: PathBuf,
    /// Continue the run in `out` from its checkpoint.
    pub resume: bool,
    /// No progress bar.
    pub quiet: bool,
    /// Set by a Ctrl-C handler: the loop checkpoints and stops.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Stop (with a summary) once this much wall time has passed.
    pub max_seconds: Option<f64>,
}

/// Training stopped on request; the checkpoint at `step` holds everything to resume.
#[derive(Debug, thiserror::Error)]
#[error("interrupted at step {step}; checkpoint written, continue with --resume {dir}")]
pub struct Interrupted {
    pub step: u64,
    pub dir: String,
}

/// A stateless, well-mixed seed per (run seed, step, purpose): batches and dropout masks depend
/// only on these, so a resumed run draws exactly what the uninterrupted one would have.
pub fn derive_seed(seed: u64, step: u64, salt: u64) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The fixed evaluation set of a task, in batches of at most `batch`.
pub fn eval_set(task: &dyn Task, size: usize, batch: usize, device: &Device) -> Result<Vec<Batch>> {
    let mut rng = StdRng::seed_from_u64(EVAL_SEED);
    let mut out = Vec::new();
    let mut left = size;
    while left > 0 {
        let n = left.min(batch);
        out.push(task.eval_batch(n, &mut rng, device)?);
        left -= n;
    }
    Ok(out)
}

/// Metrics over a whole evaluation set, weighted by batch size.
pub fn evaluate(model: &SeqModel, task: &dyn Task, set: &[Batch]) -> Result<Metrics> {
    let (mut total, mut n) = (Metrics::default(), 0.0);
    let add = |acc: &mut Option<f64>, v: Option<f64>, w: f64| {
        if let Some(v) = v {
            *acc = Some(acc.unwrap_or(0.0) + v * w);
        }
    };
    for batch in set {
        let out =
            model.forward(&batch.inputs, None, &ForwardOptions { no_grad: true, ..Default::default() })?;
        let m = task.metrics(&out.outputs, batch)?;
        let w = batch.size()? as f64;
        total.loss += m.loss * w;
        add(&mut total.accuracy, m.accuracy, w);
        add(&mut total.mse, m.mse, w);
        add(&mut total.bits_per_char, m.bits_per_char, w);
        n += w;
    }
    total.bits_per_char = total.bits_per_char.map(|v| v / n);
    total.loss /= n;
    total.accuracy = total.accuracy.map(|v| v / n);
    total.mse = total.mse.map(|v| v / n);
    Ok(total)
}

/// Trains as `cfg` says, writing the run directory `opts.out`. Call it on a thread with a deep
/// stack (see [`crate::util::with_deep_stack`]) for long sequences.
pub fn train(cfg: &TrainConfig, opts: &RunOptions) -> Result<Summary> {
    let mut run = Trainer::open(cfg, opts)?;
    let stopped = run.run()?;
    run.finish(stopped)
}

/// A run in progress: its configuration, model, optimiser and the loop's counters.
struct Trainer<'a> {
    cfg: &'a TrainConfig,
    opts: &'a RunOptions,
    dir: RunDir,
    device: Device,
    task: Box<dyn Task>,
    model_cfg: SeqModelConfig,
    varmap: VarMap,
    model: SeqModel,
    /// The parameters by name, sorted: the optimiser's and the checkpoint's order.
    named: Vec<(String, Var)>,
    params: Vec<Var>,
    optimizer: Optimizer,
    schedule: LrSchedule,
    state: LoopState,
    /// The fixed held-out set, and a fixed slice of it for `--probe-every`.
    evalset: Vec<Batch>,
    probe_batch: Option<Batch>,
    bar: ProgressBar,
    /// The next step to run, and the last step whose checkpoint holds finite parameters.
    step: u64,
    last_good: u64,
    /// Where this process took over (0, or the resumed checkpoint's step and elapsed time).
    start_step: u64,
    elapsed_before: f64,
    started: Instant,
    window: Window,
    last: Option<Metrics>,
    /// Non-finite steps skipped since the last finite one.
    skipped_in_a_row: u64,
}

/// The training loss and gradient norm of the steps since the last metrics line.
#[derive(Default)]
struct Window {
    loss_sum: f64,
    norm_sum: f64,
    steps: u64,
}

impl Window {
    fn add(&mut self, loss: f64, norm: f64) {
        self.loss_sum += loss;
        self.norm_sum += norm;
        self.steps += 1;
    }

    fn mean_loss(&self) -> f64 {
        self.loss_sum / self.steps as f64
    }

    fn mean_norm(&self) -> f64 {
        self.norm_sum / self.steps as f64
    }
}

impl Trainer<'_> {
    /// Runs steps until `--steps`, a solve (with `--stop-when-solved`) or the time budget.
    fn run(&mut self) -> Result<StopReason> {
        if self.start_step == 0 {
            self.record_probe(0)?;
        }
        while self.step < self.cfg.steps {
            match self.train_step()? {
                Some((loss, norm)) => {
                    self.skipped_in_a_row = 0;
                    if self.cfg.probe_every.is_some_and(|n| self.step.is_multiple_of(n)) {
                        self.record_probe(self.step)?;
                    }
                    self.window.add(loss, norm);
                }
                // Rolled back: the restored step was evaluated before.
                None if self.cfg.on_nonfinite == OnNonFinite::Rollback => continue,
                None if self.skipped_in_a_row >= MAX_SKIPS_IN_A_ROW => {
                    note(
                        &self.bar,
                        format!(
                            "{MAX_SKIPS_IN_A_ROW} steps in a row were not finite (the last: step {}); stopped as diverged",
                            self.step - 1
                        ),
                    );
                    self.bar.finish();
                    return Ok(StopReason::Diverged);
                }
                // Skipped: the time budget and Ctrl-C still apply.
                None => {}
            }
            if let Some(stop) = self.maybe_evaluate()? {
                return Ok(stop);
            }
            self.bar.set_position(self.step);
        }
        self.bar.finish();
        Ok(StopReason::Completed)
    }

    /// At an evaluation step (every `--eval-every`, the last, the time budget, Ctrl-C): the
    /// metrics line, a checkpoint, and whether to stop.
    fn maybe_evaluate(&mut self) -> Result<Option<StopReason>> {
        let step = self.step;
        let elapsed = self.elapsed_before + self.started.elapsed().as_secs_f64();
        let out_of_time = self.opts.max_seconds.is_some_and(|m| self.started.elapsed().as_secs_f64() >= m);
        let interrupted = self.opts.interrupt.as_ref().is_some_and(|f| f.load(Ordering::SeqCst));
        if !(step.is_multiple_of(self.cfg.eval_every) || step == self.cfg.steps || out_of_time || interrupted)
        {
            return Ok(None);
        }
        let metrics = evaluate(&self.model, self.task.as_ref(), &self.evalset)?;
        let solved = self.task.solved(&metrics);
        if solved && self.state.steps_to_solve.is_none() {
            self.state.steps_to_solve = Some(step);
        }
        let record = MetricsRecord {
            step,
            train_loss: self.window.mean_loss(),
            eval_loss: metrics.loss,
            eval_accuracy: metrics.accuracy,
            eval_mse: metrics.mse,
            eval_bpc: metrics.bits_per_char,
            eval_perplexity: metrics.bits_per_char.map(|_| metrics.loss.exp()),
            grad_norm: self.window.mean_norm(),
            lr: self.lr(step - 1),
            elapsed_seconds: elapsed,
            tokens_per_second: self.tokens_per_second(),
        };
        self.dir.append_metrics(&record)?;
        if let Some(name) = first_nonfinite_parameter(&self.named)? {
            bail!(
                "parameter '{name}' became non-finite by step {step}; the last good checkpoint (step {}) is kept",
                self.last_good
            );
        }
        (self.state.step, self.state.elapsed) = (step, elapsed);
        save_checkpoint(&self.dir, &self.varmap, &self.named, &self.optimizer, &self.state)?;
        self.last_good = step;
        let (name, value) = self.task.headline(&metrics);
        self.bar.set_message(format!(
            "loss {:.4} | eval {name} {value:.4} | {:.0} tok/s",
            record.train_loss, record.tokens_per_second
        ));
        self.window = Window::default();
        self.last = Some(metrics);
        if interrupted {
            self.bar.abandon();
            return Err(Interrupted { step, dir: self.opts.out.display().to_string() }.into());
        }
        let stop = if solved && self.cfg.stop_when_solved {
            Some(StopReason::Solved)
        } else if out_of_time {
            Some(StopReason::TimeBudget)
        } else {
            None
        };
        if stop.is_some() {
            self.bar.finish();
        }
        Ok(stop)
    }

    /// The learning rate of `step`.
    fn lr(&self, step: u64) -> f64 {
        self.schedule.lr_at(step) * self.state.lr_scale
    }

    fn tokens_per_second(&self) -> f64 {
        let tokens = (self.cfg.batch * self.task.spec().steps) as f64 * (self.step - self.start_step) as f64;
        tokens / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    fn record_probe(&self, step: u64) -> Result<()> {
        if let Some(batch) = &self.probe_batch {
            let name = self.cfg.model.name();
            let p = measure(&self.model, &self.varmap, self.task.as_ref(), batch, LossKind::Last, name)?;
            self.dir.append_line(PROBE, &ProbeRecord { step, curves: p.curves })?;
        }
        Ok(())
    }

    /// The final model at every --eval-lengths length and on the task's other distributions.
    fn extra_evaluations(&self) -> Result<Vec<ExtraEvaluation>> {
        let mut tasks = self.task.extra_evaluations();
        for &t in &self.cfg.eval_lengths {
            tasks.push((format!("T={t}"), self.cfg.at_length(t).build_task()?));
        }
        let steps = self.task.spec().steps;
        tasks
            .into_iter()
            .map(|(name, task)| {
                // As many tokens per batch as in training, so attention at 16× the length fits.
                let batch = (self.cfg.batch * steps / task.spec().steps).clamp(1, self.cfg.batch);
                let set = eval_set(task.as_ref(), self.cfg.eval_size, batch, &self.device)?;
                let m = evaluate(&self.model, task.as_ref(), &set)?;
                Ok(ExtraEvaluation {
                    name,
                    seq_len: task.seq_len(),
                    eval_loss: m.loss,
                    eval_accuracy: m.accuracy,
                    eval_mse: m.mse,
                    solved: task.solved(&m),
                })
            })
            .collect()
    }

    /// Writes `summary.json` (last: its presence means the run finished).
    fn finish(self, stopped: StopReason) -> Result<Summary> {
        let metrics = match self.last {
            Some(m) => m,
            None => evaluate(&self.model, self.task.as_ref(), &self.evalset)?,
        };
        let summary = Summary {
            task: self.task.name().to_string(),
            model: self.cfg.model.to_string(),
            label: self.cfg.label(),
            seq_len: self.cfg.seq_len,
            hidden: self.cfg.hidden,
            layers: self.cfg.layers,
            parameters: parameter_count(&self.varmap),
            lr: Some(self.cfg.lr),
            seed: Some(self.cfg.seed),
            steps: self.step,
            eval_loss: metrics.loss,
            eval_accuracy: metrics.accuracy,
            eval_mse: metrics.mse,
            eval_bpc: metrics.bits_per_char,
            eval_perplexity: metrics.bits_per_char.map(|_| metrics.loss.exp()),
            baseline: self.task.baseline(),
            solved: self.task.solved(&metrics) || self.state.steps_to_solve.is_some(),
            steps_to_solve: self.state.steps_to_solve,
            nonfinite_events: self.state.nonfinite_events,
            wall_seconds: self.elapsed_before + self.started.elapsed().as_secs_f64(),
            tokens_per_second: self.tokens_per_second(),
            stopped,
            evaluations: self.extra_evaluations()?,
        };
        self.dir.write_json(SUMMARY, &summary)?;
        Ok(summary)
    }
}

/// A message above the progress bar, or on stderr when there is no bar (--quiet, not a terminal).
fn note(bar: &ProgressBar, msg: String) {
    if bar.is_hidden() {
        eprintln!("{msg}");
    } else {
        bar.println(msg);
    }
}

fn progress_bar(cfg: &TrainConfig, quiet: bool, start: u64) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(cfg.steps);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:28.cyan/blue} {pos}/{len} {msg} (eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(cfg.label());
    bar.set_position(start);
    bar
}
