//! Time one named speed workload: median seconds per training step and peak RSS, as one JSON line.
//! The PyTorch side-by-side script (`benches/pytorch/side_by_side.py`) runs this per workload.
//!
//!     cargo run --release --example step_time -- gpt_nanogpt --steps 10
//!     cargo run --release --example step_time -- --gemm-rate

use gradscope::bench::speed::{large_gemm_gflops, SpeedWorkload, WORKLOADS};
use gradscope::models::RecurrentBackend;
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    gradscope::device::tune_cpu_runtime();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str, default: usize| -> anyhow::Result<usize> {
        match args.iter().position(|a| a == name) {
            Some(i) => Ok(args.get(i + 1).ok_or_else(|| anyhow::anyhow!("{name} needs a value"))?.parse()?),
            None => Ok(default),
        }
    };
    if args.iter().any(|a| a == "--gemm-rate") {
        println!("{{\"gflops\": {:.3}}}", large_gemm_gflops(1024, 10)?);
        return Ok(());
    }
    let Some(name) = args.first().filter(|a| !a.starts_with("--")) else {
        anyhow::bail!(
            "usage: step_time WORKLOAD [--steps N] [--warmup N] [--autograd]; workloads: {}",
            WORKLOADS.join(", ")
        );
    };
    let backend = if args.iter().any(|a| a == "--autograd") {
        RecurrentBackend::Autograd
    } else {
        RecurrentBackend::Auto
    };
    let (steps, warmup) = (flag("--steps", 10)?, flag("--warmup", 2)?);
    let mut workload = SpeedWorkload::new(name, backend)?;
    for _ in 0..warmup {
        workload.step()?;
    }
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps {
        let start = Instant::now();
        workload.step()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = if times.is_empty() { f64::NAN } else { times[times.len() / 2] };
    let peak_rss_mb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(f64::NAN, |kb| kb / 1024.0);
    println!(
        "{{\"workload\": \"{name}\", \"median_s\": {median:.6}, \"min_s\": {:.6}, \"steps\": {steps}, \"flops\": {:.0}, \"tokens\": {}, \"peak_rss_mb\": {peak_rss_mb:.1}}}",
        times.first().copied().unwrap_or(f64::NAN),
        workload.flops(),
        workload.tokens()
    );
    Ok(())
}
