//! Gradient instrumentation against analytic answers and the literature's orderings at init.

use candle_core::Device;
use candle_nn::VarMap;
use gradscope::models::{Family, InitScheme, Nonlinearity, RecurrentBackend};
use gradscope::probe::{measure, LossKind, Probe};
use gradscope::train::{eval_set, TaskName, TrainConfig};
use gradscope::util::with_deep_stack;

fn probe(cfg: TrainConfig, loss: LossKind) -> Probe {
    with_deep_stack(move || {
        let task = cfg.build_task().unwrap();
        let varmap = VarMap::new();
        let model = cfg.model_config(task.as_ref()).init(&varmap, cfg.seed, &Device::Cpu).unwrap();
        let batch = eval_set(task.as_ref(), 8, 8, &Device::Cpu).unwrap().remove(0);
        measure(&model, &varmap, task.as_ref(), &batch, loss, cfg.model.name()).unwrap()
    })
}

fn linear_rnn(a: f64, t: usize) -> TrainConfig {
    TrainConfig {
        task: TaskName::Adding,
        seq_len: t,
        model: Family::Rnn,
        nonlinearity: Nonlinearity::Linear,
        hidden: 16,
        init: InitScheme::Identity,
        init_gain: Some(a),
        ..TrainConfig::default()
    }
}

/// With W_hh = a·I and no nonlinearity, ∂L/∂h_t = a^(T−1−t) ∂L/∂h_{T−1} exactly.
#[test]
fn linear_rnn_decays_exactly_as_a_to_the_distance() {
    for a in [0.5, 0.8, 0.9, 0.97] {
        let p = probe(linear_rnn(a, 120), LossKind::Last);
        let c = &p.curves[0];
        let e_fold = c.metrics.e_folding.expect("a decaying curve");
        let want = -1.0 / a.ln();
        assert!((e_fold - want).abs() / want < 0.01, "a = {a}: e-folding {e_fold}, expected {want}");
        assert!(!c.metrics.exploding);
        // And point by point where float32 still resolves it.
        for d in [1usize, 5, 10] {
            let ratio = c.mean[d] / c.mean[0];
            assert!((ratio / a.powi(d as i32) - 1.0).abs() < 1e-3, "a = {a}, d = {d}: ratio {ratio}");
        }
    }
}

/// An LRU whose |λ| are all a (`--lru-r-min a --lru-r-max a`) loses the gradient of its state
/// as a^d: ∂L/∂s_t = conj(λ)^(T−1−t) ∂L/∂s_{T−1} channel by channel, on both paths.
#[test]
fn lru_with_one_modulus_decays_as_a_to_the_distance() {
    for (a, backend) in [(0.95, RecurrentBackend::Auto), (0.8, RecurrentBackend::Autograd)] {
        let cfg = TrainConfig {
            task: TaskName::Adding,
            seq_len: 150,
            model: Family::Lru,
            hidden: 16,
            state: Some(8),
            lru_r_min: Some(a),
            lru_r_max: Some(a),
            backend,
            ..TrainConfig::default()
        };
        cfg.validate().unwrap();
        let p = probe(cfg, LossKind::Last);
        let c = &p.curves[0];
        assert_eq!(c.state, "s");
        let e_fold = c.metrics.e_folding.expect("a decaying curve");
        let want = -1.0 / a.ln();
        assert!((e_fold - want).abs() / want < 0.02, "a = {a}: e-folding {e_fold}, expected {want}");
        for d in [1usize, 10, 40] {
            let ratio = c.mean[d] / c.mean[0];
            assert!((ratio / a.powi(d as i32) - 1.0).abs() < 1e-3, "a = {a}, d = {d}: ratio {ratio}");
        }
    }
}

#[test]
fn growth_is_reported_as_exploding() {
    let a: f64 = 1.05;
    let p = probe(linear_rnn(a, 100), LossKind::Last);
    let m = &p.curves[0].metrics;
    assert!(m.exploding, "{m:?}");
    let want = 1.0 / a.ln();
    assert!((m.growth_e_folding.unwrap() - want).abs() / want < 0.01, "{m:?}");
    assert!(m.decades < -1.5, "{m:?}");
}

