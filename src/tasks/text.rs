//! Language modelling on a tokenised corpus: predict every next token of a window.
//!
//! Training batches are random windows of the first 90 % of the tokens (nanoGPT's `get_batch`),
//! evaluation windows come from the last 10 %. Losses are in nats per token; bits per character
//! divide by ln 2 and multiply by tokens per character of the validation text, so char-level and
//! BPE runs compare.

use super::{sequence_cross_entropy, Batch, InputKind, Metrics, Task, TaskSpec};
use crate::text::{split_train_val, TextTokenizer};
use candle_core::{bail, DType, Device, Result, Tensor, D};
use rand::rngs::StdRng;
use rand::Rng;
use std::path::Path;

pub struct TextTask {
    tokenizer: TextTokenizer,
    train: Vec<u32>,
    val: Vec<u32>,
    /// Tokens per window (the model's T).
    window: usize,
    tokens_per_char: f64,
    unigram_entropy: f64,
}

impl TextTask {
    /// Tokenises `text` and splits it; every split must hold at least one window plus a target.
    pub fn new(text: &str, tokenizer: TextTokenizer, window: usize) -> anyhow::Result<Self> {
        if window == 0 {
            anyhow::bail!("--seq-len (the context window) must be ≥ 1");
        }
        let tokens = tokenizer.encode(text)?;
        let vocab = tokenizer.vocab_size();
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            anyhow::bail!(
                "the tokenizer produced token id {bad}, outside its own vocabulary of {vocab} (a broken \
                 tokenizer.json?)"
            );
        }
        let (train, val) = split_train_val(&tokens);
        if val.len() < window + 1 || train.len() < window + 1 {
            anyhow::bail!(
                "the corpus is too short for --seq-len {window}: {} tokens give {} training and {} validation \
                 tokens, each split needs at least {}",
                tokens.len(),
                train.len(),
                val.len(),
                window + 1
            );
        }
        let val_chars = text.chars().count() as f64 * (val.len() as f64 / tokens.len() as f64);
        let mut counts = vec![0f64; tokenizer.vocab_size()];
        for &t in train {
            counts[t as usize] += 1.0;
        }
        let n = train.len() as f64;
        let unigram_entropy = counts.iter().filter(|&&c| c > 0.0).map(|&c| -(c / n) * (c / n).ln()).sum();
        Ok(Self {
            train: train.to_vec(),
            val: val.to_vec(),
            tokens_per_char: val.len() as f64 / val_chars.max(1.0),
            tokenizer,
            window,
            unigram_entropy,
        })
    }

    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Tokens per character of the validation text (1 for char level).
    pub fn tokens_per_char(&self) -> f64 {
        self.tokens_per_char
    }

    fn windows(&self, source: &[u32], batch: usize, rng: &mut StdRng, device: &Device) -> Result<Batch> {
        let t = self.window;
        let (mut x, mut y) = (Vec::with_capacity(batch * t), Vec::with_capacity(batch * t));
        for _ in 0..batch {
            let start = rng.random_range(0..source.len() - t);
            x.extend_from_slice(&source[start..start + t]);
            y.extend_from_slice(&source[start + 1..start + t + 1]);
        }
        Ok(Batch {
            dependency: None,
            inputs: Tensor::from_vec(x, (batch, t), device)?,
            targets: Tensor::from_vec(y, (batch, t), device)?,
        })
    }

    /// Consecutive windows for stateful truncated BPTT: stream b reads the b-th of `batch` equal
    /// slices of the training tokens, window `index` of it (wrapping around).
    pub fn stream_batch(&self, batch: usize, index: u64, device: &Device) -> Result<Batch> {
        let t = self.window;
        let slice = (self.train.len() - 1) / batch;
        if slice < t {
            bail!(
                "--batch {batch} streams of --seq-len {t} need {} training tokens, the corpus has {}",
                batch * t + 1,
                self.train.len()
            );
        }
        let per_stream = (slice / t) as u64;
        let offset = (index % per_stream) as usize * t;
        let (mut x, mut y) = (Vec::with_capacity(batch * t), Vec::with_capacity(batch * t));
        for b in 0..batch {
            let start = b * slice + offset;
            x.extend_from_slice(&self.train[start..start + t]);
            y.extend_from_slice(&self.train[start + 1..start + t + 1]);
        }
        Ok(Batch {
            dependency: None,
            inputs: Tensor::from_vec(x, (batch, t), device)?,
            targets: Tensor::from_vec(y, (batch, t), device)?,
        })
    }

    /// Windows per stream before the streams wrap around (the state is reset then).
    pub fn stream_length(&self, batch: usize) -> u64 {
        (((self.train.len() - 1) / batch) / self.window).max(1) as u64
    }
}

impl Task for TextTask {
    fn name(&self) -> &'static str {
        "text"
    }

    fn seq_len(&self) -> usize {
        self.window
    }

    fn spec(&self) -> TaskSpec {
        let vocab = self.tokenizer.vocab_size();
        TaskSpec { input: InputKind::Tokens { vocab }, output_size: vocab, steps: self.window }
    }

    fn batch(&self, batch: usize, rng: &mut StdRng, device: &Device) -> Result<Batch> {
        self.windows(&self.train, batch, rng, device)
    }

    fn sequential_batch(&self, batch: usize, index: u64, device: &Device) -> Result<Option<Batch>> {
        self.stream_batch(batch, index, device).map(Some)
    }

    fn sequential_period(&self, batch: usize) -> u64 {
        self.stream_length(batch)
    }

    fn eval_batch(&self, batch: usize, rng: &mut StdRng, device: &Device) -> Result<Batch> {
        self.windows(&self.val, batch, rng, device)
    }

    fn loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor> {
        sequence_cross_entropy(outputs, &batch.targets)
    }

    fn last_step_loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor> {
        let t = outputs.dim(1)?;
        sequence_cross_entropy(&outputs.narrow(1, t - 1, 1)?, &batch.targets.narrow(1, t - 1, 1)?)
    }

    fn metrics(&self, outputs: &Tensor, batch: &Batch) -> Result<Metrics> {
        let loss = self.loss(outputs, batch)?.to_scalar::<f32>()? as f64;
        let hits = outputs.argmax(D::Minus1)?.eq(&batch.targets)?.to_dtype(DType::F32)?.mean_all()?;
        Ok(Metrics {
            loss,
            accuracy: Some(hits.to_scalar::<f32>()? as f64),
            mse: None,
            bits_per_char: Some(loss / std::f64::consts::LN_2 * self.tokens_per_char),
        })
    }

    /// The unigram entropy of the training tokens: the loss of a model that ignores context.
    fn baseline(&self) -> f64 {
        self.unigram_entropy
    }

    fn solved(&self, _: &Metrics) -> bool {
        false
    }

    fn headline(&self, m: &Metrics) -> (&'static str, f64) {
        ("bpc", m.bits_per_char.unwrap_or(f64::NAN))
    }

    fn save_artifacts(&self, dir: &Path) -> anyhow::Result<()> {
        self.tokenizer.save(dir)
    }
}
