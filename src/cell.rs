//! What a recurrent cell is, shared by both implementations: the reference per-op path in
//! [`crate::models`] and the fused kernels in [`crate::kernels`], which know nothing of each other.

use candle_core::{Result, Tensor};
use candle_nn::ops::sigmoid;
use serde::{Deserialize, Serialize};

/// The elementwise nonlinearity of a vanilla (Elman) RNN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Nonlinearity {
    Tanh,
    Relu,
    /// For analysis: saturates like tanh but with derivative ≤ 1/4.
    Sigmoid,
    /// For analysis: the identity, so ∂L/∂h_t is a pure matrix power of W_hh.
    Linear,
}

impl Nonlinearity {
    pub const ALL: [Nonlinearity; 4] =
        [Nonlinearity::Tanh, Nonlinearity::Relu, Nonlinearity::Sigmoid, Nonlinearity::Linear];

    pub fn name(self) -> &'static str {
        match self {
            Nonlinearity::Tanh => "tanh",
            Nonlinearity::Relu => "relu",
            Nonlinearity::Sigmoid => "sigmoid",
            Nonlinearity::Linear => "linear",
        }
    }

    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Nonlinearity::Tanh => x.tanh(),
            Nonlinearity::Relu => x.relu(),
            Nonlinearity::Sigmoid => sigmoid(x),
            Nonlinearity::Linear => Ok(x.clone()),
        }
    }
}

impl std::str::FromStr for Nonlinearity {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.to_ascii_lowercase();
        Nonlinearity::ALL
            .into_iter()
            .find(|n| n.name() == s || (s == "identity" && *n == Nonlinearity::Linear))
            .ok_or_else(|| format!("unknown nonlinearity '{s}': expected tanh, relu, sigmoid or linear"))
    }
}

/// Which recurrent cell a stack uses. Written as the fixtures' `kind` strings:
/// `rnn_tanh`, `rnn_relu`, `rnn_sigmoid`, `rnn_linear`, `lstm`, `gru`, `mingru`, `minlstm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CellKind {
    Rnn(Nonlinearity),
    Lstm,
    Gru,
    /// minGRU (Feng et al. 2024, "Were RNNs All We Needed?"): gates that read only x_t.
    MinGru,
    /// minLSTM (the same paper): forget and input gates normalised to sum to one.
    MinLstm,
}

impl CellKind {
    /// Gate blocks stacked in the rows of `weight_ih` (and `weight_hh`): PyTorch's G.
    pub fn gates(self) -> usize {
        match self {
            CellKind::Rnn(_) => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
            CellKind::MinGru => 2,
            CellKind::MinLstm => 3,
        }
    }

    pub fn has_cell_state(self) -> bool {
        matches!(self, CellKind::Lstm)
    }

    /// Whether the cell has `weight_hh`/`bias_hh`: h_{t-1} enters through a matrix. The min
    /// cells' gates read only x_t, so their parameters are `weight_ih` and `bias_ih` alone.
    pub fn has_recurrent_weights(self) -> bool {
        !matches!(self, CellKind::MinGru | CellKind::MinLstm)
    }

    /// The per-layer parameter names, before the `_l{k}` suffix, in PyTorch's order.
    pub fn parameter_names(self) -> &'static [&'static str] {
        if self.has_recurrent_weights() {
            &["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
        } else {
            &["weight_ih", "bias_ih"]
        }
    }

    /// Columns of the fused kernels' packed layer weight: [W_ih | W_hh | b_ih | b_hh] is
    /// I + H + 2, [W_ih | b_ih] (no recurrent weights) I + 1.
    pub fn packed_columns(self, input: usize, hidden: usize) -> usize {
        if self.has_recurrent_weights() {
            input + hidden + 2
        } else {
            input + 1
        }
    }

    /// Every cell, each RNN nonlinearity counted once.
    pub fn all() -> Vec<CellKind> {
        let mut all: Vec<CellKind> = Nonlinearity::ALL.into_iter().map(CellKind::Rnn).collect();
        all.extend([CellKind::Lstm, CellKind::Gru, CellKind::MinGru, CellKind::MinLstm]);
        all
    }

    pub fn name(self) -> String {
        match self {
            CellKind::Rnn(act) => format!("rnn_{}", act.name()),
            CellKind::Lstm => "lstm".into(),
            CellKind::Gru => "gru".into(),
            CellKind::MinGru => "mingru".into(),
            CellKind::MinLstm => "minlstm".into(),
        }
    }
}

impl std::fmt::Display for CellKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::str::FromStr for CellKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "lstm" => Ok(CellKind::Lstm),
            "gru" => Ok(CellKind::Gru),
            "mingru" => Ok(CellKind::MinGru),
            "minlstm" => Ok(CellKind::MinLstm),
            "rnn" => Ok(CellKind::Rnn(Nonlinearity::Tanh)),
            other => match other.strip_prefix("rnn_").map(str::parse::<Nonlinearity>) {
                Some(Ok(act)) => Ok(CellKind::Rnn(act)),
                _ => Err(format!(
                    "unknown cell '{s}': expected rnn, rnn_tanh, rnn_relu, rnn_sigmoid, rnn_linear, lstm, gru, \
                     mingru or minlstm"
                )),
            },
        }
    }
}

impl TryFrom<String> for CellKind {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse()
    }
}

impl From<CellKind> for String {
    fn from(c: CellKind) -> String {
        c.name()
    }
}
