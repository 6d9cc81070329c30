//! A corpus is any UTF-8 text file; errors say which way a file is unusable.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Karpathy's tiny Shakespeare (1,115,394 bytes), as char-rnn and nanoGPT use it.
pub const TINY_SHAKESPEARE_URL: &str =
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt";
pub const TINY_SHAKESPEARE_SHA256: &str = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed";

/// Reads a UTF-8 corpus, refusing missing, empty and non-UTF-8 files with the reason.
pub fn load_corpus(path: &Path) -> Result<String> {
    if !path.exists() {
        bail!(
            "corpus {} does not exist (`gradscope data tinyshakespeare` downloads tiny Shakespeare into data/)",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading corpus {}", path.display()))?;
    if bytes.is_empty() {
        bail!("corpus {} is empty", path.display());
    }
    match String::from_utf8(bytes) {
        Ok(text) if text.trim().is_empty() => bail!("corpus {} holds only whitespace", path.display()),
        Ok(text) => Ok(text),
        Err(e) => bail!(
            "corpus {} is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ),
    }
}

/// nanoGPT's split by position: the first 90 % of tokens train, the last 10 % validate.
pub fn split_train_val(tokens: &[u32]) -> (&[u32], &[u32]) {
    tokens.split_at(tokens.len() * 9 / 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_corpora_are_refused_with_the_reason() {
        let dir = std::env::temp_dir().join(format!("gradscope-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = |name: &str, bytes: Option<&[u8]>| {
            let p = dir.join(name);
            if let Some(b) = bytes {
                std::fs::write(&p, b).unwrap();
            }
            format!("{:#}", load_corpus(&p).unwrap_err())
        };
        assert!(err("missing.txt", None).contains("does not exist"));
        assert!(err("empty.txt", Some(b"")).contains("is empty"));
        assert!(err("blank.txt", Some(b" \n\n")).contains("only whitespace"));
        assert!(
            err("latin1.txt", Some(b"caf\xe9 au lait")).contains("not UTF-8 text (invalid byte at offset 3)")
        );
        let ok = dir.join("ok.txt");
        std::fs::write(&ok, "To be, or not to be").unwrap();
        assert_eq!(load_corpus(&ok).unwrap(), "To be, or not to be");
        let tokens: Vec<u32> = (0..100).collect();
        let (train, val) = split_train_val(&tokens);
        assert_eq!((train.len(), val.len(), val[0]), (90, 10, 90));
    }
}
