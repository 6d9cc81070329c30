//! Named speed workloads: one training step (forward, loss, backward, optimiser update) of a fixed
//! model on a fixed batch. The criterion benches, `examples/step_time.rs` and the PyTorch
//! side-by-side script (`benches/pytorch/side_by_side.py`) all run these, so their numbers compare.

use crate::models::{
    Family, ForwardOptions, InitScheme, LruConfig, MambaConfig, ModelInput, Nonlinearity, RecurrentBackend,
    SeqModel, SeqModelConfig,
};
use crate::tasks::{AddingTask, AddingVariant, Batch, CopyTask, InputKind, Task};
use crate::train::{Optimizer, OptimizerConfig};
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Batch and hidden size of the recurrent workloads.
pub const RECURRENT_BATCH: usize = 64;
pub const RECURRENT_HIDDEN: usize = 128;

/// The workloads, by the names the PyTorch script uses.
pub const WORKLOADS: [&str; 13] = [
    "adding_t1000_lstm",
    "adding_t1000_gru",
    "adding_t1000_rnn_tanh",
    "adding_t1000_mingru",
    "adding_t1000_minlstm",
    "adding_t1000_lru",
    "adding_t1000_mamba",
    "copy_t100_lstm",
    "copy_t100_gru",
    "copy_t100_rnn_tanh",
    "adding_t1000_lstm_forward",
    "gpt_ctx256",
    "gpt_nanogpt",
];

/// A GPT workload's shape: (n_layer, n_embd, n_head, context, batch, vocab).
fn gpt_shape(name: &str) -> Option<(usize, usize, usize, usize, usize, usize)> {
    match name {
        "gpt_ctx256" => Some((4, 128, 4, 256, 32, 65)),
        "gpt_nanogpt" => Some((4, 128, 4, 64, 12, 65)),
        _ => None,
    }
}

/// A built workload, ready to step.
pub struct SpeedWorkload {
    name: String,
    model: SeqModel,
    opt: Optimizer,
    kind: Kind,
    backend: RecurrentBackend,
    forward_only: bool,
    flops: f64,
}

enum Kind {
    Recurrent { task: Box<dyn Task>, batch: Batch },
    Gpt { tokens: Tensor, targets: Tensor },
}

