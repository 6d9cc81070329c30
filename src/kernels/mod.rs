//! Fused CPU kernels: for the recurrent layers, the whole time loop of one layer, forward and
//! backward, in one candle custom op (see [`fused_layer`]); for the GPT, LayerNorm, linear (+GELU)
//! and causal attention as one op each ([`layer_norm`], [`linear`], [`causal_attention`]), and a
//! whole block without dropout as one op ([`gpt_block`]).
//!
//! - [`math`]: vectorisable f32 `exp`, `sigmoid`, `tanh`.
//! - `gemm`: bounds-checked strided products through the `gemm` crate, and the thread choice.
//! - `step_gemm`: the per-step recurrent product against a weight packed once per sequence.
//! - `weight_grad`: ∂L/∂W_hh summed a few steps at a time inside BPTT.
//! - `layer`: the packed weight layout and the input-side products every cell shares.
//! - `cell`: what the op asks of a cell ([`cell::FusedCell`]), and where each is registered.
//! - `rnn`, `lstm`, `gru`: each cell's forward loop and BPTT on f32 slices.
//! - `input_gated`, `mingru`, `minlstm`: cells whose gates read only x_t; one row function each.
//! - `op`: the `CustomOp3` glue, shape checks and the state-gradient slots.
//! - `glu`: a ⊙ σ(b) over the halves of the last dim, forward and backward.
//! - `lru`: the LRU's diagonal complex recurrence, forward and BPTT.
//! - `mamba`: Mamba's conv, selective scan and gate between its projections, forward and BPTT.
//! - `readout`: a linear readout fused into a layer's time loops.
//! - `denormals`: subnormals flushed to zero while a recurrent shard runs (Intel's slow path).
//! - `layer_norm`, `linear`, `attention`: the GPT's ops, each forward + backward on f32 slices.

mod attention;
mod block;
mod cell;
mod denormals;
mod gemm;
mod glu;
mod gru;
mod input_gated;
mod layer;
mod layer_norm;
mod linear;
mod lru;
mod lstm;
mod mamba;
pub mod math;
mod mingru;
mod minlstm;
mod op;
mod readout;
mod rnn;
mod step_gemm;
mod weight_grad;

pub use attention::causal_attention;
pub use block::gpt_block;
pub use denormals::flushing as flushes_denormals;
pub use glu::glu;
pub use layer_norm::layer_norm;
pub use linear::{linear, Activation};
pub use lru::lru_block;
pub use mamba::{mamba_mixer, MixerDims};
pub use op::{fused_layer, fused_layer_with_head, pack_weights, Slot, StateGradSlots};

/// A zeroed buffer, written by rayon's pool: `vec![0.0; len]` would zero the GPT's (B, nh, T, T)
/// and (B, T, 4C) buffers on candle's main thread while the pool's workers wait.
pub(crate) fn zeros(len: usize) -> Vec<f32> {
    use rayon::prelude::*;
    (0..len).into_par_iter().with_min_len(1 << 14).map(|_| 0f32).collect()
}

/// `a ← a + b`, element by element, on rayon's pool.
pub(crate) fn add_assign(a: &mut [f32], b: &[f32]) {
    use rayon::prelude::*;
    a.par_chunks_mut(1 << 14).zip(b.par_chunks(1 << 14)).for_each(|(a, b)| {
        a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
    });
}

/// Batch, sequence length, hidden and input size of one fused call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dims {
    b: usize,
    t: usize,
    h: usize,
    i: usize,
}

/// What a cell's backward returns, each shaped like the op's argument.
struct Grads {
    /// ∂L/∂x (B, T, I), when the input needs it.
    dx: Option<Vec<f32>>,
    /// ∂L/∂[W_ih | W_hh | b_ih | b_hh] (G·H, I + H + 2).
    dw: Vec<f32>,
    /// ∂L/∂state.
    dstate: Vec<f32>,
    /// [∂L/∂W | ∂L/∂b] of a fused readout (empty without one).
    dhead: Vec<f32>,
}

/// A buffer of `len` values that the caller writes in full before anything reads it: the
/// (B, T, ·) activations and gradients of the recurrent time loops, the GPT ops' outputs that a
/// GEMM without accumulation or an elementwise pass fills: zeroing them first would be a memset of
/// up to the whole (B, T, G·H) buffer per step for nothing. Buffers that are accumulated into
/// keep [`zeros`]. Debug builds fill this one with NaN, so a value read before it is
/// written shows.
pub(crate) fn unfilled(len: usize) -> Vec<f32> {
    if cfg!(debug_assertions) {
        return vec![f32::NAN; len];
    }
    let mut v = Vec::with_capacity(len);
    // SAFETY: f32 has no invalid bit patterns and no drop; every caller writes each element
    // before reading it (the time loops assign every row of every step in full), as candle's
    // own CPU storage does for its freshly allocated outputs.
    #[allow(clippy::uninit_vec)]
    unsafe {
        v.set_len(len)
    };
    v
}
