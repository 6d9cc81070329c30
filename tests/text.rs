//! Language modelling end to end: corpora, tokenizers, stateful TBPTT, resume, sampling, and
//! bad input. Uses ../shared/data/tinyshakespeare.txt when present, else generated text.

use std::path::{Path, PathBuf};

mod common;
use common::{gradscope, json, metric_values, stderr};

fn tempdir(name: &str) -> PathBuf {
    common::tempdir(&format!("text-{name}"))
}

/// A corpus: the shared tiny Shakespeare, or 40 kB of generated verse.
fn corpus(dir: &Path) -> PathBuf {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/tinyshakespeare.txt");
    if shared.exists() {
        return shared;
    }
    let words =
        ["thou", "art", "the", "king", "of", "night", "and", "my", "lord", "speak", "hear", "me", "now"];
    let mut state = 12345u64;
    let mut text = String::new();
    while text.len() < 40_000 {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        text.push_str(words[(state >> 33) as usize % words.len()]);
        text.push(if (state >> 20).is_multiple_of(9) { '\n' } else { ' ' });
    }
    let path = dir.join("generated.txt");
    std::fs::write(&path, text).unwrap();
    path
}

/// A two-step character (or `extra`-tokenizer) RNN language model written to `out`.
fn tiny_rnn_lm(corpus: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "--task",
        "text",
        "--corpus",
        corpus.to_str().unwrap(),
        "--model",
        "rnn",
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
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    gradscope(&args)
}

