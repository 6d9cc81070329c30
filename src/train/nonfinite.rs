//! Finding where a non-finite value came from: which parameter's gradient, and, when probing,
//! at which timestep the model's output or the backpropagated ∂L/∂h_t stopped being finite.

use crate::models::{ForwardOptions, RecurrentState, SeqModel};
use crate::tasks::{Batch, Task};
use anyhow::Result;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};

/// The first parameter whose gradient holds NaN or ±∞.
pub(super) fn first_nonfinite(grads: &GradStore, named: &[(String, Var)]) -> Result<Option<String>> {
    for (name, var) in named {
        if let Some(g) = grads.get(var.as_tensor()) {
            if !all_finite(g)? {
                return Ok(Some(name.clone()));
            }
        }
    }
    Ok(None)
}

/// The first parameter holding NaN or ±∞ (a non-finite value never reaches a checkpoint).
pub(super) fn first_nonfinite_parameter(named: &[(String, Var)]) -> Result<Option<String>> {
    for (name, var) in named {
        if !all_finite(var.as_tensor())? {
            return Ok(Some(name.clone()));
        }
    }
    Ok(None)
}

fn all_finite(t: &Tensor) -> Result<bool> {
    // NaN and ±∞ both survive a sum of absolute values as non-finite.
    Ok(t.abs()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?.is_finite())
}

/// Where in time a non-finite step went wrong, re-running it with state taps: the first timestep
/// whose output is non-finite (a forward blow-up), else, counting back from the loss, the first
/// timestep whose ∂L/∂h_t is, in whichever layer it happens latest (the backward blow-up that
/// every earlier step then inherits). `None` when neither is (the fault lies in the output layer).
pub(super) fn locate_in_time(
    model: &SeqModel,
    task: &dyn Task,
    batch: &Batch,
    carried: Option<&RecurrentState>,
    fwd: &ForwardOptions,
) -> Result<Option<String>> {
    let opts = ForwardOptions { record_state_grads: true, ..fwd.clone() };
    let out = model.forward(&batch.inputs, carried, &opts)?;
    if let Some(t) = nonfinite_steps(&out.outputs)?.iter().position(|&bad| bad) {
        return Ok(Some(format!("the model's output is first non-finite at timestep {t}")));
    }
    let Some(taps) = out.taps.as_ref() else { return Ok(None) };
    let grads = task.loss(&out.outputs, batch)?.backward()?;
    let state_grads = taps.grads(&grads)?;
    let mut latest: Option<(usize, usize)> = None; // (timestep, layer)
    for (layer, h) in state_grads.h.iter().enumerate() {
        if let Some(t) = nonfinite_steps(h)?.iter().rposition(|&bad| bad) {
            if latest.is_none_or(|(lt, _)| t > lt) {
                latest = Some((t, layer));
            }
        }
    }
    let steps = batch.inputs.dim(1)?;
    Ok(latest.map(|(t, layer)| {
        format!(
            "∂L/∂h_t of layer {layer} is non-finite from timestep {t} (distance {} from the end) back",
            steps - 1 - t
        )
    }))
}

/// Per timestep of a (B, T, ·) tensor: whether any of its values is NaN or ±∞.
fn nonfinite_steps(x: &Tensor) -> Result<Vec<bool>> {
    // Summed in f64, so large finite f32 values cannot overflow into a false alarm.
    let per_step = x.to_dtype(DType::F64)?.abs()?.sum(2)?.sum(0)?; // (T,)
    Ok(per_step.to_vec1::<f64>()?.into_iter().map(|v| !v.is_finite()).collect())
}
