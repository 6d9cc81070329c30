//! Public behaviour of the models beyond the fixtures: checkpoints, initialisation, long sequences.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarMap;
use gradscope::checkpoint::{load_into_varmap, save_varmap};
use gradscope::models::{
    register, ForwardOptions, GptConfig, InitScheme, Lstm, Nonlinearity, Recurrent, RecurrentBackend,
    RecurrentConfig,
};
use gradscope::util::with_deep_stack;
use std::collections::BTreeMap;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let data = gradscope::models::Initializer::new(seed).normal(n, 1.0);
    Tensor::from_vec(data, shape, &Device::Cpu).unwrap()
}

#[test]
fn recurrent_checkpoint_round_trip_gives_identical_outputs() {
    let dir = tempdir();
    let cfg = RecurrentConfig::lstm(3, 8).with_layers(2).with_init(InitScheme::Orthogonal, None);
    let x = randn(&[2, 5, 3], 1);
    let saved = VarMap::new();
    let before = cfg.init(&saved, "rnn", 42, &Device::Cpu).unwrap().forward(&x).unwrap();
    let path = dir.join("model.safetensors");
    let meta = BTreeMap::from([("kind".to_string(), "lstm".to_string())]);
    save_varmap(&path, &saved, &meta).unwrap();

    // A differently seeded model takes the saved weights and then computes the same outputs.
    let restored = VarMap::new();
    let model = cfg.init(&restored, "rnn", 7, &Device::Cpu).unwrap();
    assert_ne!(flat(&model.forward(&x).unwrap()), flat(&before));
    let got_meta = load_into_varmap(&path, &restored).unwrap();
    assert_eq!(got_meta["kind"], "lstm");
    assert_eq!(flat(&model.forward(&x).unwrap()), flat(&before));
}

#[test]
fn gpt_checkpoint_round_trip_and_wrong_model_is_refused() {
    let dir = tempdir();
    let cfg = GptConfig::new(13, 8, 2, 2, 16);
    let tokens = Tensor::new(&[[1u32, 2, 3, 4], [5, 6, 7, 8]], &Device::Cpu).unwrap();
    let saved = VarMap::new();
    let before = cfg.init(&saved, "", 1, &Device::Cpu).unwrap().forward(&tokens).unwrap();
    let path = dir.join("gpt.safetensors");
    save_varmap(&path, &saved, &BTreeMap::new()).unwrap();
    let restored = VarMap::new();
    let model = cfg.init(&restored, "", 2, &Device::Cpu).unwrap();
    load_into_varmap(&path, &restored).unwrap();
    assert_eq!(flat(&model.forward(&tokens).unwrap()), flat(&before));

    // A checkpoint of a wider model names the offending parameter.
    let other = VarMap::new();
    GptConfig::new(13, 8, 2, 2, 32).init(&other, "", 1, &Device::Cpu).unwrap();
    let err = format!("{:#}", load_into_varmap(&path, &other).unwrap_err());
    assert!(err.contains("has shape") && err.contains("another model"), "{err}");

    // A truncated file is refused with a message naming the file.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = format!("{:#}", load_into_varmap(&cut, &restored).unwrap_err());
    assert!(err.contains("cut.safetensors") && err.contains("not a valid safetensors"), "{err}");
}

