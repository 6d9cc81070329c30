//! Property-based fuzzing of everything gradscope reads from disk: config TOML, safetensors
//! checkpoints, corpora, chars.json and tokenizer.json. Every input must give a value or an
//! error, never a panic (proptest catches a panic, shrinks the input and saves its seed in
//! tests/fuzz.proptest-regressions, which is replayed first on every later run).
//!
//! `cargo test --release --test fuzz` runs 64 cases per target (seconds); a longer bounded run:
//! `PROPTEST_CASES=20000 cargo test --release --test fuzz -- --nocapture` (prints cases and time
//! per target).

use candle_core::Device;
use candle_nn::VarMap;
use gradscope::checkpoint::{load_bytes, load_bytes_into_varmap};
use gradscope::models::SeqModelConfig;
use gradscope::tasks::{Task, TextTask};
use gradscope::text::{load_corpus, TextTokenizer};
use gradscope::train::{train, RunOptions, TaskName, TrainConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

mod common;

/// Cases per target: `PROPTEST_CASES`, else 64.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

/// Runs `test` on `cases()` inputs from `strategy`; a panic or error fails with the shrunk input.
fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases: cases(),
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    ACCEPTED.with(|a| a.set(0));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("fuzz target {name}: {e}");
    }
    eprintln!(
        "fuzz {name}: {} cases ({} accepted as valid input), no panic, {:.1} s",
        cases(),
        ACCEPTED.with(|a| a.get()),
        started.elapsed().as_secs_f64()
    );
}

thread_local! {
    /// Cases of the running target whose input was accepted (a sanity check that the strategies
    /// reach past the first parser).
    static ACCEPTED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn accepted() {
    ACCEPTED.with(|a| a.set(a.get() + 1));
}

fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| common::tempdir("fuzz"))
}

/// A file unique to this thread, so targets running in parallel do not share it.
fn scratch_file(name: &str) -> PathBuf {
    scratch().join(format!("{name}-{:?}", std::thread::current().id()).replace(['(', ')'], ""))
}

// ---------------------------------------------------------------------------------------------
// Config: TOML → TrainConfig → validate (→ task and model for valid ones).

const KEYS: &[&str] = &[
    "task",
    "seq-len",
    "copy-len",
    "alphabet",
    "p-ignore",
    "eval-lengths",
    "adding-variant",
    "corpus",
    "vocab-size",
    "tokenizer",
    "tbptt",
    "model",
    "nonlinearity",
    "hidden",
    "layers",
    "heads",
    "context",
    "dropout",
    "init",
    "init-gain",
    "forget-bias",
    "batch",
    "steps",
    "optimizer",
    "lr",
    "momentum",
    "nesterov",
    "beta2",
    "weight-decay",
    "schedule",
    "warmup",
    "min-lr",
    "clip",
    "clip-value",
    "on-nonfinite",
    "eval-every",
    "eval-size",
    "stop-when-solved",
    "probe-every",
    "seed",
    "device",
    "backend",
    "no-such-key",
];

const WORDS: &[&str] = &[
    "copy",
    "adding",
    "text",
    "selective-copy",
    "induction",
    "mqar",
    "flip-flop",
    "parity",
    "rnn",
    "lstm",
    "gru",
    "gpt",
    "transformer",
    "tanh",
    "relu",
    "sigmoid",
    "linear",
    "pytorch",
    "xavier",
    "he",
    "orthogonal",
    "identity",
    "sgd",
    "adam",
    "adamw",
    "rmsprop",
    "adagrad",
    "lion",
    "constant",
    "cosine",
    "stop",
    "skip",
    "rollback",
    "auto",
    "fused",
    "autograd",
    "standard",
    "hochreiter",
    "cpu",
    "cuda",
    "cuda:3",
    "metal",
    "",
    "ADAM",
];

fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop_oneof![Just(0i64), Just(1), Just(2), Just(-1), Just(i64::MAX), Just(i64::MIN), 0i64..300]
            .prop_map(|v| v.to_string()),
        Just(u64::MAX.to_string()),
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(1e308),
            Just(-0.0),
            Just(0.5),
            Just(0.999_999),
            -10.0f64..10.0
        ]
        .prop_map(|v| match v {
            v if v.is_nan() => "nan".to_string(),
            v if v == f64::INFINITY => "inf".to_string(),
            v if v == f64::NEG_INFINITY => "-inf".to_string(),
            v => format!("{v:?}"),
        }),
        any::<bool>().prop_map(|b| b.to_string()),
        prop::sample::select(WORDS).prop_map(|w| format!("{w:?}")),
        Just("[]".to_string()),
        Just("{}".to_string()),
        ".{0,6}".prop_map(|s| format!("{s:?}")),
    ]
}

