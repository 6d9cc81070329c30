//! A two-layer LSTM forward and backward on the CPU, reading ‖∂L/∂h_t‖ at every step.
//!
//! cargo run --release --example forward_backward

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use gradscope::models::{ForwardOptions, InitScheme, RecurrentConfig};

fn main() -> anyhow::Result<()> {
    let device = Device::Cpu;
    let cfg = RecurrentConfig::lstm(2, 32)
        .with_layers(2)
        .with_init(InitScheme::Orthogonal, None)
        .with_forget_bias(1.0);
    let lstm = cfg.init(&VarMap::new(), "", 0, &device)?;

    let (b, t) = (8, 50);
    let x = Tensor::randn(0f32, 1.0, (b, t, 2), &device)?; // (B, T, I)
    let opts = ForwardOptions { record_state_grads: true, ..Default::default() };
    let out = lstm.forward_with(&x, None, &opts)?; // output (B, T, H)
    let loss = out.output.narrow(1, t - 1, 1)?.sqr()?.sum_all()?; // loss at the last step only
    let grads = loss.backward()?;
    let state_grads = out.taps.expect("taps were requested").grads(&grads)?;

    println!("loss = {:.4}", loss.to_scalar::<f32>()?);
    for layer in 0..cfg.num_layers {
        let norms = state_grads.h_norms(layer)?;
        print!("layer {layer} ‖∂L/∂h_t‖ by distance from the loss:");
        for d in [0, 1, 5, 10, 25, 49] {
            print!("  d={d}: {:.2e}", norms[t - 1 - d]);
        }
        println!();
    }
    Ok(())
}
