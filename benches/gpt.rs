//! Training-step time of the GPT (forward, cross-entropy, backward, AdamW) in the two workloads of
//! the performance issue: 4 layers, d_model 128, 4 heads, vocab 65, f32, and
//!
//! - `gpt/ctx256`: context 256, batch 32 (8,192 tokens per step);
//! - `gpt/nanogpt`: nanoGPT's CPU configuration of shakespeare_char, context 64, batch 12.
//!
//! Each runs on the fused CPU ops (`fused`) and on candle's per-op graph (`autograd`); the
//! throughput column is GEMM FLOP/s (nanoGPT's 6·N + 12·L·C·T FLOPs per token), and
//! `gemm/large_1024` is the large-GEMM rate on the same run, the ceiling to compare with.
//!
//!     cargo bench --bench gpt [-- FILTER]
//!     python3 benches/pytorch/side_by_side.py gpt_ctx256 gpt_nanogpt   # PyTorch ratios
//!
//! Figures are in docs/performance.md.

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

    let mut group = c.benchmark_group("gpt");
    group.sample_size(10).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(5));
    for (workload, name) in [("gpt_nanogpt", "nanogpt"), ("gpt_ctx256", "ctx256")] {
        for backend in [RecurrentBackend::Fused, RecurrentBackend::Autograd] {
            let mut w = SpeedWorkload::new(workload, backend).expect("workload");
            group.throughput(Throughput::Elements(w.flops() as u64));
            group
                .bench_function(format!("{name}/{backend}"), |b| b.iter(|| w.step().expect("training step")));
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
