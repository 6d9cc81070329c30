//! The vanishing-gradient lab end to end: `--list`, tiny `lab depth` and `lab rnn` runs, bad
//! flags, and one of the literature's claims checked numerically at a small size.

use gradscope::lab::depth::{run_config, DepthTraining};
use gradscope::lab::mlp::{Activation, MlpConfig, MlpInit};
use std::path::PathBuf;

mod common;
use common::{gradscope, json, stderr};

fn tempdir(name: &str) -> PathBuf {
    common::tempdir(&format!("lab-{name}"))
}

#[test]
fn list_shows_every_experiment() {
    let o = gradscope(&["lab", "--list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let names: Vec<&str> = gradscope::lab::registry().iter().map(|e| e.name).collect();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        assert!(text.lines().any(|l| l.trim_start().starts_with(name)), "--list lacks {name}:\n{text}");
    }
    // One experiment per claim of the issue.
    for needed in [
        "activations",
        "init",
        "residual",
        "normalization",
        "exploding",
        "gating",
        "irnn",
        "orthogonal",
        "optimizers",
        "attention",
    ] {
        assert!(names.contains(&needed), "no experiment named {needed}");
    }
}

#[test]
fn tiny_depth_sweep_writes_a_complete_report() {
    let dir = tempdir("depth");
    let out = dir.join("report");
    let args = [
        "lab",
        "depth",
        "--depth",
        "2,4",
        "--activation",
        "tanh,relu",
        "--norm",
        "none,batch",
        "--width",
        "8",
        "--steps",
        "6",
        "--eval-every",
        "3",
        "--batch",
        "8",
        "--probe-size",
        "16",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = gradscope(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for part in ["## Findings", "## Results", "| config |", "![", "grad-per-layer-init.png"] {
        assert!(report.contains(part), "report.md lacks {part}:\n{report}");
    }
    for stem in
        ["grad-per-layer-init", "grad-per-layer-trained", "ratio-vs-depth", "loss", "ratio-during-training"]
    {
        for ext in ["png", "svg"] {
            let f = out.join(format!("{stem}.{ext}"));
            assert!(f.exists() && std::fs::metadata(&f).unwrap().len() > 0, "missing {}", f.display());
        }
    }
    let r = json(&out.join("results.json"));
    let runs = r["depth"].as_array().unwrap();
    assert_eq!(runs.len(), 8);
    for run in runs {
        assert_eq!(run["steps"], 6);
        let depth = run["config"]["depth"].as_u64().unwrap() as usize;
        assert_eq!(run["init_profile"]["hidden"].as_array().unwrap().len(), depth - 1);
        assert_eq!(run["init_profile"]["weights"].as_array().unwrap().len(), depth);
        assert_eq!(run["curve"].as_array().unwrap().len(), 3, "points at steps 0, 3, 6");
    }
    assert!(!r["findings"].as_array().unwrap().is_empty());
    // A second run may replace its own report; a directory it did not write is refused.
    let o = gradscope(&args);
    assert!(o.status.success(), "re-run into its own directory: {}", stderr(&o));
    let foreign = dir.join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let o = gradscope(&["lab", "depth", "--depth", "2", "--steps", "0", "--out", foreign.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a gradscope lab report directory"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(foreign.join("notes.txt")).unwrap(), "mine");
}

#[test]
fn tiny_recurrent_grid_trains_and_measures() {
    let dir = tempdir("rnn");
    let out = dir.join("report");
    let o = gradscope(&[
        "lab",
        "rnn",
        "--model",
        "rnn,gru",
        "--clip",
        "none,norm:0.5",
        "--seq-len",
        "6",
        "--hidden",
        "8",
        "--batch",
        "4",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--eval-size",
        "8",
        "--probe-batch",
        "4",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = json(&out.join("results.json"));
    let runs = r["recurrent"].as_array().unwrap();
    assert_eq!(runs.len(), 4);
    for run in runs {
        assert_eq!(run["summary"]["steps"], 4);
        assert_eq!(run["init_probe"]["curves"][0]["distance"].as_array().unwrap().len(), 6);
        assert!(run["trained_probe"].is_object());
        // The run directory is an ordinary `gradscope train` one.
        let dir = PathBuf::from(run["run_dir"].as_str().unwrap());
        assert!(dir.join("summary.json").exists() && dir.join("metrics.jsonl").exists());
    }
    for stem in ["grad-vs-distance-init", "grad-vs-distance-trained", "loss", "grad-norm"] {
        assert!(
            out.join(format!("{stem}.png")).exists() && out.join(format!("{stem}.svg")).exists(),
            "{stem}"
        );
    }
}

#[test]
fn bad_flags_exit_2_and_name_the_flag() {
    let cases: [(&[&str], &str); 10] = [
        (&["lab", "depth", "--activation", "swish"], "--activation"),
        // Sizes past any machine's memory (--depth 10^8 used to run until the allocator aborted).
        (
            &["lab", "depth", "--depth", "100000000", "--width", "100000"],
            "--depth 100000000 × --width 100000",
        ),
        (&["lab", "rnn", "--hidden", "1000000"], "parameters and optimiser state"),
        (&["lab", "depth", "--depth", "1"], "--depth"),
        (&["lab", "depth", "--norm", "group"], "--norm"),
        (&["lab", "depth", "--init", "zeros"], "--init"),
        (&["lab", "depth", "--dropout", "1.5", "--steps", "0"], "--dropout"),
        (&["lab", "rnn", "--clip", "max"], "--clip"),
        (&["lab", "rnn", "--optimizer", "lbfgs"], "--optimizer"),
        (&["lab", "no-such-experiment"], "unknown experiment 'no-such-experiment'"),
    ];
    for (args, needle) in cases {
        let o = gradscope(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: stderr does not name {needle}:\n{}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    }
    let o = gradscope(&["lab"]);
    assert_eq!(o.status.code(), Some(2), "a bare `lab` names nothing to run");
}

/// The literature's first claim at a small size: at depth 16, sigmoid with a small-normal init
/// loses the gradient on the way to the first layer, while ReLU with He init keeps it.
#[test]
fn sigmoid_vanishes_with_depth_while_relu_he_does_not() {
    let t = DepthTraining { steps: 0, ..DepthTraining::default() };
    let sigmoid =
        MlpConfig { init: MlpInit::SmallNormal, ..MlpConfig::new(1, 1, 64, 16, Activation::Sigmoid) };
    let relu = MlpConfig { init: MlpInit::He, ..MlpConfig::new(1, 1, 64, 16, Activation::Relu) };
    let s = run_config(&sigmoid, false, &t).unwrap();
    let r = run_config(&relu, false, &t).unwrap();
    assert!(s.ratio_init < 1e-3, "sigmoid small-normal ratio {}", s.ratio_init);
    assert!((0.1..=10.0).contains(&r.ratio_init), "relu he ratio {}", r.ratio_init);
    // And the profile of every layer, not only the ends: sigmoid's falls monotonically.
    let h = &s.init_profile.hidden;
    assert!(h.windows(2).all(|w| w[0] < w[1]), "{h:?}");
}
