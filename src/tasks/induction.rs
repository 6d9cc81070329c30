//! Induction heads (Olsson et al. 2022; the synthetic form of Gu & Dao 2023, Mamba §4.1): a
//! random sequence holds a trigger token once, followed by a value; the trigger comes again at
//! the end and the model must name that value. Retrieval by content at any distance, and the
//! task the Mamba paper uses to test length extrapolation (train at 256, test up to 2²⁰).
//!
//! Input (T steps): tokens drawn uniformly from `alphabet` data symbols; the trigger (token
//! `alphabet`) at a position p uniform in 0..=T−3, the value at p + 1, the trigger again at T − 1.
//! Target: the value, at the last step only; the dependency spans T − 2 − p steps, uniform over
//! 1..=T−2. The Mamba paper does not publish where its generator places the first trigger; this
//! uniform placement is our choice, so every distance up to T is trained.

use super::{
    last_step_cross_entropy, scored_cross_entropy, scored_metrics, Batch, InputKind, Metrics, Task, TaskSpec,
    NO_TARGET,
};
use candle_core::{bail, Device, Result, Tensor};
use rand::rngs::StdRng;
use rand::Rng;

#[derive(Clone, Debug, PartialEq)]
pub struct InductionTask {
    pub seq_len: usize,
    /// Data symbols (the paper's vocabulary of 16); the trigger is one more token.
    pub alphabet: usize,
}

impl InductionTask {
    pub fn new(seq_len: usize, alphabet: usize) -> Result<Self> {
        if seq_len < 3 {
            bail!("--seq-len must be ≥ 3 for --task induction (trigger, value, trigger; got {seq_len})");
        }
        if alphabet < 2 {
            bail!("--alphabet must be ≥ 2 (got {alphabet})");
        }
        if seq_len > u32::MAX as usize || alphabet >= u32::MAX as usize - 1 {
            bail!("--seq-len {seq_len} or --alphabet {alphabet} is out of range");
        }
        Ok(Self { seq_len, alphabet })
    }
}

impl Task for InductionTask {
    fn name(&self) -> &'static str {
        "induction"
    }

    fn seq_len(&self) -> usize {
        self.seq_len
    }

    fn spec(&self) -> TaskSpec {
        TaskSpec {
            input: InputKind::Tokens { vocab: self.alphabet + 1 },
            output_size: self.alphabet,
            steps: self.seq_len,
        }
    }

    /// Inputs (B, T) u32; targets (B, T) u32: the value at the last step, NO_TARGET elsewhere.
    fn batch(&self, batch: usize, rng: &mut StdRng, device: &Device) -> Result<Batch> {
        let t = self.seq_len;
        let trigger = self.alphabet as u32;
        let mut inputs = vec![0u32; batch * t];
        let mut targets = vec![NO_TARGET; batch * t];
        let mut dependency = Vec::with_capacity(batch);
        for b in 0..batch {
            let row = &mut inputs[b * t..(b + 1) * t];
            for token in row.iter_mut() {
                *token = rng.random_range(0..self.alphabet) as u32;
            }
            let p = rng.random_range(0..=t - 3);
            row[p] = trigger;
            row[t - 1] = trigger;
            targets[(b + 1) * t - 1] = row[p + 1];
            dependency.push(p + 1);
        }
        Ok(Batch {
            inputs: Tensor::from_vec(inputs, (batch, t), device)?,
            targets: Tensor::from_vec(targets, (batch, t), device)?,
            dependency: Some(dependency),
        })
    }

    fn loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor> {
        scored_cross_entropy(outputs, &batch.targets)
    }

    fn last_step_loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor> {
        last_step_cross_entropy(outputs, &batch.targets)
    }

    fn metrics(&self, outputs: &Tensor, batch: &Batch) -> Result<Metrics> {
        scored_metrics(outputs, &batch.targets)
    }

    /// A uniform guess over the data symbols: ln(alphabet).
    fn baseline(&self) -> f64 {
        (self.alphabet as f64).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use rand::SeedableRng;

    #[test]
    fn the_target_is_the_token_after_the_only_earlier_trigger() {
        let task = InductionTask::new(20, 4).unwrap();
        let b = task.batch(300, &mut StdRng::seed_from_u64(1), &Device::Cpu).unwrap();
        let (x, y) = (b.inputs.to_vec2::<u32>().unwrap(), b.targets.to_vec2::<u32>().unwrap());
        let mut first = [0usize; 18];
        for (xi, yi) in x.iter().zip(&y) {
            let triggers: Vec<usize> = (0..20).filter(|&i| xi[i] == 4).collect();
            assert_eq!(triggers.len(), 2, "{xi:?}");
            assert_eq!(triggers[1], 19, "the trigger comes again at the end");
            assert_eq!(yi[19], xi[triggers[0] + 1], "the target is the value after the trigger");
            assert!(yi[..19].iter().all(|&v| v == NO_TARGET), "only the last step is scored");
            first[triggers[0]] += 1;
        }
        assert!(first.iter().all(|&n| n > 0), "every position can hold the trigger: {first:?}");
    }

    #[test]
    fn a_uniform_guess_is_the_baseline_and_the_value_solves_it() {
        let task = InductionTask::new(12, 6).unwrap();
        let b = task.batch(16, &mut StdRng::seed_from_u64(3), &Device::Cpu).unwrap();
        let uniform = Tensor::zeros((16, 12, 6), DType::F32, &Device::Cpu).unwrap();
        let m = task.metrics(&uniform, &b).unwrap();
        assert!((m.loss - task.baseline()).abs() < 1e-5, "{} vs {}", m.loss, task.baseline());
        let y = b.targets.to_vec2::<u32>().unwrap();
        let mut logits = vec![0f32; 16 * 12 * 6];
        for (s, row) in y.iter().enumerate() {
            logits[(s * 12 + 11) * 6 + row[11] as usize] = 30.0;
        }
        let out = Tensor::from_vec(logits, (16, 12, 6), &Device::Cpu).unwrap();
        let m = task.metrics(&out, &b).unwrap();
        assert!(task.solved(&m) && m.loss < 1e-6, "{m:?}");
        assert!(task.last_step_loss(&out, &b).unwrap().to_scalar::<f32>().unwrap() < 1e-6);
    }

    #[test]
    fn impossible_sizes_are_errors() {
        assert!(InductionTask::new(2, 16).unwrap_err().to_string().contains("--seq-len must be ≥ 3"));
        assert!(InductionTask::new(64, 1).unwrap_err().to_string().contains("--alphabet must be ≥ 2"));
    }
}
