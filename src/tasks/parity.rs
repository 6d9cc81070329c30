//! Parity: the state-tracking test of Grazzi et al. 2025 ("Unlocking State-Tracking in Linear
//! RNNs Through Negative Eigenvalues"): a model whose state transitions have only positive
//! eigenvalues (Mamba, the LRU's |λ| < 1 decay without a sign flip) cannot keep a bit that flips;
//! a nonlinear RNN can. The paper trains on lengths up to 40 and tests on 40 to 256.
//!
//! Input: T uniform bits. Target at every step t: the parity of bits 0..=t, so one sequence of
//! length T trains every length ≤ T. The loss is the mean over all steps; the metric is the
//! accuracy of the whole string's parity (the last step), the number that `--eval-lengths`
//! reports at lengths never trained on.

use super::{last_step_cross_entropy, sequence_cross_entropy, Batch, InputKind, Metrics, Task, TaskSpec};
use candle_core::{bail, DType, Device, Result, Tensor, D};
use rand::rngs::StdRng;
use rand::Rng;

#[derive(Clone, Debug, PartialEq)]
pub struct ParityTask {
    pub seq_len: usize,
}

impl ParityTask {
    pub fn new(seq_len: usize) -> Result<Self> {
        if seq_len > u32::MAX as usize {
            bail!("--seq-len {seq_len} is out of range");
        }
        Ok(Self { seq_len })
    }
}

impl Task for ParityTask {
    fn name(&self) -> &'static str {
        "parity"
    }

    fn seq_len(&self) -> usize {
        self.seq_len
    }

    fn spec(&self) -> TaskSpec {
        TaskSpec { input: InputKind::Tokens { vocab: 2 }, output_size: 2, steps: self.seq_len }
    }

    /// Inputs (B, T) u32 bits; targets (B, T) u32, the running parity.
    fn batch(&self, batch: usize, rng: &mut StdRng, device: &Device) -> Result<Batch> {
        let t = self.seq_len;
        let mut inputs = vec![0u32; batch * t];
        let mut targets = vec![0u32; batch * t];
        for (row, goal) in inputs.chunks_mut(t).zip(targets.chunks_mut(t)) {
            let mut parity = 0;
            for (bit, p) in row.iter_mut().zip(goal.iter_mut()) {
                *bit = rng.random_range(0..2);
                parity ^= *bit;
                *p = parity;
            }
        }
        Ok(Batch {
            inputs: Tensor::from_vec(inputs, (batch, t), device)?,
            targets: Tensor::from_vec(targets, (batch, t), device)?,
            dependency: None,
        })
    }

    /// Mean cross-entropy of the running parity over every step.
    fn loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor> {
        sequence_cross_entropy(outputs, &batch.targets)
    }

    /// The whole string's parity.
    fn last_step_loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor> {
        last_step_cross_entropy(outputs, &batch.targets)
    }

    fn metrics(&self, outputs: &Tensor, batch: &Batch) -> Result<Metrics> {
        let loss = self.loss(outputs, batch)?.to_scalar::<f32>()? as f64;
        let t = self.seq_len;
        let last = outputs.narrow(1, t - 1, 1)?.argmax(D::Minus1)?; // (B, 1)
        let hits = last.eq(&batch.targets.narrow(1, t - 1, 1)?)?.to_dtype(DType::F32)?;
        let accuracy = hits.mean_all()?.to_scalar::<f32>()? as f64;
        Ok(Metrics { loss, accuracy: Some(accuracy), mse: None, bits_per_char: None })
    }

    /// A coin flip: ln 2.
    fn baseline(&self) -> f64 {
        std::f64::consts::LN_2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn targets_are_the_running_parity() {
        let task = ParityTask::new(30).unwrap();
        let b = task.batch(50, &mut StdRng::seed_from_u64(6), &Device::Cpu).unwrap();
        let (x, y) = (b.inputs.to_vec2::<u32>().unwrap(), b.targets.to_vec2::<u32>().unwrap());
        for (xi, yi) in x.iter().zip(&y) {
            for t in 0..30 {
                assert_eq!(yi[t], xi[..=t].iter().sum::<u32>() % 2);
            }
        }
        let ones: u32 = x.iter().flatten().sum();
        assert!((ones as f64 / 1500.0 - 0.5).abs() < 0.05, "{ones}");
    }

    #[test]
    fn a_coin_flip_is_the_baseline_and_the_parity_solves_it() {
        let task = ParityTask::new(9).unwrap();
        let b = task.batch(32, &mut StdRng::seed_from_u64(7), &Device::Cpu).unwrap();
        let uniform = Tensor::zeros((32, 9, 2), DType::F32, &Device::Cpu).unwrap();
        let m = task.metrics(&uniform, &b).unwrap();
        assert!((m.loss - task.baseline()).abs() < 1e-5, "{m:?}");
        let y = b.targets.to_dtype(DType::F32).unwrap();
        let out = Tensor::stack(
            &[((&y * -30.0).unwrap() + 15.0).unwrap(), ((&y * 30.0).unwrap() - 15.0).unwrap()],
            2,
        )
        .unwrap();
        let m = task.metrics(&out, &b).unwrap();
        assert!(task.solved(&m) && m.loss < 1e-6, "{m:?}");
    }
}
