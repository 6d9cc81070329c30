//! Fused CPU kernels for the recurrent layers: the whole time loop of one layer, forward and
//! backward, in one candle custom op (see [`fused_layer`]).
//!
//! - [`math`]: vectorisable f32 `exp`, `sigmoid`, `tanh`.
//! - `gemm`: bounds-checked strided products through the `gemm` crate, and the thread choice.
//! - `rnn`, `lstm`, `gru`: each cell's forward loop and BPTT on f32 slices.
//! - `op`: the `CustomOp3` glue, shape checks and the state-gradient slots.

mod gemm;
mod gru;
mod lstm;
pub mod math;
mod op;
mod rnn;

pub use op::{fused_layer, Slot, StateGradSlots};

/// Batch, sequence length and hidden size of one fused call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dims {
    b: usize,
    t: usize,
    h: usize,
}

/// What a cell's backward returns, each shaped like the op's argument.
struct Grads {
    /// ∂L/∂xw (B, T, G·H).
    dxw: Vec<f32>,
    /// ∂L/∂weight.
    dw: Vec<f32>,
    /// ∂L/∂state.
    dstate: Vec<f32>,
}
