//! The `gradscope` binary end to end: training runs, resume, bench, and bad input.

use std::path::PathBuf;

mod common;
use common::{gradscope, json, metric_values, stderr};

fn tempdir(name: &str) -> PathBuf {
    common::tempdir(&format!("cli-{name}"))
}

const SMALL: &[&str] = &[
    "--task",
    "copy",
    "--seq-len",
    "6",
    "--copy-len",
    "3",
    "--model",
    "gru",
    "--hidden",
    "12",
    "--layers",
    "2",
    "--dropout",
    "0.1",
    "--batch",
    "8",
    "--eval-every",
    "5",
    "--eval-size",
    "16",
    "--clip",
    "1",
    "--seed",
    "3",
    "--quiet",
];

#[test]
fn train_writes_a_complete_run_directory() {
    let dir = tempdir("train");
    let out = dir.join("run");
    let mut args = SMALL.to_vec();
    args.extend(["--steps", "10", "--out", out.to_str().unwrap()]);
    let mut full = vec!["train"];
    full.extend(args);
    let o = gradscope(&full);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "config.toml",
        "model.json",
        "metrics.jsonl",
        "checkpoint.safetensors",
        "model.safetensors",
        "summary.json",
    ] {
        assert!(out.join(f).exists(), "missing {f}");
    }
    let s = json(&out.join("summary.json"));
    for key in [
        "task",
        "model",
        "seq_len",
        "steps",
        "eval_loss",
        "eval_accuracy",
        "baseline",
        "solved",
        "steps_to_solve",
        "wall_seconds",
        "tokens_per_second",
    ] {
        assert!(s.get(key).is_some(), "summary.json lacks {key}");
    }
    assert_eq!(s["steps"], 10);
    assert_eq!(metric_values(&out).len(), 2);
    // The saved config reproduces the run: training again from it is refused only because the
    // directory holds a run, and a fresh --out with --config works.
    let o = gradscope(&[
        "train",
        "--config",
        out.join("config.toml").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already holds a run"), "{}", stderr(&o));
}

#[test]
fn resume_reproduces_the_uninterrupted_run() {
    let dir = tempdir("resume");
    let straight = dir.join("straight");
    let split = dir.join("split");
    let run = |steps: &str, extra: &[&str]| {
        let mut args = vec!["train"];
        args.extend(SMALL);
        args.extend(["--steps", steps]);
        args.extend(extra);
        let o = gradscope(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    run("20", &["--out", straight.to_str().unwrap()]);
    run("10", &["--out", split.to_str().unwrap()]);
    let o = gradscope(&["train", "--resume", split.to_str().unwrap(), "--steps", "20", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (metric_values(&straight), metric_values(&split));
    assert_eq!(a.len(), 4);
    assert_eq!(a, b, "resumed metrics differ from the uninterrupted run");
}

#[test]
fn bad_flags_name_the_flag_and_exit_2() {
    let dir = tempdir("bad");
    let out = dir.join("x");
    let cases: &[(&[&str], &str)] = &[
        (&["--seq-len", "0"], "--seq-len"),
        (&["--hidden", "0"], "--hidden"),
        (&["--lr", "-1"], "--lr"),
        (&["--lr", "0"], "--lr"),
        (&["--model", "transformerxl"], "unknown model"),
        (&["--task", "sorting"], "unknown task"),
        (&["--optimizer", "lion"], "--optimizer"),
        (&["--dropout", "1.5"], "--dropout"),
        (&["--model", "gpt", "--hidden", "30", "--heads", "4"], "--heads"),
        (&["--momentum", "0.9"], "--momentum"),
        (&["--batch", "100000", "--seq-len", "5000", "--hidden", "1024"], "--batch"),
        (&["--layers", "0"], "--layers must be ≥ 1"),
        (&["--steps", "0"], "--steps must be ≥ 1"),
        (&["--eval-every", "0"], "--eval-every must be ≥ 1"),
        (&["--lr", "nan"], "--lr must be a finite number > 0"),
        (&["--clip", "0"], "--clip must be a finite number > 0"),
        (&["--optimizer", "sgd", "--momentum", "1.5"], "momentum must be in [0, 1)"),
        (&["--schedule", "cosine", "--min-lr", "-1"], "--min-lr"),
        (&["--min-lr", "nan"], "--min-lr must be a finite number"),
        (&["--model", "gpt", "--context", "3"], "--context (3) is shorter"),
        (&["--task", "copy", "--alphabet", "1"], "--alphabet must be ≥ 2"),
        (
            &["--task", "selective-copy", "--seq-len", "3", "--copy-len", "4"],
            "--copy-len (4) must be ≤ --seq-len (3)",
        ),
        (&["--task", "selective-copy", "--copy-len", "0"], "--copy-len (the symbols to recall) must be ≥ 1"),
        (&["--task", "copy", "--pairs", "3"], "--pairs applies to --task mqar only"),
        (&["--task", "mqar", "--pairs", "0"], "--pairs must be ≥ 1"),
        (&["--task", "mqar", "--pairs", "5", "--alphabet", "8"], "--pairs (5) must be ≤ --alphabet / 2 (4)"),
        (
            &["--task", "mqar", "--seq-len", "16", "--pairs", "4", "--alphabet", "16"],
            "must be ≥ 4 × --pairs + 1",
        ),
        (&["--device", "tpu"], "invalid device 'tpu'"),
        (&["--on-nonfinite", "ignore"], "unknown --on-nonfinite"),
        (&["--max-seconds", "0"], "--max-seconds"),
        (&["--model", "gru", "--state", "4"], "--state applies to --model lru and mamba only"),
        (&["--model", "lstm", "--lru-r-min", "0.5"], "--lru-r-min applies to --model lru only"),
        (&["--model", "lru", "--state", "0"], "--state must be ≥ 1"),
        (&["--model", "lru", "--lru-r-min", "0.99", "--lru-r-max", "0.9"], "0 ≤ r-min ≤ r-max < 1"),
        (&["--model", "lru", "--lru-r-max", "1"], "0 ≤ r-min ≤ r-max < 1"),
        (&["--model", "lru", "--lru-r-min", "nan"], "0 ≤ r-min ≤ r-max < 1"),
        (&["--model", "lru", "--lru-max-phase", "0"], "--lru-max-phase must be a finite number > 0"),
        (&["--model", "lru", "--tbptt"], "--tbptt applies"),
        (&["--model", "lstm", "--expand", "2"], "--expand applies to --model mamba only"),
        (&["--model", "lru", "--conv", "4"], "--conv applies to --model mamba only"),
        (&["--model", "mamba", "--state", "0"], "--state must be ≥ 1"),
        (&["--model", "mamba", "--expand", "0"], "--expand must be ≥ 1"),
        (&["--model", "mamba", "--conv", "0"], "--conv must be ≥ 1"),
        (&["--model", "mamba", "--lru-r-min", "0.5"], "--lru-r-min applies to --model lru only"),
        (&["--model", "mamba", "--tbptt"], "--tbptt applies"),
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
    let o = gradscope(&["train", "--resume", dir.join("nothing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a gradscope run directory"), "{}", stderr(&o));
}

#[test]
fn quick_bench_writes_a_report_and_shards_merge() {
    let dir = tempdir("bench");
    let full = dir.join("full");
    let o = gradscope(&["bench", "--quick", "--quiet", "--out", full.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "results.json",
        "results.csv",
        "report.md",
        "curves-adding.png",
        "curves-adding.svg",
        "curves-copy.png",
    ] {
        assert!(full.join(f).exists(), "missing {f}");
    }
    let rows = json(&full.join("results.json"));
    assert_eq!(rows.as_array().unwrap().len(), 8, "2 tasks × 4 models");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("| task | T | model"), "the table is printed: {stdout}");

    // Two shards in separate directories merge into the same set of runs.
    let (s0, s1, merged) = (dir.join("s0"), dir.join("s1"), dir.join("merged"));
    for (shard, out) in [("0/2", &s0), ("1/2", &s1)] {
        let o = gradscope(&[
            "bench",
            "--quick",
            "--quiet",
            "--models",
            "rnn,lstm",
            "--shard",
            shard,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o =
        gradscope(&["report", s0.to_str().unwrap(), s1.to_str().unwrap(), "--out", merged.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&merged.join("results.json")).as_array().unwrap().len(), 4);
    let o = gradscope(&["bench", "--quick", "--shard", "2/2", "--out", dir.join("bad").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
}

/// `--lr-grid` trains each rate for a share of the budget and finishes the best one; `--seeds`
/// runs each cell at the chosen rate per seed; the report has the gradient figures first, the
/// chosen rate, the seeds' verdict and the e-folding columns; a second run keeps what is done.
#[test]
fn bench_picks_a_learning_rate_per_cell_and_runs_seeds() {
    let dir = tempdir("bench-grid");
    let out = dir.join("b");
    let args = [
        "bench",
        "--quick",
        "--quiet",
        "--tasks",
        "adding",
        "--models",
        "rnn,gru",
        "--lr-grid",
        "1e-4,1e-2",
        "--seeds",
        "3",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = gradscope(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json(&out.join("results.json"));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 6, "2 models × 3 seeds");
    for model in ["rnn", "gru"] {
        let first = out.join(format!("runs/adding-T10-{model}-seed0"));
        let search = json(&first.join("lr-search.json"));
        let chosen = search["chosen"].as_f64().unwrap();
        let trials = search["trials"].as_array().unwrap();
        assert_eq!(trials.len(), 2);
        // The kept rate is the one whose trial ended with the lower held-out loss (none solves).
        let best = trials
            .iter()
            .min_by(|a, b| a["eval_loss"].as_f64().unwrap().total_cmp(&b["eval_loss"].as_f64().unwrap()))
            .unwrap();
        assert_eq!(best["lr"].as_f64().unwrap(), chosen);
        assert_eq!(trials[0]["steps"].as_u64().unwrap(), 5, "a quarter of the 20 steps");
        for seed in 0..3u64 {
            let run = rows.iter().find(|r| r["run"] == format!("adding-T10-{model}-seed{seed}")).unwrap();
            assert_eq!(run["lr"].as_f64().unwrap(), chosen, "every seed trains at the chosen rate");
            assert_eq!(run["seed"].as_u64().unwrap(), seed);
            assert_eq!(run["steps"].as_u64().unwrap(), 20, "the kept trial finished the budget");
        }
        // The finished run continues the trial: its metrics start with the trial's.
        let metrics = std::fs::read_to_string(first.join("metrics.jsonl")).unwrap();
        let trial = std::fs::read_to_string(
            out.join(format!("trials/adding-T10-{model}/lr-{chosen:e}/metrics.jsonl")),
        )
        .unwrap();
        assert!(metrics.starts_with(trial.lines().next().unwrap()), "{metrics}\n{trial}");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    let figure = report.find("grad/adding-T10-trained/grad-vs-distance.png").expect("the gradient figure");
    assert!(figure < report.find("| task |").unwrap(), "the gradient figure comes first");
    assert!(out.join("grad/adding-T10-init/grad-vs-distance.png").exists());
    assert!(report.contains("## Learning rates") && report.contains("(0/3)"), "{report}");
    assert!(report.contains("e-folding init → trained"), "{report}");
    let o = gradscope(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).matches("done earlier, kept").count() == 2, "{}", stderr(&o));
}

/// `--lr-grid-at shortest-length`: the grid runs at a task's shortest length only, and the
/// longer length trains at the rate each model chose there.
#[test]
fn bench_reuses_the_shortest_lengths_learning_rate() {
    let dir = tempdir("bench-grid-at");
    let out = dir.join("b");
    let o = gradscope(&[
        "bench",
        "--quick",
        "--quiet",
        "--tasks",
        "adding",
        "--adding-lengths",
        "6,10",
        "--models",
        "gru",
        "--lr-grid",
        "1e-4,1e-2",
        "--lr-grid-at",
        "shortest-length",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let short = json(&out.join("runs/adding-T6-gru/lr-search.json"));
    assert_eq!(short["trials"].as_array().unwrap().len(), 2);
    let long = json(&out.join("runs/adding-T10-gru/lr-search.json"));
    assert_eq!(long["from"], "adding-T6-gru");
    assert_eq!(long["chosen"], short["chosen"]);
    assert_eq!(json(&out.join("runs/adding-T10-gru/summary.json"))["lr"], short["chosen"]);
    assert!(!out.join("trials/adding-T10-gru").exists(), "no search at the longer length");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("(the rate adding-T6-gru chose)"), "{report}");

    // Shards take whole (task, model) groups, so each longer length finds its shorter one's rate.
    for shard in ["0/2", "1/2"] {
        let out = dir.join(format!("shard{}", &shard[..1]));
        let o = gradscope(&[
            "bench",
            "--quick",
            "--quiet",
            "--tasks",
            "adding",
            "--adding-lengths",
            "6,10",
            "--models",
            "gru,rnn",
            "--lr-grid",
            "1e-4,1e-2",
            "--lr-grid-at",
            "shortest-length",
            "--shard",
            shard,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let model = if shard == "0/2" { "gru" } else { "rnn" };
        let long = json(&out.join(format!("runs/adding-T10-{model}/lr-search.json")));
        assert_eq!(long["from"], format!("adding-T6-{model}"), "shard {shard}");
    }
}

/// A rate that diverges loses the search instead of ending the bench, and a re-run with another
/// seed does not reuse the first seed's trials.
#[test]
fn bench_survives_a_diverging_rate_and_retrains_stale_trials() {
    let dir = tempdir("bench-diverge");
    let out = dir.join("b");
    let run = |seed: &str| {
        gradscope(&[
            "bench",
            "--quick",
            "--quiet",
            "--tasks",
            "adding",
            "--models",
            "rnn",
            "--lr-grid",
            "1e-3,1e30",
            "--seed",
            seed,
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let o = run("0");
    assert!(o.status.success(), "{}", stderr(&o));
    let search = json(&out.join("runs/adding-T10-rnn/lr-search.json"));
    assert_eq!(search["chosen"].as_f64().unwrap(), 1e-3);
    // Built-in suites skip non-finite steps, so the diverged trial ends with a NaN loss (null),
    // which ranks last; with --on-nonfinite stop it would be marked failed instead.
    let diverged: Vec<_> = search["trials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| !t["failed"].is_null() || t["eval_loss"].is_null())
        .collect();
    assert_eq!(diverged.len(), 1, "{search}");
    assert_eq!(diverged[0]["lr"].as_f64().unwrap(), 1e30);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("1e30"), "{report}");

    std::fs::remove_dir_all(out.join("runs")).unwrap();
    let o = run("7");
    assert!(o.status.success(), "{}", stderr(&o));
    let trial = std::fs::read_to_string(out.join("trials/adding-T10-rnn/lr-1e-3/config.toml")).unwrap();
    assert!(trial.contains("seed = 7"), "the seed-0 trial was reused: {trial}");
}

#[test]
fn bad_bench_flags_name_the_flag_and_exit_2() {
    let dir = tempdir("bench-bad");
    for (flags, needle) in [
        (&["--lr-grid", "0,1e-3"][..], "--lr-grid"),
        (&["--lr-grid", "fast"], "--lr-grid"),
        (&["--seeds", "0"], "--seeds must be at least 1"),
        (&["--lr-trial-fraction", "1"], "--lr-trial-fraction must be in (0, 1)"),
        (&["--lr-grid-at", "longest"], "--lr-grid-at"),
    ] {
        let out = dir.join("x");
        let mut args = vec!["bench", "--quick", "--out", out.to_str().unwrap()];
        args.extend_from_slice(flags);
        let o = gradscope(&args);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{flags:?}: {}", stderr(&o));
        assert!(!out.exists(), "{flags:?} created {}", out.display());
    }
    // A decaying schedule would decay over each trial's share of the steps.
    let suite = dir.join("cosine.toml");
    std::fs::write(&suite, "lr-grid = [1e-3]\n[base]\nschedule = \"cosine\"\n").unwrap();
    let out = dir.join("y");
    let o = gradscope(&["bench", "--config", suite.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--lr-grid needs a constant learning-rate schedule"), "{}", stderr(&o));
    assert!(!out.exists());
}

/// The kernels' narrower instruction sets (what other CPUs run: AVX2 + FMA, baseline SSE2 with
/// the `gemm` crate's products) give the same per-timestep gradients as the widest this CPU has,
/// for every cell and the GPT, within float rounding.
#[test]
fn every_simd_tier_gives_the_same_gradients() {
    let dir = tempdir("simd");
    let run = |tier: Option<&str>| {
        let out = dir.join(tier.unwrap_or("native"));
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gradscope"));
        cmd.args([
            "grad",
            "--model",
            "rnn,lstm,gru,mingru,minlstm,lru,mamba,gpt",
            "--layers",
            "2",
            "--hidden",
            "24",
        ]);
        cmd.args(["--seq-len", "40", "--batch", "4", "--out", out.to_str().unwrap()]);
        match tier {
            Some(t) => cmd.env("GRADSCOPE_SIMD", t),
            None => cmd.env_remove("GRADSCOPE_SIMD"),
        };
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let csv = std::fs::read_to_string(out.join("curves.csv")).unwrap();
        csv.lines()
            .skip(1)
            .flat_map(|l| l.split(',').filter_map(|f| f.parse::<f64>().ok()).collect::<Vec<_>>())
            .collect::<Vec<f64>>()
    };
    let native = run(None);
    assert!(native.len() > 1000, "{} values", native.len());
    for tier in ["avx2", "sse2"] {
        let other = run(Some(tier));
        assert_eq!(other.len(), native.len(), "{tier}");
        for (k, (a, b)) in other.iter().zip(&native).enumerate() {
            assert!((a - b).abs() <= 1e-3 * b.abs() + 1e-30, "{tier}, value {k}: {a} vs {b}");
        }
    }
}

/// The fused kernels flush subnormal gradients to zero unless `GRADSCOPE_DENORMALS=keep`: a tanh
/// RNN's ∂L/∂h_t falls through f32's subnormal range (1.2e-38 down to 1.4e-45) within 300 steps,
/// and only the kept run has per-sequence norms down there (a mean or quantile over sequences of
/// flushed values can dip below 1.2e-38 by at most the batch's factor of 4). Other CPUs than
/// x86-64 keep subnormals either way.
#[test]
fn subnormal_gradients_are_flushed_unless_kept() {
    let dir = tempdir("denormals");
    let tiny_norms = |keep: bool| {
        let out = dir.join(if keep { "keep" } else { "flush" });
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gradscope"));
        cmd.args(["grad", "--model", "rnn", "--hidden", "24", "--seq-len", "300", "--batch", "4"]);
        cmd.args(["--out", out.to_str().unwrap()]);
        match keep {
            true => cmd.env("GRADSCOPE_DENORMALS", "keep"),
            false => cmd.env_remove("GRADSCOPE_DENORMALS"),
        };
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let csv = std::fs::read_to_string(out.join("curves.csv")).unwrap();
        let values: Vec<f64> = csv
            .lines()
            .skip(1)
            .flat_map(|l| l.split(',').skip(4).map(|f| f.parse::<f64>().unwrap()))
            .collect();
        assert!(values.contains(&0.0), "the curve never reached 0: pick a longer sequence");
        values.iter().filter(|&&v| v > 0.0 && v < 1e-40).count()
    };
    if cfg!(target_arch = "x86_64") {
        assert_eq!(tiny_norms(false), 0, "subnormal gradients in the default (flushing) run");
    }
    assert!(tiny_norms(true) > 0, "no subnormal gradients with GRADSCOPE_DENORMALS=keep");
}

#[test]
fn grad_and_plot_write_curves_tables_and_figures() {
    let dir = tempdir("grad");
    let out = dir.join("grad");
    let o = gradscope(&[
        "grad",
        "--model",
        "rnn,lstm,gpt",
        "--layers",
        "2",
        "--hidden",
        "16",
        "--seq-len",
        "30",
        "--batch",
        "4",
        "--forget-bias",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in
        ["curves.csv", "curves.json", "grad-metrics.json", "grad-vs-distance.png", "grad-vs-distance.svg"]
    {
        assert!(out.join(f).exists(), "missing {f}");
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("e-folding distance") && stdout.contains("mean forget gate"), "{stdout}");
    let csv = std::fs::read_to_string(out.join("curves.csv")).unwrap();
    // rnn: 2 layers × h; lstm: 2 × (h, c); gpt: embedding + 2 blocks — each 30 distances.
    assert_eq!(csv.lines().count(), 1 + (2 + 4 + 3) * 30);

    // A training run with probes, redrawn and overlaid with the grad output.
    let run = dir.join("run");
    let o = gradscope(&[
        "train",
        "--task",
        "adding",
        "--seq-len",
        "12",
        "--model",
        "rnn",
        "--hidden",
        "8",
        "--steps",
        "6",
        "--eval-every",
        "3",
        "--eval-size",
        "8",
        "--batch",
        "4",
        "--probe-every",
        "2",
        "--quiet",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let probes = std::fs::read_to_string(run.join("probe.jsonl")).unwrap();
    assert_eq!(probes.lines().count(), 4, "steps 0, 2, 4, 6");
    let figs = dir.join("figs");
    let o =
        gradscope(&["plot", run.to_str().unwrap(), out.to_str().unwrap(), "--out", figs.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["probe-heatmap-run.png", "learning-curves.png", "grad-vs-distance.svg"] {
        assert!(figs.join(f).exists(), "missing {f}");
    }
    let o = gradscope(&["plot", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nothing to plot"), "{}", stderr(&o));
}
