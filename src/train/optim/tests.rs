//! Each rule against scalar f64 code transcribing the pseudo-code of the `torch.optim` docs.
//!
//! The hyper-parameters are chosen so that every term moves the result by far more than the
//! tolerance: a large `eps` where its placement matters, a zero gradient entry (where
//! `√v = 0` leaves only `eps`), and weight decays big enough to see.

use super::*;
use candle_core::Device;

const P0: [f64; 3] = [1.0, -2.0, 0.5];
/// Gradients of steps 1, 2, 3 (as if from `loss = Σ p·c_t`).
const GRADS: [[f64; 3]; 3] = [[0.1, -0.2, 0.3], [0.4, 0.0, -0.5], [-0.3, 0.6, 0.2]];
/// f32 arithmetic against f64: a wrong formula misses by > 1e-3.
const TOL: f64 = 2e-6;

type Trajectory = Vec<[f64; 3]>;

fn grads_for(var: &Var, g: &[f64; 3]) -> Result<GradStore> {
    let mut grads = GradStore::default();
    let g: Vec<f32> = g.iter().map(|&x| x as f32).collect();
    grads.insert(var.as_tensor(), Tensor::new(g, &Device::Cpu)?);
    Ok(grads)
}

fn param() -> Result<Var> {
    let p0: Vec<f32> = P0.iter().map(|&x| x as f32).collect();
    Var::new(p0, &Device::Cpu)
}

/// Runs `config` over [`GRADS`] and checks the parameter after every step against `want`.
fn check(config: OptimizerConfig, lr: f64, want: &Trajectory) -> Result<()> {
    let var = param()?;
    let mut opt = Optimizer::new(config.clone(), vec![("w".into(), var.clone())])?;
    for (t, g) in GRADS.iter().enumerate() {
        opt.step(&grads_for(&var, g)?, lr)?;
        let got = var.as_tensor().to_vec1::<f32>()?;
        for i in 0..3 {
            let (got, want) = (got[i] as f64, want[t][i]);
            assert!((got - want).abs() < TOL, "{config:?} step {} elem {i}: got {got}, want {want}", t + 1);
        }
    }
    Ok(())
}

/// torch docs, SGD (dampening τ = 0).
fn ref_sgd(lr: f64, momentum: f64, nesterov: bool, wd: f64) -> Trajectory {
    let (mut p, mut b, mut out) = (P0, [0.0; 3], vec![]);
    for (t, grad) in GRADS.iter().enumerate() {
        for i in 0..3 {
            let mut g = grad[i] + wd * p[i];
            if momentum != 0.0 {
                b[i] = if t > 0 { momentum * b[i] + g } else { g };
                g = if nesterov { g + momentum * b[i] } else { b[i] };
            }
            p[i] -= lr * g;
        }
        out.push(p);
    }
    out
}