#[test]
fn initialisations_are_seeded_and_shaped_as_asked() {
    let dev = Device::Cpu;
    let get = |cfg: &RecurrentConfig, seed| cfg.init_tensors(seed, &dev).unwrap();
    let h = 6;
    // Identity (IRNN): W_hh = gain · I.
    let irnn = RecurrentConfig::rnn(Nonlinearity::Relu, 2, h).with_init(InitScheme::Identity, Some(0.9));
    let w_hh = &get(&irnn, 0)[1].1;
    let eye = (Tensor::eye(h, DType::F32, &dev).unwrap() * 0.9).unwrap();
    assert_eq!(flat(w_hh), flat(&eye));
    // Orthogonal: each gate block of W_hh has W Wᵀ = I.
    let ortho = RecurrentConfig::gru(2, h).with_init(InitScheme::Orthogonal, None);
    let w_hh = &get(&ortho, 3)[1].1;
    for g in 0..3 {
        let block = w_hh.narrow(0, g * h, h).unwrap();
        let wwt = block.matmul(&block.t().unwrap()).unwrap();
        let err =
            (wwt - Tensor::eye(h, DType::F32, &dev).unwrap()).unwrap().abs().unwrap().max_all().unwrap();
        assert!(err.to_scalar::<f32>().unwrap() < 1e-5);
    }
    // PyTorch default: U(±1/√H) everywhere, biases included; seeded.
    let torch = RecurrentConfig::lstm(3, h);
    let a = get(&torch, 5);
    assert_eq!(flat(&a[0].1), flat(&get(&torch, 5)[0].1));
    assert_ne!(flat(&a[0].1), flat(&get(&torch, 6)[0].1));
    let bound = 1.0 / (h as f32).sqrt();
    for (_, t) in &a {
        assert!(flat(t).iter().all(|v| v.abs() <= bound));
    }
    // Forget-gate bias: rows H..2H of bias_ih, zero in bias_hh; Xavier leaves other biases 0.
    let fb = RecurrentConfig::lstm(3, h).with_init(InitScheme::Xavier, None).with_forget_bias(1.0);
    let t = get(&fb, 0);
    let b_ih = flat(&t[2].1);
    assert!(b_ih[h..2 * h].iter().all(|&v| v == 1.0));
    assert!(b_ih[..h].iter().chain(&b_ih[2 * h..]).all(|&v| v == 0.0));
    assert!(flat(&t[3].1).iter().all(|&v| v == 0.0));
    // He: std ≈ √2/√fan_in on a large layer.
    let he = RecurrentConfig::rnn(Nonlinearity::Relu, 400, 400).with_init(InitScheme::He, None);
    let w = flat(&get(&he, 1)[0].1);
    let std = (w.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
    assert!((std - (2.0f64 / 400.0).sqrt()).abs() < 0.002, "He std {std}");
}

#[test]
fn typed_constructors_check_the_cell() {
    let varmap = VarMap::new();
    let cfg = RecurrentConfig::gru(2, 4);
    let vb = register(&varmap, "", cfg.init_tensors(0, &Device::Cpu).unwrap(), &Device::Cpu).unwrap();
    let err = Lstm::new(&cfg, vb).err().expect("a gru config is not an lstm");
    assert!(err.to_string().contains("needs a lstm config"), "{err}");
}

#[test]
fn dropout_is_active_in_training_only_and_seeded() {
    let cfg = RecurrentConfig::lstm(3, 8).with_layers(2).with_dropout(0.5);
    let model = cfg.init(&VarMap::new(), "", 0, &Device::Cpu).unwrap();
    let x = randn(&[2, 4, 3], 2);
    let eval = flat(&model.forward(&x).unwrap());
    let train = |seed| {
        let opts = ForwardOptions { train: true, dropout_seed: seed, ..Default::default() };
        flat(&model.forward_with(&x, None, &opts).unwrap().output)
    };
    assert_ne!(train(1), eval);
    assert_eq!(train(1), train(1));
    assert_ne!(train(1), train(2));
}

/// candle's recursive graph walk overflows an 8 MiB stack near T ≈ 7,000; the deep-stack runner
/// makes T = 10,000 forward + backward complete on the per-op autograd path. (The fused path is
/// one node per layer and needs no deep stack: see `tests/fused.rs`.)
#[test]
fn lstm_forward_backward_at_ten_thousand_steps() {
    let norms = with_deep_stack(|| {
        let cfg = RecurrentConfig::lstm(2, 16);
        let model: Recurrent = cfg.init(&VarMap::new(), "", 0, &Device::Cpu).unwrap();
        let x = randn(&[4, 10_000, 2], 3);
        let opts = ForwardOptions {
            record_state_grads: true,
            backend: RecurrentBackend::Autograd,
            ..Default::default()
        };
        let out = model.forward_with(&x, None, &opts).unwrap();
        let loss = out.output.narrow(1, 9_999, 1).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        out.taps.unwrap().grads(&grads).unwrap().h_norms(0).unwrap()
    });
    assert_eq!(norms.len(), 10_000);
    assert!(norms[9_999] > 0.0 && norms.iter().all(|v| v.is_finite()));
    assert!(norms[0] < norms[9_999], "the gradient should fade with distance");
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gradscope-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The GPT's fused CPU ops (LayerNorm, linear + GELU, causal attention) against candle's per-op
/// graph: logits, loss, every parameter gradient and the residual-stream taps, with and without
/// dropout (which sends the attention weights through the per-op path), at T below the context,
/// and at a T that spans several of the attention kernel's 64-row causal blocks. The fused block
/// splits the batch of 3 into one shard per rayon thread: it runs on 1, 2 and 3 threads.
#[test]
fn gpt_fused_ops_match_the_per_op_graph() {
    use gradscope::models::{cross_entropy, Gpt};
    // (dropout, context, T, heads, width): head size 8, then 32 (whole 16-column panels).
    for (dropout, context, t, heads, width) in
        [(0.0, 16, 13, 3, 24), (0.2, 16, 13, 3, 24), (0.0, 150, 141, 3, 24), (0.0, 80, 77, 2, 64)]
    {
        let mut cfg = GptConfig::new(11, context, 2, heads, width);
        cfg.dropout = dropout;
        let varmap = VarMap::new();
        let model: Gpt = cfg.init(&varmap, "", 3, &Device::Cpu).unwrap();
        // nanoGPT's init leaves biases at 0 and LayerNorm at (1, 0): perturb everything so that
        // every gradient formula is exercised.
        let mut vars: Vec<(String, candle_core::Var)> =
            varmap.data().lock().unwrap().clone().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, (_, var)) in vars.iter().enumerate() {
            let noise = (randn(var.dims(), 100 + k as u64) * 0.1).unwrap();
            var.set(&(var.as_tensor() + noise).unwrap()).unwrap();
        }
        let ids = |seed: u64| {
            let v: Vec<u32> =
                (0..3 * t).map(|i| ((i as u64 * 7 + seed * 5 + i as u64 / 5) % 11) as u32).collect();
            Tensor::from_vec(v, (3, t), &Device::Cpu).unwrap()
        };
        let (tokens, targets) = (ids(1), ids(2));
        let run = |backend: RecurrentBackend| {
            let opts = ForwardOptions {
                train: true,
                dropout_seed: 9,
                record_state_grads: true,
                backend,
                no_grad: false,
            };
            let out = model.forward_with(&tokens, &opts).unwrap();
            let loss = cross_entropy(&out.logits, &targets).unwrap();
            let grads = loss.backward().unwrap();
            let mut got = vec![("logits".to_string(), flat(&out.logits)), ("loss".into(), flat(&loss))];
            for (name, var) in &vars {
                got.push((format!("grad.{name}"), flat(grads.get(var.as_tensor()).unwrap())));
            }
            let taps = out.taps.unwrap().grads(&grads).unwrap();
            for (k, h) in taps.h.iter().enumerate() {
                got.push((format!("tap{k}"), flat(h)));
            }
            got
        };
        let reference = run(RecurrentBackend::Autograd);
        for threads in 1..=3 {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let fused = pool.install(|| run(RecurrentBackend::Fused));
            assert_eq!(fused.len(), reference.len());
            for ((name, f), (_, r)) in fused.iter().zip(&reference) {
                let scale = r.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
                for (a, b) in f.iter().zip(r) {
                    let close = (a - b).abs() <= 1e-4 * scale + 1e-6;
                    assert!(close, "dropout {dropout}, {threads} threads, {name}: {a} vs {b}");
                }
            }
        }
    }
}
