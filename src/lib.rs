//! gradscope: train recurrent and attention models on long-range problems and measure how the
//! training signal ∂L/∂h_t fades with the distance from the loss.
//!
//! The library is organised one concern per module:
//! - [`models`]: `Rnn`, `Lstm`, `Gru` (PyTorch layout and names), minGRU and minLSTM on the same
//!   recurrent stack, the `Lru`, `Mamba` and a nanoGPT-style `Gpt`, plus the per-timestep state-gradient
//!   taps ([`models::StateTaps`]).
//! - [`cell`]: the recurrent cells' names and sizes, shared by the models and the kernels.
//! - [`kernels`]: fused CPU kernels: whole-sequence recurrences (forward and BPTT) and the GPT's ops.
//! - [`tasks`]: copy memory, the adding problem and language modelling, generated or read on the fly.
//! - [`text`]: corpora and the character / BPE tokenizers.
//! - [`train`]: PyTorch's optimiser rules, clipping, schedules and the training loop.
//! - [`probe`]: ‖∂L/∂h_t‖ against distance, decay metrics, saturation statistics.
//! - [`bench`]: benchmark suites and their reports.
//! - [`plot`] and [`figures`]: PNG + SVG charts drawn from saved data.
//! - [`generate`]: sampling from language models.
//! - [`checkpoint`]: atomic safetensors save/load with PyTorch `state_dict` names.
//! - [`device`]: run-time device selection (`cpu`, `cuda`, `cuda:N`, `metal`).
//! - [`lab`]: the vanishing-gradient lab: named experiments, one per claim of the literature.
//! - [`cli`]: the `gradscope` command line.
//! - [`util`]: tensor helpers shared by the models (time unbinding, deep-graph stack) and atomic
//!   file writes.

pub mod bench;
pub mod cell;
pub mod checkpoint;
pub mod cli;
pub mod device;
pub mod figures;
pub mod generate;
pub mod kernels;
pub mod lab;
pub mod models;
pub mod plot;
pub mod probe;
pub mod tasks;
pub mod text;
pub mod train;
pub mod util;

pub use candle_core as candle;