/// Mostly well-formed files over the real keys (the validation paths), some raw text (the parser).
fn config_text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::collection::vec((prop::sample::select(KEYS), toml_value()), 0..10).prop_map(|kv| {
            kv.into_iter().map(|(k, v)| format!("{k} = {v}\n")).collect::<String>()
        }),
        1 => ".{0,200}",
        1 => "([a-z-]{1,12} ?= ?[-+0-9a-z.\"\\[\\]{}]{0,12}\n){0,6}",
    ]
}

#[test]
fn fuzz_config_parsing_and_validation() {
    fuzz("config", config_text(), |text| {
        let Ok(cfg) = TrainConfig::from_toml_str(&text) else { return Ok(()) };
        if cfg.validate().is_err() {
            return Ok(());
        }
        accepted();
        // A valid config survives the round trip through the run directory's config.toml.
        let back = TrainConfig::from_toml_str(&cfg.to_toml().expect("serialise a valid config"))
            .expect("a saved config parses");
        prop_assert_eq!(&back, &cfg);
        if cfg.task != TaskName::Text {
            if let Ok(task) = cfg.build_task() {
                let model = cfg.model_config(task.as_ref());
                // Sizes that passed the memory check; building them is the trainer's job.
                let _ = model.validate();
                let _ = task.batch(1, &mut rand::rngs::StdRng::seed_from_u64(0), &Device::Cpu);
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Checkpoints: mutated bytes of a real run's checkpoint.safetensors and model.safetensors.

struct Run {
    dir: PathBuf,
    cfg: TrainConfig,
    model_cfg: SeqModelConfig,
    checkpoint: Vec<u8>,
    model: Vec<u8>,
}

fn tiny_cfg() -> TrainConfig {
    TrainConfig {
        task: TaskName::Copy,
        seq_len: 3,
        copy_len: Some(2),
        alphabet: Some(3),
        hidden: 4,
        layers: 2,
        batch: 2,
        steps: 2,
        eval_every: 2,
        eval_size: 2,
        ..TrainConfig::default()
    }
}

/// A finished two-step LSTM run on the copy task, trained once per process.
fn real_run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = scratch().join("run");
        let cfg = tiny_cfg();
        train(&cfg, &RunOptions { out: dir.clone(), quiet: true, ..RunOptions::default() }).unwrap();
        let model_cfg: SeqModelConfig =
            serde_json::from_str(&std::fs::read_to_string(dir.join("model.json")).unwrap()).unwrap();
        Run {
            checkpoint: std::fs::read(dir.join("checkpoint.safetensors")).unwrap(),
            model: std::fs::read(dir.join("model.safetensors")).unwrap(),
            dir,
            cfg,
            model_cfg,
        }
    })
}

#[derive(Clone, Debug)]
enum Mutation {
    /// Keep only the first `n` bytes (mod the length).
    Truncate(usize),
    /// Overwrite bytes at positions (mod the length).
    Overwrite(Vec<(usize, u8)>),
    /// Overwrite bytes within the 8-byte length prefix and the JSON header.
    HeaderBytes(Vec<(usize, u8)>),
    /// Rewrite one tensor's entry in the JSON header.
    HeaderEntry { tensor: usize, edit: HeaderEdit },
    /// Append junk.
    Append(Vec<u8>),
    /// Replace the file.
    Random(Vec<u8>),
}

#[derive(Clone, Debug)]
enum HeaderEdit {
    Dtype(&'static str),
    Shape(Vec<u64>),
    Offsets(u64, u64),
    Rename(String),
    Remove,
}

fn dims() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..20, Just(u64::MAX), Just(1 << 32), Just(1 << 62), any::<u64>()]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let edit = prop_oneof![
        prop::sample::select(
            &[
                "F32", "F16", "BF16", "F64", "U8", "I8", "I32", "I64", "U32", "BOOL", "F8_E4M3", "F8_E5M2",
                "F4", "C64", "XYZ"
            ][..]
        )
        .prop_map(HeaderEdit::Dtype),
        prop::collection::vec(dims(), 0..4).prop_map(HeaderEdit::Shape),
        (dims(), dims()).prop_map(|(a, b)| HeaderEdit::Offsets(a, b)),
        prop_oneof![Just("model.rnn.weight_hh_l0".to_string()), ".{0,12}"].prop_map(HeaderEdit::Rename),
        Just(HeaderEdit::Remove),
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        prop::collection::vec((any::<usize>(), any::<u8>()), 1..8).prop_map(Mutation::Overwrite),
        prop::collection::vec((any::<usize>(), any::<u8>()), 1..4).prop_map(Mutation::HeaderBytes),
        (any::<usize>(), edit).prop_map(|(tensor, edit)| Mutation::HeaderEntry { tensor, edit }),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
        prop::collection::vec(any::<u8>(), 0..128).prop_map(Mutation::Random),
    ]
}

fn mutate(base: &[u8], m: &Mutation) -> Vec<u8> {
    let mut b = base.to_vec();
    match m {
        Mutation::Truncate(n) => b.truncate(n % b.len()),
        Mutation::Overwrite(edits) => {
            for &(i, v) in edits {
                let n = b.len();
                b[i % n] = v;
            }
        }
        Mutation::HeaderBytes(edits) => {
            let header = 8 + u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
            for &(i, v) in edits {
                b[i % header] = v;
            }
        }
        Mutation::HeaderEntry { tensor, edit } => {
            let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
            let mut header: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(&b[8..8 + n]).unwrap();
            let names: Vec<String> = header.keys().filter(|k| *k != "__metadata__").cloned().collect();
            let name = &names[tensor % names.len()];
            match edit {
                HeaderEdit::Dtype(d) => header[name]["dtype"] = (*d).into(),
                HeaderEdit::Shape(s) => header[name]["shape"] = serde_json::json!(s),
                HeaderEdit::Offsets(a, c) => header[name]["data_offsets"] = serde_json::json!([a, c]),
                HeaderEdit::Rename(to) => {
                    let v = header.remove(name).unwrap();
                    header.insert(to.clone(), v);
                }
                HeaderEdit::Remove => {
                    header.remove(name);
                }
            }
            let json = serde_json::to_vec(&header).unwrap();
            let mut out = (json.len() as u64).to_le_bytes().to_vec();
            out.extend(json);
            out.extend_from_slice(&b[8 + n..]);
            b = out;
        }
        Mutation::Append(junk) => b.extend(junk),
        Mutation::Random(r) => b = r.clone(),
    }
    b
}

/// Found by `fuzz_config_parsing_and_validation`: `min-lr = nan` passed validation with the
/// constant schedule (which ignores it) and broke the config.toml round trip.
#[test]
fn a_nan_min_lr_is_refused_whatever_the_schedule() {
    let cfg = TrainConfig::from_toml_str("min-lr = nan\n").unwrap();
    let err = cfg.validate().unwrap_err();
    assert!(err.to_string().contains("--min-lr must be a finite number"), "{err}");
}

#[test]
fn fuzz_checkpoint_loading() {
    let run = real_run();
    fuzz("checkpoint-load", (any::<bool>(), mutation()), |(params_only, m)| {
        let base = if params_only { &run.model } else { &run.checkpoint };
        let bytes = mutate(base, &m);
        let _ = load_bytes(&bytes, Path::new("fuzzed.safetensors"), &Device::Cpu);
        // Into a fresh model of the run's architecture, as `sample` and `grad --run` do.
        let varmap = VarMap::new();
        run.model_cfg.init(&varmap, 0, &Device::Cpu).unwrap();
        if load_bytes_into_varmap(&bytes, Path::new("fuzzed.safetensors"), &varmap).is_ok() {
            accepted();
        }
        Ok(())
    });
}

/// `train --resume` from a mutated checkpoint: an error or a finished run, never a panic.
#[test]
fn fuzz_resume_from_a_mutated_checkpoint() {
    let run = real_run();
    fuzz("checkpoint-resume", mutation(), |m| {
        let dir = scratch_file("resume");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["config.toml", "model.json", "metrics.jsonl", "model.safetensors"] {
            std::fs::copy(run.dir.join(f), dir.join(f)).unwrap();
        }
        std::fs::write(dir.join("checkpoint.safetensors"), mutate(&run.checkpoint, &m)).unwrap();
        let opts = RunOptions { out: dir.clone(), resume: true, quiet: true, ..RunOptions::default() };
        if train(&run.cfg, &opts).is_ok() {
            accepted();
        }
        Ok(())
    });
}

#[test]
fn a_truncated_or_foreign_checkpoint_is_an_error_that_says_so() {
    let run = real_run();
    let varmap = VarMap::new();
    run.model_cfg.init(&varmap, 0, &Device::Cpu).unwrap();
    let origin = Path::new("model.safetensors");
    let err = load_bytes_into_varmap(&run.model[..run.model.len() / 2], origin, &varmap).unwrap_err();
    assert!(format!("{err:#}").contains("truncated or corrupt"), "{err:#}");
    // The training checkpoint's names carry the `model.` prefix: not a parameters file.
    let err = load_bytes_into_varmap(&run.checkpoint, origin, &varmap).unwrap_err();
    assert!(format!("{err:#}").contains("missing parameter"), "{err:#}");
    // Another architecture.
    let other = SeqModelConfig { hidden: 5, ..run.model_cfg.clone() };
    let varmap = VarMap::new();
    other.init(&varmap, 0, &Device::Cpu).unwrap();
    let err = load_bytes_into_varmap(&run.model, origin, &varmap).unwrap_err();
    assert!(format!("{err:#}").contains("checkpoint of another model"), "{err:#}");
}

// ---------------------------------------------------------------------------------------------
// Corpora and tokenizers.

/// Bytes of a corpus: arbitrary, or text (some of it multi-byte).
fn corpus_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..400),
        ".{0,300}".prop_map(String::into_bytes),
        "[ab \n]{0,40}".prop_map(String::into_bytes),
    ]
}

