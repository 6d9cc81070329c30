//! Flip-flop language modelling (Liu et al. 2023, "Exposing Attention Glitches with Flip-Flop
//! Language Modeling"): instruction-bit pairs `w b`, `i b`, `r b`; after a read the bit is the
//! last written one, so a model must hold one bit exactly across long runs of distractors.
//!
//! A sequence of T tokens (T even) is T/2 pairs, the first instruction a write and the last a
//! read; the others are ignore with probability p_i and write or read with (1 − p_i)/2 each
//! (the paper's FFL(p_i); it trains at T = 512, p_i = 0.8). Bits after `w` and `i` are uniform,
//! after `r` the remembered bit. As in language modelling, the model sees tokens 0..T−1 and
//! predicts each next token; only the predictions after a read are determined, so loss and
//! accuracy are taken there (the paper's read error is 1 − accuracy). The final read's bit is
//! the prediction at the last step, so `grad`'s last-step probe measures a read. A trained model
//! is also evaluated on the paper's sparse (p_i = 0.98) and dense (p_i = 0.1) tails.

use super::{
    last_step_cross_entropy, scored_cross_entropy, scored_metrics, Batch, InputKind, Metrics, Task, TaskSpec,
    NO_TARGET,
};
use candle_core::{bail, Device, Result, Tensor};
use rand::rngs::StdRng;
use rand::Rng;

/// The paper's training distribution: p(ignore) = 0.8.
pub const DEFAULT_P_IGNORE: f64 = 0.8;
/// The tails the paper evaluates on.
const SPARSE_P_IGNORE: f64 = 0.98;
const DENSE_P_IGNORE: f64 = 0.1;

const WRITE: u32 = 0;
const IGNORE: u32 = 1;
const READ: u32 = 2;
/// Bits are tokens 3 and 4.
const BIT0: u32 = 3;

#[derive(Clone, Debug, PartialEq)]
pub struct FlipFlopTask {
    /// T: tokens per sequence, instructions and bits.
    pub seq_len: usize,
    pub p_ignore: f64,
}

impl FlipFlopTask {
    pub fn new(seq_len: usize, p_ignore: f64) -> Result<Self> {
        if seq_len < 4 || !seq_len.is_multiple_of(2) {
            bail!(
                "--seq-len must be even and ≥ 4 for --task flip-flop (instruction-bit pairs; got {seq_len})"
            );
        }
        if !(0.0..=1.0).contains(&p_ignore) {
            bail!("--p-ignore must be in [0, 1] (got {p_ignore})");
        }
        if seq_len > u32::MAX as usize {
            bail!("--seq-len {seq_len} is out of range");
        }
        Ok(Self { seq_len, p_ignore })
    }

    fn instruction(&self, rng: &mut StdRng) -> u32 {
        let u: f64 = rng.random();
        if u < self.p_ignore {
            IGNORE
        } else if u < self.p_ignore + (1.0 - self.p_ignore) / 2.0 {
            WRITE
        } else {
            READ
        }
    }
}

