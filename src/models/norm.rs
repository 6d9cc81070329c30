//! LayerNorm (PyTorch's `nn.LayerNorm`): the fused kernel on the CPU, differentiable candle ops
//! elsewhere. Shared by the GPT's blocks and the LRU's.

use crate::kernels;
use candle_core::{Module, Result, Tensor, D};
use candle_nn::VarBuilder;

/// LayerNorm over the last dim with biased variance, written with differentiable ops.
pub(crate) struct LayerNorm {
    pub(crate) weight: Tensor,
    pub(crate) bias: Tensor,
    pub(crate) eps: f64,
}

impl LayerNorm {
    pub(crate) fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self { weight: vb.get(size, "weight")?, bias: vb.get(size, "bias")?, eps })
    }
}

impl LayerNorm {
    pub(crate) fn apply(&self, x: &Tensor, fused: bool) -> Result<Tensor> {
        if fused {
            kernels::layer_norm(x, &self.weight, &self.bias, self.eps)
        } else {
            self.forward(x)
        }
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}