/// Everything a text run does with a corpus and tokenizer before training.
fn exercise(text: &str, tokenizer: TextTokenizer, window: usize) {
    let _ = tokenizer.decode(&[0, 1, u32::MAX]);
    if let Ok(task) = TextTask::new(text, tokenizer, window) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        task.batch(2, &mut rng, &Device::Cpu).unwrap();
        task.eval_batch(2, &mut rng, &Device::Cpu).unwrap();
        let _ = task.stream_batch(2, 3, &Device::Cpu);
    }
}

#[test]
fn fuzz_corpus_loading() {
    fuzz("corpus", (corpus_bytes(), 1usize..6), |(bytes, window)| {
        let path = scratch_file("corpus.txt");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(text) = load_corpus(&path) {
            accepted();
            prop_assert!(!text.trim().is_empty());
            exercise(&text, TextTokenizer::char_level(&text), window);
        }
        Ok(())
    });
}

const SAMPLE_TEXT: &str =
    "First Citizen:\nBefore we proceed any further, hear me speak.\nAll: Speak, speak. ü🙂\n";

#[test]
fn fuzz_chars_json() {
    let chars = prop_oneof![
        prop::collection::vec(any::<char>(), 0..20).prop_map(|c| serde_json::json!({ "chars": c })),
        prop::collection::vec(".{0,3}", 0..10).prop_map(|c| serde_json::json!({ "chars": c })),
        any::<i64>().prop_map(|n| serde_json::json!({ "chars": n })),
    ]
    .prop_map(|v| v.to_string());
    let text = prop_oneof![chars, ".{0,60}", "\\{\"chars\": \\[.{0,20}"];
    fuzz("chars.json", text, |json| {
        let path = scratch_file("chars.json");
        std::fs::write(&path, &json).unwrap();
        if let Ok(t) = TextTokenizer::load(&path) {
            accepted();
            let _ = t.encode(SAMPLE_TEXT);
            exercise(&SAMPLE_TEXT.repeat(4), t, 3);
        }
        Ok(())
    });
}

