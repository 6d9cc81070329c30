//! The catalogue: every named experiment's plan (quick and full sizes) and its judge.
//!
//! Judges state their criterion in the finding and compute the verdict from the numbers only;
//! when a run is missing or diverged where the criterion needs it, the verdict says so.

use super::depth::{DepthRun, DepthSpec, DepthTaskKind, DepthTraining};
use super::experiments::{info, Axis, ExperimentInfo, Plan};
use super::fmt_num;
use super::mlp::{Activation, MlpConfig, MlpInit, Norm};
use super::recurrent::{RecurrentRun, RecurrentSettings, RecurrentSpec};
use super::report::{Finding, Verdict};
use super::{ClipSpec, OptimizerSpec};
use crate::models::{Family, InitScheme, Nonlinearity};
use crate::train::{TaskName, TrainConfig};

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

// ---------------------------------------------------------------------------------------------
// activations

const SATURATING: [Activation; 2] = [Activation::Sigmoid, Activation::Tanh];
const RELU_FAMILY: [Activation; 5] =
    [Activation::Relu, Activation::LeakyRelu, Activation::Prelu, Activation::Elu, Activation::Gelu];

fn activations_plan(full: bool, seed: u64) -> Plan {
    let depths: Vec<usize> = if full { vec![2, 4, 8, 16, 32, 64] } else { vec![2, 4, 8, 16, 32] };
    let train_depth = *depths.last().expect("depths");
    let width = 64;
    let mut specs = Vec::new();
    for act in SATURATING.into_iter().chain(RELU_FAMILY) {
        for &d in &depths {
            specs.push(spec(mlp(act, act.matched_init(), d, width), d == train_depth));
        }
    }
    Plan {
        title: "Sigmoid and tanh against the ReLU family, over depth, each with its matched init (Xavier for sigmoid/tanh, He for the ReLU family).".into(),
        claim: "saturating activations (sigmoid, tanh) make the gradient vanish with depth, while ReLU and its variants do not".into(),
        depth: Some((specs, depth_training(full, seed))),
        recurrent: None,
        notes: vec![format!("Only depth {train_depth} is trained; every depth is measured at initialisation.")],
    }
}

