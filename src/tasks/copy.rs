//! The copy-memory task (Arjovsky, Shah & Bengio 2016; after Hochreiter & Schmidhuber 1997).
//!
//! Input: `copy_len` data symbols from an alphabet of `alphabet`, T−1 blanks, the delimiter, then
//! `copy_len` blanks (length T + 2·copy_len). Target: T + copy_len blanks, then the data symbols.
//! Symbols 0..alphabet are data, `alphabet` is the blank, `alphabet + 1` the delimiter; with the
//! defaults (alphabet 8, copy_len 10) that is 0–7 data, 8 blank, 9 delimiter.

use super::{sequence_cross_entropy, Batch, InputKind, Metrics, Task, TaskSpec};
use candle_core::{bail, Device, Result, Tensor, D};
use rand::rngs::StdRng;
use rand::Rng;

#[derive(Clone, Debug, PartialEq)]
pub struct CopyTask {
    /// T: the blank gap between seeing the symbols and recalling them.
    pub seq_len: usize,
    /// Symbols to remember (10 in the literature).
    pub copy_len: usize,
    /// Data alphabet size (8 in the literature).
    pub alphabet: usize,
}

impl CopyTask {
    pub fn new(seq_len: usize, copy_len: usize, alphabet: usize) -> Result<Self> {
        if seq_len == 0 {
            bail!("--seq-len must be ≥ 1 for the copy task (got 0)");
        }
        if copy_len == 0 {
            bail!("--copy-len must be ≥ 1 (got 0)");
        }
        if alphabet < 2 {
            bail!("--alphabet must be ≥ 2 (got {alphabet})");
        }
        if copy_len.checked_mul(2).and_then(|k| k.checked_add(seq_len)).is_none_or(|n| n > u32::MAX as usize)
            || alphabet >= u32::MAX as usize - 1
        {
            bail!("--seq-len {seq_len}, --copy-len {copy_len} or --alphabet {alphabet} is out of range");
        }
        Ok(Self { seq_len, copy_len, alphabet })
    }

    fn blank(&self) -> u32 {
        self.alphabet as u32
    }

    fn total(&self) -> usize {
        self.seq_len + 2 * self.copy_len
    }
}

impl Task for CopyTask {
    fn name(&self) -> &'static str {
        "copy"
    }

    fn seq_len(&self) -> usize {
        self.seq_len
    }

    fn spec(&self) -> TaskSpec {
        TaskSpec {
            input: InputKind::Tokens { vocab: self.alphabet + 2 },
            output_size: self.alphabet + 1,
            steps: self.total(),
        }
    }

    fn batch(&self, batch: usize, rng: &mut StdRng, device: &Device) -> Result<Batch> {
        let (n, k, t) = (self.total(), self.copy_len, self.seq_len);
        let mut inputs = vec![self.blank(); batch * n];
        let mut targets = vec![self.blank(); batch * n];
        for b in 0..batch {
            let (row_in, row_tg) = (&mut inputs[b * n..(b + 1) * n], &mut targets[b * n..(b + 1) * n]);
            for j in 0..k {
                let symbol = rng.random_range(0..self.alphabet) as u32;
                row_in[j] = symbol;
                row_tg[t + k + j] = symbol;
            }
            row_in[k + t - 1] = self.alphabet as u32 + 1; // the delimiter
        }
        Ok(Batch {
            inputs: Tensor::from_vec(inputs, (batch, n), device)?,
            targets: Tensor::from_vec(targets, (batch, n), device)?,
            // The last step recalls the last symbol.
            dependency: Some(vec![k - 1; batch]),
        })
    }

    fn loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor> {
        sequence_cross_entropy(outputs, &batch.targets)
    }

    fn last_step_loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor> {
        let n = self.total();
        sequence_cross_entropy(&outputs.narrow(1, n - 1, 1)?, &batch.targets.narrow(1, n - 1, 1)?)
    }

    fn metrics(&self, outputs: &Tensor, batch: &Batch) -> Result<Metrics> {
        let loss = self.loss(outputs, batch)?.to_scalar::<f32>()? as f64;
        let n = self.total();
        let k = self.copy_len;
        let predicted = outputs.narrow(1, n - k, k)?.argmax(D::Minus1)?; // (B, copy_len)
        let wanted = batch.targets.narrow(1, n - k, k)?;
        let correct = predicted.eq(&wanted)?.to_dtype(candle_core::DType::F32)?.mean_all()?;
        Ok(Metrics {
            loss,
            accuracy: Some(correct.to_scalar::<f32>()? as f64),
            mse: None,
            bits_per_char: None,
        })
    }

    /// Output blanks for T + copy_len steps and guess the symbols uniformly:
    /// copy_len · ln(alphabet) / (T + 2·copy_len).
    fn baseline(&self) -> f64 {
        self.copy_len as f64 * (self.alphabet as f64).ln() / self.total() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn layout_matches_the_definition() {
        let task = CopyTask::new(5, 3, 8).unwrap();
        let b = task.batch(4, &mut StdRng::seed_from_u64(0), &Device::Cpu).unwrap();
        let (x, y) = (b.inputs.to_vec2::<u32>().unwrap(), b.targets.to_vec2::<u32>().unwrap());
        for (xi, yi) in x.iter().zip(&y) {
            assert_eq!(xi.len(), 5 + 6);
            assert!(xi[..3].iter().all(|&s| s < 8));
            assert!(xi[3..7].iter().all(|&s| s == 8), "T-1 blanks: {xi:?}");
            assert_eq!(xi[7], 9, "delimiter at position copy_len + T - 1");
            assert!(xi[8..].iter().all(|&s| s == 8));
            assert!(yi[..8].iter().all(|&s| s == 8), "T + copy_len blanks: {yi:?}");
            assert_eq!(&yi[8..], &xi[..3]);
        }
        assert_eq!(task.spec().output_size, 9);
        let again = task.batch(4, &mut StdRng::seed_from_u64(0), &Device::Cpu).unwrap();
        assert_eq!(again.inputs.to_vec2::<u32>().unwrap(), x);
    }

    #[test]
    fn baseline_and_metrics() {
        let task = CopyTask::new(100, 10, 8).unwrap();
        assert!((task.baseline() - 10.0 * 8f64.ln() / 120.0).abs() < 1e-12);
        // The memoryless strategy's loss equals the baseline and its accuracy is chance.
        let b = task.batch(64, &mut StdRng::seed_from_u64(1), &Device::Cpu).unwrap();
        let n = 120;
        let mut logits = vec![0f32; 64 * n * 9];
        for s in 0..64 * n {
            let pos = s % n;
            for c in 0..9 {
                // Blank for sure before the answer; uniform over the 8 symbols during it.
                logits[s * 9 + c] = if pos < 110 {
                    if c == 8 {
                        0.0
                    } else {
                        -1e4
                    }
                } else if c == 8 {
                    -1e4
                } else {
                    0.0
                };
            }
        }
        let out = Tensor::from_vec(logits, (64, n, 9), &Device::Cpu).unwrap();
        let m = task.metrics(&out, &b).unwrap();
        assert!((m.loss - task.baseline()).abs() < 1e-4, "{} vs {}", m.loss, task.baseline());
        assert!(!task.solved(&m));
    }
}
