//! Backprop-through-time probes: ‖∂L/∂h_t‖ against the distance from the loss, per layer and
//! state, with its spread across sequences and the decay metrics of each curve.
//!
//! The loss is summed over sequences (L = Σ_b L_b), so a sequence's gradient does not shrink with
//! the batch size, and each sequence gives one norm ‖∂L_b/∂h_{b,t}‖ per step: the curve is their
//! mean, the band their 10–90 % quantiles.

pub mod fit;
pub mod report;

pub use fit::{decay_metrics, quantile, DecayMetrics};

use crate::models::{ForwardOptions, LayerSaturation, SeqModel};
use crate::tasks::{Batch, Task};
use candle_core::{DType, Result, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

/// Which loss the gradient is taken of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// The task's own training loss (copy: every step; adding: the last step).
    Task,
    /// The loss at the last step only: the cleanest view of the decay with distance.
    #[default]
    Last,
}

impl std::str::FromStr for LossKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "task" => Ok(LossKind::Task),
            "last" => Ok(LossKind::Last),
            other => Err(format!("unknown loss '{other}': expected task or last")),
        }
    }
}

/// One gradient-vs-distance curve: a layer's h (or LSTM c, or GPT residual stream).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// The model (or run) this curve belongs to, e.g. `lstm`.
    pub model: String,
    /// 0 = the layer nearest the input (GPT: the block index).
    pub layer: usize,
    /// `h`, `c` (LSTM cell state), `s` (the LRU's complex state, its norm over real and
    /// imaginary parts) or `resid` (GPT residual stream after the block).
    pub state: String,
    /// d = t_loss − t, ascending from 0.
    pub distance: Vec<usize>,
    /// Mean over sequences of ‖∂L_b/∂state_{b,t}‖.
    #[serde(deserialize_with = "crate::util::nullable::vec_f64")]
    pub mean: Vec<f64>,
    #[serde(deserialize_with = "crate::util::nullable::vec_f64")]
    pub q10: Vec<f64>,
    #[serde(deserialize_with = "crate::util::nullable::vec_f64")]
    pub q50: Vec<f64>,
    #[serde(deserialize_with = "crate::util::nullable::vec_f64")]
    pub q90: Vec<f64>,
    pub metrics: DecayMetrics,
    /// The gradient where each sequence's answer was input (loss at the last step, tasks that
    /// record it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_dependency: Option<AtDependency>,
}

/// ‖∂L_b/∂state_{b,t*_b}‖ at each sequence's dependency t*_b ([`Batch::dependency`]): the
/// gradient at the lag that matters, where a curve over d from the end mixes sequences whose
/// answer lies at different lags.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AtDependency {
    /// Per sequence, the lag d* = t_loss − t* and the norm there.
    pub lag: Vec<usize>,
    #[serde(deserialize_with = "crate::util::nullable::vec_f64")]
    pub norm: Vec<f64>,
    pub mean_lag: f64,
    #[serde(deserialize_with = "crate::util::nullable::f64")]
    pub mean_norm: f64,
}

impl AtDependency {
    fn new(norms: &[Vec<f64>], dependency: &[usize], t_loss: usize) -> Option<Self> {
        if dependency.len() != norms.len() || dependency.iter().any(|&t| t > t_loss) {
            return None;
        }
        let norm: Vec<f64> = norms.iter().zip(dependency).map(|(row, &t)| row[t]).collect();
        let lag: Vec<usize> = dependency.iter().map(|&t| t_loss - t).collect();
        let n = norm.len().max(1) as f64;
        Some(AtDependency {
            mean_lag: lag.iter().sum::<usize>() as f64 / n,
            mean_norm: norm.iter().sum::<f64>() / n,
            lag,
            norm,
        })
    }
}

impl Curve {
    pub fn label(&self) -> String {
        format!("{} L{} {}", self.model, self.layer, self.state)
    }
}

/// Everything one probe measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    pub model: String,
    pub loss: LossKind,
    pub curves: Vec<Curve>,
    /// ‖∂L/∂θ‖ of every parameter, by name (null in JSON where not finite).
    #[serde(deserialize_with = "crate::util::nullable::named_f64s")]
    pub parameter_norms: Vec<(String, f64)>,
    /// The (summed) loss the gradients belong to.
    #[serde(deserialize_with = "crate::util::nullable::f64")]
    pub loss_value: f64,
    /// Recurrent models: saturated-unit fractions per gate and the LSTM's mean forget gate.
    pub saturation: Option<Vec<LayerSaturation>>,
}

/// One line of a training run's `probe.jsonl`: the curves at a training step (loss at the
/// last step, on a fixed slice of the held-out set).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeRecord {
    pub step: u64,
    pub curves: Vec<Curve>,
}

/// Per-sequence norms over the last dim, (B, T, H) -> (B, T).
fn per_sequence_norms(g: &Tensor) -> Result<Vec<Vec<f64>>> {
    let n = g.to_dtype(DType::F64)?.sqr()?.sum(2)?.sqrt()?; // (B, T)
    n.to_vec2::<f64>()
}

