//! `gradscope sample`: generate text from a trained language-model run, streaming to stdout.

use crate::device::parse_device;
use crate::generate::{generate, SampleOptions};
use crate::text::TextTokenizer;
use crate::train::{RunDir, TaskName, TrainConfig};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// A `train --task text` run directory.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Text to continue. [default: a newline]
    #[arg(long, default_value = "\n")]
    pub prompt: String,
    /// Tokens to generate.
    #[arg(long, default_value_t = 500)]
    pub tokens: usize,
    /// Softmax temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    /// Sample among the k most likely tokens only.
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// GPT: tokens dropped at once when the context window is full, after which the key/value
    /// cache is recomputed. Default: half the context, so a token costs O(context) on average
    /// and sees between context/2 + 1 and context tokens. 1 is nanoGPT's crop exactly (every
    /// token sees the last `context` tokens, but each token past the window re-reads all of it).
    #[arg(long, value_name = "N")]
    pub slide: Option<usize>,
    /// cpu | cuda | cuda:N | metal.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: SampleArgs) -> Result<()> {
    if !(args.temperature >= 0.0 && args.temperature.is_finite()) {
        bail!("--temperature must be a finite number ≥ 0 (got {})", args.temperature);
    }
    if args.top_k == Some(0) {
        bail!("--top-k must be ≥ 1");
    }
    let cfg = TrainConfig::from_run_dir(&args.run)?;
    if cfg.task != TaskName::Text {
        bail!(
            "--run {}: a {} run is not a language model (train with --task text)",
            args.run.display(),
            cfg.task
        );
    }
    let device = parse_device(&args.device)?;
    let (model, _varmap) = RunDir::new(&args.run).load_model(&device)?;
    let model_cfg = model.config();
    let tokenizer = TextTokenizer::load_from_run(&args.run)?;
    if tokenizer.vocab_size() != model_cfg.output_size {
        bail!(
            "the tokenizer in {} has {} tokens but the model predicts {}: they do not belong together",
            args.run.display(),
            tokenizer.vocab_size(),
            model_cfg.output_size
        );
    }
    let prompt = tokenizer.encode(&args.prompt).context("--prompt")?;
    let opts = SampleOptions {
        tokens: args.tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        seed: args.seed,
        slide: args.slide.unwrap_or((model_cfg.context / 2).max(1)),
    };

    let mut stdout = std::io::stdout().lock();
    write!(stdout, "{}", args.prompt)?;
    // BPE tokens can end inside a multi-byte character: print the decoded text as it completes.
    let (mut ids, mut printed) = (Vec::new(), 0usize);
    let started = std::time::Instant::now();
    generate(&model, &prompt, &opts, &device, |id| {
        ids.push(id);
        let text = tokenizer.decode(&ids)?;
        if !text.ends_with('\u{FFFD}') && text.len() > printed {
            write!(stdout, "{}", &text[printed..])?;
            stdout.flush()?;
            printed = text.len();
        }
        Ok(())
    })?;
    writeln!(stdout)?;
    eprintln!(
        "{} tokens in {:.2} s ({:.0} tokens/s)",
        args.tokens,
        started.elapsed().as_secs_f64(),
        args.tokens as f64 / started.elapsed().as_secs_f64()
    );
    Ok(())
}
