//! The task part of a run's configuration: which task, its flags checked against it, its shape
//! before it is built, and the task itself.

use super::TrainConfig;
use crate::tasks::{
    AddingTask, CopyTask, FlipFlopTask, InductionTask, InputKind, MqarTask, ParityTask, SelectiveCopyTask,
    Task, TaskSpec, TextTask, DEFAULT_P_IGNORE,
};
use crate::text::{load_corpus, TextTokenizer};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// MQAR's key-value pairs when `--pairs` is not given.
pub const DEFAULT_PAIRS: usize = 4;

/// The task to train on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskName {
    Copy,
    Adding,
    /// Selective copying (Mamba §4.1): the symbols sit at random positions among noise.
    #[serde(rename = "selective-copy")]
    SelectiveCopy,
    /// Induction heads (Mamba §4.1): name the token that followed the trigger's first occurrence.
    Induction,
    /// Multi-query associative recall (Zoology): key-value pairs, then queries of the keys.
    Mqar,
    /// Flip-flop language (Liu et al. 2023): recall the last written bit at each read.
    #[serde(rename = "flip-flop")]
    FlipFlop,
    /// The running parity of a bit string (state tracking).
    Parity,
    /// Language modelling on `--corpus`.
    Text,
}

impl std::str::FromStr for TaskName {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "copy" | "copy-memory" => Ok(TaskName::Copy),
            "adding" => Ok(TaskName::Adding),
            "selective-copy" | "selective_copy" => Ok(TaskName::SelectiveCopy),
            "induction" | "induction-heads" => Ok(TaskName::Induction),
            "mqar" => Ok(TaskName::Mqar),
            "flip-flop" | "flip_flop" | "flipflop" => Ok(TaskName::FlipFlop),
            "parity" => Ok(TaskName::Parity),
            "text" | "lm" => Ok(TaskName::Text),
            other => Err(format!(
                "unknown task '{other}': expected copy, adding, selective-copy, induction, mqar, flip-flop, \
                 parity or text"
            )),
        }
    }
}

impl std::fmt::Display for TaskName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TaskName::Copy => "copy",
            TaskName::Adding => "adding",
            TaskName::SelectiveCopy => "selective-copy",
            TaskName::Induction => "induction",
            TaskName::Mqar => "mqar",
            TaskName::FlipFlop => "flip-flop",
            TaskName::Parity => "parity",
            TaskName::Text => "text",
        })
    }
}

impl TaskName {
    /// The task's flags that size a run, besides --seq-len (for the memory message).
    pub(super) fn sizing_flags(self) -> &'static str {
        match self {
            TaskName::Copy | TaskName::SelectiveCopy => ", --copy-len, --alphabet",
            TaskName::Mqar | TaskName::Induction => ", --alphabet",
            TaskName::Text => ", --vocab-size",
            TaskName::Adding | TaskName::FlipFlop | TaskName::Parity => "",
        }
    }
}

impl TrainConfig {
    /// The token alphabet: --alphabet, else 16 for induction (the Mamba paper's vocabulary) and 8
    /// for the others.
    pub fn alphabet(&self) -> usize {
        self.alphabet.unwrap_or(if self.task == TaskName::Induction { 16 } else { 8 })
    }

    /// Symbols to recall: --copy-len, else 16 for selective copy (the Mamba paper's) and 10 for
    /// copy (Arjovsky et al.'s).
    pub fn copy_len(&self) -> usize {
        self.copy_len.unwrap_or(if self.task == TaskName::SelectiveCopy { 16 } else { 10 })
    }

    /// Flags that belong to one task, given with another, and --eval-lengths.
    pub(super) fn validate_task(&self) -> Result<()> {
        if self.pairs.is_some() && self.task != TaskName::Mqar {
            bail!("--pairs applies to --task mqar only (got --task {})", self.task);
        }
        if self.p_ignore.is_some() && self.task != TaskName::FlipFlop {
            bail!("--p-ignore applies to --task flip-flop only (got --task {})", self.task);
        }
        if let Some(p) = self.p_ignore.filter(|p| !(0.0..=1.0).contains(p)) {
            bail!("--p-ignore must be in [0, 1] (got {p})");
        }
        if self.task != TaskName::Text {
            // Generated tasks cost nothing to build: their size checks run before a run exists.
            self.build_task()?;
        }
        if self.eval_lengths.is_empty() {
            return Ok(());
        }
        if self.task == TaskName::Text {
            bail!("--eval-lengths applies to the generated tasks, not --task text");
        }
        for &t in &self.eval_lengths {
            if t == 0 {
                bail!("--eval-lengths must be ≥ 1 each (got 0)");
            }
            self.at_length(t).build_task().with_context(|| format!("--eval-lengths {t}"))?;
        }
        Ok(())
    }

