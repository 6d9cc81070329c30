//! PyTorch's optimiser update rules on candle `Var`s.
//!
//! candle-nn ships only momentum-less SGD and AdamW; comparing training dynamics with published
//! PyTorch runs needs the exact `torch.optim` algorithms (same defaults, same placement of `eps`,
//! same bias correction), so they are written out here with plain tensor ops. The updates never
//! enter the autograd graph: the new value is computed from detached tensors and copied into the
//! `Var` with `Var::set`.

mod config;
mod fused;
#[cfg(test)]
mod tests;

pub use config::OptimizerConfig;

use candle_core::backprop::GradStore;
use candle_core::{bail, DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What one parameter carries between steps.
struct ParamState {
    /// Updates this parameter has received. Per parameter, as in PyTorch, because a parameter
    /// without a gradient skips a step and Adam's bias correction must not count it.
    step: u64,
    /// The rule's slots (`OptimizerConfig::slot_names`), each shaped like the parameter.
    slots: BTreeMap<&'static str, Tensor>,
}

/// A set of named parameters and the rule's state for each.
pub struct Optimizer {
    config: OptimizerConfig,
    /// The same rule with weight decay 0, for parameters outside the decay group.
    no_decay_config: OptimizerConfig,
    params: Vec<(String, Var)>,
    state: Vec<ParamState>,
    /// Per parameter: whether weight decay applies (PyTorch's parameter groups).
    decay: Vec<bool>,
}

impl Optimizer {
    /// Allocates the state up front (zeros; `initial_accumulator_value` for Adagrad), so a
    /// checkpoint always holds every slot and a resumed run needs no special first step.
    /// Names must be unique: they key the saved state.
    pub fn new(config: OptimizerConfig, params: Vec<(String, Var)>) -> Result<Self> {
        config.validate()?;
        let mut names = HashSet::new();
        let mut ids = HashSet::new();
        let mut state = Vec::with_capacity(params.len());
        for (name, var) in params.iter() {
            if !names.insert(name.as_str()) {
                bail!("parameter name '{name}' is given twice");
            }
            if !ids.insert(var.as_tensor().id()) {
                bail!("parameter '{name}' is the same Var as an earlier one (it would be updated twice)");
            }
            let init = match config {
                OptimizerConfig::Adagrad { initial_accumulator_value, .. } => initial_accumulator_value,
                _ => 0.0,
            };
            let mut slots = BTreeMap::new();
            for slot in config.slot_names() {
                slots.insert(slot, (var.as_tensor().zeros_like()? + init)?);
            }
            state.push(ParamState { step: 0, slots });
        }
        let decay = vec![true; params.len()];
        let no_decay_config = config.clone().with_weight_decay(0.0);
        Ok(Self { config, no_decay_config, params, state, decay })
    }

    /// Puts the parameters for which `exempt(name, var)` holds into a group without weight
    /// decay, as `torch.optim` parameter groups do (nanoGPT exempts biases and LayerNorm gains:
    /// every parameter of rank < 2).
    pub fn exempt_from_weight_decay(&mut self, exempt: impl Fn(&str, &Var) -> bool) {
        for ((name, var), decay) in self.params.iter().zip(self.decay.iter_mut()) {
            *decay = !exempt(name, var);
        }
    }

    /// Every variable of `varmap`, under its registered name, in name order.
    pub fn from_varmap(config: OptimizerConfig, varmap: &VarMap) -> Result<Self> {
        let data = varmap.data().lock().expect("varmap lock poisoned");
        let mut params: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        drop(data);
        params.sort_by(|a, b| a.0.cmp(&b.0));
        Self::new(config, params)
    }

    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// The variables alone, in order: what the `clip` functions take.
    pub fn vars(&self) -> Vec<Var> {
        self.params.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Applies one update with learning rate `lr` to every parameter that has a gradient in
    /// `grads`; the others are untouched and keep their step count (PyTorch's `p.grad is None`).
    /// Each parameter is updated atomically, but an error (a misshapen gradient) stops the loop
    /// with the parameters before it already updated: treat it as fatal, not as a skipped step.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        if !(lr >= 0.0 && lr.is_finite()) {
            bail!("lr must be finite and ≥ 0, got {lr}");
        }
        for (((name, var), st), &decay) in self.params.iter().zip(self.state.iter_mut()).zip(&self.decay) {
            let Some(grad) = grads.get(var.as_tensor()) else { continue };
            let config = if decay { &self.config } else { &self.no_decay_config };
            if grad.dims() != var.dims() {
                bail!("gradient of '{name}' has shape {:?}, the parameter {:?}", grad.dims(), var.dims());
            }
            // Detached, so the new values and slots carry no graph from step to step.
            let (p, g) = (var.as_tensor().detach(), grad.detach());
            let step = st.step + 1;
            let mut slots = st.slots.clone();
            let new_p = update(config, &p, &g, &mut slots, step, lr)
                .map_err(|e| e.context(format!("{} step for '{name}'", self.config.name())))?;
            var.set(&new_p)?;
            *st = ParamState { step, slots };
        }
        Ok(())
    }

    /// The state as named tensors for a checkpoint: `{param}.step` (an i64 scalar) and
    /// `{param}.{slot}` (e.g. `rnn.weight_ih_l0.exp_avg`). The config is not included; save it
    /// alongside (it is `Serialize`), since Adam and AdamW keep identical slots.
    pub fn state_tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for ((name, _), st) in self.params.iter().zip(self.state.iter()) {
            out.push((format!("{name}.step"), Tensor::new(st.step as i64, &Device::Cpu)?));
            for (slot, t) in st.slots.iter() {
                out.push((format!("{name}.{slot}"), t.clone()));
            }
        }
        Ok(out)
    }

    /// Restores state saved by [`Self::state_tensors`], so the next step is the one an
    /// uninterrupted run would take. Nothing changes unless every parameter's step and slots are
    /// present with its shape and dtype; a slot this rule does not keep is also an error, as it
    /// means the state came from another rule or other settings. Extra unrelated names (model
    /// weights saved in the same file) are ignored.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let wanted = self.config.slot_names();
        let mut new_state = Vec::with_capacity(self.params.len());
        for (name, var) in self.params.iter() {
            let key = format!("{name}.step");
            let step = match tensors.get(&key) {
                None => bail!("optimizer state has no '{key}' (state of another model?)"),
                Some(t) => read_step(t).map_err(|e| e.context(format!("optimizer state '{key}'")))?,
            };
            for slot in config::ALL_SLOTS.iter().filter(|s| !wanted.contains(s)) {
                let key = format!("{name}.{slot}");
                if tensors.contains_key(&key) {
                    bail!("optimizer state has '{key}', which {} with these settings does not keep (state of another optimizer?)", self.config.name());
                }
            }
            let mut slots = BTreeMap::new();
            for slot in wanted.iter() {
                let key = format!("{name}.{slot}");
                let Some(t) = tensors.get(&key) else {
                    bail!("optimizer state has no '{key}' (state of another optimizer or model?)")
                };
                if t.dims() != var.dims() || t.dtype() != var.dtype() {
                    bail!(
                        "optimizer state '{key}' is {:?} {:?}, the parameter is {:?} {:?}",
                        t.dtype(),
                        t.dims(),
                        var.dtype(),
                        var.dims()
                    );
                }
                slots.insert(*slot, t.to_device(var.device())?.detach());
            }
            new_state.push(ParamState { step, slots });
        }
        self.state = new_state;
        Ok(())
    }
}

