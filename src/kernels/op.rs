//! One recurrent layer over a whole sequence as a single candle autograd node (`CustomOp3`).
//!
//! candle's per-op autograd makes a graph ~20·T nodes deep whose recursive walk overflows the
//! stack near T ≈ 7,000 and spends most of its time in allocation and dispatch. Here the forward
//! time loop and BPTT run on raw f32 slices (`rnn.rs`, `lstm.rs`, `gru.rs`), so a layer is one
//! node whatever T is, and ∂L/∂h_t (∂L/∂c_t) of every step falls out of BPTT for free.

use super::{gru, lstm, rnn, Dims, Grads};
use crate::models::CellKind;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Storage, Tensor};
use std::sync::{Arc, Mutex};

/// A place a fused backward pass writes one state gradient to (see `LayerTap::recorded`).
pub type Slot = Arc<Mutex<Option<Tensor>>>;

/// Where a fused backward deposits ∂L/∂h_t (and, for LSTM, ∂L/∂c_t) of one layer, each (B, T, H).
#[derive(Clone, Default)]
pub struct StateGradSlots {
    pub h: Slot,
    pub c: Option<Slot>,
}

impl StateGradSlots {
    /// Empty slots; `with_c` for an LSTM layer.
    pub fn new(with_c: bool) -> Self {
        Self { h: Slot::default(), c: with_c.then(Slot::default) }
    }
}

struct FusedLayer {
    cell: CellKind,
    dims: Dims,
    /// Whether anything will differentiate the result: otherwise the gate activations are not kept.
    save: bool,
    /// What backward needs beyond the result: LSTM gates or GRU [r | z | n | hw_n], (B, T, 4H).
    saved: Mutex<Option<Vec<f32>>>,
    slots: Option<StateGradSlots>,
}

/// The result's shape: (B, T, H), or (2, B, T, H) = [h; c] for LSTM.
fn result_shape(cell: CellKind, Dims { b, t, h }: Dims) -> Shape {
    if cell.has_cell_state() {
        Shape::from((2, b, t, h))
    } else {
        Shape::from((b, t, h))
    }
}

fn cpu_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("fused recurrent kernel: {what} must be contiguous"),
    }
}

fn storage_slice<'a>(s: &'a Storage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match s {
        Storage::Cpu(c) => cpu_slice(c, l, what),
        _ => bail!("fused recurrent kernel: {what} is not on the CPU"),
    }
}

impl CustomOp3 for FusedLayer {
    fn name(&self) -> &'static str {
        match self.cell {
            CellKind::Rnn(_) => "gradscope-fused-rnn",
            CellKind::Lstm => "gradscope-fused-lstm",
            CellKind::Gru => "gradscope-fused-gru",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (xw, w, state) =
            (cpu_slice(s1, l1, "xw")?, cpu_slice(s2, l2, "weight")?, cpu_slice(s3, l3, "state")?);
        let d = self.dims;
        let (out, saved) = match self.cell {
            CellKind::Rnn(act) => (rnn::forward(act, d, xw, w, state), None),
            CellKind::Lstm => lstm::forward(d, xw, w, state, self.save),
            CellKind::Gru => gru::forward(d, xw, w, state, self.save),
        };
        *self.saved.lock().map_err(|_| candle_core::Error::Msg("fused saved state poisoned".into()))? = saved;
        Ok((CpuStorage::F32(out), result_shape(self.cell, d)))
    }