/// The JSON of a small trained byte-level BPE tokenizer.
fn bpe_json() -> &'static serde_json::Value {
    static JSON: OnceLock<serde_json::Value> = OnceLock::new();
    JSON.get_or_init(|| {
        let t = TextTokenizer::train_bpe(&SAMPLE_TEXT.repeat(20), 280).unwrap();
        let dir = scratch().join("bpe");
        std::fs::create_dir_all(&dir).unwrap();
        t.save(&dir).unwrap();
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap()).unwrap()
    })
}

#[derive(Clone, Debug)]
enum JsonEdit {
    Number(f64),
    Int(i64),
    Text(String),
    Null,
    Bool(bool),
    EmptyArray,
    EmptyObject,
    Delete,
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        prop_oneof![Just(-1.0), Just(1e20), Just(0.5), -3.0f64..3.0].prop_map(JsonEdit::Number),
        prop_oneof![Just(-1i64), Just(0), Just(i64::MAX), Just(100_000), 0i64..400].prop_map(JsonEdit::Int),
        prop_oneof![Just("BPE".to_string()), Just("ByteLevel".to_string()), Just("Ġ".to_string()), ".{0,4}"]
            .prop_map(JsonEdit::Text),
        Just(JsonEdit::Null),
        any::<bool>().prop_map(JsonEdit::Bool),
        Just(JsonEdit::EmptyArray),
        Just(JsonEdit::EmptyObject),
        Just(JsonEdit::Delete),
    ]
}