/// A saved step count: one non-negative integer, in whatever numeric dtype it was stored.
fn read_step(t: &Tensor) -> Result<u64> {
    let v = t.to_device(&Device::Cpu)?.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
    match v[..] {
        [s] if s >= 0.0 && s.fract() == 0.0 && s < 9.007_199_254_740_992e15 => Ok(s as u64),
        _ => bail!("expected one non-negative integer, got {v:?}"),
    }
}

fn slot<'a>(slots: &'a BTreeMap<&'static str, Tensor>, name: &str) -> Result<&'a Tensor> {
    match slots.get(name) {
        Some(t) => Ok(t),
        None => bail!("internal error: optimizer slot '{name}' missing"),
    }
}

/// `g + wd·p`: the L2 form of weight decay, folded into the gradient.
fn l2(g: &Tensor, p: &Tensor, wd: f64) -> Result<Tensor> {
    if wd == 0.0 {
        Ok(g.clone())
    } else {
        g + (p * wd)?
    }
}

/// One step of the rule for one parameter, following the pseudo-code in the `torch.optim` docs
/// line by line. `step` is the 1-based count including this update. Returns the new parameter
/// value and leaves the new slots in `slots`.
fn update(
    config: &OptimizerConfig,
    p: &Tensor,
    g: &Tensor,
    slots: &mut BTreeMap<&'static str, Tensor>,
    step: u64,
    lr: f64,
) -> Result<Tensor> {
    match *config {
        OptimizerConfig::Sgd { momentum, nesterov, weight_decay } => {
            let mut d = l2(g, p, weight_decay)?;
            if momentum > 0.0 {
                // First step: b = g (a copy, not `momentum·0 + g`, exactly as PyTorch).
                let buf =
                    if step == 1 { d.copy()? } else { ((slot(slots, "momentum_buffer")? * momentum)? + &d)? };
                d = if nesterov { (&d + (&buf * momentum)?)? } else { buf.clone() };
                slots.insert("momentum_buffer", buf);
            }
            p - (d * lr)?
        }
        OptimizerConfig::Adam { beta1, beta2, eps, weight_decay } => {
            let g = l2(g, p, weight_decay)?;
            adam_step(p, &g, None, slots, step, lr, [beta1, beta2, eps])
        }
        OptimizerConfig::Adamw { beta1, beta2, eps, weight_decay } => {
            // Decoupled: shrink the weights, then the plain Adam step on the shrunk weights.
            adam_step(p, g, Some(1.0 - lr * weight_decay), slots, step, lr, [beta1, beta2, eps])
        }
        OptimizerConfig::Rmsprop { alpha, eps, momentum, centered, weight_decay } => {
            let g = l2(g, p, weight_decay)?;
            let v = ((slot(slots, "square_avg")? * alpha)? + (g.sqr()? * (1.0 - alpha))?)?;
            let avg = if centered {
                let ga = ((slot(slots, "grad_avg")? * alpha)? + (&g * (1.0 - alpha))?)?;
                let avg = (&v - ga.sqr()?)?.sqrt()?;
                slots.insert("grad_avg", ga);
                avg
            } else {
                v.sqrt()?
            };
            slots.insert("square_avg", v);
            let avg = (avg + eps)?;
            if momentum > 0.0 {
                let buf = ((slot(slots, "momentum_buffer")? * momentum)? + g.div(&avg)?)?;
                let new_p = (p - (&buf * lr)?)?;
                slots.insert("momentum_buffer", buf);
                Ok(new_p)
            } else {
                p - (g.div(&avg)? * lr)?
            }
        }
        OptimizerConfig::Adagrad { lr_decay, eps, weight_decay, initial_accumulator_value: _ } => {
            let g = l2(g, p, weight_decay)?;
            let clr = lr / (1.0 + (step - 1) as f64 * lr_decay);
            let sum = (slot(slots, "sum")? + g.sqr()?)?;
            let std = (sum.sqrt()? + eps)?;
            slots.insert("sum", sum);
            p - (g.div(&std)? * clr)?
        }
    }
}

