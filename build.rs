//! Tells the test suites whether the shared tiny Shakespeare corpus is beside the checkout, so a
//! test that needs the real file is reported as ignored where it is absent instead of passing
//! without checking anything.

fn main() {
    let corpus = std::path::Path::new("../shared/data/tinyshakespeare.txt");
    println!("cargo::rustc-check-cfg=cfg(shared_corpus)");
    println!("cargo::rerun-if-changed={}", corpus.display());
    if corpus.exists() {
        println!("cargo::rustc-cfg=shared_corpus");
    }
}
