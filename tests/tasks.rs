//! The long-range tasks of current research end to end: each trains to "solved" with a small
//! model, reports its baseline, and evaluates at other lengths or distributions; bad settings
//! exit 2 naming the flag.

use serde_json::Value;
use std::path::PathBuf;

mod common;
use common::{gradscope, stderr};

fn tempdir(name: &str) -> PathBuf {
    common::tempdir(&format!("tasks-{name}"))
}

/// Trains with `flags` (plus, unless given, 4,000 steps that stop when solved) and returns summary.json.
fn train(name: &str, flags: &[&str]) -> Value {
    let out = tempdir(name).join("run");
    let mut args = vec![
        "train",
        "--eval-every",
        "50",
        "--eval-size",
        "256",
        "--clip",
        "1",
        "--stop-when-solved",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    if !flags.contains(&"--steps") {
        args.extend(["--steps", "4000"]);
    }
    let o = gradscope(&args);
    assert!(o.status.success(), "{flags:?}: {}", stderr(&o));
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

/// The extra evaluations of a summary as (name, seq_len, accuracy).
fn evaluations(summary: &Value) -> Vec<(String, u64, f64)> {
    summary["evaluations"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_string();
            (name, e["seq_len"].as_u64().unwrap(), e["eval_accuracy"].as_f64().unwrap())
        })
        .collect()
}

#[track_caller]
fn assert_solved(summary: &Value, task: &str, baseline: f64) {
    assert_eq!(summary["task"], task);
    assert_eq!(summary["solved"], true, "{summary}");
    assert!(summary["eval_accuracy"].as_f64().unwrap() > 0.99, "{summary}");
    assert!((summary["baseline"].as_f64().unwrap() - baseline).abs() < 1e-9, "{summary}");
}

/// A GRU learns to pick 2 symbols out of noise at T = 20; the baseline is ln(alphabet).
#[test]
fn selective_copy_trains_to_solved() {
    let s = train(
        "selective-copy",
        &[
            "--task",
            "selective-copy",
            "--seq-len",
            "20",
            "--copy-len",
            "2",
            "--alphabet",
            "4",
            "--model",
            "gru",
            "--hidden",
            "32",
            "--lr",
            "1e-2",
        ],
    );
    assert!(s["evaluations"].is_null(), "no extra evaluations unless asked: {s}");
    assert_solved(&s, "selective-copy", 4f64.ln());
}

/// A GRU learns to recall the values of 2 keys at T = 16; the baseline is a uniform guess over
/// the 4 values.
#[test]
fn mqar_trains_to_solved() {
    let s = train(
        "mqar",
        &[
            "--task",
            "mqar",
            "--seq-len",
            "16",
            "--pairs",
            "2",
            "--alphabet",
            "8",
            "--model",
            "gru",
            "--hidden",
            "64",
            "--lr",
            "1e-2",
        ],
    );
    assert_solved(&s, "mqar", 4f64.ln());
}

/// A GRU learns induction heads at T = 16 (trigger placed anywhere) and is evaluated at 4× that.
#[test]
fn induction_trains_to_solved_and_is_evaluated_at_longer_lengths() {
    let s = train(
        "induction",
        &[
            "--task",
            "induction",
            "--seq-len",
            "16",
            "--alphabet",
            "4",
            "--model",
            "gru",
            "--hidden",
            "32",
            "--lr",
            "1e-2",
            "--eval-lengths",
            "64",
        ],
    );
    assert_solved(&s, "induction", 4f64.ln());
    let e = evaluations(&s);
    assert_eq!(e.len(), 1, "{s}");
    assert_eq!((e[0].0.as_str(), e[0].1), ("T=64", 64));
    assert!((0.0..=1.0).contains(&e[0].2), "{e:?}");
}

/// An LSTM learns the flip-flop language at T = 32 and is evaluated on the sparse and dense
/// tails of the instruction mix.
#[test]
fn flip_flop_trains_to_solved_and_reports_the_tails() {
    let s = train(
        "flip-flop",
        &["--task", "flip-flop", "--seq-len", "32", "--model", "lstm", "--hidden", "32", "--lr", "3e-3"],
    );
    assert_solved(&s, "flip-flop", std::f64::consts::LN_2);
    let names: Vec<String> = evaluations(&s).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["sparse p_i=0.98", "dense p_i=0.1"], "{s}");
}

