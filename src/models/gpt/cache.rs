//! Key/value-cached inference for the token GPT: each new token runs the blocks on one row and
//! attends to the keys and values already computed for the earlier positions, so it costs O(T)
//! rather than re-reading the whole window (O(T²)).
//!
//! Positions are absolute (`wpe`), so a window cannot slide one token at a time: once the cache
//! holds `block_size` tokens, the next token makes it drop the oldest `slide` tokens and recompute
//! the rest from their ids (one batched forward). `slide = 1` (the default) is nanoGPT's crop:
//! every token sees exactly the last `block_size` tokens, as the uncached model would, but each
//! token past the window pays a full-window forward. A larger `slide` pays that once per `slide`
//! tokens and leaves the model between `block_size - slide + 1` and `block_size` tokens of context.
//! Either way the logits equal [`Gpt::forward`]'s on the tokens the cache holds.
//!
//! This path uses the blocks' `Linear`/`LayerNorm` modules on (1, n, C) rows, not the training
//! forward, so it stays independent of how that is implemented.

use super::Gpt;
use candle_core::{bail, Module, Result, Tensor};

/// Keys and values of every layer for the tokens in the current window.
pub struct KvCache {
    /// Per layer (K, V), each (1, n_head, t, head_dim); empty before the first call.
    layers: Vec<(Tensor, Tensor)>,
    /// The token ids in the window, oldest first: `tokens.len()` is t and token i sits at
    /// position i.
    tokens: Vec<u32>,
    slide: usize,
}

impl KvCache {
    /// Tokens in the window (the next token's position).
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token ids whose keys and values the cache holds, oldest first.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Tokens dropped at once when the window is full (see the module docs).
    pub fn slide(&self) -> usize {
        self.slide
    }

    pub fn clear(&mut self) {
        self.layers.clear();
        self.tokens.clear();
    }
}

impl Gpt {
    /// An empty cache that slides the window one token at a time (nanoGPT's crop, exact).
    pub fn new_cache(&self) -> KvCache {
        KvCache { layers: Vec::new(), tokens: Vec::new(), slide: 1 }
    }

    /// An empty cache that drops `slide` tokens (1 ≤ slide ≤ block_size) when the window is full.
    pub fn new_cache_sliding(&self, slide: usize) -> Result<KvCache> {
        let p = self.config.block_size;
        if !(1..=p).contains(&slide) {
            bail!("slide must be in 1..={p} (the context), got {slide}");
        }
        Ok(KvCache { slide, ..self.new_cache() })
    }

    /// Feeds `tokens` (the prompt, then one token per call) after those already in `cache`.
    /// Returns logits (1, m, V) for the last m of them: all n while the window has room; when it
    /// overflows the window is rebuilt from the last `max(block_size - slide + 1, n)` tokens (at
    /// most block_size), and m counts the new tokens among those.
    pub fn forward_cached(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let n = tokens.len();
        if n == 0 {
            bail!("forward_cached needs at least one token");
        }
        if let Some(&bad) = tokens.iter().find(|&&id| id as usize >= self.config.vocab_size) {
            bail!("token id {bad} is outside the vocabulary ({})", self.config.vocab_size);
        }
        let p = self.config.block_size;
        if cache.len() + n <= p {
            return self.extend(tokens, cache);
        }
        let keep = (p + 1 - cache.slide).max(n).min(p);
        let mut window = std::mem::take(&mut cache.tokens);
        window.extend_from_slice(tokens);
        cache.clear();
        let logits = self.extend(&window[window.len() - keep..], cache)?;
        let m = n.min(keep);
        logits.narrow(1, keep - m, m)
    }

    /// Runs `tokens` at positions len.. of the cache (which must have room) and appends their keys
    /// and values. Logits (1, n, V).
    fn extend(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let (n, past, c) = (tokens.len(), cache.len(), self.config.n_embd);
        let (nh, hd) = (self.config.n_head, c / self.config.n_head);
        let device = self.wte.device();
        let ids = Tensor::from_slice(tokens, n, device)?;
        let emb = self.wte.embedding(&ids)?.broadcast_add(&self.wpe.narrow(0, past, n)?)?;
        let mut x = emb.reshape((1, n, c))?;
        // Row i (position past + i) sees columns 0..=past + i: the causal mask's rows past.. .
        let mask =
            if n > 1 { Some(self.causal_mask.narrow(0, past, n)?.narrow(1, 0, past + n)?) } else { None };
        let scale = 1.0 / (hd as f64).sqrt();
        let mut layers = Vec::with_capacity(self.blocks.len());
        for (k, block) in self.blocks.iter().enumerate() {
            let qkv = block.c_attn.forward(&block.ln_1.forward(&x)?)?; // (1, n, 3C)
            let heads = |j: usize| -> Result<Tensor> {
                qkv.narrow(2, j * c, c)?.reshape((1, n, nh, hd))?.transpose(1, 2)?.contiguous()
            }; // (1, nh, n, hd)
            let (q, mut kk, mut vv) = (heads(0)?, heads(1)?, heads(2)?);
            if let Some((k_past, v_past)) = cache.layers.get(k) {
                kk = Tensor::cat(&[k_past, &kk], 2)?; // (1, nh, past + n, hd)
                vv = Tensor::cat(&[v_past, &vv], 2)?;
            }
            let mut scores = (q.matmul(&kk.t()?)? * scale)?; // (1, nh, n, past + n)
            if let Some(mask) = &mask {
                scores = scores.broadcast_add(mask)?;
            }
            let att = candle_nn::ops::softmax_last_dim(&scores)?;
            let y = att.matmul(&vv)?.transpose(1, 2)?.reshape((1, n, c))?; // (1, n, C)
            x = (x + block.attn_proj.forward(&y)?)?;
            let hidden = block.c_fc.forward(&block.ln_2.forward(&x)?)?.gelu_erf()?; // (1, n, 4C)
            x = (x + block.mlp_proj.forward(&hidden)?)?;
            layers.push((kk, vv));
        }
        cache.layers = layers;
        cache.tokens.extend_from_slice(tokens);
        self.lm_head.forward(&self.ln_f.forward(&x)?) // (1, n, V)
    }
}