/// Adam's moment update and bias-corrected step (shared by Adam and AdamW, whose decoupled
/// decay `p·shrink` comes first):
/// `p − lr/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + eps)`, with eps outside the square root, after the
/// correction, as in `torch.optim.Adam`. f32 parameters on the CPU take one fused pass
/// (`fused::adam`) that rounds exactly like the tensor ops below.
fn adam_step(
    p: &Tensor,
    g: &Tensor,
    shrink: Option<f64>,
    slots: &mut BTreeMap<&'static str, Tensor>,
    step: u64,
    lr: f64,
    [beta1, beta2, eps]: [f64; 3],
) -> Result<Tensor> {
    let t = step as f64;
    let bias_correction1 = 1.0 - beta1.powf(t);
    let bias_correction2_sqrt = (1.0 - beta2.powf(t)).sqrt();
    let consts =
        fused::AdamConsts::new(shrink, beta1, beta2, eps, bias_correction2_sqrt, lr / bias_correction1);
    let (m_old, v_old) = (slot(slots, "exp_avg")?, slot(slots, "exp_avg_sq")?);
    if let Some((new_p, m, v)) = fused::adam(p, g, m_old, v_old, &consts)? {
        slots.insert("exp_avg", m);
        slots.insert("exp_avg_sq", v);
        return Ok(new_p);
    }
    let shrunk;
    let p = match shrink {
        Some(s) => {
            shrunk = (p * s)?;
            &shrunk
        }
        None => p,
    };
    let m = ((slot(slots, "exp_avg")? * beta1)? + (g * (1.0 - beta1))?)?;
    let v = ((slot(slots, "exp_avg_sq")? * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
    let denom = ((v.sqrt()? / bias_correction2_sqrt)? + eps)?;
    let new_p = (p - (m.div(&denom)? * (lr / bias_correction1))?)?;
    slots.insert("exp_avg", m);
    slots.insert("exp_avg_sq", v);
    Ok(new_p)
}