    /// This configuration at another length T (for evaluating a trained model there).
    pub fn at_length(&self, seq_len: usize) -> TrainConfig {
        TrainConfig { seq_len, eval_lengths: Vec::new(), ..self.clone() }
    }

    /// The most steps any --eval-lengths sequence has (0 without them): the GPT's positional
    /// table must reach that far.
    pub(super) fn longest_eval_steps(&self) -> usize {
        self.eval_lengths.iter().map(|&t| self.at_length(t).task_steps()).max().unwrap_or(0)
    }

    /// The task's shape without building the task (text: the vocabulary is a guess, 256 or
    /// --vocab-size).
    pub(super) fn spec_guess(&self) -> TaskSpec {
        let steps = self.task_steps();
        let a = self.alphabet();
        let (input, output_size) = match self.task {
            TaskName::Adding => (InputKind::Real { features: 2 }, 1),
            TaskName::Copy => (InputKind::Tokens { vocab: a.saturating_add(2) }, a.saturating_add(1)),
            TaskName::SelectiveCopy => (InputKind::Tokens { vocab: a.saturating_add(2) }, a),
            TaskName::Induction => (InputKind::Tokens { vocab: a.saturating_add(1) }, a),
            TaskName::Mqar => (InputKind::Tokens { vocab: a }, a - a / 2),
            TaskName::FlipFlop => (InputKind::Tokens { vocab: 5 }, 2),
            TaskName::Parity => (InputKind::Tokens { vocab: 2 }, 2),
            TaskName::Text => {
                let vocab = self.vocab_size.unwrap_or(256);
                (InputKind::Tokens { vocab }, vocab)
            }
        };
        TaskSpec { input, output_size, steps }
    }

    /// Steps per sequence the model sees, without building the task (saturating: absurd
    /// lengths are refused by the memory check, not wrapped around).
    pub fn task_steps(&self) -> usize {
        match self.task {
            TaskName::Copy => self.seq_len.saturating_add(self.copy_len().saturating_mul(2)),
            TaskName::SelectiveCopy => self.seq_len.saturating_add(self.copy_len()),
            TaskName::FlipFlop => self.seq_len.saturating_sub(1),
            TaskName::Adding | TaskName::Induction | TaskName::Mqar | TaskName::Parity | TaskName::Text => {
                self.seq_len
            }
        }
    }

    /// The task; for text, the tokenizer comes from `run_dir` when it holds one (a resumed or
    /// probed run), else from `--tokenizer`, else it is built from the corpus.
    pub fn build_task_in(&self, run_dir: Option<&Path>) -> Result<Box<dyn Task>> {
        let a = self.alphabet();
        Ok(match self.task {
            TaskName::Copy => Box::new(CopyTask::new(self.seq_len, self.copy_len(), a)?),
            TaskName::SelectiveCopy => Box::new(SelectiveCopyTask::new(self.seq_len, self.copy_len(), a)?),
            TaskName::Induction => Box::new(InductionTask::new(self.seq_len, a)?),
            TaskName::Mqar => Box::new(MqarTask::new(self.seq_len, self.pairs.unwrap_or(DEFAULT_PAIRS), a)?),
            TaskName::FlipFlop => {
                Box::new(FlipFlopTask::new(self.seq_len, self.p_ignore.unwrap_or(DEFAULT_P_IGNORE))?)
            }
            TaskName::Parity => Box::new(ParityTask::new(self.seq_len)?),
            TaskName::Adding => Box::new(AddingTask::new(self.seq_len, self.adding_variant)?),
            TaskName::Text => {
                let path = self.corpus.as_ref().context("--task text needs --corpus FILE")?;
                let text = load_corpus(path)?;
                let saved = match run_dir {
                    Some(d) => TextTokenizer::load_saved(d)?,
                    None => None,
                };
                let tokenizer = match (saved, &self.tokenizer, self.vocab_size) {
                    (Some(t), _, _) => t,
                    (None, Some(file), _) => TextTokenizer::load(file)?,
                    (None, None, Some(n)) => TextTokenizer::train_bpe(&text, n)?,
                    (None, None, None) => TextTokenizer::char_level(&text),
                };
                Box::new(
                    TextTask::new(&text, tokenizer, self.seq_len)
                        .with_context(|| format!("corpus {}", path.display()))?,
                )
            }
        })
    }

    pub fn build_task(&self) -> Result<Box<dyn Task>> {
        self.build_task_in(None)
    }
}
