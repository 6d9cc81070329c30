//! The fused CPU kernels against candle's per-op autograd path, which the fixtures tie to PyTorch.
//!
//! For every cell, single and stacked, with random inputs and non-zero initial states, both
//! backends must agree on outputs, final states, every gradient (parameters, input, h0, c0) and
//! the per-timestep ∂L/∂h_t and ∂L/∂c_t of every layer. The loss touches every output and every
//! final state, so each of the op's gradient paths is exercised.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use gradscope::models::{
    CellKind, ForwardOptions, Initializer, Nonlinearity, Recurrent, RecurrentBackend, RecurrentConfig,
    RecurrentState,
};

/// Relative to the largest |value| of the reference tensor: the fast exp/tanh (~1e-7) and a
/// different summation order are the only differences between the paths.
const RTOL: f32 = 1e-5;

fn randn(shape: &[usize], seed: u64, scale: f64) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(Initializer::new(seed).normal(n, scale), shape, &Device::Cpu).unwrap()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

/// Everything one forward + backward yields, by name.
fn run(
    cfg: &RecurrentConfig,
    backend: RecurrentBackend,
    record: bool,
    train: bool,
    b: usize,
) -> Vec<(String, Tensor)> {
    let (t, l, h) = (13, cfg.num_layers, cfg.hidden_size);
    let varmap = VarMap::new();
    let model: Recurrent = cfg.init(&varmap, "", 11, &Device::Cpu).unwrap();
    let x = Var::from_tensor(&randn(&[b, t, cfg.input_size], 1, 1.0)).unwrap();
    let h0 = Var::from_tensor(&randn(&[l, b, h], 2, 0.5)).unwrap();
    let c0 = Var::from_tensor(&randn(&[l, b, h], 3, 0.5)).unwrap();
    let lstm = cfg.cell.has_cell_state();
    let state = RecurrentState { h: h0.as_tensor().clone(), c: lstm.then(|| c0.as_tensor().clone()) };
    let opts = ForwardOptions { train, dropout_seed: 5, record_state_grads: record, backend, no_grad: false };
    let out = model.forward_with(x.as_tensor(), Some(&state), &opts).unwrap();

    // L = Σ out·P + Σ h_n·Q (+ Σ c_n·R): every output and every final state reaches the loss.
    let mut loss = (&out.output * randn(&[b, t, h], 4, 1.0)).unwrap().sum_all().unwrap();
    loss = (loss + (&out.state.h * randn(&[l, b, h], 5, 1.0)).unwrap().sum_all().unwrap()).unwrap();
    if let Some(c_n) = &out.state.c {
        loss = (loss + (c_n * randn(&[l, b, h], 6, 1.0)).unwrap().sum_all().unwrap()).unwrap();
    }
    let grads = loss.backward().unwrap();

    let mut got = vec![
        ("loss".to_string(), loss.clone()),
        ("output".into(), out.output.clone()),
        ("h_n".into(), out.state.h.clone()),
        ("grad.input".into(), grads.get(x.as_tensor()).expect("∂L/∂input").clone()),
        ("grad.h0".into(), grads.get(h0.as_tensor()).expect("∂L/∂h0").clone()),
    ];
    if lstm {
        got.push(("c_n".into(), out.state.c.clone().unwrap()));
        got.push(("grad.c0".into(), grads.get(c0.as_tensor()).expect("∂L/∂c0").clone()));
    }
    let data = varmap.data().lock().unwrap();
    for (name, var) in data.iter() {
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
        got.push((format!("grad.{name}"), g.clone()));
    }
    if let Some(taps) = out.taps {
        let sg = taps.grads(&grads).unwrap();
        for (k, dh) in sg.h.iter().enumerate() {
            got.push((format!("dL/dh_t layer {k}"), dh.clone()));
        }
        for (k, dc) in sg.c.iter().flatten().enumerate() {
            got.push((format!("dL/dc_t layer {k}"), dc.clone()));
        }
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    got
}

/// Mismatches between the two backends, as readable lines.
fn compare(cfg: &RecurrentConfig, record: bool, train: bool) -> Vec<String> {
    compare_batch(cfg, record, train, 3)
}

fn compare_batch(cfg: &RecurrentConfig, record: bool, train: bool, b: usize) -> Vec<String> {
    let want = run(cfg, RecurrentBackend::Autograd, record, train, b);
    let got = run(cfg, RecurrentBackend::Fused, record, train, b);
    diff(cfg.cell, &want, &got)
}

fn diff(cell: CellKind, want: &[(String, Tensor)], got: &[(String, Tensor)]) -> Vec<String> {
    let mut failures = Vec::new();
    assert_eq!(want.iter().map(|w| &w.0).collect::<Vec<_>>(), got.iter().map(|g| &g.0).collect::<Vec<_>>());
    for ((name, w), (_, g)) in want.iter().zip(got) {
        if w.dims() != g.dims() {
            failures.push(format!("{name}: shape {:?} vs {:?}", g.dims(), w.dims()));
            continue;
        }
        let (w, g) = (flat(w), flat(g));
        let scale = w.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{cell} {name}: the reference is all zeros, the check would be vacuous");
        // f32::max drops NaN, so a NaN difference is counted as infinite first.
        let worst = w
            .iter()
            .zip(&g)
            .map(|(a, b)| (a - b).abs())
            .map(|d| if d.is_nan() { f32::INFINITY } else { d })
            .fold(0f32, f32::max);
        if worst > RTOL * scale {
            failures.push(format!("{cell} {name}: max |Δ| {worst:e} > {RTOL:e}·{scale:e}"));
        }
    }
    failures
}

fn cells() -> Vec<CellKind> {
    CellKind::all()
}

#[test]
fn fused_matches_autograd_for_every_cell_single_layer() {
    let mut failures = Vec::new();
    for cell in cells() {
        let cfg = RecurrentConfig::new(cell, 4, 8);
        for record in [false, true] {
            failures.extend(compare(&cfg, record, false));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fused_matches_autograd_for_every_cell_stacked_with_dropout() {
    let mut failures = Vec::new();
    for cell in cells() {
        let cfg = RecurrentConfig::new(cell, 4, 8).with_layers(2).with_dropout(0.25);
        for (record, train) in [(true, false), (true, true), (false, true)] {
            failures.extend(compare(&cfg, record, train));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Sizes past the kernels' special cases: an input wider than 16 takes the GEMM input
/// projection (narrower ones a plain loop), and a hidden size of 24 gives the per-step product
/// one full 16-column panel and one padded one.
#[test]
fn fused_matches_autograd_for_wide_inputs_and_panel_remainders() {
    let mut failures = Vec::new();
    for cell in cells() {
        let cfg = RecurrentConfig::new(cell, 20, 24).with_layers(2);
        for record in [false, true] {
            failures.extend(compare(&cfg, record, false));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A large batch runs as shards on separate threads (one per thread of rayon's pool, ≥ 8
/// sequences each): 27 sequences in a 3-thread pool make three shards whose outputs, state
/// gradients and taps are stitched and whose weight gradients are summed.
#[test]
fn fused_matches_autograd_when_the_batch_is_sharded_across_threads() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    let failures: Vec<String> = pool.install(|| {
        let mut failures = Vec::new();
        for cell in cells() {
            let cfg = RecurrentConfig::new(cell, 4, 8).with_layers(2).with_dropout(0.25);
            for (record, train) in [(true, false), (true, true)] {
                failures.extend(compare_batch(&cfg, record, train, 27));
            }
        }
        failures
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The comparison is not vacuous: one changed bias block (the forget gate's) is caught.
#[test]
fn a_perturbed_bias_is_caught() {
    let cfg = RecurrentConfig::lstm(4, 8);
    let want = run(&cfg, RecurrentBackend::Autograd, true, false, 3);
    let got = run(&cfg.clone().with_forget_bias(0.01), RecurrentBackend::Fused, true, false, 3);
    let failures = diff(cfg.cell, &want, &got);
    assert!(failures.iter().any(|f| f.contains("output")), "{failures:?}");
}

#[test]
fn auto_takes_autograd_for_f64_and_fused_refuses_it() {
    let cfg = RecurrentConfig::gru(2, 3);
    let model = cfg.init(&VarMap::new(), "", 0, &Device::Cpu).unwrap();
    let x = randn(&[1, 4, 2], 0, 1.0).to_dtype(DType::F64).unwrap();
    assert!(RecurrentBackend::Auto.use_fused(&Device::Cpu, DType::F32).unwrap());
    assert!(!RecurrentBackend::Auto.use_fused(&Device::Cpu, DType::F64).unwrap());
    let fused = ForwardOptions { backend: RecurrentBackend::Fused, ..Default::default() };
    let err = model.forward_with(&x, None, &fused).err().expect("fused is f32-only");
    assert!(err.to_string().contains("needs f32 on the CPU"), "{err}");
    assert_eq!("fused".parse::<RecurrentBackend>().unwrap(), RecurrentBackend::Fused);
}

/// One graph node per layer: T = 100,000 trains on the default test-thread stack (the autograd
/// path overflows near T ≈ 7,000 without `with_deep_stack`).
#[test]
fn fused_cells_train_at_one_hundred_thousand_steps_without_a_deep_stack() {
    let t = 100_000;
    for cfg in [
        RecurrentConfig::lstm(2, 8).with_layers(2).with_forget_bias(1.0),
        RecurrentConfig::new(CellKind::MinGru, 2, 8).with_layers(2),
        RecurrentConfig::new(CellKind::MinLstm, 2, 8).with_layers(2),
    ] {
        long_sequence_trains(&cfg, t);
    }
    // The LRU: each block is one op.
    let cfg = gradscope::models::LruConfig {
        num_layers: 2,
        state_size: 4,
        ..gradscope::models::LruConfig::new(2, 8)
    };
    let varmap = VarMap::new();
    let vb =
        gradscope::models::register(&varmap, "", cfg.init_tensors(0, &Device::Cpu).unwrap(), &Device::Cpu)
            .unwrap();
    let model = gradscope::models::Lru::new(&cfg, vb).unwrap();
    let x = randn(&[2, t, 2], 3, 1.0);
    let out =
        model.forward_with(&x, &ForwardOptions { record_state_grads: true, ..Default::default() }).unwrap();
    let loss = out.output.narrow(1, t - 1, 1).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let norms = out.taps.unwrap().grads(&grads).unwrap().h_norms(1).unwrap();
    assert_eq!(norms.len(), t);
    assert!(norms.iter().all(|v| v.is_finite()) && norms[0] < norms[t - 1], "lru: the gradient should fade");
    for var in varmap.all_vars() {
        let g = flat(grads.get(var.as_tensor()).expect("every lru weight gets a gradient"));
        assert!(g.iter().all(|v| v.is_finite()), "lru");
    }
}

/// Mamba at T = 100,000: its mixer is one op, the rest of its block whole-sequence ops.
#[test]
fn mamba_trains_at_one_hundred_thousand_steps_without_a_deep_stack() {
    use gradscope::models::{Mamba, MambaConfig};
    let t = 100_000;
    let cfg = MambaConfig { num_layers: 2, state_size: 4, ..MambaConfig::new(2, 8) };
    let varmap = VarMap::new();
    let vb =
        gradscope::models::register(&varmap, "", cfg.init_tensors(0, &Device::Cpu).unwrap(), &Device::Cpu)
            .unwrap();
    let model = Mamba::new(&cfg, vb).unwrap();
    let x = randn(&[2, t, 2], 3, 1.0);
    let out =
        model.forward_with(&x, &ForwardOptions { record_state_grads: true, ..Default::default() }).unwrap();
    let loss = out.output.narrow(1, t - 1, 1).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let norms = out.taps.unwrap().grads(&grads).unwrap().h_norms(1).unwrap();
    assert_eq!(norms.len(), t);
    assert!(
        norms.iter().all(|v| v.is_finite()) && norms[0] < norms[t - 1],
        "mamba: the gradient should fade"
    );
    for var in varmap.all_vars() {
        let g = flat(grads.get(var.as_tensor()).expect("every mamba weight gets a gradient"));
        assert!(g.iter().all(|v| v.is_finite()) && g.iter().any(|v| *v != 0.0), "mamba");
    }
}

fn long_sequence_trains(cfg: &RecurrentConfig, t: usize) {
    let cell = cfg.cell;
    let varmap = VarMap::new();
    let model = cfg.init(&varmap, "", 0, &Device::Cpu).unwrap();
    let x = randn(&[2, t, 2], 3, 1.0);
    let opts = ForwardOptions { record_state_grads: true, ..Default::default() };
    let out = model.forward_with(&x, None, &opts).unwrap();
    let loss = out.output.narrow(1, t - 1, 1).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let sg = out.taps.unwrap().grads(&grads).unwrap();
    for layer in 0..2 {
        let norms = sg.h_norms(layer).unwrap();
        assert_eq!(norms.len(), t);
        assert!(norms.iter().all(|v| v.is_finite()));
        assert!(norms[0] < norms[t - 1], "{cell} layer {layer}: the gradient should fade with distance");
    }
    for var in varmap.all_vars() {
        let g = flat(grads.get(var.as_tensor()).expect("every weight gets a gradient"));
        assert!(g.iter().all(|v| v.is_finite()) && g.iter().any(|v| *v != 0.0), "{cell}");
    }
}

/// A sequence model's readout on both paths, for every cell, one and two layers: outputs, loss
/// and every parameter gradient. On the fused path an LSTM's readout reads the kernel's result
/// [h_t; c_{T-1}] directly (`RecurrentOutput::output_rows`) instead of its (B, T, H) view.
/// The sequence model's readout, which the fused path runs inside the last layer's op
/// (`fused_layer_with_head`): outputs, every parameter's gradient and every layer's ∂L/∂h_t
/// (∂L/∂c_t) agree with the autograd path, for readouts onto 1, 2 and 20 outputs, one
/// shard and a batch sharded across threads, one and two layers.
#[test]
fn sequence_model_readouts_agree_on_both_paths() {
    use gradscope::models::{Family, InitScheme, ModelInput, SeqModelConfig};
    for family in [Family::Rnn, Family::Lstm, Family::Gru, Family::MinGru, Family::MinLstm] {
        for (layers, b, outputs) in [(1, 4, 2), (2, 4, 2), (1, 40, 20), (2, 40, 1)] {
            let cfg = SeqModelConfig {
                family,
                nonlinearity: Nonlinearity::Tanh,
                input: ModelInput::Real { features: 3 },
                output_size: outputs,
                hidden: 10,
                layers,
                heads: 1,
                context: 9,
                dropout: 0.0,
                init: InitScheme::Pytorch,
                init_gain: None,
                forget_bias: None,
                lru: None,
                mamba: None,
            };
            let t = 9;
            let x = randn(&[b, t, 3], 1, 1.0);
            let weights = randn(&[b, t, outputs], 2, 1.0);
            let run = |backend: RecurrentBackend| {
                let varmap = VarMap::new();
                let model = cfg.init(&varmap, 7, &Device::Cpu).unwrap();
                let opts =
                    ForwardOptions { train: true, backend, record_state_grads: true, ..Default::default() };
                let out = model.forward(&x, None, &opts).unwrap();
                let loss = (&out.outputs * &weights).unwrap().sum_all().unwrap();
                let grads = loss.backward().unwrap();
                let mut vars: Vec<(String, Var)> =
                    varmap.data().lock().unwrap().clone().into_iter().collect();
                vars.sort_by(|a, b| a.0.cmp(&b.0));
                let mut got = vec![("outputs".to_string(), flat(&out.outputs)), ("loss".into(), flat(&loss))];
                for (name, var) in vars {
                    got.push((format!("grad.{name}"), flat(grads.get(var.as_tensor()).expect("a gradient"))));
                }
                let taps = out.taps.expect("taps").grads(&grads).unwrap();
                for (k, dh) in taps.h.iter().enumerate() {
                    got.push((format!("dL/dh_t layer {k}"), flat(dh)));
                }
                for (k, dc) in taps.c.iter().flatten().enumerate() {
                    got.push((format!("dL/dc_t layer {k}"), flat(dc)));
                }
                got
            };
            let (fused, reference) = (run(RecurrentBackend::Fused), run(RecurrentBackend::Autograd));
            assert_eq!(fused.len(), reference.len());
            for ((name, f), (_, r)) in fused.iter().zip(&reference) {
                let case = format!("{family:?} × {layers}, B = {b}, O = {outputs}, {name}");
                assert_eq!(f.len(), r.len(), "{case}");
                let scale = r.iter().fold(0f32, |m, v| m.max(v.abs()));
                assert!(scale > 0.0, "{case}: the reference is all zeros");
                for (a, w) in f.iter().zip(r) {
                    assert!((a - w).abs() <= RTOL * scale, "{case}: {a} vs {w}");
                }
            }
        }
    }
}

/// `no_grad` (nothing kept for backward) gives bit-identical outputs and final states on both
/// paths, for every cell, narrow (projected step by step) and wide inputs, one and two layers;
/// asking it for taps is an error.
#[test]
fn no_grad_forward_gives_the_same_outputs_and_keeps_no_graph() {
    for cell in cells() {
        for (input, layers) in [(3, 1), (20, 2)] {
            let cfg = RecurrentConfig::new(cell, input, 8).with_layers(layers);
            let model: Recurrent = cfg.init(&VarMap::new(), "", 4, &Device::Cpu).unwrap();
            let x = randn(&[9, 11, input], 1, 1.0);
            for backend in [RecurrentBackend::Fused, RecurrentBackend::Autograd] {
                let run = |no_grad| {
                    let opts = ForwardOptions { backend, no_grad, ..Default::default() };
                    model.forward_with(&x, None, &opts).unwrap()
                };
                let (with, without) = (run(false), run(true));
                assert!(with.output.track_op() && !without.output.track_op(), "{cell:?} {backend:?}");
                assert_eq!(flat(&with.output), flat(&without.output), "{cell:?} {backend:?} I={input}");
                assert_eq!(flat(&with.state.h), flat(&without.state.h), "{cell:?} {backend:?} I={input}");
            }
        }
    }
    // The sequence model's fused readout keeps no graph either (its head weights are variables).
    use gradscope::models::{Family, InitScheme, ModelInput, SeqModelConfig};
    let families =
        [Family::Rnn, Family::Lstm, Family::Gru, Family::MinGru, Family::MinLstm, Family::Lru, Family::Mamba];
    for family in families {
        let cfg = SeqModelConfig {
            family,
            nonlinearity: Nonlinearity::Tanh,
            input: ModelInput::Real { features: 3 },
            output_size: 2,
            hidden: 8,
            layers: 1,
            heads: 1,
            context: 11,
            dropout: 0.0,
            init: InitScheme::Pytorch,
            init_gain: None,
            forget_bias: None,
            lru: (family == Family::Lru).then(|| gradscope::models::LruConfig::new(3, 8)),
            mamba: (family == Family::Mamba).then(|| gradscope::models::MambaConfig::new(3, 8)),
        };
        let model = cfg.init(&VarMap::new(), 3, &Device::Cpu).unwrap();
        let x = randn(&[9, 11, 3], 1, 1.0);
        let run = |no_grad| {
            let opts = ForwardOptions { backend: RecurrentBackend::Fused, no_grad, ..Default::default() };
            model.forward(&x, None, &opts).unwrap().outputs
        };
        let (with, without) = (run(false), run(true));
        assert!(with.track_op() && !without.track_op(), "{family:?}: no_grad outputs are in a graph");
        assert_eq!(flat(&with), flat(&without), "{family:?}");
    }

    let model: Recurrent = RecurrentConfig::lstm(2, 4).init(&VarMap::new(), "", 0, &Device::Cpu).unwrap();
    let opts = ForwardOptions { no_grad: true, record_state_grads: true, ..Default::default() };
    let err = model.forward_with(&randn(&[1, 3, 2], 1, 1.0), None, &opts).err().expect("refused").to_string();
    assert!(err.contains("no_grad"), "{err}");
}

/// Mamba's fused block (projections as fused linear ops, the mixer as one op) against the per-op
/// reference: outputs, every parameter's gradient and ‖∂L/∂h_t‖ of every block, per sequence and
/// step, with sequences shorter and longer than the kernel's recompute chunk, one and two blocks,
/// one sequence and a batch sharded across threads, R = 1 and 2, K = 2 and 4.
#[test]
fn mamba_block_agrees_on_both_paths() {
    use gradscope::models::{Family, InitScheme, MambaConfig, ModelInput, SeqModelConfig};
    for (layers, b, t, hidden, k) in [(1, 1, 9, 8, 4), (2, 5, 70, 20, 2), (1, 3, 33, 17, 4)] {
        let mamba = MambaConfig { num_layers: layers, state_size: 5, conv: k, ..MambaConfig::new(3, hidden) };
        let cfg = SeqModelConfig {
            family: Family::Mamba,
            nonlinearity: Nonlinearity::Tanh,
            input: ModelInput::Real { features: 3 },
            output_size: 2,
            hidden,
            layers,
            heads: 1,
            context: t,
            dropout: 0.0,
            init: InitScheme::Pytorch,
            init_gain: None,
            forget_bias: None,
            lru: None,
            mamba: Some(mamba),
        };
        let x = randn(&[b, t, 3], 1, 1.0);
        let weights = randn(&[b, t, 2], 2, 1.0);
        let run = |backend: RecurrentBackend| {
            let varmap = VarMap::new();
            let model = cfg.init(&varmap, 7, &Device::Cpu).unwrap();
            let opts =
                ForwardOptions { train: true, backend, record_state_grads: true, ..Default::default() };
            let out = model.forward(&x, None, &opts).unwrap();
            let loss = (&out.outputs * &weights).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            let mut vars: Vec<(String, Var)> = varmap.data().lock().unwrap().clone().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            let mut got = vec![("outputs".to_string(), flat(&out.outputs)), ("loss".into(), flat(&loss))];
            for (name, var) in vars {
                got.push((format!("grad.{name}"), flat(grads.get(var.as_tensor()).expect("a gradient"))));
            }
            let taps = out.taps.expect("taps").grads(&grads).unwrap();
            for (layer, dh) in taps.h.iter().enumerate() {
                // Per sequence and step: the fused path records only these norms.
                let norms = dh.sqr().unwrap().sum(2).unwrap().sqrt().unwrap();
                got.push((format!("‖dL/dh_t‖ block {layer}"), flat(&norms)));
            }
            got
        };
        let (fused, reference) = (run(RecurrentBackend::Fused), run(RecurrentBackend::Autograd));
        assert_eq!(fused.len(), reference.len());
        for ((name, f), (_, r)) in fused.iter().zip(&reference) {
            let case = format!("mamba × {layers}, B = {b}, T = {t}, H = {hidden}, K = {k}, {name}");
            assert_eq!(f.len(), r.len(), "{case}");
            let scale = r.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "{case}: the reference is all zeros");
            for (a, w) in f.iter().zip(r) {
                assert!((a - w).abs() <= RTOL * scale, "{case}: {a} vs {w}");
            }
        }
    }
}