#[test]
fn stateful_tbptt_resumes_exactly_and_samples() {
    let dir = tempdir("tbptt");
    let corpus = corpus(&dir);
    let base = [
        "train",
        "--task",
        "text",
        "--corpus",
        corpus.to_str().unwrap(),
        "--model",
        "lstm",
        "--layers",
        "2",
        "--hidden",
        "24",
        "--seq-len",
        "16",
        "--batch",
        "4",
        "--tbptt",
        "--eval-every",
        "5",
        "--eval-size",
        "8",
        "--quiet",
    ];
    let (straight, split) = (dir.join("straight"), dir.join("split"));
    let run = |steps: &str, out: &Path| {
        let mut a = base.to_vec();
        a.extend(["--steps", steps, "--out", out.to_str().unwrap()]);
        let o = gradscope(&a);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    run("20", &straight);
    run("10", &split);
    let o = gradscope(&["train", "--resume", split.to_str().unwrap(), "--steps", "20", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (metric_values(&straight), metric_values(&split));
    assert_eq!(a.len(), 4);
    assert_eq!(a, b, "a resumed TBPTT run (carried state included) must replay the straight one");
    let bpc = json(&straight.join("summary.json"))["eval_bpc"].as_f64().unwrap();
    assert!(bpc > 0.0, "bits per char are reported");

    let o = gradscope(&[
        "sample",
        "--run",
        straight.to_str().unwrap(),
        "--prompt",
        "the",
        "--tokens",
        "40",
        "--seed",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.starts_with("the") && text.trim_end().chars().count() >= 40, "{text:?}");
    let again = gradscope(&[
        "sample",
        "--run",
        straight.to_str().unwrap(),
        "--prompt",
        "the",
        "--tokens",
        "40",
        "--seed",
        "3",
    ]);
    assert_eq!(String::from_utf8(again.stdout).unwrap(), text, "seeded sampling is reproducible");

    // The gradient of the loss at the last position against earlier positions of a trained LM.
    let grad = dir.join("grad");
    let o = gradscope(&[
        "grad",
        "--run",
        straight.to_str().unwrap(),
        "--batch",
        "3",
        "--out",
        grad.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let curves = std::fs::read_to_string(grad.join("curves.csv")).unwrap();
    // 2 layers × (h, c) × 16 positions.
    assert_eq!(curves.lines().count(), 1 + 4 * 16);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(straight.join("summary.json")).unwrap()).unwrap();
    let (loss, ppl) = (s["eval_loss"].as_f64().unwrap(), s["eval_perplexity"].as_f64().unwrap());
    assert!((ppl - loss.exp()).abs() < 1e-9 * ppl, "perplexity is exp(loss)");
}

#[test]
fn bpe_gpt_run_saves_a_loadable_tokenizer_and_samples() {
    let dir = tempdir("bpe");
    let corpus = corpus(&dir);
    let out = dir.join("bpe");
    let o = gradscope(&[
        "train",
        "--task",
        "text",
        "--corpus",
        corpus.to_str().unwrap(),
        "--model",
        "gpt",
        "--layers",
        "2",
        "--heads",
        "2",
        "--hidden",
        "32",
        "--seq-len",
        "24",
        "--batch",
        "4",
        "--vocab-size",
        "300",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--eval-size",
        "4",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tokenizer.json")).unwrap()).unwrap();
    assert_eq!(tok["model"]["type"], "BPE", "a Hugging Face tokenizer.json");
    let o = gradscope(&["sample", "--run", out.to_str().unwrap(), "--prompt", "the king", "--tokens", "10"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // The saved tokenizer can be reused, and one that does not match a model is refused.
    let reuse = dir.join("reuse");
    let tokenizer = out.join("tokenizer.json");
    let o = tiny_rnn_lm(&corpus, &reuse, &["--tokenizer", tokenizer.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let chars = dir.join("chars");
    let o = tiny_rnn_lm(&corpus, &chars, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_file(chars.join("chars.json")).unwrap();
    std::fs::copy(out.join("tokenizer.json"), chars.join("tokenizer.json")).unwrap();
    let o = gradscope(&["sample", "--run", chars.to_str().unwrap(), "--tokens", "5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("do not belong together"), "{}", stderr(&o));
}

#[test]
fn bad_corpora_exit_2_with_the_reason_and_leave_no_run() {
    let dir = tempdir("bad");
    std::fs::write(dir.join("empty.txt"), "").unwrap();
    std::fs::write(dir.join("latin1.txt"), b"caf\xe9").unwrap();
    std::fs::write(dir.join("short.txt"), "to be or not to be").unwrap();
    std::fs::write(dir.join("blank.txt"), " \n\t\n").unwrap();
    std::fs::create_dir_all(dir.join("a-directory")).unwrap();
    let cases: &[(&str, &str)] = &[
        ("missing.txt", "does not exist"),
        ("empty.txt", "is empty"),
        ("latin1.txt", "not UTF-8"),
        ("short.txt", "too short for --seq-len 64"),
        ("blank.txt", "holds only whitespace"),
        ("a-directory", "reading corpus"),
    ];
    for (file, needle) in cases {
        let out = dir.join(format!("run-{file}"));
        let o = gradscope(&[
            "train",
            "--task",
            "text",
            "--corpus",
            dir.join(file).to_str().unwrap(),
            "--seq-len",
            "64",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{file}");
        assert!(stderr(&o).contains(needle), "{file}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{file}: {}", stderr(&o));
        assert!(!out.exists(), "{file}: a refused run created its directory");
    }
    let o = gradscope(&["train", "--task", "text", "--out", dir.join("x").to_str().unwrap()]);
    assert!(stderr(&o).contains("needs --corpus"), "{}", stderr(&o));
    let o = gradscope(&["train", "--task", "adding", "--tbptt", "--out", dir.join("y").to_str().unwrap()]);
    assert!(stderr(&o).contains("--tbptt applies to --task text"), "{}", stderr(&o));
}

/// Offline, on generated files: an unknown dataset and a copy whose checksum is wrong are refused
/// (exit 2) and nothing is written.
#[test]
fn data_command_refuses_unknown_datasets_and_wrong_copies() {
    let dir = tempdir("data-refuse");
    let o = gradscope(&["data", "wikitext", "--dir", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown dataset"), "{}", stderr(&o));
    let fake = dir.join("not-shakespeare.txt");
    std::fs::write(&fake, "To be, or not to be, that is not the file.\n").unwrap();
    let target = dir.join("corpus");
    for from in [fake.to_str().unwrap().to_string(), format!("file://{}", fake.display())] {
        let o = gradscope(&["data", "tinyshakespeare", "--dir", target.to_str().unwrap(), "--from", &from]);
        assert_eq!(o.status.code(), Some(2), "{from}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("SHA-256") && stderr(&o).contains("nothing was written"),
            "{}",
            stderr(&o)
        );
        assert!(!target.join("tinyshakespeare.txt").exists(), "{from}: a wrong copy was written");
    }
}

/// Installing the real corpus from a local copy, then finding it present, needs the real file:
/// reported as ignored where `../shared/data` does not hold it (see build.rs).
#[test]
#[cfg_attr(not(shared_corpus), ignore = "needs ../shared/data/tinyshakespeare.txt")]
fn data_command_installs_and_verifies_the_corpus_without_the_network() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/tinyshakespeare.txt");
    let dir = tempdir("data");
    let from = shared.to_str().unwrap();
    let o = gradscope(&["data", "tinyshakespeare", "--dir", dir.to_str().unwrap(), "--from", from]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("SHA-256 verified"));
    let o = gradscope(&["data", "tinyshakespeare", "--dir", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("checksum matches"));
}
