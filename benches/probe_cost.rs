//! The cost of recording per-timestep state gradients during a training step (target: ≤ 5 %).
//!
//! A step is forward, loss, backward and an Adam update on the adding problem, T = 200, B = 64,
//! H = 128, one layer, with and without `record_state_grads`, on both backends. On the fused path
//! the backward produces ∂L/∂h_t anyway, so recording costs one copy of (B, T, H) per layer; on the
//! autograd path it adds a zero tap per step.
//!
//! cargo bench --bench probe_cost

use candle_core::Device;
use candle_nn::VarMap;
use criterion::{criterion_group, criterion_main, Criterion};
use gradscope::models::{ForwardOptions, RecurrentBackend, SeqModel};
use gradscope::tasks::{AddingTask, AddingVariant, Batch, Task};
use gradscope::train::{Optimizer, TrainConfig};
use rand::{rngs::StdRng, SeedableRng};
use std::time::Duration;

struct Setup {
    model: SeqModel,
    opt: Optimizer,
    task: AddingTask,
    batch: Batch,
}

fn setup(model: &str) -> Setup {
    let cfg = TrainConfig {
        seq_len: 200,
        model: model.parse().expect("family"),
        hidden: 128,
        ..TrainConfig::default()
    };
    let task = AddingTask::new(200, AddingVariant::Standard).expect("task");
    let varmap = VarMap::new();
    let m = cfg.model_config(&task).init(&varmap, 0, &Device::Cpu).expect("model");
    let opt = Optimizer::from_varmap(cfg.optimizer_config().expect("adam"), &varmap).expect("optimizer");
    let batch = task.batch(64, &mut StdRng::seed_from_u64(0), &Device::Cpu).expect("batch");
    Setup { model: m, opt, task, batch }
}

fn step(s: &mut Setup, backend: RecurrentBackend, record: bool) -> anyhow::Result<()> {
    let opts = ForwardOptions { train: true, backend, record_state_grads: record, ..Default::default() };
    let out = s.model.forward(&s.batch.inputs, None, &opts)?;
    let grads = s.task.loss(&out.outputs, &s.batch)?.backward()?;
    if let Some(taps) = &out.taps {
        // Reading the curve is part of the cost: norms of every step of every layer.
        let g = taps.grads(&grads)?;
        for layer in 0..g.h.len() {
            std::hint::black_box(g.h_norms(layer)?);
        }
    }
    s.opt.step(&grads, 1e-3)?;
    Ok(())
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("probe_cost_adding_t200");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    for model in ["lstm", "rnn"] {
        for backend in [RecurrentBackend::Fused, RecurrentBackend::Autograd] {
            for record in [false, true] {
                let mut s = setup(model);
                let name = format!("{model}/{backend}/{}", if record { "taps" } else { "plain" });
                group.bench_function(name, |b| b.iter(|| step(&mut s, backend, record).expect("step")));
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
