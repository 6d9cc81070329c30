//! The model families: `Rnn`, `Lstm`, `Gru`, minGRU and minLSTM (one recurrent stack, PyTorch's
//! layout and names; a cell is one file in `cells/`), the `Lru`, `Mamba` and the nanoGPT-style `Gpt`, plus
//! the per-timestep state-gradient taps.

mod backend;
mod cells;
mod gpt;
pub mod init;
mod lru;
mod mamba;
mod norm;
mod recurrent;
mod seq;
mod stack;
mod taps;

pub use crate::cell::{CellKind, Nonlinearity};
pub use backend::RecurrentBackend;
pub use gpt::{cross_entropy, Gpt, GptConfig, GptOutput, KvCache};
pub use init::{InitScheme, Initializer};
pub use lru::{Lru, LruConfig, LruOutput};
pub use mamba::{Mamba, MambaConfig, MambaOutput};
pub use recurrent::{
    zero_state, ForwardOptions, LayerSaturation, Recurrent, RecurrentConfig, RecurrentOutput, RecurrentState,
    SATURATION_DERIVATIVE,
};
pub use seq::{parameter_count, Family, ModelInput, SeqModel, SeqModelConfig, SeqOutput};
pub use taps::{frobenius_per_step, LayerTap, StateGrads, StateTaps, TapSource};

use candle_core::{bail, DType, Device, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

/// Inserts freshly initialised tensors into `varmap` as `Var`s named `{prefix}.{name}` and returns
/// a `VarBuilder` rooted at `prefix`, from which a model constructor reads them back.
pub fn register<'a>(
    varmap: &'a VarMap,
    prefix: &str,
    tensors: Vec<(String, Tensor)>,
    device: &Device,
) -> Result<VarBuilder<'a>> {
    {
        let mut data = varmap.data().lock().expect("varmap lock poisoned");
        for (name, tensor) in tensors {
            let full = if prefix.is_empty() { name } else { format!("{prefix}.{name}") };
            data.insert(full, Var::from_tensor(&tensor)?);
        }
    }
    let vb = VarBuilder::from_varmap(varmap, DType::F32, device);
    Ok(if prefix.is_empty() { vb } else { vb.pp(prefix) })
}

macro_rules! recurrent_family {
    ($(#[$doc:meta])* $name:ident, $check:pat, $what:literal) => {
        $(#[$doc])*
        pub struct $name(Recurrent);

        impl $name {
            /// Builds the stack from parameters in `vb` (PyTorch names); `config.cell` must match.
            pub fn new(config: &RecurrentConfig, vb: VarBuilder) -> Result<Self> {
                if !matches!(config.cell, $check) {
                    bail!("{} needs a {} config, got cell '{}'", stringify!($name), $what, config.cell);
                }
                Ok(Self(Recurrent::new(config, vb)?))
            }
        }

        impl std::ops::Deref for $name {
            type Target = Recurrent;
            fn deref(&self) -> &Recurrent {
                &self.0
            }
        }

        impl candle_core::Module for $name {
            /// (B, T, I) -> (B, T, H) with a zero initial state, inference mode.
            fn forward(&self, x: &Tensor) -> Result<Tensor> {
                candle_core::Module::forward(&self.0, x)
            }
        }
    };
}

recurrent_family!(
    /// Elman RNN, `torch.nn.RNN(batch_first=True)`: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh).
    Rnn, CellKind::Rnn(_), "rnn_*"
);
recurrent_family!(
    /// LSTM, `torch.nn.LSTM(batch_first=True)`, gate blocks i, f, g, o.
    Lstm, CellKind::Lstm, "lstm"
);
recurrent_family!(
    /// GRU, `torch.nn.GRU(batch_first=True)`, gate blocks r, z, n.
    Gru, CellKind::Gru, "gru"
);
