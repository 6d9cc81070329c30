//! The experiments along the depth axis: activations, init, residual, normalization. Each is a
//! plan over MLP depth sweeps and a judge of the per-layer gradient norms they measured.

use super::*;

// ---------------------------------------------------------------------------------------------
// activations

pub(super) const SATURATING: [Activation; 2] = [Activation::Sigmoid, Activation::Tanh];
pub(super) const RELU_FAMILY: [Activation; 5] =
    [Activation::Relu, Activation::LeakyRelu, Activation::Prelu, Activation::Elu, Activation::Gelu];

pub(super) fn activations_plan(full: bool, seed: u64) -> Plan {
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

pub(super) fn activations_judge(runs: &[DepthRun], _: &[RecurrentRun]) -> Vec<Finding> {
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

pub(super) fn init_plan(full: bool, seed: u64) -> Plan {
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

pub(super) fn init_judge(runs: &[DepthRun], _: &[RecurrentRun]) -> Vec<Finding> {
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

pub(super) const RESIDUAL_ACTS: [(Activation, MlpInit); 3] = [
    (Activation::Sigmoid, MlpInit::Xavier),
    (Activation::Tanh, MlpInit::Pytorch),
    (Activation::Relu, MlpInit::Pytorch),
];

pub(super) fn residual_plan(full: bool, seed: u64) -> Plan {
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

pub(super) fn residual_judge(runs: &[DepthRun], _: &[RecurrentRun]) -> Vec<Finding> {
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

pub(super) const NORM_ACTS: [(Activation, MlpInit); 2] =
    [(Activation::Sigmoid, MlpInit::Xavier), (Activation::Tanh, MlpInit::Pytorch)];

pub(super) fn normalization_plan(full: bool, seed: u64) -> Plan {
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

pub(super) fn normalization_judge(runs: &[DepthRun], _: &[RecurrentRun]) -> Vec<Finding> {
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
