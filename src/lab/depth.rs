//! The depth axis: synthetic tasks for MLPs, a small training loop, and a sweep of MLP configs
//! that measures per-layer gradient norms at initialisation and during training.
//!
//! Tasks are fixed across seeds (the teacher network and the held-out sets come from constant
//! seeds), so two configs or two seeds are always compared on the same problem.

use super::mlp::{LayerProfile, Mlp, MlpConfig, Mode};
use super::OptimizerSpec;
use crate::train::{clip_grad_norm, derive_seed, global_grad_norm, Optimizer};
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Seeds that do not depend on `--seed`: the problem itself.
const TEACHER_SEED: u64 = 0x7EAC_4E85;
const EVAL_SEED: u64 = 0xE7A1_5E75 ^ 0xDEE9;
const PROBE_SEED: u64 = 0x9B0B_E5ED;

/// The synthetic problem an MLP is trained on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DepthTaskKind {
    /// Regression onto a fixed random teacher network (16 → 32 tanh → 32 tanh → 1), targets
    /// standardised to mean 0 and variance 1, x ~ N(0, I).
    #[default]
    Teacher,
    /// Two interleaved spirals in the plane, two classes, cross-entropy.
    Spirals,
}

impl DepthTaskKind {
    pub fn name(self) -> &'static str {
        match self {
            DepthTaskKind::Teacher => "teacher",
            DepthTaskKind::Spirals => "spirals",
        }
    }
}

impl std::str::FromStr for DepthTaskKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "teacher" | "regression" => Ok(DepthTaskKind::Teacher),
            "spirals" | "two-spirals" => Ok(DepthTaskKind::Spirals),
            other => Err(format!("unknown task '{other}': expected teacher or spirals")),
        }
    }
}

/// Teacher input and hidden sizes.
pub const TEACHER_INPUT: usize = 16;
const TEACHER_HIDDEN: usize = 32;

/// A task instance: for the teacher, its weights and the targets' standardisation.
pub struct DepthTask {
    pub kind: DepthTaskKind,
    teacher: Vec<Tensor>,
    y_mean: f64,
    y_std: f64,
    device: Device,
}

/// Inputs and targets: teacher (B, 1) f32 values, spirals (B,) u32 classes.
pub struct DepthBatch {
    pub x: Tensor,
    pub y: Tensor,
}

fn gaussian(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random();
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        })
        .collect()
}

impl DepthTask {
    pub fn new(kind: DepthTaskKind, device: &Device) -> Result<Self> {
        let mut task = Self { kind, teacher: Vec::new(), y_mean: 0.0, y_std: 1.0, device: device.clone() };
        if kind == DepthTaskKind::Teacher {
            let mut init = crate::models::Initializer::new(TEACHER_SEED);
            // Gain 2 puts the tanh units in their nonlinear range: the target is not linear in x.
            let sizes =
                [(TEACHER_HIDDEN, TEACHER_INPUT), (TEACHER_HIDDEN, TEACHER_HIDDEN), (1, TEACHER_HIDDEN)];
            for (i, &(out, inp)) in sizes.iter().enumerate() {
                let gain = if i + 1 < sizes.len() { 2.0 } else { 1.0 };
                let w = init.normal(out * inp, gain / (inp as f64).sqrt());
                task.teacher.push(Tensor::from_vec(w, (out, inp), device)?);
            }
            let x = Tensor::from_vec(
                gaussian(&mut StdRng::seed_from_u64(TEACHER_SEED ^ 1), 20_000 * TEACHER_INPUT),
                (20_000, TEACHER_INPUT),
                device,
            )?;
            let y: Vec<f32> = task.teacher_raw(&x)?.flatten_all()?.to_vec1()?;
            let n = y.len() as f64;
            let mean = y.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = y.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
            (task.y_mean, task.y_std) = (mean, var.sqrt().max(1e-12));
        }
        Ok(task)
    }

