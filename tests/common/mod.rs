//! Helpers shared by the end-to-end tests: run the binary, read its stderr, make a scratch dir.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn gradscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gradscope")).args(args).output().expect("run gradscope")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh, empty directory under the system temp dir, unique to this process and `name`.
pub fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradscope-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every metrics line as written, less the two wall-clock fields: a resumed run must reproduce
/// the rest exactly, digit for digit (the text is compared, not numbers parsed back from it).
pub fn metric_values(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            // A metrics line is one flat object of numbers and nulls.
            let fields = l.trim_start_matches('{').trim_end_matches('}').split(',');
            let timeless = fields
                .filter(|f| !f.starts_with("\"elapsed_seconds\"") && !f.starts_with("\"tokens_per_second\""));
            let kept: Vec<&str> = timeless.collect();
            assert!(kept.iter().any(|f| f.starts_with("\"grad_norm\"")), "{l}");
            kept.join(",")
        })
        .collect()
}