fn activations_judge(runs: &[DepthRun], _: &[RecurrentRun]) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(max) = runs.iter().map(|r| r.config.depth).max() else { return out };
    let at = |act: Activation| find(runs, |c| c.activation == act && c.depth == max);
    let mut parts = Vec::new();
    let mut sat = Vec::new();
    for act in SATURATING {
        if let Some(r) = at(act) {
            parts.push(r.ratio_init < VANISHED);
            sat.push(format!("{act} {}", fmt_num(r.ratio_init)));
        }
    }
    let mut relu = Vec::new();
    for act in RELU_FAMILY {
        if let Some(r) = at(act) {
            parts.push(r.ratio_init >= VANISHED);
            relu.push(format!("{act} {}", fmt_num(r.ratio_init)));
        }
    }
    out.push(Finding::judged(
        "saturating activations (sigmoid, tanh) make the gradient vanish with depth while the ReLU family does not",
        Verdict::combine(&parts),
        &format!("at depth {max}, a ratio below {VANISHED} counts as vanished; sigmoid and tanh must vanish, every ReLU-family activation must not"),
        format!(
            "At depth {max} with matched init, the first hidden layer's gradient is this fraction of the last one's: {}; ReLU family: {}",
            sat.join(", "),
            relu.join(", ")
        ),
    ));
    // Per-layer decay rate of the saturating ones: a geometric mean factor per layer.
    for act in SATURATING {
        if let Some(r) = at(act) {
            let per_layer = r.ratio_init.powf(1.0 / (max as f64 - 2.0).max(1.0));
            out.push(Finding::measured(format!(
                "{act}: the gradient norm shrinks by a factor {} per layer on average going towards the input (depth {max})",
                fmt_num(per_layer)
            )));
        }
    }
    let trained: Vec<&DepthRun> = runs.iter().filter(|r| r.curve.len() > 1).collect();
    if let Some(d) = trained.first().map(|r| r.config.depth) {
        let mut relu_losses: Vec<f64> = trained
            .iter()
            .filter(|r| !r.config.activation.saturating())
            .map(|r| r.relative_loss().unwrap_or(f64::INFINITY))
            .collect();
        relu_losses.sort_by(f64::total_cmp);
        let median = relu_losses.get(relu_losses.len() / 2).copied().unwrap_or(f64::NAN);
        let parts: Vec<bool> = trained
            .iter()
            .filter(|r| r.config.activation.saturating())
            .map(|r| r.relative_loss().unwrap_or(f64::INFINITY) > median)
            .collect();
        out.push(Finding::judged(
            "deep networks with saturating activations train worse than ReLU-family ones",
            if median.is_finite() { Verdict::combine(&parts) } else { Verdict::Inconclusive },
            &format!(
                "each of sigmoid and tanh ends with a higher held-out loss than the median ReLU-family activation ({})",
                fmt_num(median)
            ),
            format!(
                "Depth {d} after {} steps, held-out loss relative to the input-blind baseline: {}",
                trained[0].steps,
                list(&trained, |r| format!("{}: {}", r.config.activation, rel(r)))
            ),
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// init

fn init_plan(full: bool, seed: u64) -> Plan {
    let depth = if full { 64 } else { 32 };
    let mut specs = Vec::new();
    for act in [Activation::Tanh, Activation::Relu] {
        for init in MlpInit::ALL {
            let train = init == MlpInit::SmallNormal || init == act.matched_init();
            specs.push(spec(mlp(act, init, depth, 64), train));
        }
    }
    Plan {
        title: format!("Per-layer gradient norms at initialisation for tanh and ReLU MLPs of depth {depth} under four inits."),
        claim: "Xavier init for tanh and He init for ReLU keep per-layer gradient norms flat at initialisation, while a badly scaled init does not".into(),
        depth: Some((specs, depth_training(full, seed))),
        recurrent: None,
        notes: vec![
            "small-normal is N(0, 0.01²) whatever the width; pytorch is torch.nn.Linear's default U(±1/√fan_in).".into(),
            "Only small-normal and the matched init are trained.".into(),
        ],
    }
}

fn init_judge(runs: &[DepthRun], _: &[RecurrentRun]) -> Vec<Finding> {
    let get = |act, init| find(runs, |c| c.activation == act && c.init == init);
    let mut parts = Vec::new();
    let mut ev = Vec::new();
    for (act, init, want_flat) in [
        (Activation::Tanh, MlpInit::Xavier, true),
        (Activation::Relu, MlpInit::He, true),
        (Activation::Tanh, MlpInit::SmallNormal, false),
        (Activation::Relu, MlpInit::SmallNormal, false),
    ] {
        if let Some(r) = get(act, init) {
            let flat = r.init_profile.spread() <= FLAT_SPREAD;
            parts.push(flat == want_flat);
            ev.push(format!(
                "{act}+{init}: max/min {} (first/last {})",
                fmt_num(r.init_profile.spread()),
                fmt_num(r.ratio_init)
            ));
        }
    }
    let depth = runs.first().map_or(0, |r| r.config.depth);
    let mut out = vec![Finding::judged(
        "Xavier init for tanh and He init for ReLU keep per-layer gradient norms flat at initialisation while a badly scaled (small-normal) init does not",
        Verdict::combine(&parts),
        &format!("a profile is flat when the largest per-layer ‖∂L/∂h_l‖ is at most {FLAT_SPREAD}× the smallest"),
        format!("Depth {depth}, spread of ‖∂L/∂h_l‖ over the hidden layers: {}", ev.join("; ")),
    )];
    let others: Vec<&DepthRun> = runs
        .iter()
        .filter(|r| {
            !matches!(r.config.init, MlpInit::SmallNormal)
                && r.config.init != r.config.activation.matched_init()
        })
        .collect();
    if !others.is_empty() {
        out.push(Finding::measured(format!(
            "The other pairings at depth {depth}, first/last-layer ratio: {}",
            list(&others, |r| format!("{}: {}", r.config.variant_label(), fmt_num(r.ratio_init)))
        )));
    }
    let trained: Vec<&DepthRun> = runs.iter().filter(|r| r.curve.len() > 1).collect();
    if !trained.is_empty() {
        out.push(Finding::measured(format!(
            "After {} steps, held-out loss relative to the baseline: {}",
            trained[0].steps,
            list(&trained, |r| format!("{}: {}", r.config.variant_label(), rel(r)))
        )));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// residual

const RESIDUAL_ACTS: [(Activation, MlpInit); 3] = [
    (Activation::Sigmoid, MlpInit::Xavier),
    (Activation::Tanh, MlpInit::Pytorch),
    (Activation::Relu, MlpInit::Pytorch),
];

fn residual_plan(full: bool, seed: u64) -> Plan {
    let depth = 64;
    let width = if full { 64 } else { 32 };
    let mut specs = Vec::new();
    for (act, init) in RESIDUAL_ACTS {
        for residual in [false, true] {
            specs.push(spec(MlpConfig { residual, ..mlp(act, init, depth, width) }, true));
        }
    }
    Plan {
        title: format!("Plain against residual MLPs of depth {depth} (width {width}), with inits under which the plain network's gradient vanishes."),
        claim: "residual connections keep the gradient from vanishing in very deep networks".into(),
        depth: Some((specs, depth_training(full, seed))),
        recurrent: None,
        notes: vec!["A residual block is h_l = h_{l-1} + act(W_l h_{l-1} + b_l) (no normalisation).".into()],
    }
}

fn residual_judge(runs: &[DepthRun], _: &[RecurrentRun]) -> Vec<Finding> {
    let mut parts = Vec::new();
    let mut train_parts = Vec::new();
    let mut ev = Vec::new();
    let mut train_ev = Vec::new();
    for (act, init) in RESIDUAL_ACTS {
        let plain = find(runs, |c| c.activation == act && c.init == init && !c.residual);
        let res = find(runs, |c| c.activation == act && c.init == init && c.residual);
        if let (Some(p), Some(r)) = (plain, res) {
            if p.ratio_init < VANISHED {
                parts.push(r.ratio_init >= 0.1);
            }
            let learned = |x: &DepthRun| x.relative_loss().is_some_and(|l| l < LEARNED);
            if !learned(p) && (p.relative_loss().is_some() || p.diverged_at.is_some()) {
                train_parts.push(learned(r));
            }
            ev.push(format!(
                "{act}+{init} plain {} vs residual {}",
                fmt_num(p.ratio_init),
                fmt_num(r.ratio_init)
            ));
            train_ev.push(format!("{act}+{init} plain {} vs residual {}", rel(p), rel(r)));
        }
    }
    let depth = runs.first().map_or(0, |r| r.config.depth);
    vec![
        Finding::judged(
            "residual connections keep the gradient from vanishing in very deep networks",
            Verdict::combine(&parts),
            &format!("for every config whose plain network's ratio is below {VANISHED}, the residual network's ratio must be at least 0.1"),
            format!("Depth {depth}, first/last hidden-layer gradient ratio at init: {}", ev.join("; ")),
        ),
        Finding::judged(
            "residual connections make very deep networks trainable",
            Verdict::combine(&train_parts),
            &format!("for every config whose plain network ends at ≥ {LEARNED}× the input-blind baseline, the residual one must end below {LEARNED}×"),
            format!("Held-out loss relative to the baseline after training: {}", train_ev.join("; ")),
        ),
        Finding::measured(format!(
            "Held-out loss relative to the baseline at initialisation (step 0): {} — without normalisation each residual block adds to h, so the forward signal grows with depth",
            list(runs.iter().filter(|r| !r.curve.is_empty()), |r| format!(
                "{}: {}",
                r.config.variant_label(),
                fmt_num(r.curve[0].eval_loss / r.baseline)
            ))
        )),
    ]
}

// ---------------------------------------------------------------------------------------------
// normalization

const NORM_ACTS: [(Activation, MlpInit); 2] =
    [(Activation::Sigmoid, MlpInit::Xavier), (Activation::Tanh, MlpInit::Pytorch)];

fn normalization_plan(full: bool, seed: u64) -> Plan {
    let depth = if full { 64 } else { 32 };
    let mut specs = Vec::new();
    for (act, init) in NORM_ACTS {
        for norm in Norm::ALL {
            specs.push(spec(MlpConfig { norm, ..mlp(act, init, depth, 64) }, true));
        }
    }
    Plan {
        title: format!("No normalisation, batch norm and layer norm in saturating MLPs of depth {depth}."),
        claim: "batch normalisation (and layer normalisation) keeps the gradient from vanishing in deep saturating networks".into(),
        depth: Some((specs, depth_training(full, seed))),
        recurrent: None,
        notes: vec!["Normalisation sits between the linear map and the nonlinearity, with learnable γ, β; gradients are measured in training mode (batch statistics).".into()],
    }
}

fn normalization_judge(runs: &[DepthRun], _: &[RecurrentRun]) -> Vec<Finding> {
    let mut out = Vec::new();
    for norm in [Norm::Batch, Norm::Layer] {
        let mut parts = Vec::new();
        let mut ev = Vec::new();
        for (act, init) in NORM_ACTS {
            let none = find(runs, |c| c.activation == act && c.init == init && c.norm == Norm::None);
            let with = find(runs, |c| c.activation == act && c.init == init && c.norm == norm);
            if let (Some(n), Some(w)) = (none, with) {
                parts.push(w.ratio_init >= VANISHED && w.ratio_init >= 10.0 * n.ratio_init);
                ev.push(format!(
                    "{act}+{init}: none {} → {norm} norm {} (held-out loss/baseline {} → {})",
                    fmt_num(n.ratio_init),
                    fmt_num(w.ratio_init),
                    rel(n),
                    rel(w)
                ));
            }
        }
        let depth = runs.first().map_or(0, |r| r.config.depth);
        out.push(Finding::judged(
            &format!("{norm} normalisation keeps the gradient from vanishing in deep saturating networks"),
            Verdict::combine(&parts),
            &format!("with {norm} norm the first/last ratio must be at least {VANISHED} and at least 10× the ratio without"),
            format!("Depth {depth}, first/last hidden-layer gradient ratio at init: {}", ev.join("; ")),
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// exploding

/// A training loss above this multiple of the baseline counts as a blow-up.
const BLOW_UP: f64 = 100.0;

fn peak_train_loss(r: &RecurrentRun) -> f64 {
    r.metrics.iter().map(|m| m.train_loss).fold(f64::NAN, f64::max)
}

fn peak_grad_norm(r: &RecurrentRun) -> f64 {
    r.metrics.iter().map(|m| m.grad_norm).fold(f64::NAN, f64::max)
}

fn exploding_plan(full: bool, seed: u64) -> Plan {
    let (t, steps) = if full { (100, 20_000) } else { (30, 5000) };
    let mut specs = Vec::new();
    for clip in [ClipSpec::None, ClipSpec::Norm(1.0), ClipSpec::Value(0.1)] {
        let rnn = Rnn {
            act: Nonlinearity::Relu,
            init: InitScheme::Identity,
            gain: Some(1.1),
            opt: OptimizerSpec::Nesterov,
            lr: Some(0.01),
            clip,
            ..Rnn::new(Family::Rnn, t, steps)
        };
        specs.push(rspec(&format!("rnn-relu 1.1·identity, {}", clip.label()), rnn.cfg(seed), true));
    }
    Plan {
        title: format!("A ReLU RNN whose recurrent matrix starts at 1.1 × identity, trained with SGD + Nesterov momentum (lr 0.01) on the adding problem (T = {t}, {steps} steps), without clipping, with norm clipping and with value clipping."),
        claim: "gradients can explode in recurrent networks, and clipping the gradient (Pascanu et al. 2013) lets such a run train".into(),
        depth: None,
        recurrent: Some((specs, RecurrentSettings { probe_batch: 32, max_seconds: cap(full) })),
        notes: vec![
            "Gradient norms in the table of metrics are before clipping, averaged over 50 steps.".into(),
            "A run diverged when its loss or a gradient became NaN/∞ (training stops there).".into(),
        ],
    }
}

fn exploding_judge(_: &[DepthRun], runs: &[RecurrentRun]) -> Vec<Finding> {
    let none = runs.iter().find(|r| r.config.clip.is_none() && r.config.clip_value.is_none());
    let norm = runs.iter().find(|r| r.config.clip.is_some());
    let value = runs.iter().find(|r| r.config.clip_value.is_some());
    let mut out = Vec::new();
    let Some(n) = none else { return out };
    let growth = n.init_curve().map_or(f64::NAN, |c| -c.metrics.decades);
    let blew = n.diverged.is_some() || peak_train_loss(n) > BLOW_UP * n.baseline;
    out.push(Finding::judged(
        "gradients can explode in recurrent networks",
        if growth > 1.0 || blew { Verdict::Agrees } else { Verdict::Contradicts },
        &format!("the gradient at d = T is over 10× the one at d = 0 at initialisation, or the unclipped run's loss becomes NaN/∞ or exceeds {BLOW_UP}× the baseline"),
        format!(
            "{}: at initialisation ‖∂L/∂h_t‖ grows by {} decades from d = 0 to d = T = {}; in training the 50-step mean gradient norm peaked at {} and the training loss at {} ({}× the baseline){}",
            n.label,
            fmt_num(growth),
            n.config.seq_len,
            fmt_num(peak_grad_norm(n)),
            fmt_num(peak_train_loss(n)),
            fmt_num(peak_train_loss(n) / n.baseline),
            if n.diverged.is_some() { "; the loss became non-finite" } else { "" }
        ),
    ));
    if let Some(c) = norm {
        let failed = n.diverged.is_some() || n.relative_loss().is_none_or(|r| r >= 0.9);
        let trained = c.diverged.is_none() && c.relative_loss().is_some_and(|r| r <= 0.5);
        let mut ev = format!(
            "Without clipping: {}; with norm clipping: {} (its gradient norm peaked at {} before clipping)",
            outcome(n),
            outcome(c),
            fmt_num(peak_grad_norm(c))
        );
        if let Some(v) = value {
            ev.push_str(&format!("; with value clipping: {}", outcome(v)));
        }
        let dead =
            |r: &RecurrentRun| r.trained_curve().is_some_and(|c| c.mean.iter().skip(1).all(|&g| g == 0.0));
        if dead(n) {
            ev.push_str("; after the blow-up the unclipped network's gradient is exactly 0 at every d ≥ 1");
            let inactive = n
                .trained_probe
                .as_ref()
                .and_then(|p| p.saturation.as_ref())
                .and_then(|layers| layers.last())
                .and_then(|l| l.saturated.first())
                .map(|(_, f)| *f);
            if let Some(f) = inactive {
                ev.push_str(&format!(
                    " and {}% of its unit-steps have a derivative below 0.01 on held-out sequences (ReLU off)",
                    fmt_num(100.0 * f)
                ));
            }
        }
        out.push(Finding::judged(
            "a run that fails without clipping trains with gradient-norm clipping",
            Verdict::combine(&[failed, trained]),
            "the unclipped run diverges or ends at ≥ 0.9× the baseline, and the norm-clipped run ends at ≤ 0.5× the baseline",
            ev,
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// gating

const GATED: [(&str, Family, Option<f64>); 4] = [
    ("rnn-tanh", Family::Rnn, None),
    ("lstm", Family::Lstm, None),
    ("lstm forget-bias 1", Family::Lstm, Some(1.0)),
    ("gru", Family::Gru, None),
];

fn gating_plan(full: bool, seed: u64) -> Plan {
    let (t, steps, probe_t) = if full { (100, 10_000, 400) } else { (30, 800, 100) };
    let mut specs = Vec::new();
    for (label, model, fb) in GATED {
        let probe = Rnn { forget_bias: fb, ..Rnn::new(model, probe_t, 1) };
        specs.push(rspec(&format!("{label} at init, T={probe_t}"), probe.cfg(seed), false));
    }
    for (label, model, fb) in GATED {
        let rnn = Rnn { forget_bias: fb, ..Rnn::new(model, t, steps) };
        specs.push(rspec(label, rnn.cfg(seed), true));
    }
    Plan {
        title: format!("A vanilla tanh RNN against LSTM (forget-gate bias 0 and 1) and GRU: gradient against distance at initialisation (T = {probe_t}), and {steps} training steps on the adding problem at T = {t}."),
        claim: "gating (LSTM, GRU) carries the gradient over long distances where a vanilla RNN's vanishes".into(),
        depth: None,
        recurrent: Some((specs, RecurrentSettings { probe_batch: 32, max_seconds: cap(full) })),
        notes: vec!["Adam (lr 1e-3), gradient norm clipped to 1, hidden 64, PyTorch's default init; every model gets the same number of steps and stops early once solved (held-out MSE < 0.01).".into()],
    }
}

fn gating_judge(_: &[DepthRun], runs: &[RecurrentRun]) -> Vec<Finding> {
    let trained: Vec<&RecurrentRun> = runs.iter().filter(|r| r.trained()).collect();
    let probes: Vec<&RecurrentRun> = runs.iter().filter(|r| !r.trained()).collect();
    let mut out = Vec::new();
    if let Some(rnn) = probes.iter().find(|r| r.config.model == Family::Rnn) {
        let gated: Vec<&&RecurrentRun> = probes.iter().filter(|r| r.config.model != Family::Rnn).collect();
        let parts: Vec<bool> = gated.iter().map(|g| decades_init(g) < decades_init(rnn) - 1.0).collect();
        out.push(Finding::judged(
            "gated cells (LSTM, GRU) lose less gradient over distance than a vanilla RNN at initialisation",
            Verdict::combine(&parts),
            "each gated model loses at least one decade less than the tanh RNN between d = 0 and d = T",
            format!(
                "Decades of ‖∂L/∂h_t‖ lost over T = {} at initialisation: {}",
                rnn.config.seq_len,
                list(&probes, |r| format!("{}: {}", r.label, fmt_num(decades_init(r))))
            ),
        ));
    }
    if let Some(rnn) = trained.iter().find(|r| r.config.model == Family::Rnn) {
        let gated: Vec<&&RecurrentRun> = trained.iter().filter(|r| r.config.model != Family::Rnn).collect();
        let rnn_rel = rnn.relative_loss().unwrap_or(f64::INFINITY);
        let parts: Vec<bool> = gated
            .iter()
            .map(|g| g.relative_loss().is_some_and(|l| l <= 0.5 * rnn_rel) || (g.solved() && !rnn.solved()))
            .collect();
        out.push(Finding::judged(
            "gated cells learn the long-range adding problem where a vanilla RNN does not",
            Verdict::combine(&parts),
            "each gated model ends with at most half the tanh RNN's held-out loss, or solves the task when the RNN does not, in the same number of steps",
            format!(
                "Adding problem, T = {}: {}",
                rnn.config.seq_len,
                list(&trained, |r| format!("{}: {} after {} steps", r.label, outcome(r), r.summary.as_ref().map_or(0, |s| s.steps)))
            ),
        ));
        out.push(Finding::measured(format!(
            "Decades of gradient lost over T = {} after training: {}",
            rnn.config.seq_len,
            list(&trained, |r| format!("{}: {}", r.label, decades_trained(r).map_or("n/a".into(), fmt_num)))
        )));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// irnn

fn irnn_plan(full: bool, seed: u64) -> Plan {
    let (t, steps) = if full { (150, 30_000) } else { (40, 3000) };
    let rnn = |act, init| Rnn { act, init, ..Rnn::new(Family::Rnn, t, steps) };
    let mut specs = vec![
        rspec("irnn (relu, identity)", rnn(Nonlinearity::Relu, InitScheme::Identity).cfg(seed), true),
        rspec("rnn-relu pytorch init", rnn(Nonlinearity::Relu, InitScheme::Pytorch).cfg(seed), true),
        rspec("rnn-tanh pytorch init", rnn(Nonlinearity::Tanh, InitScheme::Pytorch).cfg(seed), true),
    ];
    let mut notes = vec!["Adam (lr 1e-3) with the gradient norm clipped to 1 for every model, hidden 64 (Le et al. used SGD; the optimiser is held fixed here so that only the init and activation differ). Runs stop early once solved (held-out MSE < 0.01).".into()];
    if full {
        specs.push(rspec("lstm", Rnn::new(Family::Lstm, t, steps).cfg(seed), true));
    } else {
        notes.push("The LSTM comparison of Le et al. runs with --full only (an LSTM step costs ~5× an RNN step here).".into());
    }
    Plan {
        title: format!("IRNN (ReLU, recurrent matrix = identity; Le et al. 2015) against ReLU and tanh RNNs with PyTorch's init on the adding problem, T = {t}, {steps} steps."),
        claim: "a ReLU RNN with identity recurrent init (IRNN) learns the adding problem where tanh RNNs fail".into(),
        depth: None,
        recurrent: Some((specs, RecurrentSettings { probe_batch: 32, max_seconds: cap(full) })),
        notes,
    }
}

fn irnn_judge(_: &[DepthRun], runs: &[RecurrentRun]) -> Vec<Finding> {
    let irnn = runs.iter().find(|r| r.config.init == InitScheme::Identity);
    let tanh =
        runs.iter().find(|r| r.config.model == Family::Rnn && r.config.nonlinearity == Nonlinearity::Tanh);
    let lstm = runs.iter().find(|r| r.config.model == Family::Lstm);
    let mut out = Vec::new();
    if let (Some(i), Some(t)) = (irnn, tanh) {
        let (ir, tr) =
            (i.relative_loss().unwrap_or(f64::INFINITY), t.relative_loss().unwrap_or(f64::INFINITY));
        let mut parts = vec![ir <= 0.5 * tr || (i.solved() && !t.solved())];
        let mut criterion = "the IRNN's held-out loss is at most half the tanh RNN's, or it solves the task and the tanh RNN does not".to_string();
        if let Some(l) = lstm {
            parts.push(ir <= 2.0 * l.relative_loss().unwrap_or(f64::INFINITY) || i.solved());
            criterion.push_str("; and at most twice the LSTM's");
        }
        out.push(Finding::judged(
            "an IRNN learns the adding problem where a tanh RNN fails",
            Verdict::combine(&parts),
            &criterion,
            format!(
                "Adding problem, T = {}: {}",
                i.config.seq_len,
                list(runs, |r| format!(
                    "{}: {}{}",
                    r.label,
                    outcome(r),
                    r.summary
                        .as_ref()
                        .and_then(|s| s.steps_to_solve)
                        .map_or(String::new(), |s| format!(" at step {s}"))
                ))
            ),
        ));
        out.push(Finding::measured(format!(
            "Decades of gradient lost over T at initialisation: {}; after training: {}",
            list(runs, |r| format!("{}: {}", r.label, fmt_num(decades_init(r)))),
            list(runs, |r| format!("{}: {}", r.label, decades_trained(r).map_or("n/a".into(), fmt_num)))
        )));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// orthogonal

const RECURRENT_INITS: [InitScheme; 3] = [InitScheme::Pytorch, InitScheme::Xavier, InitScheme::Orthogonal];

fn orthogonal_plan(full: bool, seed: u64) -> Plan {
    let (t, steps, probe_t) = if full { (100, 20_000, 400) } else { (30, 2000, 100) };
    let mut specs = Vec::new();
    for act in [Nonlinearity::Linear, Nonlinearity::Tanh] {
        for init in RECURRENT_INITS {
            let rnn = Rnn { act, init, ..Rnn::new(Family::Rnn, probe_t, 1) };
            specs.push(rspec(
                &format!("rnn-{} {} at init, T={probe_t}", act.name(), init.name()),
                rnn.cfg(seed),
                false,
            ));
        }
    }
    for init in RECURRENT_INITS {
        let rnn = Rnn { init, ..Rnn::new(Family::Rnn, t, steps) };
        specs.push(rspec(&format!("rnn-tanh {}", init.name()), rnn.cfg(seed), true));
    }
    Plan {
        title: format!("Recurrent init schemes (PyTorch default, Xavier, orthogonal): gradient against distance at T = {probe_t} for linear and tanh RNNs, and tanh RNNs trained {steps} steps on the adding problem at T = {t}."),
        claim: "an orthogonal recurrent weight matrix preserves the gradient norm over time (Saxe et al. 2014; Arjovsky et al. 2016)".into(),
        depth: None,
        recurrent: Some((specs, RecurrentSettings { probe_batch: 32, max_seconds: cap(full) })),
        notes: vec![
            "The linear RNN isolates the recurrent matrix: ∂L/∂h_t is a pure matrix power of W_hhᵀ applied to ∂L/∂h_T.".into(),
            "Orthogonal: W_hh orthogonal, input weights Xavier; biases 0. Adam (lr 1e-3), gradient norm clipped to 1, stopping once solved.".into(),
        ],
    }
}

fn orthogonal_judge(_: &[DepthRun], runs: &[RecurrentRun]) -> Vec<Finding> {
    let probes: Vec<&RecurrentRun> = runs.iter().filter(|r| !r.trained()).collect();
    let mut out = Vec::new();
    let mut parts = Vec::new();
    let mut ev = Vec::new();
    for act in [Nonlinearity::Linear, Nonlinearity::Tanh] {
        let get = |init| probes.iter().find(|r| r.config.nonlinearity == act && r.config.init == init);
        if let (Some(o), Some(p)) = (get(InitScheme::Orthogonal), get(InitScheme::Pytorch)) {
            let (od, pd) = (decades_init(o), decades_init(p));
            if act == Nonlinearity::Linear {
                parts.push(od.abs() < 0.5);
            }
            parts.push(od < pd - 1.0);
            ev.push(format!(
                "{}: orthogonal {}, pytorch {}{}",
                act.name(),
                fmt_num(od),
                fmt_num(pd),
                get(InitScheme::Xavier)
                    .map_or(String::new(), |x| format!(", xavier {}", fmt_num(decades_init(x))))
            ));
        }
    }
    let t = probes.first().map_or(0, |r| r.config.seq_len);
    out.push(Finding::judged(
        "an orthogonal recurrent matrix preserves the gradient norm over time",
        Verdict::combine(&parts),
        "the linear RNN with orthogonal W_hh loses under half a decade over T, and orthogonal loses at least one decade less than PyTorch's default for each activation",
        format!("Decades of ‖∂L/∂h_t‖ lost over T = {t} at initialisation: {}", ev.join("; ")),
    ));
    let trained: Vec<&RecurrentRun> = runs.iter().filter(|r| r.trained()).collect();
    let ortho = trained.iter().find(|r| r.config.init == InitScheme::Orthogonal);
    let default = trained.iter().find(|r| r.config.init == InitScheme::Pytorch);
    if let (Some(o), Some(p)) = (ortho, default) {
        let better = o.relative_loss().is_some_and(|l| l <= 0.5 * p.relative_loss().unwrap_or(f64::INFINITY))
            || (o.solved() && !p.solved());
        out.push(Finding::judged(
            "orthogonal init makes a tanh RNN easier to train on a long-range task",
            Verdict::combine(&[better]),
            "the orthogonal run ends with at most half the PyTorch-default run's held-out loss, or solves the task when it does not, in the same number of steps",
            format!(
                "Adding problem, T = {}: {}",
                o.config.seq_len,
                list(&trained, |r| format!("{}: {}", r.label, outcome(r)))
            ),
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// optimizers

const OPTIMIZERS: [OptimizerSpec; 4] =
    [OptimizerSpec::Nesterov, OptimizerSpec::Rmsprop, OptimizerSpec::Adagrad, OptimizerSpec::Adam];

fn optimizers_plan(full: bool, seed: u64) -> Plan {
    let (t, steps) = if full { (100, 20_000) } else { (30, 2000) };
    let specs = OPTIMIZERS
        .iter()
        .map(|&opt| {
            let cfg = Rnn { opt, init: InitScheme::Orthogonal, ..Rnn::new(Family::Rnn, t, steps) }.cfg(seed);
            rspec(&format!("rnn-tanh {opt} lr {}", cfg.lr), cfg, true)
        })
        .collect();
    Plan {
        title: format!("SGD with Nesterov momentum against RMSProp, AdaGrad and Adam, training a tanh RNN (orthogonal init) on the adding problem, T = {t}, {steps} steps."),
        claim: "adaptive optimisers (RMSProp, AdaGrad, Adam) make progress on long-range tasks where SGD with Nesterov momentum stalls".into(),
        depth: None,
        recurrent: Some((specs, RecurrentSettings { probe_batch: 32, max_seconds: cap(full) })),
        notes: vec!["Gradient norm clipped to 1 for every optimiser; learning rates are each rule's usual default (SGD+Nesterov 0.01 with momentum 0.9, RMSProp 1e-3, AdaGrad 0.01, Adam 1e-3); runs stop early once solved.".into()],
    }
}

fn optimizers_judge(_: &[DepthRun], runs: &[RecurrentRun]) -> Vec<Finding> {
    let sgd = runs.iter().find(|r| r.config.optimizer == "sgd");
    let mut out = Vec::new();
    if let Some(s) = sgd {
        let sr = s.relative_loss().unwrap_or(f64::INFINITY);
        let adaptive: Vec<&RecurrentRun> = runs.iter().filter(|r| r.config.optimizer != "sgd").collect();
        let parts: Vec<bool> = adaptive
            .iter()
            .map(|a| a.relative_loss().is_some_and(|l| l < sr) || (a.solved() && !s.solved()))
            .collect();
        out.push(Finding::judged(
            "adaptive optimisers make more progress on a long-range task than SGD with Nesterov momentum",
            Verdict::combine(&parts),
            "each adaptive optimiser ends with a lower held-out loss than SGD+Nesterov (or solves the task when it does not) in the same number of steps",
            format!(
                "Adding problem, T = {}: {}",
                s.config.seq_len,
                list(runs, |r| format!(
                    "{}: {}{}",
                    r.label,
                    outcome(r),
                    r.summary.as_ref().and_then(|s| s.steps_to_solve).map_or(String::new(), |s| format!(" at step {s}"))
                ))
            ),
        ));
        out.push(Finding::measured(format!(
            "Decades of gradient lost over T after training: {}",
            list(runs, |r| format!("{}: {}", r.label, decades_trained(r).map_or("n/a".into(), fmt_num)))
        )));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// attention

fn attention_plan(full: bool, seed: u64) -> Plan {
    let t = if full { 1000 } else { 200 };
    let mut specs = Vec::new();
    for (label, model) in
        [("gpt", Family::Gpt), ("lstm", Family::Lstm), ("gru", Family::Gru), ("rnn-tanh", Family::Rnn)]
    {
        specs.push(rspec(label, Rnn::new(model, t, 1).cfg(seed), false));
    }
    Plan {
        title: format!("A one-block Transformer (nanoGPT-style) against LSTM, GRU and a tanh RNN: gradient against distance at initialisation on the adding problem, T = {t}."),
        claim: "attention shortens the gradient path: every position is one attention step from the loss, so a Transformer's gradient does not decay with distance while a recurrent network's does".into(),
        depth: None,
        recurrent: Some((specs, RecurrentSettings { probe_batch: 32, max_seconds: None })),
        notes: vec!["Measured at initialisation (hidden 64, one layer or block each, loss at the last step); the GPT's curve is ‖∂L/∂x_t‖ of the residual stream entering its block (after the block only the last position reaches the loss).".into()],
    }
}

/// log10(‖g(d=1)‖ / ‖g(d=T−1)‖): the decay with distance past the loss's own position (whose
/// gradient in a Transformer also has the direct residual path).
fn decades_beyond_one(r: &RecurrentRun) -> f64 {
    r.init_curve().map_or(f64::NAN, |c| match (c.mean.get(1), c.mean.last()) {
        (Some(&a), Some(&b)) if a > 0.0 && b > 0.0 => (a / b).log10(),
        (Some(&a), Some(_)) if a > 0.0 => f64::INFINITY,
        _ => f64::NAN,
    })
}

fn attention_judge(_: &[DepthRun], runs: &[RecurrentRun]) -> Vec<Finding> {
    let gpt = runs.iter().find(|r| r.config.model == Family::Gpt);
    let recurrent: Vec<&RecurrentRun> = runs.iter().filter(|r| r.config.model != Family::Gpt).collect();
    let mut out = Vec::new();
    if let Some(g) = gpt {
        let gd = decades_beyond_one(g);
        let mut parts = vec![gd.abs() < 1.0];
        parts.extend(recurrent.iter().map(|r| decades_beyond_one(r) > gd + 2.0));
        let t = g.config.seq_len;
        out.push(Finding::judged(
            "a Transformer's gradient does not decay with distance, unlike a recurrent network's",
            Verdict::combine(&parts),
            "the GPT loses less than one decade between d = 1 and d = T − 1, and every recurrent model loses at least two decades more",
            format!(
                "T = {t}, decades of ‖∂L/∂h_t‖ lost between d = 1 and d = {} at initialisation: {}",
                t - 1,
                list(runs, |r| format!("{}: {}", r.label, fmt_num(decades_beyond_one(r))))
            ),
        ));
        if let Some(c) = g.init_curve() {
            let (d0, d1) =
                (c.mean.first().copied().unwrap_or(f64::NAN), c.mean.get(1).copied().unwrap_or(f64::NAN));
            out.push(Finding::measured(format!(
                "The GPT's gradient does drop once, from {} at d = 0 (the loss's own position, with the direct residual path) to {} at d = 1 ({} decades): at initialisation attention spreads its weight almost evenly, about 1/T = {} per position, over the {t} positions",
                fmt_num(d0),
                fmt_num(d1),
                fmt_num((d0 / d1).log10()),
                fmt_num(1.0 / t as f64)
            )));
        }
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
