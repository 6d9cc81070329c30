//! Which implementation runs a recurrent layer, and the fused path's side of `run_layer`.
//!
//! Both paths compute the same equations (checked against each other and against PyTorch's
//! references in the tests). The autograd path builds candle ops per step: it runs on every device
//! and dtype and stays the reference. The fused path runs a layer as one custom op
//! ([`crate::kernels::fused_layer`]): several times faster on the CPU and one graph node per layer,
//! so long sequences need no deep stack.

use super::taps::LayerTap;
use crate::cell::CellKind;
use crate::kernels::{fused_layer, fused_layer_with_head, pack_weights, StateGradSlots};
use candle_core::{bail, DType, Device, Result, Tensor};
use serde::{Deserialize, Serialize};

/// How [`super::Recurrent`] runs its layers; set per call in [`super::ForwardOptions::backend`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecurrentBackend {
    /// Fused on the CPU when the input is f32, autograd otherwise (CUDA, Metal, other dtypes).
    #[default]
    Auto,
    /// candle's per-op autograd, step by step: the reference, and the only path off the CPU.
    Autograd,
    /// The fused CPU kernels; an error on another device or dtype.
    Fused,
}

impl RecurrentBackend {
    pub const ALL: [RecurrentBackend; 3] =
        [RecurrentBackend::Auto, RecurrentBackend::Autograd, RecurrentBackend::Fused];

    pub fn name(self) -> &'static str {
        match self {
            RecurrentBackend::Auto => "auto",
            RecurrentBackend::Autograd => "autograd",
            RecurrentBackend::Fused => "fused",
        }
    }

    /// Whether a forward pass over `device` and `dtype` takes the fused path.
    pub fn use_fused(self, device: &Device, dtype: DType) -> Result<bool> {
        let fits = device.is_cpu() && dtype == DType::F32;
        match self {
            RecurrentBackend::Auto => Ok(fits),
            RecurrentBackend::Autograd => Ok(false),
            RecurrentBackend::Fused if fits => Ok(true),
            RecurrentBackend::Fused => {
                bail!("the fused recurrent backend needs f32 on the CPU, got {dtype:?} on {device:?}")
            }
        }
    }
}

impl std::fmt::Display for RecurrentBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for RecurrentBackend {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.to_ascii_lowercase();
        RecurrentBackend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| format!("unknown recurrent backend '{s}': expected auto, autograd or fused"))
    }
}

/// A tap whose gradients the fused backward deposits, and the slots it reads them from.
pub(super) fn recorded_tap(
    cell: CellKind,
    shape: (usize, usize, usize),
    device: &Device,
) -> (LayerTap, StateGradSlots) {
    let slots = StateGradSlots::new(cell.has_cell_state());
    let tap = LayerTap::recorded(slots.h.clone(), slots.c.clone(), shape, DType::F32, device);
    (tap, slots)
}

/// One fused layer's results.
pub(super) struct FusedLayerOutput {
    /// h_t of every step (B, T, H), and the final states h_{T-1}, c_{T-1} (B, H).
    pub h: Tensor,
    pub h_n: Tensor,
    pub c_n: Option<Tensor>,
    /// With a fused head, its outputs (B, T, O); `h` and the final states are then detached.
    pub readout: Option<Tensor>,
}

/// One layer on the fused path; returns the outputs (B, T, H) and the final states, like `run_layer`.
///
/// `w_ih_t` (I, G·H) and, in `recurrent`, `w_hh_t` (H, G·H) are the transposed views the autograd
/// path uses; `b_ih`, `b_hh` (G·H,); `h0`/`c0` (B, H).
#[allow(clippy::too_many_arguments)]
pub(super) fn run_fused(
    cell: CellKind,
    input: &Tensor,
    (w_ih_t, b_ih): (&Tensor, &Tensor),
    recurrent: Option<(&Tensor, &Tensor)>,
    h0: &Tensor,
    c0: Option<&Tensor>,
    slots: Option<&StateGradSlots>,
    head: Option<(&Tensor, &Tensor)>,
) -> Result<FusedLayerOutput> {
    let (b, t, _) = input.dims3()?;
    // Back to PyTorch's layouts (contiguous: the views are transposes of them).
    let recurrent = match recurrent {
        Some((w_hh_t, b_hh)) => Some((w_hh_t.t()?, b_hh)),
        None => None,
    };
    let recurrent = recurrent.as_ref().map(|(w_hh, b_hh)| (w_hh, *b_hh));
    let weight = pack_weights(&w_ih_t.t()?, b_ih, recurrent)?; // (G·H, I + H + 2) or (G·H, I + 1)
    let state = match (cell.has_cell_state(), c0) {
        (true, Some(c0)) => Tensor::stack(&[h0, c0], 0)?, // (2, B, H)
        (true, None) => bail!("an {cell} layer needs an initial cell state"),
        (false, _) => h0.clone(),
    };
    let (out, readout) = match head {
        Some(head) => {
            let (y, out) = fused_layer_with_head(cell, input, &weight, &state, head, slots)?;
            (out, Some(y))
        }
        None => (fused_layer(cell, input, &weight, &state, slots)?, None),
    };
    let last = |x: &Tensor| x.narrow(1, t - 1, 1)?.squeeze(1); // (B, H)
    if cell.has_cell_state() {
        let hid = out.dim(1)?;
        let h = out.narrow(0, 0, b * t)?.reshape((b, t, hid))?; // contiguous: no copy
        let c_n = out.narrow(0, b * t, b)?; // (B, H)
        Ok(FusedLayerOutput { h_n: last(&h)?, h, c_n: Some(c_n), readout })
    } else {
        Ok(FusedLayerOutput { h_n: last(&out)?, h: out, c_n: None, readout })
    }
}
