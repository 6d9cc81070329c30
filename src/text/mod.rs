//! Text corpora for language modelling: loading and validating a corpus, and the character and
//! BPE tokenisers.

mod corpus;
mod tokenizer;

pub use corpus::{load_corpus, split_train_val, TINY_SHAKESPEARE_SHA256, TINY_SHAKESPEARE_URL};
pub use tokenizer::TextTokenizer;
