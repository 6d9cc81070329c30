//! A stack of pre-norm residual blocks behind a linear encoder, x = x + block(x), shared by the
//! LRU and Mamba: the forward pass, no_grad, training dropout and one state tap per block.

use super::taps::{LayerTap, StateTaps};
use super::ForwardOptions;
use crate::kernels::{self, Activation, Slot};
use crate::util::dropout;
use candle_core::{bail, DType, Module, Result, Tensor};
use candle_nn::Linear;

/// One residual block of a [`BlockStack`].
pub(crate) trait ResidualBlock: Sized {
    /// The block on x (B, T, H), without the residual. On the per-op path (`fused` false) `tap`
    /// is the zero tensor to add to the state; on the fused path `slot` receives its gradient.
    fn forward(&self, x: &Tensor, tap: Option<&LayerTap>, slot: Option<&Slot>, fused: bool)
        -> Result<Tensor>;

    /// x + block(x); a block whose fused op can add the residual itself saves a (B, T, H) pass and
    /// a gradient accumulation.
    fn forward_residual(
        &self,
        x: &Tensor,
        tap: Option<&LayerTap>,
        slot: Option<&Slot>,
        fused: bool,
    ) -> Result<Tensor> {
        x + self.forward(x, tap, slot, fused)?
    }

    /// The same block with every parameter cut from the graph (see [`ForwardOptions::no_grad`]).
    fn detached(&self) -> Self;

    /// The last dim of the state tap's (B, T, ·) tensor on each path.
    fn tap_width(&self, fused: bool) -> usize;
}

pub(crate) struct BlockStack<B> {
    /// The model's name in error messages.
    pub(crate) name: &'static str,
    pub(crate) input_size: usize,
    pub(crate) dropout: f64,
    pub(crate) encoder: Linear,
    pub(crate) blocks: Vec<B>,
}

impl<B: ResidualBlock> BlockStack<B> {
    /// `x_in` (B, T, I) → the last block's output (B, T, H), and the taps when recorded.
    pub(crate) fn forward_with(
        &self,
        x_in: &Tensor,
        opts: &ForwardOptions,
    ) -> Result<(Tensor, Option<StateTaps>)> {
        let (b, t, i) = x_in.dims3()?;
        if i != self.input_size {
            bail!("input has {i} features per step, the {} expects {}", self.name, self.input_size);
        }
        if opts.no_grad && opts.record_state_grads {
            bail!("recording ∂L/∂state needs a backward pass, and this forward pass was asked for none (no_grad)");
        }
        let fused = opts.backend.use_fused(x_in.device(), x_in.dtype())?;
        // Under no_grad nothing may track, or the graph would keep every activation.
        let (x, encoder, detached);
        let (encoder, blocks) = if opts.no_grad {
            x = x_in.detach();
            encoder = Linear::new(self.encoder.weight().detach(), self.encoder.bias().map(Tensor::detach));
            detached = self.blocks.iter().map(B::detached).collect::<Vec<_>>();
            (&encoder, &detached)
        } else {
            x = x_in.clone();
            (&self.encoder, &self.blocks)
        };
        let mut h = match (fused, encoder.bias()) {
            // candle's broadcast bias would sum its gradient over (B, T) in a strided reduction.
            (true, Some(bias)) => kernels::linear(&x, encoder.weight(), bias, Activation::Identity)?,
            _ => encoder.forward(&x)?,
        }; // (B, T, H)
        let mut taps = Vec::new();
        for (k, block) in blocks.iter().enumerate() {
            let shape = (b, t, block.tap_width(fused));
            let (tap, slot) = match (opts.record_state_grads, fused) {
                (false, _) => (None, None),
                (true, true) => {
                    let slot = Slot::default();
                    (Some(LayerTap::recorded(slot.clone(), None, shape, DType::F32, x.device())), Some(slot))
                }
                (true, false) => (Some(LayerTap::zeros(false, shape, x.dtype(), x.device())?), None),
            };
            h = if opts.train && self.dropout > 0.0 {
                let y = block.forward(&h, tap.as_ref(), slot.as_ref(), fused)?;
                (&h + dropout(&y, self.dropout, opts.dropout_seed.wrapping_add(k as u64))?)?
            } else {
                block.forward_residual(&h, tap.as_ref(), slot.as_ref(), fused)?
            };
            taps.extend(tap);
        }
        Ok((h, opts.record_state_grads.then(|| StateTaps::new(taps))))
    }
}