/// torch docs, Adam (L2 `wd`, `decoupled = false`) and AdamW (`decoupled = true`), no amsgrad.
fn ref_adam(lr: f64, b1: f64, b2: f64, eps: f64, wd: f64, decoupled: bool) -> Trajectory {
    let (mut p, mut m, mut v, mut out) = (P0, [0.0; 3], [0.0; 3], vec![]);
    for (t, grad) in GRADS.iter().enumerate() {
        let t = (t + 1) as i32;
        for i in 0..3 {
            let mut g = grad[i];
            if decoupled {
                p[i] -= lr * wd * p[i];
            } else {
                g += wd * p[i];
            }
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            let m_hat = m[i] / (1.0 - b1.powi(t));
            let v_hat = v[i] / (1.0 - b2.powi(t));
            p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
        out.push(p);
    }
    out
}

/// torch docs, RMSprop.
fn ref_rmsprop(lr: f64, alpha: f64, eps: f64, momentum: f64, centered: bool, wd: f64) -> Trajectory {
    let (mut p, mut v, mut b, mut ga, mut out) = (P0, [0.0; 3], [0.0; 3], [0.0; 3], vec![]);
    for grad in GRADS.iter() {
        for i in 0..3 {
            let g = grad[i] + wd * p[i];
            v[i] = alpha * v[i] + (1.0 - alpha) * g * g;
            let mut v_tilde = v[i];
            if centered {
                ga[i] = alpha * ga[i] + (1.0 - alpha) * g;
                v_tilde -= ga[i] * ga[i];
            }
            if momentum > 0.0 {
                b[i] = momentum * b[i] + g / (v_tilde.sqrt() + eps);
                p[i] -= lr * b[i];
            } else {
                p[i] -= lr * g / (v_tilde.sqrt() + eps);
            }
        }
        out.push(p);
    }
    out
}

/// torch docs, Adagrad.
fn ref_adagrad(lr: f64, lr_decay: f64, eps: f64, wd: f64, init_acc: f64) -> Trajectory {
    let (mut p, mut sum, mut out) = (P0, [init_acc; 3], vec![]);
    for (t, grad) in GRADS.iter().enumerate() {
        let clr = lr / (1.0 + t as f64 * lr_decay);
        for i in 0..3 {
            let g = grad[i] + wd * p[i];
            sum[i] += g * g;
            p[i] -= clr * g / (sum[i].sqrt() + eps);
        }
        out.push(p);
    }
    out
}

fn sgd(momentum: f64, nesterov: bool, weight_decay: f64) -> OptimizerConfig {
    OptimizerConfig::Sgd { momentum, nesterov, weight_decay }
}

#[test]
fn sgd_plain_matches_torch() -> Result<()> {
    // torch.optim.SGD([p], lr=0.1)
    check(sgd(0.0, false, 0.0), 0.1, &ref_sgd(0.1, 0.0, false, 0.0))?;
    // By hand: p ← p − 0.1·Σg = (1 − 0.02, −2 − 0.04, 0.5 − 0.0).
    let end = ref_sgd(0.1, 0.0, false, 0.0)[2];
    assert!((end[0] - 0.98).abs() < 1e-12 && (end[1] + 2.04).abs() < 1e-12 && (end[2] - 0.5).abs() < 1e-12);
    Ok(())
}

#[test]
fn sgd_momentum_matches_torch() -> Result<()> {
    // torch.optim.SGD([p], lr=0.1, momentum=0.9)
    check(sgd(0.9, false, 0.0), 0.1, &ref_sgd(0.1, 0.9, false, 0.0))?;
    // By hand, element 0: b = 0.1, 0.49, 0.141; p = 1 − 0.1·(0.1 + 0.49 + 0.141) = 0.9269.
    assert!((ref_sgd(0.1, 0.9, false, 0.0)[2][0] - 0.9269).abs() < 1e-12);
    Ok(())
}

#[test]
fn sgd_nesterov_matches_torch() -> Result<()> {
    // torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    check(sgd(0.9, true, 0.0), 0.1, &ref_sgd(0.1, 0.9, true, 0.0))?;
    // By hand, element 0: g + 0.9·b = 0.19, 0.841, −0.1731; p = 1 − 0.1·0.8579 = 0.91421.
    assert!((ref_sgd(0.1, 0.9, true, 0.0)[2][0] - 0.91421).abs() < 1e-12);
    Ok(())
}

#[test]
fn sgd_weight_decay_matches_torch() -> Result<()> {
    // torch.optim.SGD([p], lr=0.1, weight_decay=0.1) and with momentum=0.5
    check(sgd(0.0, false, 0.1), 0.1, &ref_sgd(0.1, 0.0, false, 0.1))?;
    check(sgd(0.5, false, 0.1), 0.1, &ref_sgd(0.1, 0.5, false, 0.1))
}

#[test]
fn adam_matches_torch() -> Result<()> {
    // torch.optim.Adam([p], lr=0.01)
    let want = ref_adam(0.01, 0.9, 0.999, 1e-8, 0.0, false);
    check(OptimizerConfig::adam(), 0.01, &want)?;
    // By hand: the bias-corrected first step is lr·g/(|g| + eps) ≈ lr·sign(g).
    assert!((want[0][0] - 0.99).abs() < 1e-7 && (want[0][1] + 1.99).abs() < 1e-7);
    Ok(())
}

#[test]
fn adam_l2_weight_decay_and_eps_placement_match_torch() -> Result<()> {
    // torch.optim.Adam([p], lr=0.05, betas=(0.8, 0.95), eps=0.05, weight_decay=0.1)
    let config = OptimizerConfig::Adam { beta1: 0.8, beta2: 0.95, eps: 0.05, weight_decay: 0.1 };
    check(config, 0.05, &ref_adam(0.05, 0.8, 0.95, 0.05, 0.1, false))
}

#[test]
fn adamw_decoupled_decay_matches_torch() -> Result<()> {
    // torch.optim.AdamW([p], lr=0.05, betas=(0.8, 0.95), eps=0.05, weight_decay=0.5)
    let config = OptimizerConfig::Adamw { beta1: 0.8, beta2: 0.95, eps: 0.05, weight_decay: 0.5 };
    let want = ref_adam(0.05, 0.8, 0.95, 0.05, 0.5, true);
    check(config, 0.05, &want)?;
    // Decoupled decay is not L2: the two differ visibly with the same numbers.
    let l2 = ref_adam(0.05, 0.8, 0.95, 0.05, 0.5, false);
    assert!((want[2][1] - l2[2][1]).abs() > 1e-3);
    // torch.optim.AdamW([p], lr=0.01) defaults (weight_decay=0.01).
    check(OptimizerConfig::adamw(), 0.01, &ref_adam(0.01, 0.9, 0.999, 1e-8, 0.01, true))
}

#[test]
fn rmsprop_plain_matches_torch() -> Result<()> {
    // torch.optim.RMSprop([p], lr=0.01) and with eps=0.1, alpha=0.9
    check(OptimizerConfig::rmsprop(), 0.01, &ref_rmsprop(0.01, 0.99, 1e-8, 0.0, false, 0.0))?;
    let config =
        OptimizerConfig::Rmsprop { alpha: 0.9, eps: 0.1, momentum: 0.0, centered: false, weight_decay: 0.0 };
    check(config, 0.01, &ref_rmsprop(0.01, 0.9, 0.1, 0.0, false, 0.0))
}

#[test]
fn rmsprop_momentum_matches_torch() -> Result<()> {
    // torch.optim.RMSprop([p], lr=0.01, alpha=0.9, eps=0.1, momentum=0.8, weight_decay=0.1)
    let config =
        OptimizerConfig::Rmsprop { alpha: 0.9, eps: 0.1, momentum: 0.8, centered: false, weight_decay: 0.1 };
    check(config, 0.01, &ref_rmsprop(0.01, 0.9, 0.1, 0.8, false, 0.1))
}

#[test]
fn rmsprop_centered_matches_torch() -> Result<()> {
    // torch.optim.RMSprop([p], lr=0.01, alpha=0.9, eps=0.1, centered=True), then with momentum=0.8
    let config =
        OptimizerConfig::Rmsprop { alpha: 0.9, eps: 0.1, momentum: 0.0, centered: true, weight_decay: 0.0 };
    check(config, 0.01, &ref_rmsprop(0.01, 0.9, 0.1, 0.0, true, 0.0))?;
    let config =
        OptimizerConfig::Rmsprop { alpha: 0.9, eps: 0.1, momentum: 0.8, centered: true, weight_decay: 0.0 };
    check(config, 0.01, &ref_rmsprop(0.01, 0.9, 0.1, 0.8, true, 0.0))
}

#[test]
fn adagrad_matches_torch() -> Result<()> {
    // torch.optim.Adagrad([p], lr=0.1)
    let want = ref_adagrad(0.1, 0.0, 1e-10, 0.0, 0.0);
    check(OptimizerConfig::adagrad(), 0.1, &want)?;
    // By hand: the first step is lr·g/|g| = lr·sign(g).
    assert!((want[0][0] - 0.9).abs() < 1e-9);
    // torch.optim.Adagrad([p], lr=0.1, lr_decay=0.5, weight_decay=0.1, initial_accumulator_value=0.2,
    //                     eps=0.01)
    let config = OptimizerConfig::Adagrad {
        lr_decay: 0.5,
        eps: 0.01,
        weight_decay: 0.1,
        initial_accumulator_value: 0.2,
    };
    check(config, 0.1, &ref_adagrad(0.1, 0.5, 0.01, 0.1, 0.2))
}

#[test]
fn parameter_without_gradient_is_skipped_and_keeps_its_own_step() -> Result<()> {
    // loss₁ = Σ a·c uses only `a`; loss₂ = Σ a·c + Σ b·c uses both. Adam's bias correction for
    // `b` at its first update must use t = 1, as PyTorch's per-parameter `state['step']` does.
    let dev = Device::Cpu;
    let a = param()?;
    let b = param()?;
    let c = Tensor::new(&[0.1f32, -0.2, 0.3], &dev)?;
    let mut opt =
        Optimizer::new(OptimizerConfig::adam(), vec![("a".into(), a.clone()), ("b".into(), b.clone())])?;
    let grads = a.as_tensor().mul(&c)?.sum_all()?.backward()?;
    assert!(grads.get(b.as_tensor()).is_none());
    opt.step(&grads, 0.01)?;
    assert_eq!(b.as_tensor().to_vec1::<f32>()?, P0.map(|x| x as f32).to_vec());
    let loss = (a.as_tensor().mul(&c)?.sum_all()? + b.as_tensor().mul(&c)?.sum_all()?)?;
    opt.step(&loss.backward()?, 0.01)?;
    let want = ref_adam(0.01, 0.9, 0.999, 1e-8, 0.0, false)[0];
    let got = b.as_tensor().to_vec1::<f32>()?;
    for i in 0..3 {
        assert!((got[i] as f64 - want[i]).abs() < TOL, "elem {i}: {} vs {}", got[i], want[i]);
    }
    let state: HashMap<String, Tensor> = opt.state_tensors()?.into_iter().collect();
    assert_eq!(state["a.step"].to_scalar::<i64>()?, 2);
    assert_eq!(state["b.step"].to_scalar::<i64>()?, 1);
    Ok(())
}

fn all_configs() -> Vec<OptimizerConfig> {
    vec![
        sgd(0.0, false, 0.0),
        sgd(0.9, true, 0.01),
        OptimizerConfig::Adam { beta1: 0.8, beta2: 0.95, eps: 0.05, weight_decay: 0.1 },
        OptimizerConfig::adamw(),
        OptimizerConfig::Rmsprop { alpha: 0.9, eps: 0.1, momentum: 0.8, centered: true, weight_decay: 0.1 },
        OptimizerConfig::Adagrad {
            lr_decay: 0.5,
            eps: 0.01,
            weight_decay: 0.1,
            initial_accumulator_value: 0.2,
        },
    ]
}

#[test]
fn state_round_trip_resumes_exactly() -> Result<()> {
    for config in all_configs() {
        let var = param()?;
        let mut opt = Optimizer::new(config.clone(), vec![("w".into(), var.clone())])?;
        for g in &GRADS[..2] {
            opt.step(&grads_for(&var, g)?, 0.03)?;
        }
        // Through safetensors bytes, as a checkpoint would go.
        let state = opt.state_tensors()?;
        let bytes = safetensors::serialize(state.iter().map(|(k, v)| (k.as_str(), v)), None).unwrap();
        let loaded = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
        let resumed_var = Var::from_tensor(&var.as_tensor().copy()?)?;
        let mut resumed = Optimizer::new(config.clone(), vec![("w".into(), resumed_var.clone())])?;
        resumed.load_state(&loaded)?;
        let fresh_var = Var::from_tensor(&var.as_tensor().copy()?)?;
        let mut fresh = Optimizer::new(config.clone(), vec![("w".into(), fresh_var.clone())])?;

        opt.step(&grads_for(&var, &GRADS[2])?, 0.03)?;
        resumed.step(&grads_for(&resumed_var, &GRADS[2])?, 0.03)?;
        fresh.step(&grads_for(&fresh_var, &GRADS[2])?, 0.03)?;
        let want = var.as_tensor().to_vec1::<f32>()?;
        assert_eq!(resumed_var.as_tensor().to_vec1::<f32>()?, want, "{config:?}");
        // Without the state the step differs (momentum-less SGD has none to lose).
        if !config.slot_names().is_empty() {
            assert_ne!(fresh_var.as_tensor().to_vec1::<f32>()?, want, "{config:?}");
        }
        for ((ka, ta), (kb, tb)) in opt.state_tensors()?.iter().zip(resumed.state_tensors()?.iter()) {
            assert_eq!(ka, kb);
            let (ta, tb) = (ta.to_dtype(DType::F64)?.flatten_all()?, tb.to_dtype(DType::F64)?.flatten_all()?);
            assert_eq!(ta.to_vec1::<f64>()?, tb.to_vec1::<f64>()?, "{ka}");
        }
    }
    Ok(())
}

#[test]
fn load_state_names_missing_mismatched_and_foreign_slots() -> Result<()> {
    let var = param()?;
    let mut opt = Optimizer::new(OptimizerConfig::adam(), vec![("w".into(), var.clone())])?;
    opt.step(&grads_for(&var, &GRADS[0])?, 0.01)?;
    let good: HashMap<String, Tensor> = opt.state_tensors()?.into_iter().collect();
    let before = opt.state_tensors()?;
    let err = |opt: &mut Optimizer, tensors: &HashMap<String, Tensor>| {
        opt.load_state(tensors).unwrap_err().to_string()
    };

    let mut missing = good.clone();
    missing.remove("w.exp_avg_sq");
    assert!(err(&mut opt, &missing).contains("'w.exp_avg_sq'"));
    let mut no_step = good.clone();
    no_step.remove("w.step");
    assert!(err(&mut opt, &no_step).contains("'w.step'"));
    let mut wrong_shape = good.clone();
    wrong_shape.insert("w.exp_avg".into(), Tensor::zeros(4, DType::F32, &Device::Cpu)?);
    assert!(err(&mut opt, &wrong_shape).contains("'w.exp_avg'"));
    let mut wrong_dtype = good.clone();
    wrong_dtype.insert("w.exp_avg".into(), Tensor::zeros(3, DType::F64, &Device::Cpu)?);
    assert!(err(&mut opt, &wrong_dtype).contains("'w.exp_avg'"));
    let mut bad_step = good.clone();
    bad_step.insert("w.step".into(), Tensor::new(-1i64, &Device::Cpu)?);
    assert!(err(&mut opt, &bad_step).contains("'w.step'"));
    // Nothing was changed by the failed loads.
    for ((ka, ta), (kb, tb)) in before.iter().zip(opt.state_tensors()?.iter()) {
        assert_eq!(ka, kb);
        assert_eq!(
            ta.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?,
            tb.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?
        );
    }

    // Adam's state offered to SGD with momentum: the foreign slots are refused by name.
    let mut sgd_opt = Optimizer::new(sgd(0.9, false, 0.0), vec![("w".into(), var.clone())])?;
    assert!(err(&mut sgd_opt, &good).contains("'w.exp_avg'"));
    Ok(())
}

#[test]
fn step_rejects_bad_lr_and_misshapen_gradients() -> Result<()> {
    let var = param()?;
    let mut opt = Optimizer::new(OptimizerConfig::sgd(), vec![("w".into(), var.clone())])?;
    let grads = grads_for(&var, &GRADS[0])?;
    assert!(opt.step(&grads, -0.1).unwrap_err().to_string().contains("lr"));
    assert!(opt.step(&grads, f64::NAN).is_err());
    let mut bad = GradStore::default();
    bad.insert(var.as_tensor(), Tensor::zeros(2, DType::F32, &Device::Cpu)?);
    assert!(opt.step(&bad, 0.1).unwrap_err().to_string().contains("'w'"));
    assert_eq!(var.as_tensor().to_vec1::<f32>()?, P0.map(|x| x as f32).to_vec());
    Ok(())
}

#[test]
fn new_rejects_duplicate_parameters() -> Result<()> {
    let (a, b) = (param()?, param()?);
    let dup_name = vec![("w".to_string(), a.clone()), ("w".to_string(), b)];
    assert!(Optimizer::new(OptimizerConfig::sgd(), dup_name).is_err());
    let dup_var = vec![("a".to_string(), a.clone()), ("b".to_string(), a)];
    assert!(Optimizer::new(OptimizerConfig::sgd(), dup_var).is_err());
    Ok(())
}

#[test]
fn config_parses_validates_and_serialises() {
    for name in OptimizerConfig::NAMES {
        let c: OptimizerConfig = name.parse().unwrap();
        assert_eq!(c.name(), name);
        c.validate().unwrap();
        // A bare `{"name": ...}` is PyTorch's defaults, the same as the parsed name.
        let bare: OptimizerConfig = serde_json::from_str(&format!(r#"{{"name":"{name}"}}"#)).unwrap();
        assert_eq!(bare, c);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<OptimizerConfig>(&json).unwrap(), c);
    }
    assert!("adamax".parse::<OptimizerConfig>().unwrap_err().contains("adamax"));
    assert_eq!(
        serde_json::to_value(OptimizerConfig::adam()).unwrap(),
        serde_json::json!({"name": "adam", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0})
    );
    let err = |c: OptimizerConfig| c.validate().unwrap_err().to_string();
    assert!(err(sgd(1.0, false, 0.0)).contains("momentum must be in [0, 1)"));
    assert!(err(sgd(0.0, true, 0.0)).contains("nesterov requires momentum > 0"));
    assert!(err(sgd(0.0, false, -1.0)).contains("weight_decay"));
    assert!(
        err(OptimizerConfig::Adam { beta1: 0.9, beta2: 1.0, eps: 1e-8, weight_decay: 0.0 }).contains("beta2")
    );
    assert!(err(OptimizerConfig::adamw().with_weight_decay(f64::NAN)).contains("weight_decay"));
    assert!(err(OptimizerConfig::Rmsprop {
        alpha: 1.5,
        eps: 1e-8,
        momentum: 0.0,
        centered: false,
        weight_decay: 0.0
    })
    .contains("alpha"));
    assert!(err(OptimizerConfig::Adagrad {
        lr_decay: -0.1,
        eps: 1e-10,
        weight_decay: 0.0,
        initial_accumulator_value: 0.0
    })
    .contains("lr_decay"));
    assert!(Optimizer::new(sgd(0.0, true, 0.0), vec![]).is_err());
}

/// Exempt parameters take the rule without its weight-decay term (a PyTorch parameter group with
/// `weight_decay=0`).
#[test]
fn exempt_parameters_skip_weight_decay_only() {
    let dev = Device::Cpu;
    let w = Var::from_tensor(&Tensor::new(&[[1f32, 2.0]], &dev).unwrap()).unwrap();
    let b = Var::from_tensor(&Tensor::new(&[1f32, 2.0], &dev).unwrap()).unwrap();
    let cfg = OptimizerConfig::adamw().with_weight_decay(0.5);
    let mut opt = Optimizer::new(cfg, vec![("w".into(), w.clone()), ("b".into(), b.clone())]).unwrap();
    opt.exempt_from_weight_decay(|_, v| v.rank() < 2);
    let loss = (w.as_tensor().sum_all().unwrap() + b.as_tensor().sum_all().unwrap()).unwrap();
    opt.step(&loss.backward().unwrap(), 0.1).unwrap();
    // AdamW's first step moves every element by lr (m̂/√v̂ = 1 for a constant gradient, eps
    // aside); decay additionally scales the matrix by (1 - lr·wd) = 0.95 first.
    let (wv, bv) = (w.as_tensor().to_vec2::<f32>().unwrap(), b.as_tensor().to_vec1::<f32>().unwrap());
    assert!((wv[0][0] - (0.95 - 0.1)).abs() < 1e-5 && (wv[0][1] - (1.9 - 0.1)).abs() < 1e-5, "{wv:?}");
    assert!((bv[0] - 0.9).abs() < 1e-5 && (bv[1] - 1.9).abs() < 1e-5, "{bv:?}");
}
