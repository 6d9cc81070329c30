//! `gradscope data`: the one command that downloads anything. Fetches a corpus with `curl`,
//! checks its SHA-256 and writes it atomically.

use crate::text::{TINY_SHAKESPEARE_SHA256, TINY_SHAKESPEARE_URL};
use anyhow::{bail, Context, Result};
use clap::Args;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DataArgs {
    /// Dataset to fetch: tinyshakespeare.
    pub name: String,
    /// Directory to write it into.
    #[arg(long, default_value = "data")]
    pub dir: PathBuf,
    /// Take the file from a mirror (a URL) or a local copy (a path) instead of its home; the
    /// SHA-256 is checked all the same.
    #[arg(long, value_name = "URL|PATH")]
    pub from: Option<String>,
}

pub fn run(args: DataArgs) -> Result<()> {
    let (url, sha, file) = match args.name.to_ascii_lowercase().as_str() {
        "tinyshakespeare" | "tiny-shakespeare" | "shakespeare" => {
            (TINY_SHAKESPEARE_URL, TINY_SHAKESPEARE_SHA256, "tinyshakespeare.txt")
        }
        other => bail!("unknown dataset '{other}': expected tinyshakespeare"),
    };
    let target = args.dir.join(file);
    if target.exists() && sha256_hex(&std::fs::read(&target)?) == sha {
        println!("{} is present and its checksum matches", target.display());
        return Ok(());
    }
    let (source, bytes) = match &args.from {
        Some(from) if !from.contains("://") => {
            (from.as_str(), std::fs::read(from).with_context(|| format!("--from {from}: reading it"))?)
        }
        Some(from) => (from.as_str(), fetch(from)?),
        None => (url, fetch(url)?),
    };
    let got = sha256_hex(&bytes);
    if got != sha {
        bail!("{source} has SHA-256 {got}, expected {sha} for {file}; nothing was written");
    }
    crate::util::write_atomic(&target, &bytes)?;
    println!("wrote {} ({} bytes, SHA-256 verified)", target.display(), bytes.len());
    Ok(())
}

/// The body at `url`, through curl.
fn fetch(url: &str) -> Result<Vec<u8>> {
    eprintln!("downloading {url}");
    let out = std::process::Command::new("curl")
        .args(["--fail", "--location", "--silent", "--show-error", url])
        .output()
        .context("running curl (is it installed?)")?;
    if !out.status.success() {
        bail!("curl could not fetch {url}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn digest_matches_a_known_value() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
