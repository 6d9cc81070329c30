//! gradscope: train recurrent and attention models on long-range problems and measure how the
//! training signal ∂L/∂h_t fades with the distance from the loss.
//!
//! The library is organised one concern per module:
//! - [`models`]: `Rnn`, `Lstm`, `Gru` (PyTorch layout and names) and a nanoGPT-style `Gpt`, plus the
//!   per-timestep state-gradient taps ([`models::StateTaps`]).
//! - [`checkpoint`]: atomic safetensors save/load with PyTorch `state_dict` names.
//! - [`train`]: PyTorch's optimiser rules, gradient clipping and learning-rate schedules.
//! - [`device`]: run-time device selection (`cpu`, `cuda`, `cuda:N`, `metal`).
//! - [`plot`]: PNG + SVG line charts (log axes over tens of decades) and heatmaps from saved data.
//! - [`lab`]: the vanishing-gradient lab: named experiments, one per claim of the literature.
//! - [`util`]: tensor helpers shared by the models (time unbinding, deep-graph stack).

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod device;
pub mod figures;
pub mod generate;
pub mod lab;
pub mod models;
pub mod plot;
pub mod probe;
pub mod tasks;
pub mod text;
pub mod train;
pub mod util;

pub use candle_core as candle;
