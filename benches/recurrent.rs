//! Training-step time of the recurrent families on both backends.
//!
//! A step is forward, loss, backward and an Adam update, as in training: adding problem at
//! T = 1000 (2 real inputs, regression) and copy memory at T = 100 (one-hot 10 → 9 classes,
//! 120 steps in all); B = 64, H = 128, one layer; LSTM, GRU and tanh RNN.
//!
//! CARGO_TARGET_DIR=/work/main/target cargo bench --bench recurrent [-- FILTER]
//!
//! Measured on the 2-core development machine while two other CPU-bound processes ran (load
//! average 5–9), so treat the absolute numbers as pessimistic; median s/step:
//!
//! | task | cell | fused | autograd (2 threads) | autograd (RAYON_NUM_THREADS=1) |
//! |---|---|---|---|---|
//! | adding T=1000 | LSTM | 0.79 | 11.9 | 2.49 (fused: 0.73) |
//! | adding T=1000 | GRU | 0.53 | 5.29 | – |
//! | adding T=1000 | tanh RNN | 0.17 | 1.88 | 0.64 (fused: 0.23) |
//! | copy T=100 | LSTM | 0.145 | 1.27 | – |
//! | copy T=100 | GRU | 0.103 | 0.554 | – |
//! | copy T=100 | tanh RNN | 0.065 | 0.243 | – |
//!
//! candle's own pool spin-waits, which is what makes its 2-thread numbers collapse under load.
//! Peak RSS of 3 such adding steps (one process each): LSTM 0.43 GB fused vs 1.81 GB autograd,
//! GRU 0.36 vs 1.47 GB, RNN 0.17 vs 0.48 GB.

use candle_core::Device;
use candle_nn::VarMap;
use criterion::{criterion_group, criterion_main, Criterion};
use gradscope::models::{
    Family, ForwardOptions, InitScheme, ModelInput, Nonlinearity, RecurrentBackend, SeqModel, SeqModelConfig,
};
use gradscope::tasks::{AddingTask, AddingVariant, Batch, CopyTask, InputKind, Task};
use gradscope::train::{Optimizer, OptimizerConfig};
use rand::{rngs::StdRng, SeedableRng};
use std::time::Duration;

const BATCH: usize = 64;
const HIDDEN: usize = 128;

type MakeTask = fn() -> Box<dyn Task>;

struct Setup {
    model: SeqModel,
    opt: Optimizer,
    task: Box<dyn Task>,
    batch: Batch,
}

fn setup(task: Box<dyn Task>, family: Family) -> Setup {
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
        hidden: HIDDEN,
        layers: 1,
        heads: 1,
        context: spec.steps,
        dropout: 0.0,
        init: InitScheme::Pytorch,
        init_gain: None,
        forget_bias: None,
    };
    let varmap = VarMap::new();
    let model = cfg.init(&varmap, 0, &Device::Cpu).expect("model");
    let opt = Optimizer::from_varmap(OptimizerConfig::adam(), &varmap).expect("optimizer");
    let batch = task.batch(BATCH, &mut StdRng::seed_from_u64(0), &Device::Cpu).expect("batch");
    Setup { model, opt, task, batch }
}

fn train_step(s: &mut Setup, backend: RecurrentBackend) -> candle_core::Result<()> {
    let opts = ForwardOptions { train: true, backend, ..Default::default() };
    let out = s.model.forward(&s.batch.inputs, None, &opts)?;
    let loss = s.task.loss(&out.outputs, &s.batch)?;
    let grads = loss.backward()?;
    s.opt.step(&grads, 1e-3)
}

fn bench(c: &mut Criterion) {
    let tasks: [(&str, MakeTask); 2] = [
        ("adding_t1000", || Box::new(AddingTask::new(1000, AddingVariant::Standard).expect("task"))),
        ("copy_t100", || Box::new(CopyTask::new(100, 10, 8).expect("task"))),
    ];
    for (task_name, make_task) in tasks {
        let mut group = c.benchmark_group(task_name);
        group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
        for (family, name) in [(Family::Lstm, "lstm"), (Family::Gru, "gru"), (Family::Rnn, "rnn_tanh")] {
            for backend in [RecurrentBackend::Fused, RecurrentBackend::Autograd] {
                let mut s = setup(make_task(), family);
                group.bench_function(format!("{name}/{backend}"), |b| {
                    b.iter(|| train_step(&mut s, backend).expect("training step"))
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
