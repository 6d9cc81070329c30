//! Unit tests of the MLP: shapes, the taps against hand-computed gradients, the switches.

use super::*;

fn mse(out: &Tensor, y: &Tensor) -> Result<Tensor> {
    Ok(out.sub(y)?.sqr()?.mean_all()?)
}

/// Row-major (r, c) matrix product of f64 slices.
fn matmul(a: &[f64], b: &[f64], n: usize, k: usize, m: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * m];
    for i in 0..n {
        for j in 0..m {
            out[i * m + j] = (0..k).map(|p| a[i * k + p] * b[p * m + j]).sum();
        }
    }
    out
}

#[test]
fn linear_network_taps_equal_the_analytic_gradient() -> Result<()> {
    // y = W_3 W_2 W_1 x (biases 0 under Xavier). With L = mean_{b,o} (y - t)², the gradient
    // at h_l is δ_l = δ_{l+1} W_{l+1}, δ_out = 2 (y - t) / (B·O): computed here by hand.
    let dev = Device::Cpu;
    let cfg = MlpConfig { init: MlpInit::Xavier, ..MlpConfig::new(3, 2, 4, 4, Activation::Linear) };
    let mlp = Mlp::with_dtype(&cfg, 5, DType::F64, &dev)?;
    let (b, i, o) = (5, 3, 2);
    let xs: Vec<f64> = (0..b * i).map(|k| ((k * 7 % 11) as f64 - 5.0) / 4.0).collect();
    let ts: Vec<f64> = (0..b * o).map(|k| (k as f64).sin()).collect();
    let x = Tensor::from_vec(xs.clone(), (b, i), &dev)?;
    let t = Tensor::from_vec(ts.clone(), (b, o), &dev)?;
    let profile = mlp.gradient_profile(&x, 0, |out| mse(out, &t))?;

    let ws: Vec<(Vec<f64>, usize, usize)> = mlp
        .weights()
        .iter()
        .map(|w| {
            let (r, c) = w.dims2().unwrap();
            (w.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap(), r, c)
        })
        .collect();
    let transpose = |m: &[f64], r: usize, c: usize| -> Vec<f64> {
        let mut out = vec![0.0; r * c];
        for a in 0..r {
            for bb in 0..c {
                out[bb * r + a] = m[a * c + bb];
            }
        }
        out
    };
    // Forward: h_l = h_{l-1} W_lᵀ.
    let mut hs = vec![xs.clone()];
    let mut width = i;
    for (w, r, c) in &ws {
        let next = matmul(hs.last().unwrap(), &transpose(w, *r, *c), b, width, *r);
        hs.push(next);
        width = *r;
    }
    let y = hs.last().unwrap();
    let mut delta: Vec<f64> = y.iter().zip(&ts).map(|(y, t)| 2.0 * (y - t) / (b * o) as f64).collect();
    let mut expected = Vec::new();
    let mut expected_w = Vec::new();
    for l in (0..ws.len()).rev() {
        let (w, r, c) = &ws[l];
        // ∂L/∂W_l = δ_lᵀ h_{l-1}.
        let gw = matmul(&transpose(&delta, b, *r), &hs[l], *r, b, *c);
        expected_w.push(gw.iter().map(|v| v * v).sum::<f64>().sqrt());
        delta = matmul(&delta, w, b, *r, *c); // δ_{l-1} = δ_l W_l
        if l > 0 {
            expected.push(delta.iter().map(|v| v * v).sum::<f64>().sqrt());
        }
    }
    expected.reverse();
    expected_w.reverse();
    assert_eq!(profile.hidden.len(), 3);
    for (got, want) in profile.hidden.iter().zip(&expected) {
        assert!((got - want).abs() <= 1e-12 * want.max(1.0), "hidden {got} vs {want}");
    }
    for (got, want) in profile.weights.iter().zip(&expected_w) {
        assert!((got - want).abs() <= 1e-12 * want.max(1.0), "weight {got} vs {want}");
    }
    Ok(())
}