impl SpeedWorkload {
    /// Builds `name` (one of [`WORKLOADS`]) with the recurrent layers on `backend`.
    pub fn new(name: &str, backend: RecurrentBackend) -> Result<Self> {
        let device = Device::Cpu;
        let varmap = VarMap::new();
        if let Some((n_layer, c, n_head, ctx, batch, vocab)) = gpt_shape(name) {
            let cfg = SeqModelConfig {
                family: Family::Gpt,
                nonlinearity: Nonlinearity::Tanh,
                input: ModelInput::Tokens { vocab },
                output_size: vocab,
                hidden: c,
                layers: n_layer,
                heads: n_head,
                context: ctx,
                dropout: 0.0,
                init: InitScheme::Pytorch,
                init_gain: None,
                forget_bias: None,
                lru: None,
                mamba: None,
            };
            let model = cfg.init(&varmap, 0, &device)?;
            let opt = Optimizer::from_varmap(OptimizerConfig::adamw(), &varmap)?;
            let mut rng = StdRng::seed_from_u64(0);
            let mut ids = |n: usize| (0..n).map(|_| rng.random_range(0..vocab as u32)).collect::<Vec<u32>>();
            let tokens = Tensor::from_vec(ids(batch * ctx), (batch, ctx), &device)?;
            let targets = Tensor::from_vec(ids(batch * ctx), (batch, ctx), &device)?;
            // nanoGPT's estimate: 6 FLOPs per weight-matrix entry per token, plus attention.
            let matmul_params = n_layer * 12 * c * c + vocab * c;
            let flops = ((6 * matmul_params + 12 * n_layer * c * ctx) * batch * ctx) as f64;
            let kind = Kind::Gpt { tokens, targets };
            return Ok(Self { name: name.into(), model, opt, kind, backend, forward_only: false, flops });
        }
        let (task, family, forward_only): (Box<dyn Task>, Family, bool) = match name {
            "adding_t1000_lstm" => {
                (Box::new(AddingTask::new(1000, AddingVariant::Standard)?), Family::Lstm, false)
            }
            "adding_t1000_gru" => {
                (Box::new(AddingTask::new(1000, AddingVariant::Standard)?), Family::Gru, false)
            }
            "adding_t1000_rnn_tanh" => {
                (Box::new(AddingTask::new(1000, AddingVariant::Standard)?), Family::Rnn, false)
            }
            "adding_t1000_mingru" => {
                (Box::new(AddingTask::new(1000, AddingVariant::Standard)?), Family::MinGru, false)
            }
            "adding_t1000_minlstm" => {
                (Box::new(AddingTask::new(1000, AddingVariant::Standard)?), Family::MinLstm, false)
            }
            "adding_t1000_lru" => {
                (Box::new(AddingTask::new(1000, AddingVariant::Standard)?), Family::Lru, false)
            }
            "adding_t1000_mamba" => {
                (Box::new(AddingTask::new(1000, AddingVariant::Standard)?), Family::Mamba, false)
            }
            "copy_t100_lstm" => (Box::new(CopyTask::new(100, 10, 8)?), Family::Lstm, false),
            "copy_t100_gru" => (Box::new(CopyTask::new(100, 10, 8)?), Family::Gru, false),
            "copy_t100_rnn_tanh" => (Box::new(CopyTask::new(100, 10, 8)?), Family::Rnn, false),
            "adding_t1000_lstm_forward" => {
                (Box::new(AddingTask::new(1000, AddingVariant::Standard)?), Family::Lstm, true)
            }
            other => bail!("unknown speed workload {other:?}; choose from {}", WORKLOADS.join(", ")),
        };
        let spec = task.spec();
        let input = match spec.input {
            InputKind::Tokens { vocab } => ModelInput::Tokens { vocab },
            InputKind::Real { features } => ModelInput::Real { features },
        };
        let cfg = SeqModelConfig {
            family,
            nonlinearity: Nonlinearity::Tanh,
            input,
            output_size: spec.output_size,
            hidden: RECURRENT_HIDDEN,
            layers: 1,
            heads: 1,
            context: spec.steps,
            dropout: 0.0,
            init: InitScheme::Pytorch,
            init_gain: None,
            forget_bias: None,
            lru: None,
            mamba: None,
        };
        let (features, out_steps) = match input {
            ModelInput::Real { features } => (features, 1),
            ModelInput::Tokens { vocab } => (vocab, spec.steps),
        };
        let cfg = SeqModelConfig {
            lru: (family == Family::Lru).then(|| LruConfig::new(features, RECURRENT_HIDDEN)),
            mamba: (family == Family::Mamba).then(|| MambaConfig::new(features, RECURRENT_HIDDEN)),
            ..cfg
        };
        let model = cfg.init(&varmap, 0, &device)?;
        let opt = Optimizer::from_varmap(OptimizerConfig::adam(), &varmap)?;
        let batch = task.batch(RECURRENT_BATCH, &mut StdRng::seed_from_u64(0), &device)?;
        // GEMM FLOPs (2·m·n·k per product); the backward pass costs twice the forward.
        let (b, h, t) = (RECURRENT_BATCH, RECURRENT_HIDDEN, spec.steps);
        let per_row = match family.cell(Nonlinearity::Tanh) {
            Some(cell) => cell.gates() * h * (features + if cell.has_recurrent_weights() { h } else { 0 }),
            None => match &cfg.mamba {
                // Mamba: encoder, in_proj, x_proj, dt_proj, out_proj.
                Some(m) => {
                    let (e, p) = (m.inner(), m.dt_rank + 2 * m.state_size);
                    features * h + 2 * e * h + p * e + m.dt_rank * e + e * h
                }
                // The LRU (N = H): encoder, B and C (real and imaginary), the GLU's two maps.
                None => features * h + 4 * h * h + 2 * h * h,
            },
        };
        let forward = 2 * b * t * per_row + 2 * b * out_steps * h * spec.output_size;
        let flops = if forward_only { forward } else { 3 * forward } as f64;
        Ok(Self {
            name: name.into(),
            model,
            opt,
            kind: Kind::Recurrent { task, batch },
            backend,
            forward_only,
            flops,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// GEMM FLOPs of one step (the measure behind "achieved GFLOP/s").
    pub fn flops(&self) -> f64 {
        self.flops
    }

    /// Tokens (batch × sequence positions) one step processes.
    pub fn tokens(&self) -> usize {
        match &self.kind {
            Kind::Recurrent { batch, .. } => batch.inputs.dims()[0] * batch.inputs.dims()[1],
            Kind::Gpt { tokens, .. } => tokens.elem_count(),
        }
    }

    /// One step: forward, loss, backward, update (forward only for `*_forward`).
    pub fn step(&mut self) -> Result<()> {
        let train = !self.forward_only;
        // Forward-only is inference, as PyTorch's side runs it under `torch.no_grad()`.
        let opts =
            ForwardOptions { train, backend: self.backend, no_grad: self.forward_only, ..Default::default() };
        let loss = match &self.kind {
            Kind::Recurrent { task, batch } => {
                let out = self.model.forward(&batch.inputs, None, &opts)?;
                if self.forward_only {
                    return Ok(());
                }
                task.loss(&out.outputs, batch)?
            }
            Kind::Gpt { tokens, targets } => {
                let out = self.model.forward(tokens, None, &opts)?;
                crate::models::cross_entropy(&out.outputs, targets)?
            }
        };
        let grads = loss.backward()?;
        self.opt.step(&grads, 1e-3)?;
        Ok(())
    }
}

/// GFLOP/s of a large square f32 matrix product (n × n × n) on candle's CPU matmul: the ceiling
/// that "achieved GFLOP/s" is a fraction of.
pub fn large_gemm_gflops(n: usize, reps: usize) -> Result<f64> {
    let (a, b) = square_pair(n);
    for _ in 0..2 {
        a.matmul(&b)?;
    }
    let start = std::time::Instant::now();
    for _ in 0..reps {
        a.matmul(&b)?;
    }
    Ok(2.0 * (n as f64).powi(3) * reps as f64 / start.elapsed().as_secs_f64() / 1e9)
}

/// Two random n × n f32 matrices on the CPU, the operands of the large-GEMM rate.
pub fn square_pair(n: usize) -> (Tensor, Tensor) {
    let mut rng = StdRng::seed_from_u64(n as u64);
    let mut m = || {
        let data: Vec<f32> = (0..n * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        Tensor::from_vec(data, (n, n), &Device::Cpu).expect("an n × n buffer has n² elements")
    };
    (m(), m())
}
