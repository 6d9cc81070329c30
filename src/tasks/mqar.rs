//! Multi-query associative recall, MQAR (Arora et al. 2023, "Zoology"): key-value pairs, then
//! queries of the keys; at each query the model must name the key's value. Recall by content,
//! which a fixed-size recurrent state must compress and attention can look up.
//!
//! Input (T steps): k₁ v₁ k₂ v₂ … k_P v_P, then T − 2P steps of random tokens among which every
//! key appears once as a query. Keys are distinct, drawn from the lower half of an `alphabet`
//! of tokens, values from the upper half. Queries sit at even offsets 2s after the pairs, the
//! slot s ∈ 1..=(T − 1 − 2P)/2 drawn without replacement with weight s^(a − 1), a = 0.01: the
//! power law of Zoology's `multiquery_ar` (its `power_a`), so most queries come soon after the
//! pairs and a few far. Unlike Zoology, the last step is one more query, of a random key: the
//! loss at the last step, which `grad` probes against distance, is then a recall. Target at a
//! query: the value's index in the upper half. Loss and accuracy at the query steps only. The
//! random tokens come from the whole alphabet, keys included, as Zoology's `random_non_queries`.

use super::{
    last_step_cross_entropy, scored_cross_entropy, scored_metrics, Batch, InputKind, Metrics, Task, TaskSpec,
    NO_TARGET,
};
use candle_core::{bail, Device, Result, Tensor};
use rand::rngs::StdRng;
use rand::seq::index::{sample, sample_weighted};
use rand::seq::SliceRandom;
use rand::Rng;

/// Zoology's `power_a`: the exponent of the query-distance power law.
const POWER_A: f64 = 0.01;

#[derive(Clone, Debug, PartialEq)]
pub struct MqarTask {
    pub seq_len: usize,
    pub pairs: usize,
    /// Tokens in all: keys from the lower half, values from the upper.
    pub alphabet: usize,
}

impl MqarTask {
    pub fn new(seq_len: usize, pairs: usize, alphabet: usize) -> Result<Self> {
        if pairs == 0 {
            bail!("--pairs must be ≥ 1 (got 0)");
        }
        if pairs > alphabet / 2 {
            bail!(
                "--pairs ({pairs}) must be ≤ --alphabet / 2 ({}): keys are distinct tokens of the lower half",
                alphabet / 2
            );
        }
        if seq_len < 4 * pairs + 1 {
            bail!(
                "--seq-len ({seq_len}) must be ≥ 4 × --pairs + 1 ({}): the pairs, a query slot per key, the last query",
                4 * pairs + 1
            );
        }
        if seq_len > u32::MAX as usize || alphabet >= u32::MAX as usize {
            bail!("--seq-len {seq_len} or --alphabet {alphabet} is out of range");
        }
        Ok(Self { seq_len, pairs, alphabet })
    }

    fn values(&self) -> usize {
        self.alphabet - self.alphabet / 2
    }
}