    fn teacher_raw(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, w) in self.teacher.iter().enumerate() {
            h = h.matmul(&w.t()?)?;
            if i + 1 < self.teacher.len() {
                h = h.tanh()?;
            }
        }
        Ok(h)
    }

    pub fn input_size(&self) -> usize {
        match self.kind {
            DepthTaskKind::Teacher => TEACHER_INPUT,
            DepthTaskKind::Spirals => 2,
        }
    }

    pub fn output_size(&self) -> usize {
        match self.kind {
            DepthTaskKind::Teacher => 1,
            DepthTaskKind::Spirals => 2,
        }
    }

    /// `n` fresh examples drawn from `rng`.
    pub fn batch(&self, n: usize, rng: &mut StdRng) -> Result<DepthBatch> {
        match self.kind {
            DepthTaskKind::Teacher => {
                let x = Tensor::from_vec(gaussian(rng, n * TEACHER_INPUT), (n, TEACHER_INPUT), &self.device)?;
                let y = ((self.teacher_raw(&x)? - self.y_mean)? / self.y_std)?;
                Ok(DepthBatch { x, y })
            }
            DepthTaskKind::Spirals => {
                let mut xs = Vec::with_capacity(2 * n);
                let mut ys = Vec::with_capacity(n);
                for _ in 0..n {
                    let class = rng.random_range(0..2u32);
                    let t: f64 = rng.random::<f64>().sqrt(); // uniform density along the arm
                    let theta = 3.0 * std::f64::consts::PI * t + std::f64::consts::PI * class as f64;
                    let r = 2.0 * t;
                    let noise = gaussian(rng, 2);
                    xs.push((r * theta.cos()) as f32 + 0.05 * noise[0]);
                    xs.push((r * theta.sin()) as f32 + 0.05 * noise[1]);
                    ys.push(class);
                }
                Ok(DepthBatch {
                    x: Tensor::from_vec(xs, (n, 2), &self.device)?,
                    y: Tensor::from_vec(ys, n, &self.device)?,
                })
            }
        }
    }

    /// Mean squared error (teacher) or mean cross-entropy (spirals).
    pub fn loss(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> {
        Ok(match self.kind {
            DepthTaskKind::Teacher => out.to_dtype(DType::F32)?.sub(y)?.sqr()?.mean_all()?,
            DepthTaskKind::Spirals => candle_nn::loss::cross_entropy(&out.to_dtype(DType::F32)?, y)?,
        })
    }

    pub fn accuracy(&self, out: &Tensor, y: &Tensor) -> Result<Option<f64>> {
        if self.kind != DepthTaskKind::Spirals {
            return Ok(None);
        }
        let pred = out.argmax(1)?;
        let right = pred.eq(y)?.to_dtype(DType::F64)?.mean_all()?.to_scalar::<f64>()?;
        Ok(Some(right))
    }

    /// The loss of the best input-blind prediction: 1 (variance of the targets) or ln 2.
    pub fn baseline(&self) -> f64 {
        match self.kind {
            DepthTaskKind::Teacher => 1.0,
            DepthTaskKind::Spirals => std::f64::consts::LN_2,
        }
    }

    /// The fixed held-out set (independent of `--seed`).
    pub fn eval_set(&self, n: usize) -> Result<DepthBatch> {
        self.batch(n, &mut StdRng::seed_from_u64(EVAL_SEED))
    }

    /// The fixed batch gradients are measured on.
    pub fn probe_set(&self, n: usize) -> Result<DepthBatch> {
        self.batch(n, &mut StdRng::seed_from_u64(PROBE_SEED))
    }
}

/// How the MLPs of a sweep are trained and measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepthTraining {
    pub task: DepthTaskKind,
    /// 0: measure at initialisation only.
    pub steps: u64,
    pub batch: usize,
    pub optimizer: OptimizerSpec,
    pub lr: f64,
    /// Clip the global gradient norm to this.
    pub clip: Option<f64>,
    /// Evaluate (and measure the per-layer gradients) every this many steps.
    pub eval_every: u64,
    pub eval_size: usize,
    /// Examples in the batch the per-layer gradients are measured on.
    pub probe_size: usize,
    /// Wall-clock budget of one config's training.
    pub max_seconds: Option<f64>,
    pub seed: u64,
}

impl Default for DepthTraining {
    fn default() -> Self {
        Self {
            task: DepthTaskKind::Teacher,
            steps: 300,
            batch: 64,
            optimizer: OptimizerSpec::Momentum,
            lr: 0.01,
            clip: None,
            eval_every: 25,
            eval_size: 1024,
            probe_size: 256,
            max_seconds: None,
            seed: 0,
        }
    }
}

impl DepthTraining {
    pub fn validate(&self) -> Result<()> {
        if self.batch < 2 {
            bail!("--batch must be ≥ 2 (got {})", self.batch);
        }
        if self.eval_every == 0 {
            bail!("--eval-every must be ≥ 1 (got 0)");
        }
        if self.eval_size == 0 || self.probe_size < 2 {
            bail!("--eval-size must be ≥ 1 and the probe batch ≥ 2");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            bail!("--lr must be a finite number > 0 (got {})", self.lr);
        }
        if let Some(c) = self.clip {
            if !(c > 0.0 && c.is_finite()) {
                bail!("--clip must be a finite number > 0 (got {c})");
            }
        }
        Ok(())
    }
}

