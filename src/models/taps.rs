//! The per-timestep state-gradient mechanism: read ∂L/∂h_t (and ∂L/∂c_t) for every step and
//! every layer after a backward pass.
//!
//! candle keeps gradients only for `Var`s, so the autograd path adds a zero `Var` of shape
//! (B, T, H) to each layer's states (h_t ← h_t + d_t, before h_t is used anywhere); its gradient is
//! exactly the total derivative ∂L/∂h_t. A fused kernel that computes these gradients itself hands
//! them over through [`TapSource::Recorded`], so callers never see which path ran.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use std::sync::{Arc, Mutex};

/// Where one tapped state's gradient comes from.
#[derive(Clone)]
pub enum TapSource {
    /// A zero `Var` added to the state: its gradient is read from the `GradStore`.
    Var(Var),
    /// Filled in by a fused backward pass, which computes ∂L/∂h_t itself. It holds the latest
    /// backward pass's values, whichever `GradStore` is then passed to [`StateTaps::grads`].
    Recorded(Arc<Mutex<Option<Tensor>>>),
}

impl TapSource {
    fn grad(&self, grads: &GradStore, shape: &Shape, dtype: DType, device: &Device) -> Result<Tensor> {
        let found = match self {
            TapSource::Var(v) => grads.get(v.as_tensor()).cloned(),
            TapSource::Recorded(slot) => slot.lock().expect("tap lock poisoned").clone(),
        };
        // No gradient means the loss does not depend on this state.
        found.map_or_else(|| Tensor::zeros(shape, dtype, device), Ok)
    }
}

/// The taps of one layer: h_t, and c_t for LSTM, each (B, T, H).
pub struct LayerTap {
    h: TapSource,
    c: Option<TapSource>,
    shape: Shape,
    dtype: DType,
    device: Device,
}

impl LayerTap {
    pub(crate) fn zeros(
        with_c: bool,
        shape: (usize, usize, usize),
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let var = || Var::zeros(shape, dtype, device).map(TapSource::Var);
        Ok(Self {
            h: var()?,
            c: if with_c { Some(var()?) } else { None },
            shape: shape.into(),
            dtype,
            device: device.clone(),
        })
    }

    /// A tap whose gradients a fused backward pass will deposit in the given slots.
    pub fn recorded(
        h: Arc<Mutex<Option<Tensor>>>,
        c: Option<Arc<Mutex<Option<Tensor>>>>,
        shape: (usize, usize, usize),
        dtype: DType,
        device: &Device,
    ) -> Self {
        Self {
            h: TapSource::Recorded(h),
            c: c.map(TapSource::Recorded),
            shape: shape.into(),
            dtype,
            device: device.clone(),
        }
    }

    /// The zero tensor to add to h (autograd path only).
    pub(crate) fn h_tensor(&self) -> &Tensor {
        match &self.h {
            TapSource::Var(v) => v.as_tensor(),
            TapSource::Recorded(_) => unreachable!("recorded taps are not added to the graph"),
        }
    }

    pub(crate) fn c_tensor(&self) -> Option<&Tensor> {
        match &self.c {
            Some(TapSource::Var(v)) => Some(v.as_tensor()),
            _ => None,
        }
    }
}

/// Taps of every layer of one forward pass. Keep it until after `backward()`.
pub struct StateTaps {
    layers: Vec<LayerTap>,
}

impl StateTaps {
    pub(crate) fn new(layers: Vec<LayerTap>) -> Self {
        Self { layers }
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// ∂L/∂h_t (and ∂L/∂c_t) of every layer, from the gradients of one backward pass.
    pub fn grads(&self, grads: &GradStore) -> Result<StateGrads> {
        let mut h = Vec::with_capacity(self.layers.len());
        let mut c = Vec::new();
        for tap in &self.layers {
            h.push(tap.h.grad(grads, &tap.shape, tap.dtype, &tap.device)?);
            if let Some(src) = &tap.c {
                c.push(src.grad(grads, &tap.shape, tap.dtype, &tap.device)?);
            }
        }
        Ok(StateGrads { h, c: if c.is_empty() { None } else { Some(c) } })
    }
}

/// Per-timestep state gradients; index the vectors by layer (0 = closest to the input).
pub struct StateGrads {
    /// ∂L/∂h_t per layer, each (B, T, H).
    pub h: Vec<Tensor>,
    /// ∂L/∂c_t per layer (LSTM), each (B, T, H).
    pub c: Option<Vec<Tensor>>,
}

impl StateGrads {
    /// ‖∂L/∂h_t‖ over (B, H) for each t of `layer`: the curve plotted against distance.
    pub fn h_norms(&self, layer: usize) -> Result<Vec<f32>> {
        frobenius_per_step(&self.h[layer])
    }

    /// ‖∂L/∂c_t‖ over (B, H) for each t of `layer` (LSTM).
    pub fn c_norms(&self, layer: usize) -> Result<Option<Vec<f32>>> {
        self.c.as_ref().map(|c| frobenius_per_step(&c[layer])).transpose()
    }
}

/// sqrt(Σ_{b,j} g[b,t,j]²) for each t of a (B, T, H) tensor.
pub fn frobenius_per_step(g: &Tensor) -> Result<Vec<f32>> {
    g.to_dtype(DType::F32)?.sqr()?.sum(2)?.sum(0)?.sqrt()?.to_vec1()
}