impl Task for FlipFlopTask {
    fn name(&self) -> &'static str {
        "flip-flop"
    }

    fn seq_len(&self) -> usize {
        self.seq_len
    }

    fn spec(&self) -> TaskSpec {
        TaskSpec { input: InputKind::Tokens { vocab: 5 }, output_size: 2, steps: self.seq_len - 1 }
    }

    /// Inputs (B, T − 1) u32: tokens 0..T−1; targets (B, T − 1) u32: at each read instruction
    /// the remembered bit (0 or 1), NO_TARGET elsewhere.
    fn batch(&self, batch: usize, rng: &mut StdRng, device: &Device) -> Result<Batch> {
        let (t, n) = (self.seq_len, self.seq_len - 1);
        let mut inputs = vec![0u32; batch * n];
        let mut targets = vec![NO_TARGET; batch * n];
        let mut tokens = vec![0u32; t];
        let mut dependency = Vec::with_capacity(batch);
        for b in 0..batch {
            let (mut memory, mut written_at) = (0u32, 1);
            for pair in 0..t / 2 {
                let op = match pair {
                    0 => WRITE,
                    p if p == t / 2 - 1 => READ,
                    _ => self.instruction(rng),
                };
                let bit = if op == READ { memory } else { rng.random_range(0..2) };
                if op == WRITE {
                    (memory, written_at) = (bit, 2 * pair + 1);
                }
                tokens[2 * pair] = op;
                tokens[2 * pair + 1] = BIT0 + bit;
                if op == READ {
                    targets[b * n + 2 * pair] = bit;
                }
            }
            inputs[b * n..(b + 1) * n].copy_from_slice(&tokens[..n]);
            // The final read recalls the bit of the last write.
            dependency.push(written_at);
        }
        Ok(Batch {
            inputs: Tensor::from_vec(inputs, (batch, n), device)?,
            targets: Tensor::from_vec(targets, (batch, n), device)?,
            dependency: Some(dependency),
        })
    }

    fn loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor> {
        scored_cross_entropy(outputs, &batch.targets)
    }

    /// The final read's loss.
    fn last_step_loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor> {
        last_step_cross_entropy(outputs, &batch.targets)
    }

    fn metrics(&self, outputs: &Tensor, batch: &Batch) -> Result<Metrics> {
        scored_metrics(outputs, &batch.targets)
    }

    /// A coin flip at every read: ln 2.
    fn baseline(&self) -> f64 {
        std::f64::consts::LN_2
    }

    fn extra_evaluations(&self) -> Vec<(String, Box<dyn Task>)> {
        [("sparse", SPARSE_P_IGNORE), ("dense", DENSE_P_IGNORE)]
            .into_iter()
            .map(|(name, p)| {
                let task: Box<dyn Task> = Box::new(Self { seq_len: self.seq_len, p_ignore: p });
                (format!("{name} p_i={p}"), task)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use rand::SeedableRng;

    /// The last written bit at every read, replayed from the tokens.
    #[test]
    fn every_read_is_scored_with_the_last_written_bit() {
        let task = FlipFlopTask::new(64, 0.5).unwrap();
        let b = task.batch(100, &mut StdRng::seed_from_u64(4), &Device::Cpu).unwrap();
        let (x, y) = (b.inputs.to_vec2::<u32>().unwrap(), b.targets.to_vec2::<u32>().unwrap());
        let mut counts = [0usize; 3];
        for (xi, yi) in x.iter().zip(&y) {
            assert_eq!(xi.len(), 63);
            assert_eq!((xi[0], xi[62]), (WRITE, READ), "starts with a write, ends with a read");
            let mut memory = None;
            for pair in 0..32 {
                let op = xi[2 * pair];
                counts[op as usize] += 1;
                if op == READ {
                    assert_eq!(Some(yi[2 * pair]), memory, "pair {pair}");
                    if pair < 31 {
                        assert_eq!(xi[2 * pair + 1], BIT0 + yi[2 * pair], "the read's bit is fed next");
                    }
                } else {
                    assert_eq!(yi[2 * pair], NO_TARGET);
                }
                if op == WRITE {
                    memory = Some(xi[2 * pair + 1] - BIT0);
                }
                if pair < 31 {
                    assert_eq!(yi[2 * pair + 1], NO_TARGET, "bit steps are not scored");
                }
            }
        }
        // p_i = 0.5 on the 30 free pairs: half ignores, a quarter each write and read.
        let free = 100.0 * 30.0;
        assert!((counts[IGNORE as usize] as f64 / free - 0.5).abs() < 0.03, "{counts:?}");
    }

    #[test]
    fn a_coin_flip_is_the_baseline_and_the_tails_are_evaluated() {
        let task = FlipFlopTask::new(16, DEFAULT_P_IGNORE).unwrap();
        let b = task.batch(8, &mut StdRng::seed_from_u64(5), &Device::Cpu).unwrap();
        let uniform = Tensor::zeros((8, 15, 2), DType::F32, &Device::Cpu).unwrap();
        let m = task.metrics(&uniform, &b).unwrap();
        assert!((m.loss - task.baseline()).abs() < 1e-5, "{m:?}");
        let names: Vec<String> = task.extra_evaluations().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["sparse p_i=0.98", "dense p_i=0.1"]);
    }

    #[test]
    fn impossible_settings_are_errors() {
        assert!(FlipFlopTask::new(63, 0.8).unwrap_err().to_string().contains("must be even and ≥ 4"));
        assert!(FlipFlopTask::new(64, 1.5).unwrap_err().to_string().contains("--p-ignore must be in [0, 1]"));
    }
}
