//! Bad input end to end, one case per way a file or flag can be wrong: every command exits with
//! code 2, names the flag, file or problem on stderr, never panics, and leaves no run directory
//! that looks complete (no summary.json, no checkpoint from a refused run, no figures).
//!
//! Flag ranges are in tests/cli.rs (`bad_flags_name_the_flag_and_exit_2`), corpora in
//! tests/text.rs (`bad_corpora_exit_2_with_the_reason_and_leave_no_run`); this file covers config
//! files, checkpoints, tokenizers, run directories and the commands that read them.

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{gradscope, stderr};

fn tempdir(name: &str) -> PathBuf {
    common::tempdir(&format!("bad-{name}"))
}

/// Exit code 2, `needle` on stderr, no panic.
#[track_caller]
fn assert_refused(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "expected exit 2 for '{needle}': {err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    assert!(!err.contains("panicked"), "a panic: {err}");
}

/// A refused fresh run leaves nothing at --out.
#[track_caller]
fn assert_no_run(out: &Path) {
    assert!(!out.exists(), "{} was created by a refused run", out.display());
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A finished run: adding T=6, `model` h8, 4 steps.
fn adding_run(out: &Path, model: &str) {
    let args = [
        "train",
        "--task",
        "adding",
        "--seq-len",
        "6",
        "--model",
        model,
        "--hidden",
        "8",
        "--batch",
        "2",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--eval-size",
        "2",
        "--quiet",
        "--out",
        s(out),
    ];
    let o = gradscope(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn corpus(dir: &Path) -> PathBuf {
    let words = ["thou", "art", "the", "king", "of", "night", "and", "my", "lord"];
    let text: String =
        (0..6000usize).map(|i| format!("{}{}", words[i * 7 % 9], [" ", "\n"][i % 11 / 10])).collect();
    let path = dir.join("corpus.txt");
    std::fs::write(&path, text).unwrap();
    path
}

/// A finished two-step character (or `extra`) language-model run.
fn lm_run(corpus: &Path, out: &Path, model: &str, extra: &[&str]) {
    let mut args = vec![
        "train",
        "--task",
        "text",
        "--corpus",
        s(corpus),
        "--model",
        model,
        "--hidden",
        "8",
        "--seq-len",
        "8",
        "--batch",
        "2",
        "--steps",
        "2",
        "--eval-every",
        "2",
        "--eval-size",
        "2",
        "--quiet",
        "--out",
        s(out),
    ];
    args.extend(extra);
    let o = gradscope(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A copy of run directory `from` at `to`.
fn copy_run(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn truncate(path: &Path, keep: usize) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..keep.min(bytes.len())]).unwrap();
}

fn overwrite(path: &Path, at: usize, with: &[u8]) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at..at + with.len()].copy_from_slice(with);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn bad_config_files_name_the_key_and_write_nothing() {
    let dir = tempdir("config");
    let cases: &[(&str, &[u8], &str)] = &[
        ("unknown-key", b"hiden = 3\n", "unknown field `hiden`"),
        ("wrong-type", b"hidden = \"big\"\n", "invalid type: string \"big\", expected usize"),
        ("negative", b"hidden = -3\n", "invalid value: integer `-3`"),
        ("not-toml", b"hidden = \n", "parsing config"),
        ("not-utf8", b"\xff\xfe hidden = 3", "reading config"),
        ("out-of-range", b"lr = -0.5\n", "--lr must be a finite number > 0"),
        ("enum", b"model = \"transformerxl\"\n", "unknown variant `transformerxl`"),
    ];
    for (name, text, needle) in cases {
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, text).unwrap();
        let out = dir.join(format!("run-{name}"));
        let o = gradscope(&["train", "--config", s(&file), "--out", s(&out)]);
        assert_refused(&o, needle);
        if *name != "out-of-range" {
            assert!(stderr(&o).contains(s(&file)), "{name}: the file is named: {}", stderr(&o));
        }
        assert_no_run(&out);
    }
    let out = dir.join("run-missing");
    let o = gradscope(&["train", "--config", s(&dir.join("missing.toml")), "--out", s(&out)]);
    assert_refused(&o, "missing.toml");
    assert_no_run(&out);
}

#[test]
fn sizes_past_the_machine_or_the_integer_range_are_refused_up_front() {
    let dir = tempdir("sizes");
    let cases: &[(&[&str], &str)] = &[
        // Parameters alone: 80 TB (--hidden 100000 was an allocator abort).
        (&["--hidden", "1000000", "--batch", "1", "--seq-len", "2"], "parameters and optimiser state"),
        // The held-out set (was OOM-killed).
        (&["--eval-size", "18446744073709551615"], "--eval-size 18446744073709551615"),
        // seq_len + 2·copy_len overflowed (was a panic: index out of bounds).
        (&["--task", "copy", "--copy-len", "9223372036854775807"], "--copy-len"),
        (&["--task", "copy", "--alphabet", "10000000000"], "--alphabet"),
        (&["--forget-bias", "nan"], "--forget-bias must be a finite number"),
        (
            &["--model", "gpt", "--hidden", "1048576", "--heads", "1", "--seq-len", "2"],
            "GB of memory this machine has",
        ),
    ];
    for (i, (flags, needle)) in cases.iter().enumerate() {
        let out = dir.join(format!("run{i}"));
        let mut args = vec!["train", "--out", s(&out), "--steps", "1", "--quiet"];
        args.extend(*flags);
        let o = gradscope(&args);
        assert_refused(&o, needle);
        assert_no_run(&out);
    }
    let o = gradscope(&["grad", "--model", "lstm", "--batch", "100000000", "--out", s(&dir.join("g"))]);
    assert_refused(&o, "--batch 100000000");
    assert_no_run(&dir.join("g"));
}

#[test]
fn resume_refuses_a_truncated_corrupt_or_foreign_checkpoint_and_keeps_the_run() {
    let dir = tempdir("resume");
    let good = dir.join("good");
    adding_run(&good, "lstm");
    let ckpt_len = std::fs::metadata(good.join("checkpoint.safetensors")).unwrap().len() as usize;

    // An interrupted run (no summary) whose checkpoint was cut short, or whose header is garbage.
    for (name, damage) in [
        ("truncated-data", Box::new(|p: &Path| truncate(p, ckpt_len - 100)) as Box<dyn Fn(&Path)>),
        ("truncated-header", Box::new(|p: &Path| truncate(p, 40))),
        ("empty", Box::new(|p: &Path| truncate(p, 0))),
        ("corrupt-header", Box::new(|p: &Path| overwrite(p, 12, b"@@@@"))),
    ] {
        let run = dir.join(name);
        copy_run(&good, &run);
        std::fs::remove_file(run.join("summary.json")).unwrap();
        let ckpt = run.join("checkpoint.safetensors");
        damage(&ckpt);
        let before = std::fs::read(&ckpt).unwrap();
        let metrics = std::fs::read(run.join("metrics.jsonl")).unwrap();
        let o = gradscope(&["train", "--resume", s(&run), "--steps", "6", "--quiet"]);
        assert_refused(&o, "checkpoint.safetensors");
        assert_refused(
            &o,
            if name == "empty" { "not a valid safetensors file" } else { "truncated or corrupt" },
        );
        assert!(!run.join("summary.json").exists(), "{name}: a refused resume must not look finished");
        assert_eq!(std::fs::read(&ckpt).unwrap(), before, "{name}: the checkpoint is left as it was");
        assert_eq!(std::fs::read(run.join("metrics.jsonl")).unwrap(), metrics, "{name}: metrics untouched");
    }

    // A checkpoint of another model: --hidden changed on resume, or another run's file.
    let run = dir.join("other-hidden");
    copy_run(&good, &run);
    let o = gradscope(&["train", "--resume", s(&run), "--hidden", "16", "--steps", "6", "--quiet"]);
    assert_refused(&o, "written by a different model");
    let gru = dir.join("gru");
    adding_run(&gru, "gru");
    let run = dir.join("swapped");
    copy_run(&good, &run);
    std::fs::remove_file(run.join("summary.json")).unwrap();
    std::fs::copy(gru.join("checkpoint.safetensors"), run.join("checkpoint.safetensors")).unwrap();
    let o = gradscope(&["train", "--resume", s(&run), "--steps", "6", "--quiet"]);
    assert_refused(&o, "written by a different model (gru h8");
    assert!(!run.join("summary.json").exists());

    // Not a run directory at all, or one without a checkpoint.
    let o = gradscope(&["train", "--resume", s(&dir.join("nothing")), "--quiet"]);
    assert_refused(&o, "not a gradscope run directory");
    let run = dir.join("no-checkpoint");
    copy_run(&good, &run);
    std::fs::remove_file(run.join("checkpoint.safetensors")).unwrap();
    let o = gradscope(&["train", "--resume", s(&run), "--quiet"]);
    assert_refused(&o, "no checkpoint.safetensors there");
}

#[test]
fn sample_and_grad_refuse_broken_checkpoints_and_tokenizers() {
    let dir = tempdir("sample");
    let corpus = corpus(&dir);
    let (chars, gru, bpe) = (dir.join("chars"), dir.join("gru"), dir.join("bpe"));
    lm_run(&corpus, &chars, "rnn", &[]);
    lm_run(&corpus, &gru, "gru", &[]);
    lm_run(&corpus, &bpe, "rnn", &["--vocab-size", "280"]);
    let model_len = std::fs::metadata(chars.join("model.safetensors")).unwrap().len() as usize;

    let damaged = |name: &str, from: &Path, damage: &dyn Fn(&Path)| -> PathBuf {
        let run = dir.join(name);
        copy_run(from, &run);
        damage(&run);
        run
    };
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            damaged("other-model", &chars, &|r| {
                std::fs::copy(gru.join("model.safetensors"), r.join("model.safetensors")).unwrap();
            }),
            "checkpoint of another model",
        ),
        (
            damaged("truncated", &chars, &|r| truncate(&r.join("model.safetensors"), model_len - 7)),
            "truncated or corrupt",
        ),
        (
            damaged("header", &chars, &|r| overwrite(&r.join("model.safetensors"), 20, b"xxxxxxxx")),
            "truncated or corrupt",
        ),
        (
            damaged("no-model", &chars, &|r| std::fs::remove_file(r.join("model.safetensors")).unwrap()),
            "model.safetensors",
        ),
        // tokenizer.json of another run: a vocabulary the model does not predict.
        (
            damaged("mismatched-tokenizer", &chars, &|r| {
                std::fs::remove_file(r.join("chars.json")).unwrap();
                std::fs::copy(bpe.join("tokenizer.json"), r.join("tokenizer.json")).unwrap();
            }),
            "do not belong together",
        ),
        (
            damaged("tokenizer-not-json", &bpe, &|r| truncate(&r.join("tokenizer.json"), 50)),
            "is not a usable tokenizer.json",
        ),
        // Valid JSON that made the tokenizers crate panic (found by tests/fuzz.rs).
        (
            damaged("tokenizer-prefix", &bpe, &|r| {
                let path = r.join("tokenizer.json");
                let mut v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                v["model"]["continuing_subword_prefix"] = "BPE".into();
                std::fs::write(&path, v.to_string()).unwrap();
            }),
            "is not a usable tokenizer.json",
        ),
        (
            damaged("chars-empty", &chars, &|r| {
                std::fs::write(r.join("chars.json"), "{\"chars\": []}").unwrap()
            }),
            "empty character vocabulary",
        ),
        (
            damaged("no-tokenizer", &chars, &|r| std::fs::remove_file(r.join("chars.json")).unwrap()),
            "holds no tokenizer.json or chars.json",
        ),
        // A hand-edited model.json asking for a model larger than the machine.
        (
            damaged("huge-model", &chars, &|r| {
                let path = r.join("model.json");
                let mut v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                v["hidden"] = 1_000_000.into();
                std::fs::write(&path, v.to_string()).unwrap();
            }),
            "more than this machine's",
        ),
        (
            damaged("model-json", &chars, &|r| std::fs::write(r.join("model.json"), "{").unwrap()),
            "model.json",
        ),
        (
            damaged("config", &chars, &|r| {
                std::fs::write(r.join("config.toml"), "steps = \"many\"").unwrap()
            }),
            "config.toml",
        ),
    ];
    for (run, needle) in &cases {
        let o = gradscope(&["sample", "--run", s(run), "--tokens", "5"]);
        assert_refused(&o, needle);
        assert!(o.stdout.is_empty(), "{}: nothing sampled", run.display());
        // `grad` reads no prompt, so a vocabulary of another size alone is not its problem, and a
        // missing chars.json is rebuilt from the corpus as --resume does (it is a function of it).
        if ["do not belong together", "holds no tokenizer.json"].iter().any(|n| needle.starts_with(n)) {
            continue;
        }
        let out = run.join("grad-out");
        let o = gradscope(&["grad", "--run", s(run), "--batch", "2", "--out", s(&out)]);
        assert_refused(&o, needle);
        assert_no_run(&out);
    }

    // Not a language model, and not a run.
    let adding = dir.join("adding");
    adding_run(&adding, "lstm");
    let o = gradscope(&["sample", "--run", s(&adding), "--tokens", "5"]);
    assert_refused(&o, "is not a language model");
    let g = dir.join("g");
    for cmd in ["sample", "grad"] {
        let mut args = vec![cmd, "--run", s(&dir)];
        if cmd == "grad" {
            args.extend(["--out", s(&g)]);
        }
        assert_refused(&gradscope(&args), "not a gradscope run directory");
    }
    // --tokenizer FILE given to train: missing, or broken.
    let out = dir.join("run-tok");
    let o = gradscope(&[
        "train",
        "--task",
        "text",
        "--corpus",
        s(&corpus),
        "--tokenizer",
        s(&dir.join("none.json")),
        "--out",
        s(&out),
    ]);
    assert_refused(&o, "none.json");
    assert_no_run(&out);
    let o = gradscope(&[
        "train",
        "--task",
        "text",
        "--corpus",
        s(&corpus),
        "--tokenizer",
        s(&dir.join("tokenizer-prefix/tokenizer.json")),
        "--out",
        s(&out),
    ]);
    assert_refused(&o, "is not a usable tokenizer.json");
    assert_no_run(&out);
}

