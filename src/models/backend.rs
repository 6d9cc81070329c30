//! Which implementation runs a recurrent layer, and the fused path's side of `run_layer`.
//!
//! Both paths compute the same equations (checked against each other and against PyTorch's
//! references in the tests). The autograd path builds candle ops per step: it runs on every device
//! and dtype and stays the reference. The fused path runs a layer as one custom op
//! ([`crate::kernels::fused_layer`]): several times faster on the CPU and one graph node per layer,
//! so long sequences need no deep stack.

use super::recurrent::CellKind;
use super::taps::LayerTap;
use crate::kernels::{fused_layer, StateGradSlots};
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

/// One layer on the fused path; returns (outputs (B, T, H), h_{T-1}, c_{T-1}) like `run_layer`.
///
/// `xw` (B, T, G·H) already holds the input projection and biases (GRU: b_ih only);
/// `w_hh_t` is W_hhᵀ (H, G·H), `b_hh` (G·H,), `h0`/`c0` (B, H).
pub(super) fn run_fused(
    cell: CellKind,
    xw: &Tensor,
    w_hh_t: &Tensor,
    b_hh: &Tensor,
    h0: &Tensor,
    c0: Option<&Tensor>,
    slots: Option<&StateGradSlots>,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let (_, t, _) = xw.dims3()?;
    let w_hh = w_hh_t.t()?; // (G·H, H): PyTorch's layout, contiguous (w_hh_t is its transposed view)
    let (weight, state) = match (cell, c0) {
        // b_hn sits inside the reset product, so b_hh travels with W_hh as its last column.
        (CellKind::Gru, _) => (Tensor::cat(&[&w_hh, &b_hh.unsqueeze(1)?], 1)?, h0.clone()), // (3H, H+1)
        (CellKind::Lstm, Some(c0)) => (w_hh, Tensor::stack(&[h0, c0], 0)?),                 // (2, B, H)
        (CellKind::Lstm, None) => bail!("an lstm layer needs an initial cell state"),
        (CellKind::Rnn(_), _) => (w_hh, h0.clone()),
    };
    let out = fused_layer(cell, xw, &weight, &state, slots)?;
    let last = |x: &Tensor| x.narrow(1, t - 1, 1)?.squeeze(1); // (B, H)
    if cell.has_cell_state() {
        let (h, c) = (out.get(0)?, out.get(1)?); // each (B, T, H), contiguous
        let (h_n, c_n) = (last(&h)?, last(&c)?);
        Ok((h, h_n, Some(c_n)))
    } else {
        let h_n = last(&out)?;
        Ok((out, h_n, None))
    }
}