/// ∂L/∂h_l against central differences: add ±ε to one entry of h_l and re-run the rest of
/// the network, through batch/layer norm, residual connections and every nonlinearity.
#[test]
fn taps_match_finite_differences_through_norms_and_nonlinearities() -> Result<()> {
    let dev = Device::Cpu;
    for (act, norm, residual) in [
        (Activation::Tanh, Norm::Batch, false),
        (Activation::Gelu, Norm::Layer, true),
        (Activation::Prelu, Norm::None, true),
        (Activation::Elu, Norm::Batch, true),
        (Activation::Sigmoid, Norm::Layer, false),
    ] {
        let cfg = MlpConfig { init: MlpInit::Pytorch, norm, residual, ..MlpConfig::new(3, 2, 4, 4, act) };
        let mlp = Mlp::with_dtype(&cfg, 11, DType::F64, &dev)?;
        let b = 6;
        let xs: Vec<f64> = (0..b * 3).map(|k| ((k * 5 % 13) as f64 - 6.0) / 3.0).collect();
        let x = Tensor::from_vec(xs, (b, 3), &dev)?;
        let t = Tensor::from_vec((0..b * 2).map(|k| (k as f64).cos()).collect::<Vec<_>>(), (b, 2), &dev)?;
        let out = mlp.forward(&x, Mode::Probe { dropout_seed: 0 }, true)?;
        let loss = mse(&out.output, &t)?;
        let grads = loss.backward()?;
        let taps = out.taps.unwrap();
        for (l, tap) in taps.iter().enumerate() {
            let g = grads.get(tap.as_tensor()).unwrap().flatten_all()?.to_vec1::<f64>()?;
            // Nudge one entry of the tap and re-run: loss(tap + ε e_k).
            for k in [0, 5, 13, 23] {
                let eps = 1e-6;
                let eval = |delta: f64| -> Result<f64> {
                    let mut v = vec![0.0; b * 4];
                    v[k] = delta;
                    tap.set(&Tensor::from_vec(v, (b, 4), &dev)?)?;
                    let o = forward_with_nudge(&mlp, &x, l, tap.as_tensor())?;
                    mse(&o, &t)?.to_scalar::<f64>().map_err(Into::into)
                };
                let fd = (eval(eps)? - eval(-eps)?) / (2.0 * eps);
                assert!(
                    (fd - g[k]).abs() < 1e-6 * (1.0 + g[k].abs()),
                    "{act} {norm} res={residual} layer {l} entry {k}: tap {} vs fd {fd}",
                    g[k]
                );
            }
        }
    }
    Ok(())
}

/// The forward pass with `nudge` added to hidden representation `layer` (0-based).
fn forward_with_nudge(mlp: &Mlp, x: &Tensor, layer: usize, nudge: &Tensor) -> Result<Tensor> {
    let mut h = x.clone();
    let cfg = mlp.config();
    let last = mlp.layers.len() - 1;
    for (l, lay) in mlp.layers.iter().enumerate() {
        let z = h.matmul(&lay.weight.as_tensor().t()?)?.broadcast_add(lay.bias.as_tensor())?;
        if l == last {
            return Ok(z);
        }
        let z = match &lay.norm {
            Some(n) => n.forward(&z, Mode::Probe { dropout_seed: 0 })?,
            None => z,
        };
        let a = cfg.activation.apply(&z, lay.slope.as_ref())?;
        h = if cfg.residual && l > 0 { (h + a)? } else { a };
        if l == layer {
            h = (h + nudge)?;
        }
    }
    unreachable!()
}