#[test]
fn resume_of_a_text_run_refuses_a_replaced_or_broken_tokenizer() {
    let dir = tempdir("resume-text");
    let corpus = corpus(&dir);
    let (bpe, chars) = (dir.join("bpe"), dir.join("chars"));
    lm_run(&corpus, &bpe, "rnn", &["--vocab-size", "280"]);
    lm_run(&corpus, &chars, "rnn", &[]);

    // A broken tokenizer.json is an error, not silently replaced by a fresh one.
    let run = dir.join("broken");
    copy_run(&bpe, &run);
    std::fs::write(run.join("tokenizer.json"), "{\"model\": 1").unwrap();
    let o = gradscope(&["train", "--resume", s(&run), "--steps", "4", "--quiet"]);
    assert_refused(&o, "broken/tokenizer.json is not a usable tokenizer.json");

    // Another run's tokenizer: the vocabulary no longer matches the checkpoint.
    let run = dir.join("replaced");
    copy_run(&bpe, &run);
    std::fs::remove_file(run.join("tokenizer.json")).unwrap();
    std::fs::copy(chars.join("chars.json"), run.join("chars.json")).unwrap();
    let o = gradscope(&["train", "--resume", s(&run), "--steps", "4", "--quiet"]);
    assert_refused(&o, "was the tokenizer or the task changed?");
}

