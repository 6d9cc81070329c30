//! Saturation statistics of a recurrent stack on given inputs: how many tanh/sigmoid units sit
//! where their derivative is below 0.01 (so they pass almost no gradient), how many ReLUs are
//! dead, and the LSTM's mean forget gate, the factor by which c_t carries gradient back.

use super::Recurrent;
use crate::models::cells::{reference_cell, CellState};
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
    /// Mean over units, steps and sequences of the gate by which the state carries the gradient
    /// back: the LSTM's forget gate f, minGRU's 1 − z, minLSTM's f / (f + i).
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

impl Recurrent {
    /// Runs `x` (B, T, I) from a zero state and measures every layer's saturation.
    pub fn saturation(&self, x: &Tensor) -> Result<Vec<LayerSaturation>> {
        let cfg = &self.config;
        let (b, t, _) = x.dims3()?;
        let h_size = cfg.hidden_size;
        let mut input = x.detach();
        let mut out = Vec::new();
        let cell = reference_cell(cfg.cell);
        let names = cell.saturation_names();
        for (k, w) in self.layers.iter().enumerate() {
            let xw = w.project_inputs(&input, cell.as_ref())?.detach(); // (B, T, G·H)
            let mut fractions: Vec<Fraction> = names.iter().map(|_| Fraction::default()).collect();
            let zeros = Tensor::zeros((b, h_size), x.dtype(), x.device())?;
            let mut state = CellState { c: cfg.cell.has_cell_state().then(|| zeros.clone()), h: zeros };
            let (mut forget_sum, mut has_forget) = (0.0, false);
            let mut hs = Vec::with_capacity(t);
            for step in 0..t {
                let xw_t = xw.narrow(1, step, 1)?.squeeze(1)?;
                let (next, acts) = cell.step_with_activations(&xw_t, &state, &w.step_weights())?;
                for (frac, d) in fractions.iter_mut().zip(&acts.derivatives) {
                    frac.add(d)?;
                }
                if let Some(f) = acts.forget_gate {
                    forget_sum += f.to_dtype(DType::F64)?.mean_all()?.to_scalar::<f64>()?;
                    has_forget = true;
                }
                hs.push(next.h.clone());
                state = next;
            }
            out.push(LayerSaturation {
                layer: k,
                saturated: names.iter().zip(&fractions).map(|(n, f)| (n.clone(), f.value())).collect(),
                mean_forget_gate: has_forget.then(|| forget_sum / t as f64),
            });
            input = Tensor::stack(&hs, 1)?;
        }
        Ok(out)
    }
}
