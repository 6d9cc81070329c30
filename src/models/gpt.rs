//! A nanoGPT-style causal Transformer LM: pre-LayerNorm blocks, learned positions, exact-erf GELU,
//! a separate (untied) `lm_head` without bias. Parameter names follow the fixtures' README:
//! `wte`, `wpe`, `h.{k}.ln_1`, `h.{k}.attn.c_attn`, `h.{k}.attn.c_proj`, `h.{k}.ln_2`,
//! `h.{k}.mlp.c_fc`, `h.{k}.mlp.c_proj`, `ln_f`, `lm_head`.
//!
//! Two implementations of the same equations, chosen per call by [`super::ForwardOptions::backend`]
//! (the recurrent layers' switch): on the CPU in f32, fused ops (`crate::kernels`), one per block,
//! or while dropout is active one per LayerNorm, linear layer (with its GELU) and causal attention;
//! with `autograd`, or on another device, candle's per-op graph, which stays the reference.
//! Dropout on the attention weights takes the per-op attention.

mod cache;
pub use cache::KvCache;

use super::init::Initializer;
use super::norm::LayerNorm;
use super::taps::{LayerTap, StateTaps};
use crate::kernels::{self, Activation};
use crate::util::dropout;
use candle_core::{bail, DType, Device, Module, Result, Tensor, D};
use candle_nn::{linear_no_bias, Linear, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GptConfig {
    pub vocab_size: usize,
    /// Rows of the positional table: the longest sequence the model accepts.
    pub block_size: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// d_model, C.
    pub n_embd: usize,
    /// Dropout on embeddings, attention weights and residual branches, in training only.
    #[serde(default)]
    pub dropout: f64,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Rows of `lm_head`; `None` means `vocab_size` (a language model). Tasks whose answer
    /// alphabet differs from the input vocabulary set it.
    #[serde(default)]
    pub output_size: Option<usize>,
}

fn default_eps() -> f64 {
    1e-5
}

impl GptConfig {
    pub fn new(vocab_size: usize, block_size: usize, n_layer: usize, n_head: usize, n_embd: usize) -> Self {
        Self {
            vocab_size,
            block_size,
            n_layer,
            n_head,
            n_embd,
            dropout: 0.0,
            layer_norm_eps: 1e-5,
            output_size: None,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let c = self;
        if c.vocab_size == 0 || c.block_size == 0 || c.n_layer == 0 || c.n_head == 0 || c.n_embd == 0 {
            bail!("vocab_size, block_size, n_layer, n_head and n_embd must all be ≥ 1");
        }
        if !c.n_embd.is_multiple_of(c.n_head) {
            bail!("n_embd ({}) must be divisible by n_head ({})", c.n_embd, c.n_head);
        }
        if !(0.0..1.0).contains(&c.dropout) {
            bail!("dropout must be in [0, 1), got {}", c.dropout);
        }
        if self.output_size == Some(0) {
            bail!("output_size must be ≥ 1");
        }
        Ok(())
    }

    /// Rows of `lm_head`.
    pub fn outputs(&self) -> usize {
        self.output_size.unwrap_or(self.vocab_size)
    }

    /// nanoGPT's initialisation, seeded: Linear and Embedding weights N(0, 0.02²), residual
    /// projections (`c_proj`) N(0, (0.02/√(2·n_layer))²), biases 0, LayerNorm weight 1, bias 0.
    pub fn init_tensors(&self, seed: u64, device: &Device) -> Result<Vec<(String, Tensor)>> {
        self.validate()?;
        let (v, p, c) = (self.vocab_size, self.block_size, self.n_embd);
        let mut rng = Initializer::new(seed);
        let proj_std = 0.02 / ((2 * self.n_layer) as f64).sqrt();
        let mut out = Vec::new();
        let mut normal = |name: String, rows: usize, cols: usize, std: f64| -> Result<()> {
            let data = rng.normal(rows * cols, std);
            out.push((name, Tensor::from_vec(data, (rows, cols), device)?));
            Ok(())
        };
        normal("wte.weight".into(), v, c, 0.02)?;
        normal("wpe.weight".into(), p, c, 0.02)?;
        for k in 0..self.n_layer {
            normal(format!("h.{k}.attn.c_attn.weight"), 3 * c, c, 0.02)?;
            normal(format!("h.{k}.attn.c_proj.weight"), c, c, proj_std)?;
            normal(format!("h.{k}.mlp.c_fc.weight"), 4 * c, c, 0.02)?;
            normal(format!("h.{k}.mlp.c_proj.weight"), c, 4 * c, proj_std)?;
        }
        normal("lm_head.weight".into(), self.outputs(), c, 0.02)?;
        let ones = |n: usize| Tensor::ones(n, DType::F32, device);
        let zeros = |n: usize| Tensor::zeros(n, DType::F32, device);
        for k in 0..self.n_layer {
            for ln in ["ln_1", "ln_2"] {
                out.push((format!("h.{k}.{ln}.weight"), ones(c)?));
                out.push((format!("h.{k}.{ln}.bias"), zeros(c)?));
            }
            out.push((format!("h.{k}.attn.c_attn.bias"), zeros(3 * c)?));
            out.push((format!("h.{k}.attn.c_proj.bias"), zeros(c)?));
            out.push((format!("h.{k}.mlp.c_fc.bias"), zeros(4 * c)?));
            out.push((format!("h.{k}.mlp.c_proj.bias"), zeros(c)?));
        }
        out.push(("ln_f.weight".into(), ones(c)?));
        out.push(("ln_f.bias".into(), zeros(c)?));
        Ok(out)
    }

    /// Fresh seeded parameters registered in `varmap` under `prefix`, and the model built on them.
    pub fn init(&self, varmap: &VarMap, prefix: &str, seed: u64, device: &Device) -> Result<Gpt> {
        let vb = super::register(varmap, prefix, self.init_tensors(seed, device)?, device)?;
        Gpt::new(self, vb)
    }
}

/// A linear layer with bias, weight (out, in) in PyTorch's layout.
struct Dense {
    weight: Tensor,
    bias: Tensor,
}

impl Dense {
    fn new(inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { weight: vb.get((outputs, inputs), "weight")?, bias: vb.get(outputs, "bias")? })
    }

    fn apply(&self, x: &Tensor, act: Activation, fused: bool) -> Result<Tensor> {
        if fused {
            return kernels::linear(x, &self.weight, &self.bias, act);
        }
        let y = self.forward(x)?;
        match act {
            Activation::Identity => Ok(y),
            Activation::Gelu => y.gelu_erf(),
        }
    }
}

impl Module for Dense {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Linear::new(self.weight.clone(), Some(self.bias.clone())).forward(x)
    }
}

