//! Draws one of each kind of figure from synthetic data, to check by eye how plots look.
//!
//! cargo run --release --example plot_gallery -- /tmp/plot-look

use gradscope::plot::{heatmap, line_chart, Heatmap, LineChart, Series};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "/tmp/plot-look".into()));

    // Gradient norm against distance for three cells: exponential decay at different rates,
    // spread over seeds for the RNN, and the float32 noise floor.
    let x: Vec<f64> = (0..=200).map(f64::from).collect();
    let curve = |rate: f64, wobble: f64| {
        x.iter().map(|d| (-rate * d).exp() * (1.0 + wobble * (d * 0.3).sin())).collect::<Vec<_>>()
    };
    let rnn = curve(0.23, 0.3);
    let decay = LineChart {
        title: "Gradient decay with distance from the loss".into(),
        x_label: "distance from the loss (time steps)".into(),
        y_label: "‖∂L/∂h_t‖ / ‖∂L/∂h_T‖".into(),
        log_y: true,
        series: vec![
            Series::new("RNN (tanh)", x.clone(), rnn.clone())
                .with_band(rnn.iter().map(|v| v * 0.2).collect(), rnn.iter().map(|v| v * 5.0).collect()),
            Series::new("GRU", x.clone(), curve(0.08, 0.2)),
            Series::new("LSTM", x.clone(), curve(0.03, 0.1)),
        ],
        hline: Some((1e-7, "float32 resolution".into())),
    };
    line_chart(&decay, &dir.join("decay"))?;

    // Thirty-three decades, with zeros and NaNs where the gradient underflowed.
    let xs: Vec<f64> = (0..400).map(f64::from).collect();
    let wide = LineChart {
        title: "Underflow over thirty decades".into(),
        x_label: "distance (time steps)".into(),
        y_label: "‖∂L/∂h_t‖".into(),
        log_y: true,
        series: (0..12)
            .map(|k| {
                let rate = 0.02 + 0.015 * f64::from(k);
                let y = xs
                    .iter()
                    .map(|d| {
                        let v = 1e3 * (-rate * d * 1.4).exp();
                        if v < 1e-30 {
                            0.0
                        } else {
                            v
                        }
                    })
                    .collect();
                Series::new(format!("layer {k}"), xs.clone(), y)
            })
            .collect(),
        hline: None,
    };
    line_chart(&wide, &dir.join("wide"))?;

    // A linear axis: training loss with a chance-level baseline.
    let steps: Vec<f64> = (0..=100).map(|s| f64::from(s) * 250.0).collect();
    let loss = |floor: f64, speed: f64| {
        steps.iter().map(|s| floor + (2.08 - floor) * (-s * speed).exp()).collect::<Vec<_>>()
    };
    let train = LineChart {
        title: "Training loss".into(),
        x_label: "training step".into(),
        y_label: "cross-entropy (nats)".into(),
        log_y: false,
        series: vec![
            Series::new("LSTM", steps.clone(), loss(0.05, 4e-4)),
            Series::new("GPT", steps.clone(), loss(0.02, 1e-3)),
        ],
        hline: Some((2.08, "chance (ln 8)".into())),
    };
    line_chart(&train, &dir.join("loss"))?;

    // log₁₀ gradient norm by training step and (geometric) distance, one row missing in part.
    let dist: Vec<f64> = (0..11).map(|k| 2f64.powi(k)).collect();
    let rows: Vec<f64> = (0..40).map(|s| f64::from(s) * 250.0).collect();
    let z = rows
        .iter()
        .map(|step| {
            dist.iter()
                .map(|d| {
                    if (*step - 5000.0).abs() < 1.0 && *d > 60.0 {
                        f64::NAN
                    } else {
                        -d * 0.025 * (1.0 + step / 4000.0)
                    }
                })
                .collect()
        })
        .collect();
    let map = Heatmap {
        title: "Gradient norm over training".into(),
        x_label: "distance from the loss (time steps)".into(),
        y_label: "training step".into(),
        colorbar_label: "log₁₀ ‖∂L/∂h_t‖".into(),
        x: dist,
        y: rows,
        z,
    };
    heatmap(&map, &dir.join("heatmap"))?;

    // A dense grid (embedded as an image in the SVG).
    let cols: Vec<f64> = (1..=500).map(f64::from).collect();
    let rows: Vec<f64> = (0..120).map(|s| f64::from(s) * 100.0).collect();
    let z = rows
        .iter()
        .map(|s| cols.iter().map(|d| -d / 60.0 * (1.0 + (s / 3000.0).sin() * 0.5)).collect())
        .collect();
    let dense = Heatmap {
        title: "Dense grid".into(),
        x_label: "distance from the loss (time steps)".into(),
        y_label: "training step".into(),
        colorbar_label: "log₁₀ ‖∂L/∂h_t‖".into(),
        x: cols,
        y: rows,
        z,
    };
    heatmap(&dense, &dir.join("dense"))?;

    println!("wrote decay, wide, loss, heatmap, dense (.png and .svg) to {}", dir.display());
    Ok(())
}
