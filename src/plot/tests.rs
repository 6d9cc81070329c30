//! Rendering end to end into a temporary directory, and the errors bad input must produce.

use super::*;
use std::path::PathBuf;

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("gradscope-plot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// Three exponentially decaying curves over 1e-20..1, one with a band, plus a baseline.
fn decay_chart() -> LineChart {
    let x: Vec<f64> = (0..=200).map(f64::from).collect();
    let curve = |rate: f64| x.iter().map(|d| (-rate * d).exp()).collect::<Vec<_>>();
    let rnn = curve(0.23);
    let lower = rnn.iter().map(|v| v * 0.3).collect();
    let upper = rnn.iter().map(|v| v * 3.0).collect();
    LineChart {
        title: "Gradient decay with distance".into(),
        x_label: "distance from the loss (steps)".into(),
        y_label: "‖∂L/∂h_t‖ (relative)".into(),
        log_y: true,
        series: vec![
            Series::new("RNN (tanh)", x.clone(), rnn).with_band(lower, upper),
            Series::new("GRU", x.clone(), curve(0.08)),
            Series::new("LSTM", x.clone(), curve(0.03)),
        ],
        hline: Some((1e-7, "float32 noise floor".into())),
    }
}

/// log₁₀ gradient norm by training step (rows) and geometric distance (columns), with a gap.
fn decay_heatmap() -> Heatmap {
    let x: Vec<f64> = (0..11).map(|k| 2f64.powi(k)).collect();
    let y: Vec<f64> = (0..20).map(|s| f64::from(s) * 500.0).collect();
    let z =
        y.iter()
            .map(|step| {
                x.iter()
                    .map(|d| {
                        if *step == 3000.0 && *d > 100.0 {
                            f64::NAN
                        } else {
                            -d * 0.02 * (1.0 + step / 5000.0)
                        }
                    })
                    .collect()
            })
            .collect();
    Heatmap {
        title: "Gradient norm over training".into(),
        x_label: "distance from the loss (steps)".into(),
        y_label: "training step".into(),
        colorbar_label: "log₁₀ ‖∂L/∂h_t‖".into(),
        x,
        y,
        z,
    }
}

fn assert_pair(stem: &std::path::Path, title: &str) {
    let png = std::fs::read(stem.with_extension("png")).expect("PNG written");
    assert!(png.len() > 1000, "PNG is {} bytes", png.len());
    assert!(png.starts_with(PNG_MAGIC), "PNG magic bytes");
    let svg = std::fs::read_to_string(stem.with_extension("svg")).expect("SVG written");
    assert!(svg.starts_with("<svg"), "SVG starts with the svg tag");
    assert!(svg.contains(title), "SVG contains the title");
    let leftovers: Vec<_> = std::fs::read_dir(stem.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

#[test]
fn line_chart_writes_png_and_svg() {
    let dir = TempDir::new("line");
    let stem = dir.0.join("decay");
    let chart = decay_chart();
    line_chart(&chart, &stem).unwrap();
    assert_pair(&stem, &chart.title);
}

#[test]
fn heatmap_writes_png_and_svg() {
    let dir = TempDir::new("heat");
    let stem = dir.0.join("heat");
    let map = decay_heatmap();
    heatmap(&map, &stem).unwrap();
    assert_pair(&stem, &map.title);
    // Small grids are vector cells, not an embedded image.
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(!svg.contains("<image"));
}

#[test]
fn large_heatmap_embeds_one_image_in_the_svg() {
    let dir = TempDir::new("big");
    let stem = dir.0.join("big");
    let x: Vec<f64> = (1..=400).map(f64::from).collect();
    let y: Vec<f64> = (0..100).map(f64::from).collect();
    let z = y.iter().map(|r| x.iter().map(|c| (r * 0.05).sin() - c / 400.0).collect()).collect();
    let map = Heatmap {
        title: "Large grid".into(),
        x_label: "distance (steps)".into(),
        y_label: "training step".into(),
        colorbar_label: "value (a.u.)".into(),
        x,
        y,
        z,
    };
    heatmap(&map, &stem).unwrap();
    assert_pair(&stem, &map.title);
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert_eq!(svg.matches("<image").count(), 1);
    assert!(svg.contains("data:image/png;base64,"));
    assert!(!svg.contains("#010203"), "placeholder replaced");
    assert!(svg.len() < 2_000_000, "SVG is {} bytes", svg.len());
}

#[test]
fn log_axis_skips_zeros_and_nans_and_spans_thirty_decades() {
    let dir = TempDir::new("wide");
    let stem = dir.0.join("wide");
    let x: Vec<f64> = (0..40).map(f64::from).collect();
    let mut y: Vec<f64> = x.iter().map(|d| 1e3 * 10f64.powf(-d * 33.0 / 39.0)).collect();
    y[5] = 0.0;
    y[6] = f64::NAN;
    y[7] = -1.0;
    y[39] = f64::INFINITY;
    let chart = LineChart {
        title: "Thirty decades".into(),
        x_label: "distance (steps)".into(),
        y_label: "norm".into(),
        log_y: true,
        series: vec![Series::new("only", x, y)],
        hline: None,
    };
    line_chart(&chart, &stem).unwrap();
    assert_pair(&stem, &chart.title);
}

#[test]
fn linear_axis_and_single_points_render() {
    let dir = TempDir::new("linear");
    let stem = dir.0.join("lin");
    let chart = LineChart {
        title: "Loss".into(),
        x_label: "step".into(),
        y_label: "loss (nats)".into(),
        log_y: false,
        series: vec![
            Series::new("train", vec![0.0, 1.0, 2.0, 3.0], vec![2.0, 1.5, f64::NAN, 1.0]),
            Series::new("one point", vec![5.0], vec![-0.5]),
        ],
        hline: Some((0.0, "zero".into())),
    };
    line_chart(&chart, &stem).unwrap();
    assert_pair(&stem, &chart.title);
}

/// The error message for `chart`, which must fail.
fn line_err(chart: &LineChart) -> String {
    let dir = TempDir::new("err");
    let err = line_chart(chart, &dir.0.join("x")).expect_err("should fail");
    assert!(!dir.0.join("x.png").exists() && !dir.0.join("x.svg").exists(), "nothing written on error");
    format!("{err:#}")
}

fn heat_err(map: &Heatmap) -> String {
    let dir = TempDir::new("herr");
    format!("{:#}", heatmap(map, &dir.0.join("x")).expect_err("should fail"))
}

#[test]
fn line_chart_errors_name_the_problem() {
    let mut c = decay_chart();
    c.series.clear();
    assert!(line_err(&c).contains("no series"), "{}", line_err(&c));

    let mut c = decay_chart();
    c.series[1].y.pop();
    let e = line_err(&c);
    assert!(e.contains("series 1 ('GRU')") && e.contains("201") && e.contains("200"), "{e}");

    let mut c = decay_chart();
    c.series[2].x.clear();
    c.series[2].y.clear();
    assert!(line_err(&c).contains("has no points"));

    let mut c = decay_chart();
    c.series[0].band.as_mut().unwrap().1.truncate(3);
    assert!(line_err(&c).contains("band"));

    let mut c = decay_chart();
    c.series[0].y = vec![0.0; 201];
    c.series.truncate(1);
    c.hline = None;
    assert!(line_err(&c).contains("no drawable points"));

    let mut c = decay_chart();
    c.title = " ".into();
    assert!(line_err(&c).contains("title is empty"));

    let mut c = decay_chart();
    c.series[1].label.clear();
    assert!(line_err(&c).contains("no label"));

    let mut c = decay_chart();
    c.hline = Some((0.0, "zero".into()));
    assert!(line_err(&c).contains("hline"));
}

#[test]
fn heatmap_errors_name_the_problem() {
    let mut h = decay_heatmap();
    h.x.clear();
    assert!(heat_err(&h).contains("x is empty"));

    let mut h = decay_heatmap();
    h.z.pop();
    assert!(heat_err(&h).contains("z has 19 rows but y has 20"));

    let mut h = decay_heatmap();
    h.z[4].push(0.0);
    assert!(heat_err(&h).contains("z row 4 has 12 values but x has 11"));

    let mut h = decay_heatmap();
    h.y[3] = h.y[2];
    assert!(heat_err(&h).contains("strictly increasing"));

    let mut h = decay_heatmap();
    h.x[0] = f64::NAN;
    assert!(heat_err(&h).contains("x[0] is NaN"));

    let mut h = decay_heatmap();
    h.z.iter_mut().flatten().for_each(|v| *v = f64::NAN);
    assert!(heat_err(&h).contains("every z value is missing"));

    let mut h = decay_heatmap();
    h.colorbar_label.clear();
    assert!(heat_err(&h).contains("colorbar_label is empty"));
}

#[test]
fn bad_sizes_and_stems_are_errors() {
    let dir = TempDir::new("size");
    let e = line_chart_sized(&decay_chart(), &dir.0.join("s"), (10, 10)).unwrap_err();
    assert!(format!("{e:#}").contains("image size"));
    assert!(line_chart(&decay_chart(), std::path::Path::new("")).is_err());
}
