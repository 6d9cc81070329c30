//! Selective copying (Gu & Dao 2023, Mamba §4.1): the copy task with the symbols to remember at
//! random positions among noise, so a model must select what to keep by content, not by time.
//!
//! Input: T steps of noise with `tokens` data symbols (from an alphabet of `alphabet`) at
//! distinct random positions, then `tokens` markers (length T + tokens). Target: the data symbols
//! in order of appearance, one per marker. Symbols 0..alphabet are data, `alphabet` is noise,
//! `alphabet + 1` the marker; with alphabet 14 that is the 16-token vocabulary of the paper's
//! generator (H3/safari `generate_copying(selective=True)`: 14 data tokens, blank, copy token).
//! Loss and accuracy are taken at the marker positions only, where the answer is.

use super::{sequence_cross_entropy, Batch, InputKind, Metrics, Task, TaskSpec};
use candle_core::{bail, Device, Result, Tensor, D};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::Rng;

#[derive(Clone, Debug, PartialEq)]
pub struct SelectiveCopyTask {
    /// T: the noisy stretch the data symbols are scattered over.
    pub seq_len: usize,
    /// Data symbols to recall (16 in the paper).
    pub tokens: usize,
    /// Data alphabet size.
    pub alphabet: usize,
}

impl SelectiveCopyTask {
    pub fn new(seq_len: usize, tokens: usize, alphabet: usize) -> Result<Self> {
        if tokens == 0 {
            bail!("--copy-len (the symbols to recall) must be ≥ 1 (got 0)");
        }
        if tokens > seq_len {
            bail!("--copy-len ({tokens}) must be ≤ --seq-len ({seq_len}): the symbols sit at distinct positions among T");
        }
        if alphabet < 2 {
            bail!("--alphabet must be ≥ 2 (got {alphabet})");
        }
        if seq_len.checked_add(tokens).is_none_or(|n| n > u32::MAX as usize)
            || alphabet >= u32::MAX as usize - 1
        {
            bail!("--seq-len {seq_len}, --copy-len {tokens} or --alphabet {alphabet} is out of range");
        }
        Ok(Self { seq_len, tokens, alphabet })
    }

    fn total(&self) -> usize {
        self.seq_len + self.tokens
    }

    /// The answer's logits and targets: the last `tokens` steps.
    fn answer(&self, outputs: &Tensor, batch: &Batch) -> Result<(Tensor, Tensor)> {
        let (n, k) = (self.total(), self.tokens);
        Ok((outputs.narrow(1, n - k, k)?, batch.targets.clone()))
    }
}