#[test]
fn batch_and_layer_norm_match_hand_computed_values() -> Result<()> {
    let dev = Device::Cpu;
    let z = Tensor::new(&[[1.0f64, 2.0, 6.0], [3.0, 2.0, 0.0]], &dev)?;
    let layer = |kind| NormLayer {
        kind,
        gamma: Var::new(&[2.0f64, 1.0, 0.5], &dev).unwrap(),
        beta: Var::new(&[0.0f64, 1.0, -1.0], &dev).unwrap(),
        running: Mutex::new((
            Tensor::zeros(3, DType::F64, &dev).unwrap(),
            Tensor::ones(3, DType::F64, &dev).unwrap(),
        )),
    };
    // Batch norm, per column over the two rows: column 0 has mean 2, biased var 1 -> ∓1;
    // column 1 is constant -> 0; column 2 has mean 3, var 9 -> ±1.
    let bn = layer(Norm::Batch);
    let y = bn.forward(&z, Mode::Train { dropout_seed: 0 })?.to_vec2::<f64>()?;
    let s = |v: f64, var: f64| v / (var + NORM_EPS).sqrt();
    let want = [
        [2.0 * s(-1.0, 1.0), 1.0, 0.5 * s(3.0, 9.0) - 1.0],
        [2.0 * s(1.0, 1.0), 1.0, 0.5 * s(-3.0, 9.0) - 1.0],
    ];
    for (r, w) in y.iter().zip(&want) {
        for (a, b) in r.iter().zip(w) {
            assert!((a - b).abs() < 1e-12, "bn {a} vs {b}");
        }
    }
    // Running stats: 0.9·0 + 0.1·mean, 0.9·1 + 0.1·unbiased var (2, 0, 18).
    let (rm, rv) = bn.running.lock().unwrap().clone();
    assert_eq!(rm.to_vec1::<f64>()?, vec![0.2, 0.2, 0.30000000000000004]);
    let rv = rv.to_vec1::<f64>()?;
    for (a, b) in rv.iter().zip([1.1, 0.9, 2.7]) {
        assert!((a - b).abs() < 1e-12, "running var {a} vs {b}");
    }
    // Evaluation uses the running statistics.
    let e = bn.forward(&z, Mode::Eval)?.to_vec2::<f64>()?;
    assert!((e[0][0] - 2.0 * (1.0 - 0.2) / (1.1 + NORM_EPS).sqrt()).abs() < 1e-12);
    // A probe leaves them alone.
    bn.forward(&z, Mode::Probe { dropout_seed: 0 })?;
    assert_eq!(bn.running.lock().unwrap().0.to_vec1::<f64>()?, vec![0.2, 0.2, 0.30000000000000004]);

    // Layer norm, per row over the three features: row 0 has mean 3, var 14/3; row 1 mean
    // 5/3, var 14/9.
    let ln = layer(Norm::Layer);
    let y = ln.forward(&z, Mode::Train { dropout_seed: 0 })?.to_vec2::<f64>()?;
    let (m0, v0, m1, v1) = (3.0, 14.0 / 3.0, 5.0 / 3.0, 14.0 / 9.0);
    let want = [
        [2.0 * s(1.0 - m0, v0), s(2.0 - m0, v0) + 1.0, 0.5 * s(6.0 - m0, v0) - 1.0],
        [2.0 * s(3.0 - m1, v1), s(2.0 - m1, v1) + 1.0, 0.5 * s(0.0 - m1, v1) - 1.0],
    ];
    for (r, w) in y.iter().zip(&want) {
        for (a, b) in r.iter().zip(w) {
            assert!((a - b).abs() < 1e-12, "ln {a} vs {b}");
        }
    }
    Ok(())
}

#[test]
fn activations_match_their_definitions() -> Result<()> {
    let dev = Device::Cpu;
    let xs = [-2.0f64, -0.5, 0.5, 3.0];
    let x = Tensor::new(&xs, &dev)?;
    let slope = Var::new(&[PRELU_INIT], &dev)?;
    let erf = |v: f64| {
        // Abramowitz–Stegun 7.1.26 is too coarse; integrate instead (Simpson, fine grid).
        let n = 20_000;
        let h = v / n as f64;
        let f = |t: f64| (-t * t).exp();
        let mut s = f(0.0) + f(v);
        for k in 1..n {
            s += f(k as f64 * h) * if k % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
    };
    for act in Activation::ALL {
        let y = act.apply(&x, Some(&slope))?.to_vec1::<f64>()?;
        for (&v, &got) in xs.iter().zip(&y) {
            let want = match act {
                Activation::Sigmoid => 1.0 / (1.0 + (-v).exp()),
                Activation::Tanh => v.tanh(),
                Activation::Relu => v.max(0.0),
                Activation::LeakyRelu => v.max(LEAKY_SLOPE * v),
                Activation::Prelu => v.max(PRELU_INIT * v),
                Activation::Elu => {
                    if v > 0.0 {
                        v
                    } else {
                        v.exp() - 1.0
                    }
                }
                Activation::Gelu => 0.5 * v * (1.0 + erf(v / 2f64.sqrt())),
                Activation::Linear => v,
            };
            assert!((got - want).abs() < 1e-6, "{act}({v}) = {got}, want {want}");
        }
    }
    Ok(())
}

#[test]
fn names_round_trip_and_seeds_repeat() -> Result<()> {
    for a in Activation::ALL {
        assert_eq!(a.name().parse::<Activation>().unwrap(), a);
    }
    for i in MlpInit::ALL {
        assert_eq!(i.name().parse::<MlpInit>().unwrap(), i);
    }
    for n in Norm::ALL {
        assert_eq!(n.name().parse::<Norm>().unwrap(), n);
    }
    assert!("swish".parse::<Activation>().is_err());
    let cfg = MlpConfig::new(4, 1, 8, 3, Activation::Relu);
    let a = Mlp::new(&cfg, 3, &Device::Cpu)?;
    let b = Mlp::new(&cfg, 3, &Device::Cpu)?;
    for ((_, x), (_, y)) in a.named_parameters().iter().zip(b.named_parameters().iter()) {
        assert_eq!(x.flatten_all()?.to_vec1::<f32>()?, y.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(())
}