/// A GRU learns parity at T = 12; a GPT's positional table is sized for the longest
/// evaluation length, so it can be evaluated there.
#[test]
fn parity_trains_to_solved_and_the_gpt_reaches_its_eval_lengths() {
    let s = train(
        "parity",
        &["--task", "parity", "--seq-len", "12", "--model", "gru", "--hidden", "32", "--lr", "1e-2"],
    );
    assert_solved(&s, "parity", std::f64::consts::LN_2);
    let s = train(
        "parity-gpt",
        &[
            "--task",
            "parity",
            "--seq-len",
            "8",
            "--model",
            "gpt",
            "--hidden",
            "16",
            "--steps",
            "20",
            "--eval-lengths",
            "32,128",
        ],
    );
    let e = evaluations(&s);
    assert_eq!(e.iter().map(|e| e.1).collect::<Vec<_>>(), [32, 128], "{s}");
}

#[test]
fn bad_task_flags_name_the_flag_and_exit_2() {
    let dir = tempdir("bad");
    let out = dir.join("x");
    let cases: &[(&[&str], &str)] = &[
        (&["--task", "flip-flop", "--seq-len", "63"], "--seq-len must be even and ≥ 4 for --task flip-flop"),
        (&["--task", "flip-flop", "--p-ignore", "1.5"], "--p-ignore must be in [0, 1]"),
        (&["--task", "adding", "--p-ignore", "0.5"], "--p-ignore applies to --task flip-flop only"),
        (&["--task", "induction", "--seq-len", "2"], "--seq-len must be ≥ 3 for --task induction"),
        (&["--task", "induction", "--alphabet", "1"], "--alphabet must be ≥ 2"),
        (&["--task", "parity", "--eval-lengths", "0"], "--eval-lengths must be ≥ 1"),
        (&["--task", "flip-flop", "--seq-len", "64", "--eval-lengths", "65"], "--eval-lengths 65"),
        (
            &["--task", "text", "--corpus", "x.txt", "--eval-lengths", "64"],
            "--eval-lengths applies to the generated tasks",
        ),
        (&["--task", "parity", "--eval-lengths", "x"], "--eval-lengths"),
    ];
    for (flags, needle) in cases {
        let mut args = vec!["train", "--out", out.to_str().unwrap()];
        args.extend(*flags);
        let o = gradscope(&args);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{flags:?}: expected '{needle}' in: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{flags:?}: {}", stderr(&o));
        assert!(!out.exists(), "{flags:?} created the run directory");
    }
    for (flags, needle) in [
        (&["--extrapolate", "0"][..], "--extrapolate"),
        (&["--extrapolate", "4,x"], "--extrapolate"),
        (&["--tasks", "flip-flop", "--flip-flop-lengths", "7"], "--seq-len must be even"),
        (&["--tasks", "sorting"], "unknown task"),
    ] {
        let mut args = vec!["bench", "--quick", "--out", out.to_str().unwrap()];
        args.extend_from_slice(flags);
        let o = gradscope(&args);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{flags:?}: {}", stderr(&o));
        assert!(!out.exists(), "{flags:?} created {}", out.display());
    }
}

/// A bench over the new tasks: the report has the extrapolation and tails tables.
#[test]
fn bench_reports_other_lengths_and_distributions() {
    let out = tempdir("bench").join("report");
    let o = gradscope(&[
        "bench",
        "--quick",
        "--quiet",
        "--tasks",
        "parity,flip-flop",
        "--parity-lengths",
        "6",
        "--flip-flop-lengths",
        "8",
        "--extrapolate",
        "2",
        "--models",
        "gru",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Other lengths and distributions"), "{report}");
    assert!(report.contains("| model | T | at T | T=12 |"), "{report}");
    assert!(report.contains("| model | T | at T | sparse p_i=0.98 | dense p_i=0.1 |"), "{report}");
}

/// Every preset in data/presets is a valid configuration (text presets name a corpus that
/// `gradscope data tinyshakespeare` fetches; only their settings are checked here).
#[test]
fn every_preset_is_a_valid_config() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/presets");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let cfg = gradscope::train::TrainConfig::from_toml_file(&path).unwrap();
            cfg.validate().unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} presets");
}

/// Defaults follow each task's paper: selective copy recalls 16 symbols, induction draws from
/// 16, the copy task keeps Arjovsky et al.'s 10 of 8.
#[test]
fn task_defaults_follow_their_papers() {
    use gradscope::train::{TaskName, TrainConfig};
    let at = |task| TrainConfig { task, seq_len: 50, ..TrainConfig::default() };
    assert_eq!((at(TaskName::SelectiveCopy).copy_len(), at(TaskName::SelectiveCopy).task_steps()), (16, 66));
    assert_eq!((at(TaskName::Copy).copy_len(), at(TaskName::Copy).alphabet()), (10, 8));
    assert_eq!(at(TaskName::Induction).alphabet(), 16);
    assert_eq!(at(TaskName::FlipFlop).task_steps(), 49, "the last token is predicted, not fed");
}