/// One evaluation point of a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    pub step: u64,
    /// Mean training loss since the previous point (at step 0: the first batch's loss).
    #[serde(deserialize_with = "crate::util::nullable::f64")]
    pub train_loss: f64,
    #[serde(deserialize_with = "crate::util::nullable::f64")]
    pub eval_loss: f64,
    pub eval_accuracy: Option<f64>,
    /// ‖∂L/∂h_1‖ / ‖∂L/∂h_{depth-1}‖ on the probe batch at this step.
    #[serde(deserialize_with = "crate::util::nullable::f64")]
    pub first_to_last: f64,
    /// Global gradient norm (before clipping) averaged since the previous point.
    #[serde(deserialize_with = "crate::util::nullable::f64")]
    pub grad_norm: f64,
}

/// Everything measured for one MLP config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepthRun {
    pub label: String,
    pub config: MlpConfig,
    pub init_profile: LayerProfile,
    /// The profile after training (absent if not trained or diverged).
    pub trained_profile: Option<LayerProfile>,
    /// ‖∂L/∂h_1‖ / ‖∂L/∂h_{depth-1}‖ at initialisation.
    #[serde(deserialize_with = "crate::util::nullable::f64")]
    pub ratio_init: f64,
    pub ratio_trained: Option<f64>,
    pub curve: Vec<LossPoint>,
    pub baseline: f64,
    /// Held-out loss at the end of training (None when not trained or diverged).
    pub final_eval_loss: Option<f64>,
    pub final_accuracy: Option<f64>,
    /// The step at which the loss or a gradient became NaN/∞.
    pub diverged_at: Option<u64>,
    pub steps: u64,
    pub wall_seconds: f64,
}

impl DepthRun {
    /// Held-out loss relative to the input-blind baseline (1 = learned nothing).
    pub fn relative_loss(&self) -> Option<f64> {
        self.final_eval_loss.map(|l| l / self.baseline)
    }
}

fn eval_loss(mlp: &Mlp, task: &DepthTask, set: &DepthBatch) -> Result<(f64, Option<f64>)> {
    let out = mlp.forward(&set.x, Mode::Eval, false)?.output;
    let loss = task.loss(&out, &set.y)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    Ok((loss, task.accuracy(&out, &set.y)?))
}

/// Measures one config at initialisation and, if `train`, trains it and measures again.
/// `config.input`/`output` are set from the task.
pub fn run_config(config: &MlpConfig, train: bool, t: &DepthTraining) -> Result<DepthRun> {
    t.validate()?;
    let device = Device::Cpu;
    let task = DepthTask::new(t.task, &device)?;
    let config = MlpConfig { input: task.input_size(), output: task.output_size(), ..config.clone() };
    config.validate()?;
    config.check_memory(t.batch.max(t.eval_size).max(t.probe_size))?;
    let started = Instant::now();
    let mlp = Mlp::new(&config, t.seed, &device)?;
    let probe = task.probe_set(t.probe_size)?;
    let probe_seed = derive_seed(t.seed, 0, 7);
    let profile = |m: &Mlp| m.gradient_profile(&probe.x, probe_seed, |out| task.loss(out, &probe.y));
    let init_profile = profile(&mlp)?;
    let mut run = DepthRun {
        label: config.label(),
        ratio_init: init_profile.first_to_last(),
        init_profile,
        trained_profile: None,
        ratio_trained: None,
        curve: Vec::new(),
        baseline: task.baseline(),
        final_eval_loss: None,
        final_accuracy: None,
        diverged_at: None,
        steps: 0,
        wall_seconds: 0.0,
        config,
    };
    if !train || t.steps == 0 {
        run.wall_seconds = started.elapsed().as_secs_f64();
        return Ok(run);
    }

    let named = mlp.named_parameters();
    let params: Vec<Var> = named.iter().map(|(_, v)| v.clone()).collect();
    let mut optimizer = Optimizer::new(t.optimizer.config(), named)?;
    let eval = task.eval_set(t.eval_size)?;
    let (l0, a0) = eval_loss(&mlp, &task, &eval)?;
    run.curve.push(LossPoint {
        step: 0,
        train_loss: f64::NAN,
        eval_loss: l0,
        eval_accuracy: a0,
        first_to_last: run.ratio_init,
        grad_norm: f64::NAN,
    });
    let train_start = Instant::now();
    let (mut loss_sum, mut norm_sum, mut since) = (0.0, 0.0, 0u64);
    let mut step = 0;
    while step < t.steps {
        let batch = task.batch(t.batch, &mut StdRng::seed_from_u64(derive_seed(t.seed, step, 1)))?;
        let out = mlp.forward(&batch.x, Mode::Train { dropout_seed: derive_seed(t.seed, step, 2) }, false)?;
        let loss = task.loss(&out.output, &batch.y)?;
        let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let mut grads = loss.backward()?;
        let norm = match t.clip {
            Some(max) => clip_grad_norm(&mut grads, &params, max)?,
            None => global_grad_norm(&grads, &params)?,
        };
        if !value.is_finite() || !norm.is_finite() {
            run.diverged_at = Some(step);
            break;
        }
        optimizer.step(&grads, t.lr)?;
        step += 1;
        loss_sum += value;
        norm_sum += norm;
        since += 1;
        let out_of_time = t.max_seconds.is_some_and(|m| train_start.elapsed().as_secs_f64() >= m);
        if step.is_multiple_of(t.eval_every) || step == t.steps || out_of_time {
            let (l, a) = eval_loss(&mlp, &task, &eval)?;
            let p = profile(&mlp)?;
            run.curve.push(LossPoint {
                step,
                train_loss: loss_sum / since as f64,
                eval_loss: l,
                eval_accuracy: a,
                first_to_last: p.first_to_last(),
                grad_norm: norm_sum / since as f64,
            });
            (loss_sum, norm_sum, since) = (0.0, 0.0, 0);
            if !l.is_finite() {
                run.diverged_at = Some(step);
                break;
            }
            if out_of_time {
                break;
            }
        }
    }
    run.steps = step;
    if run.diverged_at.is_none() {
        let p = profile(&mlp)?;
        run.ratio_trained = Some(p.first_to_last());
        run.trained_profile = Some(p);
        let (l, a) = eval_loss(&mlp, &task, &eval)?;
        run.final_eval_loss = Some(l);
        run.final_accuracy = a;
    }
    run.wall_seconds = started.elapsed().as_secs_f64();
    Ok(run)
}

