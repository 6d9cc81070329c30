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
/// `rnn_tanh`, `rnn_relu`, `rnn_sigmoid`, `rnn_linear`, `lstm`, `gru`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CellKind {
    Rnn(Nonlinearity),
    Lstm,
    Gru,
}

impl CellKind {
    /// Gate blocks stacked in the rows of `weight_ih`/`weight_hh` (PyTorch's G).
    pub fn gates(self) -> usize {
        match self {
            CellKind::Rnn(_) => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }

    pub fn has_cell_state(self) -> bool {
        matches!(self, CellKind::Lstm)
    }

    pub fn name(self) -> String {
        match self {
            CellKind::Rnn(act) => format!("rnn_{}", act.name()),
            CellKind::Lstm => "lstm".into(),
            CellKind::Gru => "gru".into(),
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
            "rnn" => Ok(CellKind::Rnn(Nonlinearity::Tanh)),
            other => match other.strip_prefix("rnn_").map(str::parse::<Nonlinearity>) {
                Some(Ok(act)) => Ok(CellKind::Rnn(act)),
                _ => Err(format!(
                    "unknown cell '{s}': expected rnn, rnn_tanh, rnn_relu, rnn_sigmoid, rnn_linear, lstm or gru"
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