struct Block {
    ln_1: LayerNorm,
    c_attn: Dense,
    attn_proj: Dense,
    ln_2: LayerNorm,
    c_fc: Dense,
    mlp_proj: Dense,
    n_head: usize,
}

/// Per-call switches of the GPT forward pass.
#[derive(Clone, Copy, Debug, Default)]
struct Mode {
    train: bool,
    p: f64,
    seed: u64,
    /// The fused CPU ops rather than candle's per-op graph.
    fused: bool,
}

impl Mode {
    fn dropout(&self, x: &Tensor, salt: u64) -> Result<Tensor> {
        if self.train && self.p > 0.0 {
            dropout(x, self.p, self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(salt))
        } else {
            Ok(x.clone())
        }
    }
}

impl Block {
    fn new(c: usize, n_head: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            ln_1: LayerNorm::new(c, eps, vb.pp("ln_1"))?,
            c_attn: Dense::new(c, 3 * c, vb.pp("attn.c_attn"))?,
            attn_proj: Dense::new(c, c, vb.pp("attn.c_proj"))?,
            ln_2: LayerNorm::new(c, eps, vb.pp("ln_2"))?,
            c_fc: Dense::new(c, 4 * c, vb.pp("mlp.c_fc"))?,
            mlp_proj: Dense::new(4 * c, c, vb.pp("mlp.c_proj"))?,
            n_head,
        })
    }

    fn attention(&self, u: &Tensor, mask: &Tensor, mode: Mode, salt: u64) -> Result<Tensor> {
        let (b, t, c) = u.dims3()?;
        let (nh, hd) = (self.n_head, c / self.n_head);
        let qkv = self.c_attn.apply(u, Activation::Identity, mode.fused)?; // (B, T, 3C)
        let attention_dropout = mode.train && mode.p > 0.0;
        if mode.fused && !attention_dropout {
            let y = kernels::causal_attention(&qkv, nh)?; // (B, T, C)
            return mode.dropout(&self.attn_proj.apply(&y, Activation::Identity, true)?, salt + 1);
        }
        let heads = |j: usize| -> Result<Tensor> {
            qkv.narrow(2, j * c, c)?.contiguous()?.reshape((b, t, nh, hd))?.transpose(1, 2)?.contiguous()
        }; // (B, nh, T, hd)
        let (q, k, v) = (heads(0)?, heads(1)?, heads(2)?);
        let scores = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?; // (B, nh, T, T)
        let scores = scores.broadcast_add(mask)?;
        let att = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let att = mode.dropout(&att, salt)?;
        let y = att.matmul(&v)?; // (B, nh, T, hd)
        let y = y.transpose(1, 2)?.contiguous()?.reshape((b, t, c))?; // (B, T, C)
        mode.dropout(&self.attn_proj.apply(&y, Activation::Identity, mode.fused)?, salt + 1)
    }

    fn forward(&self, x: &Tensor, mask: &Tensor, mode: Mode, salt: u64) -> Result<Tensor> {
        if mode.fused && !(mode.train && mode.p > 0.0) {
            let (l1, l2) = (&self.ln_1, &self.ln_2);
            let (a, p, f, m) = (&self.c_attn, &self.attn_proj, &self.c_fc, &self.mlp_proj);
            let params = [
                &l1.weight, &l1.bias, &a.weight, &a.bias, &p.weight, &p.bias, // attention half
                &l2.weight, &l2.bias, &f.weight, &f.bias, &m.weight, &m.bias, // MLP half
            ];
            return kernels::gpt_block(x, params, self.n_head, l1.eps);
        }
        let x = (x + self.attention(&self.ln_1.apply(x, mode.fused)?, mask, mode, salt)?)?;
        let hidden = self.c_fc.apply(&self.ln_2.apply(&x, mode.fused)?, Activation::Gelu, mode.fused)?; // (B, T, 4C)
        x + mode.dropout(&self.mlp_proj.apply(&hidden, Activation::Identity, mode.fused)?, salt + 2)?
    }
}

