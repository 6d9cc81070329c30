//! Training-step time of the recurrent families on both backends.
//!
//! A step is forward, loss, backward and an Adam update, as in training: adding problem at
//! T = 1000 (2 real inputs, regression) and copy memory at T = 100 (one-hot 10 → 9 classes,
//! 120 steps in all); B = 64, H = 128, one layer; LSTM, GRU and tanh RNN, and on adding minGRU
//! and minLSTM, the LRU (one block, N = H) and Mamba (one block, N = 16, E = 2H), whose per-op
//! path (~20 s a step) is left to `step_time --autograd`: ten criterion samples would take minutes.
//!
//! The workloads are `gradscope::bench::speed`'s (the PyTorch side-by-side script runs the same
//! ones: `python3 benches/pytorch/side_by_side.py`); the throughput column is GEMM FLOP/s and
//! `gemm/large_1024` the large-GEMM rate of the same run. `adding_t1000/lstm_forward` is
//! inference only (no backward, no update).
//!
//! cargo bench --bench recurrent [-- FILTER]
//!
//! Figures, with the machine they ran on, are in docs/performance.md.
//!
//! candle's own pool spin-waits, so the autograd rows slow down sharply when the machine is loaded.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gradscope::bench::speed::{square_pair, SpeedWorkload};
use gradscope::models::RecurrentBackend;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    gradscope::device::tune_cpu_runtime();
    let mut group = c.benchmark_group("gemm");
    group.sample_size(10).throughput(Throughput::Elements(2 * 1024u64.pow(3)));
    let (x, y) = square_pair(1024);
    group.bench_function("large_1024", |b| b.iter(|| x.matmul(&y).expect("gemm")));
    group.finish();

    for task in ["adding_t1000", "copy_t100"] {
        let mut group = c.benchmark_group(task);
        group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
        let mut cells = vec!["lstm", "gru", "rnn_tanh"];
        if task == "adding_t1000" {
            cells.extend(["lstm_forward", "mingru", "minlstm", "lru", "mamba"]);
        }
        for cell in cells {
            for backend in [RecurrentBackend::Fused, RecurrentBackend::Autograd] {
                if cell == "mamba" && backend == RecurrentBackend::Autograd {
                    continue;
                }
                let mut w = SpeedWorkload::new(&format!("{task}_{cell}"), backend).expect("workload");
                group.throughput(Throughput::Elements(w.flops() as u64));
                group.bench_function(format!("{cell}/{backend}"), |b| b.iter(|| w.step().expect("step")));
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
