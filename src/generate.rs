//! Autoregressive sampling from a language model: temperature, top-k, a seeded generator.
//!
//! Recurrent models carry their state, so each new token costs one step. The GPT re-reads its
//! context window for every token.

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
    let infer = ForwardOptions::default();
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
    } else {
        let window = model.config().context;
        let mut context: Vec<u32> = prompt.to_vec();
        for _ in 0..opts.tokens {
            let start = context.len().saturating_sub(window);
            let logits = last_logits(&model.forward(&ids(&context[start..])?, None, &infer)?.outputs)?;
            let next = sample_token(&logits, opts, &mut rng);
            emit(next)?;
            out.push(next);
            context.push(next);
        }
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
        let greedy = SampleOptions { tokens: 1, temperature: 0.0, top_k: None, seed: 0 };
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
}
