//! Autoregressive sampling from a language model: temperature, top-k, a seeded generator.
//!
//! Recurrent models carry their state, so each new token costs one step. The GPT keeps a
//! key/value cache ([`crate::models::KvCache`]), so each new token runs the blocks on one row and
//! attends to the cached positions: O(T) per token while the context window has room. Positions
//! are absolute, so once the window is full the cache drops the oldest `slide` tokens and
//! recomputes the rest: `slide = 1` is nanoGPT's crop (every token sees exactly the last
//! `context` tokens, the same tokens as the uncached loop, at a full-window forward per token);
//! a larger `slide` pays that forward once per `slide` tokens.

use crate::models::{ForwardOptions, RecurrentState, SeqModel};
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Debug)]
pub struct SampleOptions {
    pub tokens: usize,
    /// 0 picks the most likely token; 1 samples the model's distribution.
    pub temperature: f64,
    /// Sample among the k most likely tokens only.
    pub top_k: Option<usize>,
    pub seed: u64,
    /// GPT only: tokens dropped at once when the context window is full (1 ..= context; 1 is
    /// nanoGPT's crop). Recurrent models ignore it.
    pub slide: usize,
}

/// Picks the next token from `logits` (V).
pub fn sample_token(logits: &[f32], opts: &SampleOptions, rng: &mut StdRng) -> u32 {
    let argmax = || logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i as u32);
    if opts.temperature <= 0.0 {
        return argmax();
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order.truncate(opts.top_k.unwrap_or(logits.len()).clamp(1, logits.len()));
    let top = logits[order[0]] as f64;
    let weights: Vec<f64> =
        order.iter().map(|&i| ((logits[i] as f64 - top) / opts.temperature).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (k, w) in weights.iter().enumerate() {
        u -= w;
        if u <= 0.0 {
            return order[k] as u32;
        }
    }
    order[order.len() - 1] as u32
}

fn last_logits(outputs: &Tensor) -> Result<Vec<f32>> {
    let t = outputs.dim(1)?;
    Ok(outputs.narrow(1, t - 1, 1)?.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?)
}

/// Generates `opts.tokens` tokens after `prompt`, handing each to `emit` as it is drawn.
pub fn generate(
    model: &SeqModel,
    prompt: &[u32],
    opts: &SampleOptions,
    device: &Device,
    mut emit: impl FnMut(u32) -> Result<()>,
) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        bail!("the prompt encodes to no tokens");
    }
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let infer = ForwardOptions { no_grad: true, ..Default::default() };
    let mut out = Vec::with_capacity(opts.tokens);
    let ids = |v: &[u32]| Tensor::from_vec(v.to_vec(), (1, v.len()), device);
    if model.recurrent().is_some() {
        let first = model.forward(&ids(prompt)?, None, &infer)?;
        let mut state: Option<RecurrentState> = first.state;
        let mut logits = last_logits(&first.outputs)?;
        for _ in 0..opts.tokens {
            let next = sample_token(&logits, opts, &mut rng);
            emit(next)?;
            out.push(next);
            let step = model.forward(&ids(&[next])?, state.as_ref(), &infer)?;
            state = step.state;
            logits = last_logits(&step.outputs)?;
        }
    } else if let Some(gpt) = model.token_gpt() {
        let mut cache = gpt.new_cache_sliding(opts.slide)?;
        let mut logits = last_logits(&gpt.forward_cached(prompt, &mut cache)?)?;
        for i in 0..opts.tokens {
            let next = sample_token(&logits, opts, &mut rng);
            emit(next)?;
            out.push(next);
            if i + 1 < opts.tokens {
                logits = last_logits(&gpt.forward_cached(&[next], &mut cache)?)?;
            }
        }
    } else {
        bail!("generation needs a language model (token inputs), not a model of real-valued inputs");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_zero_is_argmax_and_top_k_limits_the_choice() {
        let logits = [0.1f32, 3.0, 2.9, -1.0];
        let mut rng = StdRng::seed_from_u64(0);
        let greedy = SampleOptions { tokens: 1, temperature: 0.0, top_k: None, seed: 0, slide: 1 };
        assert_eq!(sample_token(&logits, &greedy, &mut rng), 1);
        let top2 = SampleOptions { temperature: 1.0, top_k: Some(2), ..greedy.clone() };
        let mut seen = [0usize; 4];
        for _ in 0..2000 {
            seen[sample_token(&logits, &top2, &mut rng) as usize] += 1;
        }
        assert_eq!(seen[0] + seen[3], 0, "{seen:?}");
        // exp(3.0) / (exp(3.0) + exp(2.9)) ≈ 0.525.
        let p = seen[1] as f64 / 2000.0;
        assert!((p - 0.525).abs() < 0.04, "{p}");
    }

    fn gpt_lm(input: crate::models::ModelInput) -> SeqModel {
        use crate::models::{Family, InitScheme, Nonlinearity, SeqModelConfig};
        let cfg = SeqModelConfig {
            family: Family::Gpt,
            nonlinearity: Nonlinearity::Tanh,
            input,
            output_size: 13,
            hidden: 16,
            layers: 2,
            heads: 2,
            context: 8,
            dropout: 0.0,
            init: InitScheme::Pytorch,
            init_gain: None,
            forget_bias: None,
            lru: None,
            mamba: None,
        };
        cfg.init(&candle_nn::VarMap::new(), 3, &Device::Cpu).unwrap()
    }

    /// The cached GPT with slide 1 picks the same greedy tokens as nanoGPT's uncached loop (the
    /// whole cropped window re-read for every token), well past the context window.
    #[test]
    fn cached_greedy_gpt_matches_the_uncached_loop() {
        use crate::models::ModelInput;
        let model = gpt_lm(ModelInput::Tokens { vocab: 13 });
        let window = model.config().context;
        let prompt = [1u32, 5, 2];
        let opts = SampleOptions { tokens: 30, temperature: 0.0, top_k: None, seed: 0, slide: 1 };
        let mut emitted = Vec::new();
        let cached = generate(&model, &prompt, &opts, &Device::Cpu, |id| {
            emitted.push(id);
            Ok(())
        })
        .unwrap();
        assert_eq!(cached, emitted);

        let mut context = prompt.to_vec();
        let mut rng = StdRng::seed_from_u64(0);
        for _ in 0..opts.tokens {
            let crop = &context[context.len().saturating_sub(window)..];
            let ids = Tensor::from_slice(crop, (1, crop.len()), &Device::Cpu).unwrap();
            let out = model.forward(&ids, None, &ForwardOptions::default()).unwrap();
            let next = sample_token(&last_logits(&out.outputs).unwrap(), &opts, &mut rng);
            context.push(next);
        }
        assert_eq!(cached, context[prompt.len()..]);
        // A wider slide sees a shorter context at times, but still generates and stays in range.
        let wide =
            generate(&model, &prompt, &SampleOptions { slide: 5, ..opts.clone() }, &Device::Cpu, |_| Ok(()));
        assert!(wide.unwrap().iter().all(|&id| id < 13));
        assert!(
            generate(&model, &prompt, &SampleOptions { slide: 9, ..opts }, &Device::Cpu, |_| Ok(())).is_err()
        );
    }

    #[test]
    fn a_real_input_gpt_does_not_generate() {
        let model = gpt_lm(crate::models::ModelInput::Real { features: 3 });
        let opts = SampleOptions { tokens: 2, temperature: 0.0, top_k: None, seed: 0, slide: 1 };
        assert!(generate(&model, &[0], &opts, &Device::Cpu, |_| Ok(())).is_err());
    }
}
