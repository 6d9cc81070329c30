//! A recurrent cell as the fused op sees it: a whole-sequence forward loop and its BPTT on f32
//! slices of one batch shard. `op.rs` handles everything around them (shards, shapes, the
//! readout, taps, candle's graph), so a new cell is one file implementing [`FusedCell`] plus its
//! line in [`fused_cell`].

use super::readout::{OuterGrad, Readout};
use super::{gru, lstm, mingru, minlstm, rnn, Dims, Grads};
use crate::cell::CellKind;

/// What a cell's forward keeps for backward beyond the op's result: its own buffers, in the order
/// its backward reads them; none when nothing will differentiate the result.
pub(super) struct Saved(Vec<Vec<f32>>);

impl Saved {
    pub fn nothing() -> Self {
        Saved(Vec::new())
    }

    pub fn buffers(buffers: Vec<Vec<f32>>) -> Self {
        Saved(buffers)
    }

    /// The `N` buffers a backward reads, or None when the forward kept a different set.
    pub fn get<const N: usize>(&self) -> Option<[&[f32]; N]> {
        (self.0.len() == N).then(|| std::array::from_fn(|k| &self.0[k][..]))
    }
}

/// One shard's forward arguments.
pub(super) struct Forward<'a, 'h> {
    pub d: Dims,
    /// The layer's input (B, T, I).
    pub x: &'a [f32],
    /// The packed [W_ih | W_hh | b_ih | b_hh] (G·H, I + H + 2).
    pub w: &'a [f32],
    /// h0 (B, H), or [h0; c0] (2·B, H) for a cell with a cell state.
    pub state: &'a [f32],
    /// Keep what backward needs.
    pub save: bool,
    /// A readout to run on every h_t, and its (B, T, O) rows to fill.
    pub head: Option<(&'h Readout<'h>, &'a mut [f32])>,
}

/// One shard's backward arguments.
pub(super) struct Backward<'a> {
    pub d: Dims,
    /// ∂L/∂h_t from outside the layer.
    pub grad: OuterGrad<'a>,
    /// ∂L/∂c_{T-1} (B, H) for a cell with a cell state; empty otherwise.
    pub grad_c: &'a [f32],
    /// The layer's h_t (B, T, H), as its forward returned them.
    pub out: &'a [f32],
    pub saved: &'a Saved,
    pub x: &'a [f32],
    pub w: &'a [f32],
    pub state: &'a [f32],
    /// Whether ∂L/∂x is needed (the first layer's input usually needs none).
    pub need_dx: bool,
    /// Receive ∂L/∂h_t and, for a cell with a cell state, ∂L/∂c_t, each (B, T, H).
    pub tap_h: Option<&'a mut [f32]>,
    pub tap_c: Option<&'a mut [f32]>,
}

/// A recurrent cell on the fused path. Each implementation names, in its module's doc comment,
/// the equations it runs; `models::cells` holds the per-op reference it must equal.
pub(super) trait FusedCell: Send + Sync {
    /// The custom op's name in candle's graph.
    fn op_name(&self) -> &'static str;

    /// Runs the whole sequence: returns the op's result, (B, T, H), or (B·T + B, H) = [h_t;
    /// c_{T-1}] for a cell with a cell state, and what backward needs when `save`.
    fn forward(&self, args: Forward) -> (Vec<f32>, Saved);

    /// BPTT over the whole sequence; None when the forward kept nothing to run it on.
    fn backward(&self, args: Backward) -> Option<Grads>;
}

/// The fused implementation of `kind`: where a cell is registered on this path.
pub(super) fn fused_cell(kind: CellKind) -> Box<dyn FusedCell> {
    match kind {
        CellKind::Rnn(act) => Box::new(rnn::Rnn(act)),
        CellKind::Lstm => Box::new(lstm::Lstm),
        CellKind::Gru => Box::new(gru::Gru),
        CellKind::MinGru => Box::new(mingru::MinGru),
        CellKind::MinLstm => Box::new(minlstm::MinLstm),
    }
}
