//! gradscope: train recurrent and attention models on long-range problems and measure how the
//! training signal ∂L/∂h_t fades with the distance from the loss.
//!
//! The library is organised one concern per module:
//! - [`models`]: `Rnn`, `Lstm`, `Gru` (PyTorch layout and names) and a nanoGPT-style `Gpt`, plus the
//!   per-timestep state-gradient taps ([`models::StateTaps`]).
//! - [`checkpoint`]: atomic safetensors save/load with PyTorch `state_dict` names.
//! - [`train`]: PyTorch's optimiser rules, gradient clipping and learning-rate schedules.
//! - [`device`]: run-time device selection (`cpu`, `cuda`, `cuda:N`, `metal`).
//! - [`kernels`]: fused whole-sequence CPU kernels for the recurrent layers (forward and BPTT).
//! - [`util`]: tensor helpers shared by the models (time unbinding, deep-graph stack).

pub mod checkpoint;
pub mod device;
pub mod kernels;
pub mod models;
pub mod tasks;
pub mod train;
pub mod util;

pub use candle_core as candle;