/// At init over T = 200: a tanh RNN (PyTorch default init) loses many decades, an LSTM with
/// forget bias 1 far fewer, an orthogonal linear RNN none (an orthogonal matrix keeps norms).
#[test]
fn literature_ordering_at_init() {
    let base = TrainConfig { task: TaskName::Adding, seq_len: 200, hidden: 64, ..TrainConfig::default() };
    let tanh = probe(TrainConfig { model: Family::Rnn, ..base.clone() }, LossKind::Last);
    let lstm =
        probe(TrainConfig { model: Family::Lstm, forget_bias: Some(1.0), ..base.clone() }, LossKind::Last);
    let ortho = probe(
        TrainConfig {
            model: Family::Rnn,
            nonlinearity: Nonlinearity::Linear,
            init: InitScheme::Orthogonal,
            ..base.clone()
        },
        LossKind::Last,
    );
    let decades = |p: &Probe| p.curves[0].metrics.decades;
    let (d_tanh, d_lstm, d_ortho) = (decades(&tanh), decades(&lstm), decades(&ortho));
    assert!(d_tanh > 20.0, "tanh RNN lost only {d_tanh} decades");
    assert!(d_lstm < d_tanh / 2.0 && d_lstm < 20.0, "lstm {d_lstm} vs tanh {d_tanh}");
    assert!(d_ortho.abs() < 0.05, "orthogonal linear RNN changed by {d_ortho} decades");
    assert!(tanh.curves[0].metrics.horizon.is_some_and(|h| h < 100));
    assert!(ortho.curves[0].metrics.horizon.is_none());
}

#[test]
fn gpt_residual_gradient_does_not_fade_with_distance() {
    let cfg = TrainConfig {
        task: TaskName::Copy,
        seq_len: 40,
        model: Family::Gpt,
        hidden: 32,
        layers: 2,
        heads: 4,
        ..TrainConfig::default()
    };
    let p = probe(cfg, LossKind::Last);
    assert_eq!(p.curves.len(), 3, "embedding stream + one tap per block");
    let first = &p.curves[0];
    // One attention hop reaches every earlier position: no exponential decay.
    assert!(first.metrics.decades.abs() < 3.0, "{:?}", first.metrics);
    assert!(first.mean.iter().all(|&v| v > 0.0));
}

#[test]
fn saturation_statistics_see_saturated_and_healthy_units() {
    let sat = |init: InitScheme, gain: Option<f64>| {
        let cfg = TrainConfig {
            task: TaskName::Adding,
            seq_len: 50,
            model: Family::Rnn,
            hidden: 32,
            init,
            init_gain: gain,
            ..TrainConfig::default()
        };
        let p = probe(cfg, LossKind::Last);
        p.saturation.expect("recurrent models report saturation")[0].saturated[0].1
    };
    let healthy = sat(InitScheme::Pytorch, None);
    let saturated = sat(InitScheme::Xavier, Some(8.0));
    assert!(healthy < 0.05, "default init: {healthy}");
    assert!(saturated > 0.5, "xavier gain 8: {saturated}");

    let lstm = TrainConfig {
        model: Family::Lstm,
        forget_bias: Some(2.0),
        seq_len: 20,
        hidden: 16,
        ..TrainConfig::default()
    };
    let p = probe(lstm, LossKind::Last);
    let forget = p.saturation.unwrap()[0].mean_forget_gate.unwrap();
    // σ(2 + small) ≈ 0.88.
    assert!((forget - 0.88).abs() < 0.05, "mean forget gate {forget}");
}

/// The gradient at each sequence's dependency: on copy every sequence's answer (the last symbol)
/// sits at the same step, so it is the curve at that distance; on induction each sequence's
/// lag is where its value was, and the loss over every step has no single dependency.
#[test]
fn the_gradient_at_the_dependency_is_read_where_each_answer_was_input() {
    let copy = TrainConfig {
        task: TaskName::Copy,
        seq_len: 12,
        copy_len: Some(3),
        model: Family::Gru,
        hidden: 8,
        ..TrainConfig::default()
    };
    let p = probe(copy, LossKind::Last);
    let c = &p.curves[0];
    let at = c.at_dependency.as_ref().expect("copy records its dependency");
    let lag = c.distance.len() - 1 - 2; // the last symbol is input at step copy_len − 1 = 2
    assert!(at.lag.iter().all(|&l| l == lag), "{:?}", at.lag);
    assert!(
        (at.mean_norm - c.mean[lag]).abs() <= 1e-12 * c.mean[lag].max(1e-30),
        "{} vs {}",
        at.mean_norm,
        c.mean[lag]
    );

    let induction = TrainConfig {
        task: TaskName::Induction,
        seq_len: 30,
        model: Family::Lstm,
        hidden: 8,
        ..TrainConfig::default()
    };
    let p = probe(induction.clone(), LossKind::Last);
    let at = p.curves[0].at_dependency.as_ref().expect("induction records its dependency");
    assert_eq!(at.lag.len(), 8);
    assert!(at.lag.iter().all(|&l| (1..=28).contains(&l)), "{:?}", at.lag);
    assert!(at.lag.iter().any(|&l| l != at.lag[0]), "lags differ per sequence: {:?}", at.lag);
    assert!(at.norm.iter().all(|n| n.is_finite() && *n > 0.0), "{:?}", at.norm);
    let p = probe(induction, LossKind::Task);
    assert!(p.curves[0].at_dependency.is_none());
    let parity = TrainConfig { task: TaskName::Parity, seq_len: 10, hidden: 8, ..TrainConfig::default() };
    assert!(probe(parity, LossKind::Last).curves[0].at_dependency.is_none(), "parity depends on every step");
}
