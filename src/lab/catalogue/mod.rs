//! The catalogue: every named experiment's plan (quick and full sizes) and its judge.
//!
//! Judges state their criterion in the finding and compute the verdict from the numbers only;
//! when a run is missing or diverged where the criterion needs it, the verdict says so. This
//! file holds the list and the helpers every judge shares; the experiments themselves are in
//! `depth_axis` (MLP depth sweeps) and `time_axis` (recurrent and Transformer runs).

use super::depth::{DepthRun, DepthSpec, DepthTaskKind, DepthTraining};
use super::experiments::{info, Axis, ExperimentInfo, Plan};
use super::fmt_num;
use super::mlp::{Activation, MlpConfig, MlpInit, Norm};
use super::recurrent::{RecurrentRun, RecurrentSettings, RecurrentSpec};
use super::report::{Finding, Verdict};
use super::{ClipSpec, OptimizerSpec};
use crate::models::{Family, InitScheme, Nonlinearity};
use crate::train::{TaskName, TrainConfig};

mod depth_axis;
mod time_axis;
use depth_axis::*;
use time_axis::*;

pub fn all() -> Vec<ExperimentInfo> {
    vec![
        info(
            "activations",
            Axis::Depth,
            "saturating activations (sigmoid, tanh) make the gradient vanish with depth; the ReLU family does not",
            activations_plan,
            activations_judge,
        ),
        info(
            "init",
            Axis::Depth,
            "Xavier (tanh) and He (ReLU) init keep per-layer gradient norms flat; a badly scaled init does not",
            init_plan,
            init_judge,
        ),
        info(
            "residual",
            Axis::Depth,
            "residual connections keep the gradient alive through 64 layers",
            residual_plan,
            residual_judge,
        ),
        info(
            "normalization",
            Axis::Depth,
            "batch norm and layer norm keep the gradient from vanishing in deep saturating networks",
            normalization_plan,
            normalization_judge,
        ),
        info(
            "exploding",
            Axis::Time,
            "gradients can explode; clipping the gradient lets such a run train",
            exploding_plan,
            exploding_judge,
        ),
        info(
            "gating",
            Axis::Time,
            "LSTM/GRU gating carries the gradient over distances where a vanilla RNN's vanishes",
            gating_plan,
            gating_judge,
        ),
        info(
            "irnn",
            Axis::Time,
            "a ReLU RNN with identity recurrent init (IRNN, Le et al. 2015) learns the adding problem where tanh RNNs fail",
            irnn_plan,
            irnn_judge,
        ),
        info(
            "orthogonal",
            Axis::Time,
            "orthogonal recurrent init preserves the gradient norm over time",
            orthogonal_plan,
            orthogonal_judge,
        ),
        info(
            "optimizers",
            Axis::Time,
            "adaptive optimisers (RMSProp, AdaGrad, Adam) make progress on long-range tasks where SGD+Nesterov stalls",
            optimizers_plan,
            optimizers_judge,
        ),
        info(
            "attention",
            Axis::Time,
            "attention shortens the gradient path: a Transformer's gradient does not decay with distance",
            attention_plan,
            attention_judge,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

fn mlp(act: Activation, init: MlpInit, depth: usize, width: usize) -> MlpConfig {
    MlpConfig { init, ..MlpConfig::new(1, 1, width, depth, act) }
}

fn spec(config: MlpConfig, train: bool) -> DepthSpec {
    DepthSpec { config, train }
}

fn depth_training(full: bool, seed: u64) -> DepthTraining {
    DepthTraining {
        task: DepthTaskKind::Teacher,
        steps: if full { 2000 } else { 300 },
        batch: 64,
        optimizer: OptimizerSpec::Momentum,
        lr: 0.01,
        // Keeps a fast-growing config (e.g. ELU + He) from diverging in the first steps; it
        // never binds on a vanishing gradient, which is what these experiments measure.
        clip: Some(1.0),
        eval_every: if full { 100 } else { 25 },
        eval_size: 1024,
        probe_size: 256,
        max_seconds: None,
        seed,
    }
}

fn find(runs: &[DepthRun], pred: impl Fn(&MlpConfig) -> bool) -> Option<&DepthRun> {
    runs.iter().find(|r| pred(&r.config))
}

fn rel(r: &DepthRun) -> String {
    match (r.diverged_at, r.relative_loss()) {
        (Some(s), _) => format!("diverged at step {s}"),
        (None, Some(v)) => fmt_num(v),
        (None, None) => "not trained".into(),
    }
}

/// A gradient ratio counts as vanished below this (two decades lost).
const VANISHED: f64 = 1e-2;
/// A trained MLP "learned" when its held-out loss ends below this fraction of the baseline.
const LEARNED: f64 = 0.9;
/// A per-layer profile counts as flat when max/min over the layers is at most this.
const FLAT_SPREAD: f64 = 10.0;

/// A recurrent training config: Adam (lr 1e-3), gradient norm clipped to 1, hidden 64, batch 32,
/// PyTorch's init, adding problem, stopping once solved; change what an experiment varies.
#[derive(Clone, Copy)]
struct Rnn {
    model: Family,
    act: Nonlinearity,
    init: InitScheme,
    gain: Option<f64>,
    forget_bias: Option<f64>,
    seq_len: usize,
    opt: OptimizerSpec,
    lr: Option<f64>,
    clip: ClipSpec,
    steps: u64,
}

impl Rnn {
    fn new(model: Family, seq_len: usize, steps: u64) -> Self {
        Self {
            model,
            act: Nonlinearity::Tanh,
            init: InitScheme::Pytorch,
            gain: None,
            forget_bias: None,
            seq_len,
            opt: OptimizerSpec::Adam,
            lr: None,
            clip: ClipSpec::Norm(1.0),
            steps,
        }
    }

    fn cfg(self, seed: u64) -> TrainConfig {
        let mut cfg = TrainConfig {
            task: TaskName::Adding,
            seq_len: self.seq_len,
            model: self.model,
            nonlinearity: self.act,
            hidden: 64,
            init: self.init,
            init_gain: self.gain,
            forget_bias: self.forget_bias,
            batch: 32,
            steps: self.steps.max(1),
            lr: self.lr.unwrap_or(self.opt.default_lr()),
            eval_every: 50,
            eval_size: 256,
            stop_when_solved: true,
            seed,
            ..TrainConfig::default()
        };
        self.opt.apply(&mut cfg);
        self.clip.apply(&mut cfg);
        cfg
    }
}

/// The safety cap on one training run's wall time (the step budget is what decides).
fn cap(full: bool) -> Option<f64> {
    Some(if full { 3600.0 } else { 150.0 })
}

fn rspec(label: &str, config: TrainConfig, train: bool) -> RecurrentSpec {
    RecurrentSpec { label: label.into(), config, train }
}

fn decades_init(r: &RecurrentRun) -> f64 {
    r.init_curve().map_or(f64::NAN, |c| c.metrics.decades)
}

fn decades_trained(r: &RecurrentRun) -> Option<f64> {
    r.trained_curve().map(|c| c.metrics.decades)
}

fn outcome(r: &RecurrentRun) -> String {
    match (&r.summary, &r.diverged) {
        (_, Some(_)) => "diverged".into(),
        (Some(s), None) => format!(
            "eval loss {} ({} of the baseline{})",
            fmt_num(s.eval_loss),
            fmt_num(s.eval_loss / r.baseline),
            if s.solved { ", solved" } else { "" }
        ),
        (None, None) => "not trained".into(),
    }
}

fn list<T>(items: impl IntoIterator<Item = T>, f: impl Fn(T) -> String) -> String {
    items.into_iter().map(f).collect::<Vec<_>>().join("; ")
}

// ---------------------------------------------------------------------------------------------
// Generic sweeps (`lab depth`, `lab rnn`): measurements only, no claim.

pub fn judge_depth_sweep(runs: &[DepthRun], _: &[RecurrentRun]) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(max) = runs.iter().map(|r| r.config.depth).max() else { return out };
    let deepest: Vec<&DepthRun> = runs.iter().filter(|r| r.config.depth == max).collect();
    out.push(Finding::measured(format!(
        "Depth {max}, first hidden layer's gradient relative to the last at initialisation: {}",
        list(&deepest, |r| format!("{}: {}", r.config.variant_label(), fmt_num(r.ratio_init)))
    )));
    let trained: Vec<&&DepthRun> = deepest.iter().filter(|r| !r.curve.is_empty()).collect();
    if !trained.is_empty() {
        out.push(Finding::measured(format!(
            "Depth {max}, held-out loss relative to the input-blind baseline after training: {}",
            list(&trained, |r| format!("{}: {}", r.config.variant_label(), rel(r)))
        )));
    }
    out
}

pub fn judge_recurrent_grid(_: &[DepthRun], runs: &[RecurrentRun]) -> Vec<Finding> {
    let mut out = vec![Finding::measured(format!(
        "Decades of gradient lost between d = 0 and d = T at initialisation: {}",
        list(runs, |r| format!("{}: {}", r.label, fmt_num(decades_init(r))))
    ))];
    if runs.iter().any(|r| r.trained()) {
        out.push(Finding::measured(format!(
            "After training: {}",
            list(runs, |r| format!("{}: {}", r.label, outcome(r)))
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::mlp::LayerProfile;

    #[test]
    fn every_plan_is_valid_in_both_sizes() {
        for e in all() {
            for full in [false, true] {
                let plan = e.plan(full, 3);
                assert!(plan.depth.is_some() || plan.recurrent.is_some(), "{} measures nothing", e.name);
                if let Some((specs, t)) = &plan.depth {
                    t.validate().unwrap();
                    assert_eq!(t.seed, 3);
                    for s in specs {
                        MlpConfig { input: 2, output: 1, ..s.config.clone() }.validate().unwrap();
                    }
                }
                if let Some((specs, _)) = &plan.recurrent {
                    let mut slugs: Vec<String> =
                        specs.iter().map(|s| super::super::recurrent::slug(&s.label)).collect();
                    slugs.sort();
                    slugs.dedup();
                    assert_eq!(slugs.len(), specs.len(), "{}: two configs share a run directory", e.name);
                    for s in specs {
                        s.config.validate().unwrap_or_else(|err| panic!("{} / {}: {err}", e.name, s.label));
                        assert_eq!(s.config.seed, 3);
                    }
                }
            }
        }
    }

    fn fake(act: Activation, init: MlpInit, depth: usize, hidden: Vec<f64>) -> DepthRun {
        let ratio = hidden[0] / hidden[hidden.len() - 1];
        let config = mlp(act, init, depth, 8);
        DepthRun {
            label: config.label(),
            config,
            init_profile: LayerProfile { hidden, weights: vec![1.0; depth], loss: 1.0 },
            trained_profile: None,
            ratio_init: ratio,
            ratio_trained: None,
            curve: Vec::new(),
            baseline: 1.0,
            final_eval_loss: None,
            final_accuracy: None,
            diverged_at: None,
            steps: 0,
            wall_seconds: 0.0,
        }
    }

    fn activation_runs(tanh_ratio: f64, relu_ratio: f64) -> Vec<DepthRun> {
        let mut runs = vec![
            fake(Activation::Sigmoid, MlpInit::Xavier, 32, vec![1e-9, 1.0]),
            fake(Activation::Tanh, MlpInit::Xavier, 32, vec![tanh_ratio, 1.0]),
        ];
        for act in RELU_FAMILY {
            runs.push(fake(act, MlpInit::He, 32, vec![relu_ratio, 1.0]));
        }
        runs
    }

    #[test]
    fn the_activation_verdict_follows_the_numbers() {
        let verdict = |runs: &[DepthRun]| activations_judge(runs, &[])[0].verdict;
        assert_eq!(verdict(&activation_runs(1e-5, 0.7)), Some(Verdict::Agrees));
        // tanh keeping its gradient contradicts half of the claim.
        assert_eq!(verdict(&activation_runs(0.4, 0.7)), Some(Verdict::Mixed));
        let f = &activations_judge(&activation_runs(0.4, 0.7), &[])[0];
        assert!(f.evidence.contains("tanh 0.4") && f.evidence.contains("sigmoid 1.0e-9"), "{}", f.evidence);
        assert!(f.sentence().contains("**Partly agrees**"));
    }

    #[test]
    fn the_init_and_residual_verdicts_follow_the_numbers() {
        let flat = vec![0.5, 0.7, 1.0];
        let steep = vec![1e-6, 1e-3, 1.0];
        let runs = vec![
            fake(Activation::Tanh, MlpInit::Xavier, 4, flat.clone()),
            fake(Activation::Relu, MlpInit::He, 4, flat.clone()),
            fake(Activation::Tanh, MlpInit::SmallNormal, 4, steep.clone()),
            fake(Activation::Relu, MlpInit::SmallNormal, 4, steep.clone()),
        ];
        assert_eq!(init_judge(&runs, &[])[0].verdict, Some(Verdict::Agrees));
        let swapped = vec![
            fake(Activation::Tanh, MlpInit::Xavier, 4, steep.clone()),
            fake(Activation::Relu, MlpInit::He, 4, steep.clone()),
            fake(Activation::Tanh, MlpInit::SmallNormal, 4, flat.clone()),
            fake(Activation::Relu, MlpInit::SmallNormal, 4, flat.clone()),
        ];
        assert_eq!(init_judge(&swapped, &[])[0].verdict, Some(Verdict::Contradicts));

        let mut res = Vec::new();
        for (act, init) in RESIDUAL_ACTS {
            res.push(fake(act, init, 64, vec![1e-12, 1.0]));
            let mut r = fake(act, init, 64, vec![0.5, 1.0]);
            r.config.residual = true;
            res.push(r);
        }
        assert_eq!(residual_judge(&res, &[])[0].verdict, Some(Verdict::Agrees));
        for r in res.iter_mut().filter(|r| r.config.residual) {
            r.ratio_init = 1e-4;
        }
        assert_eq!(residual_judge(&res, &[])[0].verdict, Some(Verdict::Contradicts));
    }
}