/// Turns one (B, T, H) gradient into a curve over d = t_loss − t for t ≤ t_loss, and the
/// gradient at each sequence's `dependency` step when given.
pub fn curve_from_grad(
    model: &str,
    layer: usize,
    state: &str,
    grad: &Tensor,
    t_loss: usize,
    dependency: Option<&[usize]>,
) -> Result<Curve> {
    let norms = per_sequence_norms(grad)?; // [b][t]
    let steps = t_loss + 1;
    let (mut mean, mut q10, mut q50, mut q90) = (vec![], vec![], vec![], vec![]);
    for d in 0..steps {
        let t = t_loss - d;
        let column: Vec<f64> = norms.iter().map(|row| row[t]).collect();
        mean.push(column.iter().sum::<f64>() / column.len() as f64);
        q10.push(quantile(&column, 0.1));
        q50.push(quantile(&column, 0.5));
        q90.push(quantile(&column, 0.9));
    }
    Ok(Curve {
        model: model.to_string(),
        layer,
        state: state.to_string(),
        distance: (0..steps).collect(),
        at_dependency: dependency.and_then(|d| AtDependency::new(&norms, d, t_loss)),
        metrics: decay_metrics(&mean),
        mean,
        q10,
        q50,
        q90,
    })
}

/// Measures the per-timestep gradient curves of `model` on `batch`.
pub fn measure(
    model: &SeqModel,
    varmap: &VarMap,
    task: &dyn Task,
    batch: &Batch,
    loss: LossKind,
    name: &str,
) -> Result<Probe> {
    let opts = ForwardOptions { record_state_grads: true, ..Default::default() };
    let out = model.forward(&batch.inputs, None, &opts)?;
    let b = batch.size()? as f64;
    let mean_loss = match loss {
        LossKind::Task => task.loss(&out.outputs, batch)?,
        LossKind::Last => task.last_step_loss(&out.outputs, batch)?,
    };
    let total = (mean_loss * b)?; // Σ_b L_b
    let grads = total.backward()?;
    let taps = out.taps.expect("taps were requested");
    let state_grads = taps.grads(&grads)?;
    let t_loss = out.outputs.dim(1)? - 1;
    // Only the last step's loss has one dependency per sequence.
    let dependency = batch.dependency.as_deref().filter(|_| loss == LossKind::Last);
    let mut curves = Vec::new();
    for (layer, g) in state_grads.h.iter().enumerate() {
        curves.push(curve_from_grad(name, layer, model.state_name(), g, t_loss, dependency)?);
    }
    if let Some(cs) = &state_grads.c {
        for (layer, g) in cs.iter().enumerate() {
            curves.push(curve_from_grad(name, layer, "c", g, t_loss, dependency)?);
        }
    }
    let mut parameter_norms: Vec<(String, f64)> = varmap
        .data()
        .lock()
        .expect("varmap lock")
        .iter()
        .map(|(n, v)| {
            let norm = match grads.get(v.as_tensor()) {
                Some(g) => g.to_dtype(DType::F64)?.sqr()?.sum_all()?.sqrt()?.to_scalar::<f64>()?,
                None => 0.0,
            };
            Ok((n.clone(), norm))
        })
        .collect::<Result<_>>()?;
    parameter_norms.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Probe {
        model: name.to_string(),
        loss,
        curves,
        parameter_norms,
        loss_value: total.to_dtype(DType::F64)?.to_scalar::<f64>()?,
        saturation: model.saturation(&batch.inputs)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A diverged model's probe is written with nulls and read back as NaN (the report reads
    /// the probes it wrote).
    #[test]
    fn non_finite_values_survive_a_json_round_trip() {
        let at = AtDependency::new(&[vec![1.0, f64::NAN], vec![2.0, 3.0]], &[1, 0], 1).unwrap();
        assert_eq!((at.lag.clone(), at.mean_lag), (vec![0, 1], 0.5));
        let curve = Curve {
            model: "m".into(),
            layer: 0,
            state: "h".into(),
            distance: vec![0, 1],
            mean: vec![f64::NAN, 1.0],
            q10: vec![0.0; 2],
            q50: vec![0.0; 2],
            q90: vec![0.0; 2],
            metrics: decay_metrics(&[f64::NAN, 1.0]),
            at_dependency: Some(at),
        };
        let probe = Probe {
            model: "m".into(),
            loss: LossKind::Last,
            curves: vec![curve],
            parameter_norms: vec![("w".into(), f64::NAN), ("b".into(), 2.0)],
            loss_value: f64::NAN,
            saturation: None,
        };
        let back: Probe = serde_json::from_str(&serde_json::to_string(&probe).unwrap()).unwrap();
        assert!(back.parameter_norms[0].1.is_nan() && back.parameter_norms[1].1 == 2.0);
        assert!(back.curves[0].mean[0].is_nan() && back.loss_value.is_nan());
        assert!(back.curves[0].at_dependency.as_ref().unwrap().mean_norm.is_nan());
    }
}