#[test]
fn plot_refuses_bad_directories_without_creating_them() {
    let dir = tempdir("plot");
    let missing = dir.join("missing");
    let o = gradscope(&["plot", s(&missing)]);
    assert_refused(&o, "missing is not a directory");
    assert_no_run(&missing);
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    assert_refused(&gradscope(&["plot", s(&file)]), "a-file is not a directory");

    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_refused(&gradscope(&["plot", s(&empty)]), "nothing to plot");

    let cases: &[(&str, &str, &str)] = &[
        ("metrics.jsonl", "garbage\n{\"step\": 3", "metrics.jsonl holds no complete record"),
        ("curves.json", "[{\"model\":", "curves.json"),
        ("probe.jsonl", "{\"step\":0,\"curves\":[]}\n", "probe.jsonl has no curve"),
    ];
    for (name, text, needle) in cases {
        let d = dir.join(format!("bad-{name}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), text).unwrap();
        let o = gradscope(&["plot", s(&d)]);
        assert_refused(&o, needle);
        let written: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(written.len(), 1, "{name}: no figure written: {written:?}");
    }
    // --out over an existing file.
    let run = dir.join("run");
    adding_run(&run, "lstm");
    let o = gradscope(&["plot", s(&run), "--out", s(&file)]);
    assert_refused(&o, "creating --out");
}

/// A metrics.jsonl whose last line was torn (a crash mid-append) still plots, resumes and
/// reports; the resumed file holds only complete lines, and a killed writer's temporary file is
/// cleaned up.
#[test]
fn a_torn_last_metrics_line_is_ignored_and_dropped_on_resume() {
    let dir = tempdir("torn");
    let run = dir.join("run");
    adding_run(&run, "lstm");
    std::fs::remove_file(run.join("summary.json")).unwrap();
    let metrics = run.join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    assert_eq!(text.lines().count(), 2);
    text.push_str("{\"step\":6,\"train_loss\":0.1");
    std::fs::write(&metrics, &text).unwrap();

    // A process killed while writing a checkpoint leaves its temporary file; resume removes it.
    let stale = run.join(".checkpoint.safetensors.tmp-4194304");
    std::fs::write(&stale, b"half a checkpoint").unwrap();

    let figs = dir.join("figs");
    let o = gradscope(&["plot", s(&run), "--out", s(&figs)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(figs.join("learning-curves.png").exists());

    let o = gradscope(&["train", "--resume", s(&run), "--steps", "6", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(text.ends_with('\n'));
    let steps: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("every line is complete")["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, [2, 4, 6]);
    assert!(!stale.exists(), "the stale temporary file is removed on resume");
}
