//! One time step of each recurrent cell on candle's per-op path, exactly PyTorch's equations
//! (see the fixtures' README): the readable reference that the fused kernels must equal, and the
//! only path off the CPU. A new cell is one file implementing [`ReferenceCell`] plus its line in
//! [`reference_cell`].
//!
//! Every step receives `xw_t`, the input projection W_ih x_t + b already computed for the whole
//! sequence by one GEMM, and adds the recurrent term. Shapes: B batch, H hidden, G gates.

mod gru;
mod lstm;
mod mingru;
mod minlstm;
mod rnn;

use crate::cell::CellKind;
use candle_core::{Result, Tensor};

/// A layer's state after one step: h_t (B, H), and c_t (B, H) for a cell with a cell state.
pub(crate) struct CellState {
    pub h: Tensor,
    pub c: Option<Tensor>,
}

/// The recurrent side of a layer's weights, as a step reads them.
pub(crate) struct StepWeights<'a> {
    /// W_hhᵀ (H, G·H) and b_hh (G·H,); None for a cell whose gates read only x_t.
    pub recurrent: Option<(&'a Tensor, &'a Tensor)>,
}

impl<'a> StepWeights<'a> {
    /// W_hhᵀ and b_hh, for the cells that have them (the stack reads them for those).
    fn hh(&self) -> (&'a Tensor, &'a Tensor) {
        self.recurrent.expect("a cell with recurrent weights was built without them")
    }
}

/// What `Recurrent::saturation` measures at one step: the derivative of each of the cell's
/// activations at its output (in [`ReferenceCell::saturation_names`] order), and the gate by
/// which the state carries the gradient back (the LSTM's forget gate, the min cells' retention).
pub(crate) struct StepActivations {
    pub derivatives: Vec<Tensor>,
    pub forget_gate: Option<Tensor>,
}

/// A recurrent cell on candle's per-op path.
pub(crate) trait ReferenceCell {
    /// Whether b_hh is added to b_ih in the whole-sequence input projection; false when the step
    /// applies it itself.
    fn folds_recurrent_bias(&self) -> bool {
        true
    }

    /// One step from `state`. `c_tap`, a zero tensor, is added to c_t before h_t is formed, so
    /// its gradient is the total ∂L/∂c_t (cells with a cell state only).
    fn step(
        &self,
        xw_t: &Tensor,
        state: &CellState,
        w: &StepWeights,
        c_tap: Option<&Tensor>,
    ) -> Result<CellState>;

    /// The activations whose saturation is measured.
    fn saturation_names(&self) -> Vec<String>;

    /// [`Self::step`] without taps, with what saturation statistics read.
    fn step_with_activations(
        &self,
        xw_t: &Tensor,
        state: &CellState,
        w: &StepWeights,
    ) -> Result<(CellState, StepActivations)>;
}

/// The reference implementation of `kind`: where a cell is registered on this path.
pub(crate) fn reference_cell(kind: CellKind) -> Box<dyn ReferenceCell> {
    match kind {
        CellKind::Rnn(act) => Box::new(rnn::Rnn(act)),
        CellKind::Lstm => Box::new(lstm::Lstm),
        CellKind::Gru => Box::new(gru::Gru),
        CellKind::MinGru => Box::new(mingru::MinGru),
        CellKind::MinLstm => Box::new(minlstm::MinLstm),
    }
}

/// The min cells' candidate state g(x) = x + 1/2 for x ≥ 0 and σ(x) below: positive, as the
/// paper's log-space parallel form needs, and the same in the sequential form so the two agree.
fn candidate(x: &Tensor) -> Result<Tensor> {
    x.ge(0.0)?.where_cond(&(x + 0.5)?, &candle_nn::ops::sigmoid(x)?)
}

/// s·(1 − s): σ' at the output s = σ(x).
fn sigmoid_derivative(s: &Tensor) -> Result<Tensor> {
    s * (1.0 - s)?
}

/// 1 − t²: tanh' at the output t = tanh(x).
fn tanh_derivative(t: &Tensor) -> Result<Tensor> {
    1.0 - t.sqr()?
}