/// Applies `edit` to the `index`-th node (depth-first, mod the node count) of `v`.
fn edit_json(v: &mut serde_json::Value, index: usize, edit: &JsonEdit) {
    fn count(v: &serde_json::Value) -> usize {
        1 + match v {
            serde_json::Value::Array(a) => a.iter().map(count).sum(),
            serde_json::Value::Object(o) => o.values().map(count).sum(),
            _ => 0,
        }
    }
    fn walk(v: &mut serde_json::Value, mut i: usize, edit: &JsonEdit) -> Option<usize> {
        // Deleting is done by the parent; every other edit replaces the node.
        let children: Vec<(Option<String>, usize)> = match v {
            serde_json::Value::Array(a) => (0..a.len()).map(|k| (None, k)).collect(),
            serde_json::Value::Object(o) => o.keys().cloned().map(|k| (Some(k), 0)).collect(),
            _ => vec![],
        };
        for (key, k) in children {
            let child = match (&key, &mut *v) {
                (Some(key), serde_json::Value::Object(o)) => o.get_mut(key).unwrap(),
                (None, serde_json::Value::Array(a)) => &mut a[k],
                _ => unreachable!(),
            };
            let size = count(child);
            if i == 0 {
                if let JsonEdit::Delete = edit {
                    match (&key, &mut *v) {
                        (Some(key), serde_json::Value::Object(o)) => {
                            o.remove(key);
                        }
                        (None, serde_json::Value::Array(a)) => {
                            a.remove(k);
                        }
                        _ => unreachable!(),
                    }
                } else {
                    *child = match edit {
                        JsonEdit::Number(x) => serde_json::json!(x),
                        JsonEdit::Int(x) => serde_json::json!(x),
                        JsonEdit::Text(s) => serde_json::json!(s),
                        JsonEdit::Null => serde_json::Value::Null,
                        JsonEdit::Bool(b) => serde_json::json!(b),
                        JsonEdit::EmptyArray => serde_json::json!([]),
                        JsonEdit::EmptyObject => serde_json::json!({}),
                        JsonEdit::Delete => unreachable!(),
                    };
                }
                return None;
            }
            if i < size {
                return walk(child, i - 1, edit);
            }
            i -= size;
        }
        Some(i)
    }
    let n = count(v) - 1; // the root itself is never replaced
    if n > 0 {
        walk(v, index % n, edit);
    }
}

#[test]
fn fuzz_tokenizer_json() {
    let base = bpe_json();
    let edits = prop::collection::vec((any::<usize>(), json_edit()), 1..6);
    let raw = prop_oneof![9 => edits.prop_map(Ok), 1 => ".{0,80}".prop_map(Err)];
    fuzz("tokenizer.json", raw, |input| {
        let text = match input {
            Ok(edits) => {
                let mut v = base.clone();
                for (i, e) in &edits {
                    edit_json(&mut v, *i, e);
                }
                v.to_string()
            }
            Err(raw) => raw,
        };
        let path = scratch_file("tokenizer.json");
        std::fs::write(&path, &text).unwrap();
        if let Ok(t) = TextTokenizer::load(&path) {
            accepted();
            let _ = t.vocab_size();
            if let Ok(ids) = t.encode(SAMPLE_TEXT) {
                let _ = t.decode(&ids);
            }
            exercise(&SAMPLE_TEXT.repeat(4), t, 3);
        }
        Ok(())
    });
}

/// Found by `fuzz_tokenizer_json`: `tokenizers` 0.22 slices every merge's second token by the
/// length of `continuing_subword_prefix` and panics when the prefix is longer.
#[test]
fn a_continuing_subword_prefix_longer_than_a_merge_is_an_error_not_a_panic() {
    let mut v = bpe_json().clone();
    v["model"]["continuing_subword_prefix"] = "BPE".into();
    let path = scratch().join("prefix-tokenizer.json");
    std::fs::write(&path, v.to_string()).unwrap();
    let err = TextTokenizer::load(&path).err().expect("refused");
    assert!(format!("{err:#}").contains("is not a usable tokenizer.json"), "{err:#}");
}
