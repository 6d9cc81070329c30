//! Character-level and BPE tokenisers behind one type.
//!
//! Character level follows nanoGPT's `shakespeare_char`: the vocabulary is the corpus's distinct
//! characters in sorted order. BPE is trained with Hugging Face `tokenizers` on byte-level
//! pre-tokenisation (GPT-2 style, so any text round-trips) and saved as a standard
//! `tokenizer.json` that `tokenizers.Tokenizer.from_file` loads in Python.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::Tokenizer;

/// The file a character vocabulary is saved in (a JSON list of the characters in id order).
pub const CHARS_FILE: &str = "chars.json";
/// The Hugging Face tokenizer file of a BPE run.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

#[derive(Clone, Debug, Serialize, Deserialize)]
struct CharVocab {
    chars: Vec<char>,
}

pub enum TextTokenizer {
    Char { chars: Vec<char>, index: HashMap<char, u32> },
    Bpe(Box<Tokenizer>),
}

impl TextTokenizer {
    /// The sorted distinct characters of `text`.
    pub fn char_level(text: &str) -> Self {
        let mut chars: Vec<char> =
            text.chars().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        chars.dedup();
        Self::from_chars(chars)
    }

    fn from_chars(chars: Vec<char>) -> Self {
        let index = chars.iter().enumerate().map(|(i, &c)| (c, i as u32)).collect();
        TextTokenizer::Char { chars, index }
    }

    /// Trains a byte-level BPE tokenizer of `vocab_size` tokens (≥ 257: 256 bytes + merges).
    pub fn train_bpe(text: &str, vocab_size: usize) -> Result<Self> {
        if vocab_size < 257 {
            bail!(
                "--vocab-size must be ≥ 257 for byte-level BPE (256 byte tokens + merges), got {vocab_size}"
            );
        }
        let mut trainer = TrainerWrapper::BpeTrainer(
            BpeTrainerBuilder::new()
                .vocab_size(vocab_size)
                .min_frequency(2)
                .show_progress(false)
                .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
                .build(),
        );
        let mut tokenizer = Tokenizer::new(BPE::default());
        tokenizer.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
        tokenizer.with_decoder(Some(ByteLevel::default()));
        tokenizer
            .train(&mut trainer, text.lines().map(|l| format!("{l}\n")))
            .map_err(|e| anyhow!("training BPE: {e}"))?;
        Ok(TextTokenizer::Bpe(Box::new(tokenizer)))
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            TextTokenizer::Char { chars, .. } => chars.len(),
            TextTokenizer::Bpe(t) => t.get_vocab_size(true),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            TextTokenizer::Char { .. } => "char",
            TextTokenizer::Bpe(_) => "bpe",
        }
    }

    /// Token ids of `text`; a character outside a char vocabulary is an error naming it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            TextTokenizer::Char { index, .. } => text
                .chars()
                .map(|c| {
                    index.get(&c).copied().ok_or_else(|| anyhow!("character {c:?} is not in the vocabulary"))
                })
                .collect(),
            TextTokenizer::Bpe(t) => crate::util::catch_panic("BPE encoding", || t.encode(text, false))?
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| anyhow!("BPE encoding: {e}")),
        }
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match self {
            TextTokenizer::Char { chars, .. } => ids
                .iter()
                .map(|&i| {
                    chars
                        .get(i as usize)
                        .copied()
                        .ok_or_else(|| anyhow!("token id {i} is outside the vocabulary"))
                })
                .collect(),
            TextTokenizer::Bpe(t) => crate::util::catch_panic("BPE decoding", || t.decode(ids, false))?
                .map_err(|e| anyhow!("BPE decoding: {e}")),
        }
    }

    /// Writes `chars.json` or `tokenizer.json` into `dir`, atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        match self {
            TextTokenizer::Char { chars, .. } => {
                let json = serde_json::to_string(&CharVocab { chars: chars.clone() })?;
                crate::util::write_atomic(&dir.join(CHARS_FILE), json.as_bytes())
            }
            TextTokenizer::Bpe(t) => {
                let json = t.to_string(true).map_err(|e| anyhow!("serialising tokenizer: {e}"))?;
                crate::util::write_atomic(&dir.join(TOKENIZER_FILE), json.as_bytes())
            }
        }
    }

    /// Loads a `tokenizer.json` (Hugging Face format) or a `chars.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading tokenizer {}", path.display()))?;
        if let Ok(v) = serde_json::from_str::<CharVocab>(&text) {
            if v.chars.is_empty() {
                bail!("{}: empty character vocabulary", path.display());
            }
            return Ok(Self::from_chars(v.chars));
        }
        // `tokenizers` panics on some malformed files (a continuing-subword prefix longer than a
        // merge's token, found by tests/fuzz.rs): such a file is an error like any other.
        let bad = || format!("{} is not a usable tokenizer.json", path.display());
        let t: Tokenizer = crate::util::catch_panic(&bad(), || text.parse::<Tokenizer>())?
            .map_err(|e| anyhow!("{}: {e}", bad()))?;
        Ok(TextTokenizer::Bpe(Box::new(t)))
    }

    /// The saved tokenizer of a run directory.
    pub fn load_from_run(dir: &Path) -> Result<Self> {
        match Self::load_saved(dir)? {
            Some(t) => Ok(t),
            None => bail!("{} holds no {TOKENIZER_FILE} or {CHARS_FILE}", dir.display()),
        }
    }

    /// The saved tokenizer of a run directory, None when it holds none; a saved file that does
    /// not load is an error (never silently replaced by a fresh tokenizer).
    pub fn load_saved(dir: &Path) -> Result<Option<Self>> {
        for name in [TOKENIZER_FILE, CHARS_FILE] {
            if dir.join(name).exists() {
                return Self::load(&dir.join(name)).map(Some);
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str =
        "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n";

    #[test]
    fn char_level_round_trips_and_sorts() {
        let t = TextTokenizer::char_level(TEXT);
        let ids = t.encode(TEXT).unwrap();
        assert_eq!(t.decode(&ids).unwrap(), TEXT);
        assert_eq!(t.encode("\n").unwrap(), vec![0], "sorted: newline first");
        assert!(t.encode("Z").unwrap_err().to_string().contains("'Z'"));
    }

    #[test]
    fn bpe_trains_saves_loads_and_round_trips() {
        let corpus = TEXT.repeat(30);
        let t = TextTokenizer::train_bpe(&corpus, 300).unwrap();
        assert!(t.vocab_size() > 256 && t.vocab_size() <= 300, "{}", t.vocab_size());
        let ids = t.encode(TEXT).unwrap();
        assert!(ids.len() < TEXT.len(), "merges shorten the text");
        assert_eq!(t.decode(&ids).unwrap(), TEXT);
        // Unseen text still round-trips through the byte alphabet.
        let unseen = "Zebra ünïcødé 🙂";
        assert_eq!(t.decode(&t.encode(unseen).unwrap()).unwrap(), unseen);
        let dir = std::env::temp_dir().join(format!("gradscope-bpe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        t.save(&dir).unwrap();
        let back = TextTokenizer::load_from_run(&dir).unwrap();
        assert_eq!(back.encode(TEXT).unwrap(), ids);
        assert!(TextTokenizer::train_bpe(&corpus, 100).is_err());
    }
}