/// One config of a sweep and whether to train it (measuring at init is cheap; training is not).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepthSpec {
    pub config: MlpConfig,
    pub train: bool,
}

/// Runs every spec in order, reporting one line per config through `log`.
pub fn run_sweep(specs: &[DepthSpec], t: &DepthTraining, log: &mut dyn FnMut(&str)) -> Result<Vec<DepthRun>> {
    let mut out = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let run = run_config(&spec.config, spec.train, t)?;
        let trained = match (&run.final_eval_loss, run.diverged_at) {
            (_, Some(s)) => format!(", diverged at step {s}"),
            (Some(l), None) => format!(
                ", {} steps: eval loss {} (baseline {}), ratio {}",
                run.steps,
                super::fmt_num(*l),
                super::fmt_num(run.baseline),
                super::fmt_num(run.ratio_trained.unwrap_or(f64::NAN))
            ),
            (None, None) => String::new(),
        };
        log(&format!(
            "[{}/{}] {}: first/last-layer gradient at init {}{} ({:.1} s)",
            i + 1,
            specs.len(),
            run.label,
            super::fmt_num(run.ratio_init),
            trained,
            run.wall_seconds
        ));
        out.push(run);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::mlp::{Activation, MlpInit};

    #[test]
    fn teacher_targets_are_standardised_and_fixed() -> Result<()> {
        let task = DepthTask::new(DepthTaskKind::Teacher, &Device::Cpu)?;
        let b = task.eval_set(4000)?;
        let y: Vec<f32> = b.y.flatten_all()?.to_vec1()?;
        let n = y.len() as f64;
        let mean = y.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = y.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.1 && (var - 1.0).abs() < 0.1, "mean {mean} var {var}");
        let again = DepthTask::new(DepthTaskKind::Teacher, &Device::Cpu)?.eval_set(4000)?;
        assert_eq!(y, again.y.flatten_all()?.to_vec1::<f32>()?);
        let s =
            DepthTask::new(DepthTaskKind::Spirals, &Device::Cpu)?.batch(10, &mut StdRng::seed_from_u64(1))?;
        assert_eq!(s.x.dims(), &[10, 2]);
        Ok(())
    }

    #[test]
    fn a_shallow_relu_net_learns_the_teacher() -> Result<()> {
        let cfg = MlpConfig { init: MlpInit::He, ..MlpConfig::new(0, 0, 32, 3, Activation::Relu) };
        let t = DepthTraining {
            steps: 150,
            optimizer: OptimizerSpec::Adam,
            lr: 3e-3,
            eval_every: 50,
            eval_size: 512,
            ..DepthTraining::default()
        };
        let run = run_config(&cfg, true, &t)?;
        assert_eq!(run.curve.len(), 4);
        assert!(run.relative_loss().unwrap() < 0.7, "{:?}", run.final_eval_loss);
        Ok(())
    }
}