impl Task for SelectiveCopyTask {
    fn name(&self) -> &'static str {
        "selective-copy"
    }

    fn seq_len(&self) -> usize {
        self.seq_len
    }

    fn spec(&self) -> TaskSpec {
        TaskSpec {
            input: InputKind::Tokens { vocab: self.alphabet + 2 },
            output_size: self.alphabet,
            steps: self.total(),
        }
    }

    /// Inputs (B, T + tokens) u32; targets (B, tokens) u32, the symbols in order.
    fn batch(&self, batch: usize, rng: &mut StdRng, device: &Device) -> Result<Batch> {
        let (n, k, t) = (self.total(), self.tokens, self.seq_len);
        let noise = self.alphabet as u32;
        let mut inputs = vec![noise; batch * n];
        let mut targets = vec![0u32; batch * k];
        let mut dependency = Vec::with_capacity(batch);
        for b in 0..batch {
            let row = &mut inputs[b * n..(b + 1) * n];
            let mut positions = sample(rng, t, k).into_vec();
            positions.sort_unstable();
            for (j, &p) in positions.iter().enumerate() {
                let symbol = rng.random_range(0..self.alphabet) as u32;
                row[p] = symbol;
                targets[b * k + j] = symbol;
            }
            row[t..].fill(noise + 1); // the markers
                                      // The last marker recalls the last symbol.
            dependency.push(positions[k - 1]);
        }
        Ok(Batch {
            inputs: Tensor::from_vec(inputs, (batch, n), device)?,
            targets: Tensor::from_vec(targets, (batch, k), device)?,
            dependency: Some(dependency),
        })
    }

    fn loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor> {
        let (logits, targets) = self.answer(outputs, batch)?;
        sequence_cross_entropy(&logits, &targets)
    }

    /// The last symbol's loss: its dependency is wherever that symbol sat.
    fn last_step_loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor> {
        let (n, k) = (self.total(), self.tokens);
        sequence_cross_entropy(&outputs.narrow(1, n - 1, 1)?, &batch.targets.narrow(1, k - 1, 1)?)
    }

    fn metrics(&self, outputs: &Tensor, batch: &Batch) -> Result<Metrics> {
        let (logits, targets) = self.answer(outputs, batch)?;
        let loss = sequence_cross_entropy(&logits, &targets)?.to_scalar::<f32>()? as f64;
        let correct =
            logits.argmax(D::Minus1)?.eq(&targets)?.to_dtype(candle_core::DType::F32)?.mean_all()?;
        Ok(Metrics {
            loss,
            accuracy: Some(correct.to_scalar::<f32>()? as f64),
            mse: None,
            bits_per_char: None,
        })
    }

    /// A uniform guess at each marker: ln(alphabet).
    fn baseline(&self) -> f64 {
        (self.alphabet as f64).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn layout_matches_the_definition() {
        let task = SelectiveCopyTask::new(12, 3, 4).unwrap();
        let b = task.batch(16, &mut StdRng::seed_from_u64(0), &Device::Cpu).unwrap();
        let (x, y) = (b.inputs.to_vec2::<u32>().unwrap(), b.targets.to_vec2::<u32>().unwrap());
        let mut first_positions = std::collections::BTreeSet::new();
        for (xi, yi) in x.iter().zip(&y) {
            assert_eq!(xi.len(), 15);
            let data: Vec<(usize, u32)> =
                xi[..12].iter().copied().enumerate().filter(|(_, s)| *s < 4).collect();
            assert_eq!(data.len(), 3, "3 symbols among noise: {xi:?}");
            assert!(xi[..12].iter().all(|&s| s <= 4), "data or noise before the markers: {xi:?}");
            assert!(xi[12..].iter().all(|&s| s == 5), "markers at the end: {xi:?}");
            assert_eq!(data.iter().map(|d| d.1).collect::<Vec<_>>(), *yi, "targets in order of appearance");
            first_positions.insert(data[0].0);
        }
        assert!(first_positions.len() > 3, "positions vary between sequences: {first_positions:?}");
        assert_eq!(task.spec().output_size, 4);
        let again = task.batch(16, &mut StdRng::seed_from_u64(0), &Device::Cpu).unwrap();
        assert_eq!(again.inputs.to_vec2::<u32>().unwrap(), x);
    }

    #[test]
    fn a_uniform_guess_is_the_baseline_and_a_perfect_answer_solves_it() {
        let task = SelectiveCopyTask::new(20, 4, 8).unwrap();
        let b = task.batch(32, &mut StdRng::seed_from_u64(1), &Device::Cpu).unwrap();
        let uniform = Tensor::zeros((32, 24, 8), candle_core::DType::F32, &Device::Cpu).unwrap();
        let m = task.metrics(&uniform, &b).unwrap();
        assert!((m.loss - task.baseline()).abs() < 1e-5, "{} vs {}", m.loss, task.baseline());
        let y = b.targets.to_vec2::<u32>().unwrap();
        let mut logits = vec![0f32; 32 * 24 * 8];
        for (s, row) in y.iter().enumerate() {
            for (j, &c) in row.iter().enumerate() {
                logits[(s * 24 + 20 + j) * 8 + c as usize] = 20.0;
            }
        }
        let m = task.metrics(&Tensor::from_vec(logits, (32, 24, 8), &Device::Cpu).unwrap(), &b).unwrap();
        assert!(task.solved(&m) && m.loss < 1e-6, "{m:?}");
    }

    #[test]
    fn more_symbols_than_positions_is_an_error() {
        let err = SelectiveCopyTask::new(3, 4, 8).unwrap_err().to_string();
        assert!(err.contains("--copy-len (4) must be ≤ --seq-len (3)"), "{err}");
    }
}