/// What [`Gpt::forward_with`] returns.
pub struct GptOutput {
    /// (B, T, V)
    pub logits: Tensor,
    /// Taps on the residual stream, each (B, T, C): index 0 is the block input (token + position
    /// embedding), index k the stream after block k.
    pub taps: Option<StateTaps>,
}

/// The causal Transformer language model.
pub struct Gpt {
    config: GptConfig,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    lm_head: Linear,
    /// (P, P): 0 on and below the diagonal, -inf above.
    causal_mask: Tensor,
}

impl Gpt {
    pub fn new(config: &GptConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let (c, p) = (config.n_embd, config.block_size);
        let blocks = (0..config.n_layer)
            .map(|k| Block::new(c, config.n_head, config.layer_norm_eps, vb.pp(format!("h.{k}"))))
            .collect::<Result<Vec<_>>>()?;
        let mask: Vec<f32> =
            (0..p * p).map(|i| if i % p > i / p { f32::NEG_INFINITY } else { 0.0 }).collect();
        Ok(Self {
            config: config.clone(),
            wte: vb.get((config.vocab_size, c), "wte.weight")?,
            wpe: vb.get((p, c), "wpe.weight")?,
            blocks,
            ln_f: LayerNorm::new(c, config.layer_norm_eps, vb.pp("ln_f"))?,
            lm_head: linear_no_bias(c, config.outputs(), vb.pp("lm_head"))?,
            causal_mask: Tensor::from_vec(mask, (p, p), vb.device())?,
        })
    }

    pub fn config(&self) -> &GptConfig {
        &self.config
    }

    /// Token ids (B, T) (u32 or i64) -> logits (B, T, V), inference mode.
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        Ok(self.forward_with(tokens, &super::ForwardOptions::default())?.logits)
    }

    /// Embedded inputs (B, T, C) rather than token ids: used by tasks with real-valued inputs.
    pub fn forward_embedded(&self, x: &Tensor, opts: &super::ForwardOptions) -> Result<GptOutput> {
        let (b, t, c) = x.dims3()?;
        if t > self.config.block_size {
            bail!("sequence length {t} exceeds the model's context (block_size {})", self.config.block_size);
        }
        if c != self.config.n_embd {
            bail!("embedded input has {c} channels, the model has n_embd {}", self.config.n_embd);
        }
        let fused = opts.backend.use_fused(x.device(), x.dtype())?;
        let mode = Mode { train: opts.train, p: self.config.dropout, seed: opts.dropout_seed, fused };
        let mut x = mode.dropout(&x.broadcast_add(&self.wpe.narrow(0, 0, t)?)?, 0)?; // (B, T, C)
        let mask = self.causal_mask.narrow(0, 0, t)?.narrow(1, 0, t)?; // (T, T)
        let mut taps = Vec::new();
        let mut tap = |x: Tensor| -> Result<Tensor> {
            if !opts.record_state_grads {
                return Ok(x);
            }
            let tap = LayerTap::zeros(false, (b, t, c), x.dtype(), x.device())?;
            let x = (x + tap.h_tensor())?;
            taps.push(tap);
            Ok(x)
        };
        x = tap(x)?;
        for (k, block) in self.blocks.iter().enumerate() {
            x = tap(block.forward(&x, &mask, mode, 1 + 3 * k as u64)?)?;
        }
        let logits = self.lm_head.forward(&self.ln_f.apply(&x, fused)?)?; // (B, T, V)
        Ok(GptOutput { logits, taps: opts.record_state_grads.then(|| StateTaps::new(taps)) })
    }

    /// Token ids (B, T) -> logits, with training/dropout/tap switches.
    pub fn forward_with(&self, tokens: &Tensor, opts: &super::ForwardOptions) -> Result<GptOutput> {
        let (b, t) = tokens.dims2()?;
        let emb = self.wte.embedding(&tokens.flatten_all()?)?.reshape((b, t, self.config.n_embd))?;
        self.forward_embedded(&emb, opts)
    }

    /// The token embedding table (V, C).
    pub fn wte(&self) -> &Tensor {
        &self.wte
    }
}

/// Mean cross-entropy of logits (B, T, V) against targets (B, T).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let (b, t, v) = logits.dims3()?;
    candle_nn::loss::cross_entropy(&logits.reshape((b * t, v))?, &targets.flatten_all()?)
}

impl Gpt {
    /// Mean cross-entropy over all B·T positions (nanoGPT's loss).
    pub fn loss(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        cross_entropy(logits, targets)
    }
}