#[cfg(test)]
mod tests {
    use super::super::GptConfig;
    use super::*;
    use candle_core::Device;
    use candle_nn::VarMap;

    fn model(block_size: usize) -> Gpt {
        GptConfig::new(11, block_size, 2, 2, 16).init(&VarMap::new(), "", 7, &Device::Cpu).unwrap()
    }

    fn uncached_last(gpt: &Gpt, window: &[u32]) -> Vec<f32> {
        let ids = Tensor::from_slice(window, (1, window.len()), &Device::Cpu).unwrap();
        let logits = gpt.forward(&ids).unwrap();
        logits.narrow(1, window.len() - 1, 1).unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    fn stream(len: usize) -> Vec<u32> {
        (0..len as u32).map(|i| (i * 7 + i * i / 3) % 11).collect()
    }

    #[test]
    fn prefill_logits_match_the_uncached_forward_at_every_position() {
        let gpt = model(8);
        let prompt = stream(5);
        let mut cache = gpt.new_cache();
        let cached = gpt.forward_cached(&prompt, &mut cache).unwrap();
        let full = gpt.forward(&Tensor::from_slice(&prompt, (1, 5), &Device::Cpu).unwrap()).unwrap();
        assert_eq!(cached.dims(), &[1, 5, 11]);
        assert!(max_diff(&cached, &full) < 1e-5);
        // Prefilling in two chunks attends across the boundary.
        let mut cache = gpt.new_cache();
        let a = gpt.forward_cached(&prompt[..2], &mut cache).unwrap();
        let b = gpt.forward_cached(&prompt[2..], &mut cache).unwrap();
        assert!(max_diff(&Tensor::cat(&[a, b], 1).unwrap(), &full) < 1e-5);
    }

    /// Prompt, then single tokens well past the window: every step's logits equal the uncached
    /// model's on the window the cache holds, which for slide 1 is nanoGPT's last block_size tokens.
    #[test]
    fn single_steps_match_the_uncached_forward_past_the_window() {
        let p = 8;
        let gpt = model(p);
        let all = stream(30);
        for slide in [1, 3, p] {
            let mut cache = gpt.new_cache_sliding(slide).unwrap();
            let logits = gpt.forward_cached(&all[..3], &mut cache).unwrap();
            assert_eq!(logits.dims(), &[1, 3, 11]);
            for t in 3..all.len() {
                let logits = gpt.forward_cached(&all[t..t + 1], &mut cache).unwrap();
                assert_eq!(logits.dims(), &[1, 1, 11]);
                let window = cache.tokens().to_vec();
                assert_eq!(window, all[t + 1 - window.len()..=t], "slide {slide} step {t}");
                assert!(window.len() <= p && window.len() + slide > p.min(t + 1), "{slide} {t}");
                if slide == 1 {
                    assert_eq!(window.len(), p.min(t + 1));
                }
                let got: Vec<f32> = logits.flatten_all().unwrap().to_vec1().unwrap();
                let want = uncached_last(&gpt, &window);
                let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(d < 1e-5, "slide {slide} step {t}: {d}");
            }
        }
    }

    #[test]
    fn a_prompt_longer_than_the_window_is_cropped_like_nanogpt() {
        let gpt = model(8);
        let prompt = stream(13);
        let mut cache = gpt.new_cache_sliding(3).unwrap();
        let logits = gpt.forward_cached(&prompt, &mut cache).unwrap();
        assert_eq!(logits.dims(), &[1, 8, 11]);
        assert_eq!(cache.tokens(), &prompt[5..]);
        let full = gpt.forward(&Tensor::from_slice(&prompt[5..], (1, 8), &Device::Cpu).unwrap()).unwrap();
        assert!(max_diff(&logits, &full) < 1e-5);
        assert!(gpt.forward_cached(&[], &mut cache).is_err());
        assert!(gpt.forward_cached(&[11], &mut cache).is_err());
        assert!(gpt.new_cache_sliding(0).is_err() && gpt.new_cache_sliding(9).is_err());
    }
}