impl Task for MqarTask {
    fn name(&self) -> &'static str {
        "mqar"
    }

    fn seq_len(&self) -> usize {
        self.seq_len
    }

    fn spec(&self) -> TaskSpec {
        TaskSpec {
            input: InputKind::Tokens { vocab: self.alphabet },
            output_size: self.values(),
            steps: self.seq_len,
        }
    }

    /// Inputs (B, T) u32; targets (B, T) u32: the value's index at query steps, else NO_TARGET.
    fn batch(&self, batch: usize, rng: &mut StdRng, device: &Device) -> Result<Batch> {
        let (t, p, keys) = (self.seq_len, self.pairs, self.alphabet / 2);
        let slots = (t - 1 - 2 * p) / 2;
        let mut inputs = vec![0u32; batch * t];
        let mut targets = vec![NO_TARGET; batch * t];
        let mut dependency = Vec::with_capacity(batch);
        for b in 0..batch {
            let (row, goal) = (&mut inputs[b * t..(b + 1) * t], &mut targets[b * t..(b + 1) * t]);
            for token in row[2 * p..].iter_mut() {
                *token = rng.random_range(0..self.alphabet) as u32;
            }
            let key_ids = sample(rng, keys, p).into_vec();
            let values: Vec<usize> = (0..p).map(|_| rng.random_range(0..self.values())).collect();
            for (i, (&k, &v)) in key_ids.iter().zip(&values).enumerate() {
                row[2 * i] = k as u32;
                row[2 * i + 1] = (keys + v) as u32;
            }
            let weight = |s: usize| ((s + 1) as f64).powf(POWER_A - 1.0);
            let mut chosen =
                sample_weighted(rng, slots, weight, p).map_err(candle_core::Error::wrap)?.into_vec();
            chosen.shuffle(rng);
            for (i, slot) in chosen.into_iter().enumerate() {
                let q = 2 * p + 2 * slot;
                row[q] = key_ids[i] as u32;
                goal[q] = values[i] as u32;
            }
            let last = rng.random_range(0..p);
            row[t - 1] = key_ids[last] as u32;
            goal[t - 1] = values[last] as u32;
            // The last query recalls the value shown right after its key.
            dependency.push(2 * last + 1);
        }
        Ok(Batch {
            inputs: Tensor::from_vec(inputs, (batch, t), device)?,
            targets: Tensor::from_vec(targets, (batch, t), device)?,
            dependency: Some(dependency),
        })
    }

    /// Mean cross-entropy over the query steps.
    fn loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor> {
        scored_cross_entropy(outputs, &batch.targets)
    }

    /// The last step's loss: always a query, of a key shown among the pairs.
    fn last_step_loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor> {
        last_step_cross_entropy(outputs, &batch.targets)
    }

    fn metrics(&self, outputs: &Tensor, batch: &Batch) -> Result<Metrics> {
        scored_metrics(outputs, &batch.targets)
    }

    /// A uniform guess over the values at each query: ln(alphabet − alphabet/2).
    fn baseline(&self) -> f64 {
        (self.values() as f64).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use rand::SeedableRng;

    #[test]
    fn every_key_is_queried_once_for_its_value_mostly_soon_after_the_pairs() {
        let task = MqarTask::new(64, 4, 16).unwrap();
        let b = task.batch(200, &mut StdRng::seed_from_u64(0), &Device::Cpu).unwrap();
        let (x, y) = (b.inputs.to_vec2::<u32>().unwrap(), b.targets.to_vec2::<u32>().unwrap());
        let mut near = 0;
        for (xi, yi) in x.iter().zip(&y) {
            let pairs: Vec<(u32, u32)> = (0..4).map(|i| (xi[2 * i], xi[2 * i + 1])).collect();
            assert!(pairs.iter().all(|&(k, v)| k < 8 && (8..16).contains(&v)), "{pairs:?}");
            let queries: Vec<usize> = (0..63).filter(|&q| yi[q] != NO_TARGET).collect();
            assert_eq!(queries.len(), 4, "one query per key: {yi:?}");
            assert_ne!(yi[63], NO_TARGET, "the last step is a query");
            let mut asked: Vec<u32> = queries.iter().map(|&q| xi[q]).collect();
            for &q in queries.iter().chain([63].iter()) {
                assert!(
                    q == 63 || (q >= 8 && (q - 8) % 2 == 0),
                    "queries at even offsets after the pairs: {q}"
                );
                let &(_, v) = pairs.iter().find(|(k, _)| *k == xi[q]).expect("a query is a key");
                assert_eq!(yi[q] + 8, v, "the target is the key's value");
            }
            asked.sort_unstable();
            asked.dedup();
            assert_eq!(asked.len(), 4, "each key once");
            near += queries.iter().filter(|&&q| q < 8 + 2 * 14).count();
        }
        // Weight s^-0.99 over 27 slots puts most of the mass on the first half.
        assert!(near > 4 * 200 / 2, "{near} of 800 queries in the first half of the slots");
    }

    #[test]
    fn a_uniform_guess_is_the_baseline_and_the_right_values_solve_it() {
        let task = MqarTask::new(32, 3, 12).unwrap();
        let b = task.batch(16, &mut StdRng::seed_from_u64(2), &Device::Cpu).unwrap();
        let uniform = Tensor::zeros((16, 32, 6), DType::F32, &Device::Cpu).unwrap();
        let m = task.metrics(&uniform, &b).unwrap();
        assert!((m.loss - task.baseline()).abs() < 1e-5, "{} vs {}", m.loss, task.baseline());
        let y = b.targets.to_vec2::<u32>().unwrap();
        let mut logits = vec![0f32; 16 * 32 * 6];
        for (s, row) in y.iter().enumerate() {
            for (q, &c) in row.iter().enumerate() {
                if c != NO_TARGET {
                    logits[(s * 32 + q) * 6 + c as usize] = 30.0;
                }
            }
        }
        let out = Tensor::from_vec(logits, (16, 32, 6), &Device::Cpu).unwrap();
        let m = task.metrics(&out, &b).unwrap();
        assert!(task.solved(&m) && m.loss < 1e-6, "{m:?}");
        let last = task.last_step_loss(&out, &b).unwrap().to_scalar::<f32>().unwrap();
        assert!(last.abs() < 1e-6, "{last}");
    }

    #[test]
    fn impossible_sizes_are_errors() {
        assert!(MqarTask::new(64, 9, 16)
            .unwrap_err()
            .to_string()
            .contains("--pairs (9) must be ≤ --alphabet / 2 (8)"));
        let err = MqarTask::new(16, 4, 16).unwrap_err().to_string();
        assert!(err.contains("--seq-len (16) must be ≥ 4 × --pairs + 1 (17)"), "{err}");
    }
}
