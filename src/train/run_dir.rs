//! The run directory: what a run leaves for people and for `--resume`.
//!
//! ```text
//! runs/x/config.toml            resolved configuration (pass back with --config)
//! runs/x/model.json             the model's resolved architecture
//! runs/x/metrics.jsonl          one line per evaluation
//! runs/x/checkpoint.safetensors model + optimiser state + step, written atomically
//! runs/x/model.safetensors      parameters only, PyTorch names (for users and PyTorch)
//! runs/x/probe.jsonl            with --probe-every: gradient-vs-distance curves over training
//! runs/x/summary.json           written last: its presence means the run finished
//! ```

use crate::checkpoint::load_into_varmap;
use crate::models::{SeqModel, SeqModelConfig};
use crate::util::write_atomic;
use anyhow::{Context, Result};
use candle_core::Device;
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const CONFIG: &str = "config.toml";
pub const MODEL_CONFIG: &str = "model.json";
pub const METRICS: &str = "metrics.jsonl";
pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const MODEL: &str = "model.safetensors";
pub const SUMMARY: &str = "summary.json";
pub const PROBE: &str = "probe.jsonl";

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    pub step: u64,
    /// Mean training loss over the steps since the previous record.
    #[serde(deserialize_with = "crate::util::nullable::f64")]
    pub train_loss: f64,
    #[serde(deserialize_with = "crate::util::nullable::f64")]
    pub eval_loss: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eval_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eval_mse: Option<f64>,
    /// Text: bits per character of the validation text.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eval_bpc: Option<f64>,
    /// Text: exp(eval loss), the per-token perplexity.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eval_perplexity: Option<f64>,
    /// Mean global gradient norm before clipping over the same steps.
    #[serde(deserialize_with = "crate::util::nullable::f64")]
    pub grad_norm: f64,
    pub lr: f64,
    pub elapsed_seconds: f64,
    pub tokens_per_second: f64,
}

/// What `summary.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub task: String,
    pub model: String,
    pub label: String,
    pub seq_len: usize,
    pub hidden: usize,
    pub layers: usize,
    pub parameters: usize,
    /// The learning rate and seed the run trained with (absent in older runs' summaries).
    #[serde(default)]
    pub lr: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
    pub steps: u64,
    /// A diverged run's NaN loss is written as null.
    #[serde(deserialize_with = "crate::util::nullable::f64")]
    pub eval_loss: f64,
    pub eval_accuracy: Option<f64>,
    pub eval_mse: Option<f64>,
    #[serde(default)]
    pub eval_bpc: Option<f64>,
    #[serde(default)]
    pub eval_perplexity: Option<f64>,
    pub baseline: f64,
    pub solved: bool,
    pub steps_to_solve: Option<u64>,
    pub wall_seconds: f64,
    pub tokens_per_second: f64,
    /// Steps whose loss or gradient was NaN/Inf (skipped or rolled back).
    #[serde(default)]
    pub nonfinite_events: u64,
    /// Why training ended.
    pub stopped: StopReason,
    /// The trained model on other lengths (--eval-lengths) and distributions (flip-flop's tails).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evaluations: Vec<ExtraEvaluation>,
}

/// The final model evaluated on a held-out set other than the training distribution's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExtraEvaluation {
    /// `T=1024`, or the distribution's name (`sparse p_i=0.98`).
    pub name: String,
    pub seq_len: usize,
    /// Null when the loss was not finite.
    #[serde(deserialize_with = "crate::util::nullable::f64")]
    pub eval_loss: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eval_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub eval_mse: Option<f64>,
    pub solved: bool,
}

/// Why a training run ended; written in `summary.json` as `completed`, `solved`, `time-budget` or
/// `diverged`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// Every step of `--steps` ran.
    Completed,
    /// The task's criterion was met and `--stop-when-solved` was set.
    Solved,
    /// `--max-seconds` ran out.
    TimeBudget,
    /// Under `--on-nonfinite skip`, so many steps in a row were non-finite that the run could not
    /// recover (see `MAX_SKIPS_IN_A_ROW`); the parameters are those of the last finite update.
    Diverged,
}

pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_path_buf() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether a run already lives here (a checkpoint or a summary).
    pub fn holds_a_run(&self) -> bool {
        self.path(CHECKPOINT).exists() || self.path(SUMMARY).exists()
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let mut text = serde_json::to_string_pretty(value)?;
        text.push('\n');
        write_atomic(&self.path(name), text.as_bytes())
    }

    pub fn read_json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<T> {
        let path = self.path(name);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The run's trained model: the architecture in `model.json` (validated, since it may have been
    /// edited by hand) with the parameters of `model.safetensors`, on `device`.
    pub fn load_model(&self, device: &Device) -> Result<(SeqModel, VarMap)> {
        let config: SeqModelConfig = self.read_json(MODEL_CONFIG)?;
        config.validate().with_context(|| format!("{}", self.path(MODEL_CONFIG).display()))?;
        let varmap = VarMap::new();
        let model = config.init(&varmap, 0, device)?;
        load_into_varmap(&self.path(MODEL), &varmap)?;
        Ok((model, varmap))
    }

    /// Appends one record as a whole line (a single `write` of the complete line).
    pub fn append_metrics(&self, record: &MetricsRecord) -> Result<()> {
        self.append_line(METRICS, record)
    }

    /// Appends `record` as one JSON line to `name`.
    pub fn append_line<T: Serialize>(&self, name: &str, record: &T) -> Result<()> {
        let mut line = serde_json::to_string(record)?;
        line.push('\n');
        let path = self.path(name);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.write_all(line.as_bytes()).with_context(|| format!("appending to {}", path.display()))
    }

    /// All complete records (a torn last line from a crash is ignored).
    pub fn read_metrics(&self) -> Result<Vec<MetricsRecord>> {
        self.read_lines(METRICS)
    }

    /// Every complete JSON line of `name` (none if the file is absent).
    pub fn read_lines<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<Vec<T>> {
        let path = self.path(name);
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
    }

    /// Keeps the metric and probe records up to `step` (those a resumed run would otherwise
    /// write twice).
    pub fn truncate_records(&self, step: u64) -> Result<()> {
        for name in [METRICS, PROBE] {
            if !self.path(name).exists() {
                continue;
            }
            let path = self.path(name);
            let old =
                std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            // Kept lines are copied as they were: a parse and re-serialisation of their numbers
            // can move the last digit, and a resumed run must log exactly what a straight one does.
            let mut text = String::new();
            for line in old.lines() {
                let record: Option<serde_json::Value> = serde_json::from_str(line).ok();
                if record.is_some_and(|r| r["step"].as_u64().is_some_and(|s| s <= step)) {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            write_atomic(&path, text.as_bytes())?;
        }
        Ok(())
    }
}