    fn bwd(
        &self,
        xw: &Tensor,
        w: &Tensor,
        state: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = self.dims;
        let grad_res = grad_res.to_dtype(DType::F32)?.contiguous()?;
        let (g_st, g_l) = grad_res.storage_and_layout();
        let (o_st, o_l) = res.storage_and_layout();
        let (w_st, w_l) = w.storage_and_layout();
        let (s_st, s_l) = state.storage_and_layout();
        let grad = storage_slice(&g_st, g_l, "the result's gradient")?;
        let out = storage_slice(&o_st, o_l, "the result")?;
        let wv = storage_slice(&w_st, w_l, "weight")?;
        let sv = storage_slice(&s_st, s_l, "state")?;
        let saved =
            self.saved.lock().map_err(|_| candle_core::Error::Msg("fused saved state poisoned".into()))?;
        let need_saved = || match saved.as_deref() {
            Some(s) => Ok(s),
            None => bail!("{}: the forward pass kept nothing for backward", self.name()),
        };
        // Taps cost one (B, T, H) buffer each and a row copy per step; without them, nothing.
        let bth = d.b * d.t * d.h;
        let mut tap_h = self.slots.as_ref().map(|_| vec![0f32; bth]);
        let mut tap_c = self.slots.as_ref().and_then(|s| s.c.as_ref()).map(|_| vec![0f32; bth]);
        let grads: Grads = match self.cell {
            CellKind::Rnn(act) => rnn::backward(act, d, grad, out, wv, sv, tap_h.as_deref_mut()),
            CellKind::Lstm => {
                let taps = tap_h.as_deref_mut().zip(tap_c.as_deref_mut());
                lstm::backward(d, grad, out, need_saved()?, wv, sv, taps)
            }
            CellKind::Gru => gru::backward(d, grad, out, need_saved()?, wv, sv, tap_h.as_deref_mut()),
        };
        if let Some(slots) = &self.slots {
            let dev = xw.device();
            deposit(&slots.h, tap_h, d, dev)?;
            if let Some(c) = &slots.c {
                deposit(c, tap_c, d, dev)?;
            }
        }
        let wrap = |v: Vec<f32>, like: &Tensor| -> Result<Option<Tensor>> {
            Ok(if like.track_op() { Some(Tensor::from_vec(v, like.shape(), like.device())?) } else { None })
        };
        Ok((wrap(grads.dxw, xw)?, wrap(grads.dw, w)?, wrap(grads.dstate, state)?))
    }
}

fn deposit(slot: &Slot, v: Option<Vec<f32>>, Dims { b, t, h }: Dims, dev: &Device) -> Result<()> {
    if let Some(v) = v {
        let tensor = Tensor::from_vec(v, (b, t, h), dev)?;
        *slot.lock().map_err(|_| candle_core::Error::Msg("state-gradient slot poisoned".into()))? =
            Some(tensor);
    }
    Ok(())
}

/// One layer of `cell` over a whole sequence, as one autograd node.
///
/// - `xw` (B, T, G·H): the input projection W_ih x_t + bias of every step. For RNN and LSTM
///   `bias` = b_ih + b_hh; for GRU only b_ih, since b_hn sits inside the reset product.
/// - `weight`: W_hh (G·H, H) in PyTorch's layout; for GRU [W_hh | b_hh] (3H, H+1).
/// - `state`: h0 (B, H); for LSTM [h0; c0] (2, B, H).
///
/// Returns the hidden states (B, T, H); for LSTM (2, B, T, H) = [h_t; c_t]. CPU and f32 only.
/// With `slots`, the backward pass deposits ∂L/∂h_t (and ∂L/∂c_t, the gradient of a zero added
/// to c_t before h_t is formed) of every step there, as (B, T, H) tensors.
pub fn fused_layer(
    cell: CellKind,
    xw: &Tensor,
    weight: &Tensor,
    state: &Tensor,
    slots: Option<&StateGradSlots>,
) -> Result<Tensor> {
    let (b, t, gh) = xw.dims3()?;
    let g = cell.gates();
    let h = gh / g;
    let w_cols = if cell == CellKind::Gru { h + 1 } else { h };
    let state_dims: &[usize] = if cell.has_cell_state() { &[2, b, h] } else { &[b, h] };
    if gh % g != 0 || h == 0 || t == 0 || b == 0 {
        bail!("fused {cell}: xw has shape {:?}, expected (B ≥ 1, T ≥ 1, {g}·H)", xw.dims());
    }
    if weight.dims() != [gh, w_cols] {
        bail!("fused {cell}: weight has shape {:?}, expected ({gh}, {w_cols})", weight.dims());
    }
    if state.dims() != state_dims {
        bail!("fused {cell}: state has shape {:?}, expected {state_dims:?}", state.dims());
    }
    for (what, x) in [("xw", xw), ("weight", weight), ("state", state)] {
        if !x.device().is_cpu() || x.dtype() != DType::F32 {
            bail!(
                "fused {cell}: {what} is {:?} on {:?}; the fused kernels need f32 on the CPU",
                x.dtype(),
                x.device()
            );
        }
    }
    let save = xw.track_op() || weight.track_op() || state.track_op();
    let op =
        FusedLayer { cell, dims: Dims { b, t, h }, save, saved: Mutex::new(None), slots: slots.cloned() };
    let (xw, weight, state) = (xw.contiguous()?, weight.contiguous()?, state.contiguous()?);
    if save {
        xw.apply_op3(&weight, &state, op)
    } else {
        xw.apply_op3_no_bwd(&weight, &state, &op)
    }
}
