//! Saturation statistics of a recurrent stack on given inputs: how many tanh/sigmoid units sit
//! where their derivative is below 0.01 (so they pass almost no gradient), how many ReLUs are
//! dead, and the LSTM's mean forget gate, the factor by which c_t carries gradient back.

use super::{CellKind, Recurrent};
use crate::models::cells::{gru_gates, lstm_gates, Nonlinearity};
use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};

/// A unit counts as saturated when its derivative is below this.
pub const SATURATION_DERIVATIVE: f64 = 0.01;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSaturation {
    pub layer: usize,
    /// (gate, fraction of unit-steps whose derivative < 0.01), e.g. ("f", 0.02); for a vanilla
    /// RNN the gate is its nonlinearity; ReLU reports the dead fraction (derivative 0).
    pub saturated: Vec<(String, f64)>,
    /// LSTM only: mean forget-gate activation over units, steps and sequences.
    pub mean_forget_gate: Option<f64>,
}

/// Running fraction of elements below the threshold.
#[derive(Default)]
struct Fraction {
    hits: f64,
    total: f64,
}

impl Fraction {
    fn add(&mut self, derivative: &Tensor) -> Result<()> {
        let below =
            derivative.lt(SATURATION_DERIVATIVE)?.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
        self.hits += below;
        self.total += derivative.elem_count() as f64;
        Ok(())
    }
    fn value(&self) -> f64 {
        if self.total == 0.0 {
            0.0
        } else {
            self.hits / self.total
        }
    }
}

fn sigmoid_derivative(s: &Tensor) -> Result<Tensor> {
    s * (1.0 - s)?
}

fn tanh_derivative(t: &Tensor) -> Result<Tensor> {
    1.0 - t.sqr()?
}

impl Recurrent {
    /// Runs `x` (B, T, I) from a zero state and measures every layer's saturation.
    pub fn saturation(&self, x: &Tensor) -> Result<Vec<LayerSaturation>> {
        let cfg = &self.config;
        let (b, t, _) = x.dims3()?;
        let h_size = cfg.hidden_size;
        let mut input = x.detach();
        let mut out = Vec::new();
        for (k, w) in self.layers.iter().enumerate() {
            let bias = match cfg.cell {
                CellKind::Gru => w.b_ih.clone(),
                _ => (&w.b_ih + &w.b_hh)?,
            };
            let n_in = input.dim(2)?;
            let xw = input
                .contiguous()?
                .reshape((b * t, n_in))?
                .matmul(&w.w_ih_t)?
                .broadcast_add(&bias)?
                .reshape((b, t, cfg.cell.gates() * h_size))?
                .detach();
            let names: &[&str] = match cfg.cell {
                CellKind::Rnn(act) => &[act.name()],
                CellKind::Lstm => &["i", "f", "g", "o", "tanh(c)"],
                CellKind::Gru => &["r", "z", "n"],
            };
            let mut fractions: Vec<Fraction> = names.iter().map(|_| Fraction::default()).collect();
            let (mut forget_sum, mut h) = (0.0, Tensor::zeros((b, h_size), x.dtype(), x.device())?);
            let mut c = h.clone();
            let mut hs = Vec::with_capacity(t);
            for step in 0..t {
                let xw_t = xw.narrow(1, step, 1)?.squeeze(1)?;
                match cfg.cell {
                    CellKind::Rnn(act) => {
                        h = act.apply(&(xw_t + h.matmul(&w.w_hh_t)?)?)?;
                        let derivative = match act {
                            Nonlinearity::Tanh => tanh_derivative(&h)?,
                            Nonlinearity::Sigmoid => sigmoid_derivative(&h)?,
                            Nonlinearity::Relu => h.gt(0.0)?.to_dtype(h.dtype())?,
                            Nonlinearity::Linear => h.ones_like()?,
                        };
                        fractions[0].add(&derivative)?;
                    }
                    CellKind::Lstm => {
                        let [i, f, g, o] = lstm_gates(&xw_t, &h, &w.w_hh_t)?;
                        c = ((&f * &c)? + (&i * &g)?)?;
                        let tc = c.tanh()?;
                        h = (&o * &tc)?;
                        for (frac, d) in fractions.iter_mut().zip([
                            sigmoid_derivative(&i)?,
                            sigmoid_derivative(&f)?,
                            tanh_derivative(&g)?,
                            sigmoid_derivative(&o)?,
                            tanh_derivative(&tc)?,
                        ]) {
                            frac.add(&d)?;
                        }
                        forget_sum += f.to_dtype(DType::F64)?.mean_all()?.to_scalar::<f64>()?;
                    }
                    CellKind::Gru => {
                        let [r, z, n] = gru_gates(&xw_t, &h, &w.w_hh_t, &w.b_hh)?;
                        h = (&n + (&z * (&h - &n)?)?)?;
                        for (frac, d) in fractions.iter_mut().zip([
                            sigmoid_derivative(&r)?,
                            sigmoid_derivative(&z)?,
                            tanh_derivative(&n)?,
                        ]) {
                            frac.add(&d)?;
                        }
                    }
                }
                hs.push(h.clone());
            }
            out.push(LayerSaturation {
                layer: k,
                saturated: names.iter().zip(&fractions).map(|(n, f)| (n.to_string(), f.value())).collect(),
                mean_forget_gate: (cfg.cell == CellKind::Lstm).then(|| forget_sum / t as f64),
            });
            input = Tensor::stack(&hs, 1)?;
        }
        Ok(out)
    }
}
