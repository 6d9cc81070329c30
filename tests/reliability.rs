//! Non-finite values and crashes end to end: `--on-nonfinite stop|skip|rollback`, a run that
//! diverges, and `kill -9` followed by `--resume`.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{gradscope, json, metric_values, stderr};

fn tempdir(name: &str) -> PathBuf {
    common::tempdir(&format!("reliability-{name}"))
}

/// An exploding ReLU RNN (identity init, gain 1.05, SGD lr 0.2, no clipping) over T = 60.
const EXPLODING: &[&str] = &[
    "train",
    "--task",
    "adding",
    "--seq-len",
    "60",
    "--model",
    "rnn",
    "--nonlinearity",
    "relu",
    "--init",
    "identity",
    "--init-gain",
    "1.05",
    "--hidden",
    "32",
    "--optimizer",
    "sgd",
    "--lr",
    "0.2",
    "--steps",
    "30",
    "--eval-every",
    "10",
    "--eval-size",
    "32",
    "--batch",
    "16",
    "--quiet",
];

#[test]
fn nonfinite_values_stop_skip_or_roll_back_and_never_reach_a_checkpoint() {
    let dir = tempdir("nonfinite");
    let run = |mode: &str| {
        let out = dir.join(mode);
        let mut args = EXPLODING.to_vec();
        args.extend(["--on-nonfinite", mode, "--out", out.to_str().unwrap()]);
        (gradscope(&args), out)
    };
    let (o, out) = run("stop");
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("non-finite value at step 1") && err.contains("last good checkpoint (step 0)"),
        "{err}"
    );
    assert!(!out.join("summary.json").exists());
    // The kept checkpoint loads and holds finite parameters.
    let ckpt =
        gradscope::checkpoint::load(&out.join("checkpoint.safetensors"), &candle_core::Device::Cpu).unwrap();
    assert_eq!(ckpt.metadata["step"], "0");
    for (name, t) in &ckpt.tensors {
        let s = t.abs().unwrap().sum_all().unwrap().to_dtype(candle_core::DType::F64).unwrap();
        assert!(s.to_scalar::<f64>().unwrap().is_finite(), "{name} is not finite");
    }

    let (o, out) = run("skip");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(json(&out.join("summary.json"))["nonfinite_events"].as_u64().unwrap() > 0);

    let (o, out) = run("rollback");
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("rolled back to step 0 with the learning rate halved (×0.5)"), "{err}");
    assert!(err.contains("(×0.25)"), "the rate keeps halving: {err}");
    let lr: Vec<f64> = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"].as_f64().unwrap())
        .collect();
    assert!(lr.iter().all(|&v| v < 0.2 * 0.25 + 1e-12), "{lr:?}");
}

/// `skip` names the first few skipped steps, counts the rest, and ends a run whose every step
/// stays non-finite as diverged (summary written, exit 0) instead of spending its budget.
#[test]
fn skipping_stops_a_run_that_stays_nonfinite() {
    let dir = tempdir("nonfinite-diverged");
    let out = dir.join("run");
    let mut args: Vec<&str> = EXPLODING.iter().map(|a| if *a == "30" { "400" } else { a }).collect();
    args.extend(["--on-nonfinite", "skip", "--out", out.to_str().unwrap()]);
    let o = gradscope(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.matches("update skipped").count(), 10, "{err}");
    assert!(err.contains("further skipped steps are only counted"), "{err}");
    assert!(
        err.contains("100 steps in a row were not finite (the last: step 100); stopped as diverged"),
        "{err}"
    );
    let summary = json(&out.join("summary.json"));
    assert_eq!(summary["stopped"], "diverged");
    assert_eq!(summary["nonfinite_events"], 100);
    assert_eq!(summary["steps"], 101);
    // Its metrics are all NaN: the report says it diverged and draws no curve for it.
    let report = dir.join("report");
    let o = gradscope(&["report", "--out", report.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("no (diverged)") && md.contains("No curve for adding"), "{md}");
}

/// When probing, the report also says where in time the value stopped being finite.
#[test]
fn a_probed_nonfinite_step_names_the_timestep() {
    let dir = tempdir("nonfinite-probe");
    let out = dir.join("run");
    let mut args = EXPLODING.to_vec();
    args.extend(["--probe-every", "1", "--out", out.to_str().unwrap()]);
    let o = gradscope(&args);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("non-finite value at step 1"), "{err}");
    assert!(err.contains("timestep"), "no timestep in: {err}");
}

/// `kill -9` at an arbitrary moment leaves the last complete checkpoint loadable, and resuming
/// reproduces the uninterrupted run's metrics value for value.
#[test]
fn kill_9_then_resume_matches_the_straight_run() {
    let dir = tempdir("kill");
    let (straight, killed) = (dir.join("straight"), dir.join("killed"));
    let args = |steps: &'static str, out: &Path| -> Vec<String> {
        let mut a: Vec<String> = [
            "train",
            "--task",
            "adding",
            "--seq-len",
            "20",
            "--model",
            "lstm",
            "--hidden",
            "16",
            "--batch",
            "8",
            "--eval-every",
            "10",
            "--eval-size",
            "16",
            "--clip",
            "1",
            "--seed",
            "7",
            "--quiet",
            "--steps",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.push(steps.into());
        a.extend(["--out".to_string(), out.to_str().unwrap().to_string()]);
        a
    };
    let o = Command::new(env!("CARGO_BIN_EXE_gradscope")).args(args("200", &straight)).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let mut child = Command::new(env!("CARGO_BIN_EXE_gradscope"))
        .args(args("200", &killed))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let metrics = killed.join("metrics.jsonl");
    let started = std::time::Instant::now();
    loop {
        let lines = std::fs::read_to_string(&metrics).map(|t| t.lines().count()).unwrap_or(0);
        if lines >= 10 || started.elapsed().as_secs() > 60 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!killed.join("summary.json").exists(), "the killed run must not look finished");
    let ckpt = gradscope::checkpoint::load(&killed.join("checkpoint.safetensors"), &candle_core::Device::Cpu)
        .expect("the last complete checkpoint loads");
    let at: u64 = ckpt.metadata["step"].parse().unwrap();
    assert!(at >= 90, "checkpoint at step {at}");

    let o = gradscope(&["train", "--resume", killed.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(metric_values(&straight), metric_values(&killed));
    assert_eq!(metric_values(&killed).len(), 20);
}
