//! One time step of each recurrent cell, exactly PyTorch's equations (see the fixtures' README).
//!
//! Every step receives `xw_t`, the input projection W_ih x_t + b already computed for the whole
//! sequence by one GEMM, and adds the recurrent term. Shapes: B batch, H hidden, G gates.

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

/// h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh); both biases are already in `xw_t`.
pub(crate) fn rnn_step(act: Nonlinearity, xw_t: &Tensor, h: &Tensor, w_hh_t: &Tensor) -> Result<Tensor> {
    act.apply(&(xw_t + h.matmul(w_hh_t)?)?) // (B, H)
}

/// LSTM gate activations [i, f, g, o], each (B, H).
pub(crate) fn lstm_gates(xw_t: &Tensor, h: &Tensor, w_hh_t: &Tensor) -> Result<[Tensor; 4]> {
    let hid = h.dim(1)?;
    let a = (xw_t + h.matmul(w_hh_t)?)?; // (B, 4H)
    Ok([
        sigmoid(&a.narrow(1, 0, hid)?)?,
        sigmoid(&a.narrow(1, hid, hid)?)?,
        a.narrow(1, 2 * hid, hid)?.tanh()?,
        sigmoid(&a.narrow(1, 3 * hid, hid)?)?,
    ])
}

/// LSTM step, gate blocks i, f, g, o. `c_tap` (a zero tensor) is added to c_t before h_t is formed,
/// so its gradient is the total ∂L/∂c_t. Returns (h_t, c_t).
pub(crate) fn lstm_step(
    xw_t: &Tensor,
    h: &Tensor,
    c: &Tensor,
    w_hh_t: &Tensor,
    c_tap: Option<&Tensor>,
) -> Result<(Tensor, Tensor)> {
    let [i, f, g, o] = lstm_gates(xw_t, h, w_hh_t)?;
    let mut c = ((f * c)? + (i * g)?)?; // (B, H)
    if let Some(tap) = c_tap {
        c = (c + tap)?;
    }
    let h = (o * c.tanh()?)?;
    Ok((h, c))
}

/// GRU gate activations (r, z, n), each (B, H), with b_hn inside the reset product.
pub(crate) fn gru_gates(xw_t: &Tensor, h: &Tensor, w_hh_t: &Tensor, b_hh: &Tensor) -> Result<[Tensor; 3]> {
    let hid = h.dim(1)?;
    let hw = h.matmul(w_hh_t)?.broadcast_add(b_hh)?; // (B, 3H)
    let rz = sigmoid(&(xw_t.narrow(1, 0, 2 * hid)? + hw.narrow(1, 0, 2 * hid)?)?)?; // (B, 2H)
    let r = rz.narrow(1, 0, hid)?;
    let n = (xw_t.narrow(1, 2 * hid, hid)? + (&r * hw.narrow(1, 2 * hid, hid)?)?)?.tanh()?;
    Ok([r, rz.narrow(1, hid, hid)?, n])
}

/// GRU step, gate blocks r, z, n:
/// n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn)); h_t = (1 - z_t) n_t + z_t h_{t-1}.
pub(crate) fn gru_step(xw_t: &Tensor, h: &Tensor, w_hh_t: &Tensor, b_hh: &Tensor) -> Result<Tensor> {
    let [_, z, n] = gru_gates(xw_t, h, w_hh_t, b_hh)?;
    // (1 - z) n + z h  ==  n + z (h - n)
    n.clone() + (z * (h - n)?)?
}
